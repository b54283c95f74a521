/**
 * Block-native execution of dense MLP graphs: a model whose graph is a chain of
 * MatMul / Gemm / Add(bias) / Relu / Softmax over one float32 [batch, features] input runs on the
 * WASM kernels of src/kernels/dense.ts, reading weight tiles in place from pooled page frames.
 * Any other graph (or a weight stored as a delta block, which must be decoded) is not eligible:
 * `densePlanOf` says why, and the server falls back to onnxruntime.
 */
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, type AttributeProto, type NodeProto } from 'onnx-buf';
import type { ModelEntry, TensorEntry } from '../catalog/catalog.ts';
import type { BlockTable } from '../store/block-source.ts';
import { gridOf, tileExtent, type TileShape } from '../blocks/tiling.ts';
import { InferenceError } from '../errors.ts';
import { tensorData } from '../onnx/tensor-values.ts';

export type DenseStep =
  | { op: 'dense'; tensor: number; k: number; n: number; transB: boolean }
  | { op: 'bias'; tensor: number; n: number }
  | { op: 'relu' }
  | { op: 'softmax' };

export interface DensePlan {
  input: string;
  output: string;
  inFeatures: number;
  outFeatures: number;
  /** The widest activation (floats per row), for scratch sizing. */
  maxWidth: number;
  steps: DenseStep[];
  /** Most tiles of any weight tensor (tile-pointer table size). */
  maxTiles: number;
}

function attr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

/** The dense plan of a model, or a reason it cannot run block-native. */
export function densePlanOf(model: ModelEntry, catalog: BlockTable, tile: TileShape): DensePlan | { reason: string } {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return { reason: 'needs exactly one input and one output' };
  const [inp] = model.inputs;
  const [out] = model.outputs;
  if (inp.dtype !== 'float32' || out.dtype !== 'float32') return { reason: 'input/output not float32' };
  if (inp.shape.length !== 2 || typeof inp.shape[1] !== 'number') return { reason: 'input is not [batch, features] with fixed features' };
  let graph;
  try {
    graph = fromBinary(ModelProtoSchema, model.skeleton).graph!;
  } catch {
    return { reason: 'skeleton cannot be decoded' };
  }
  const weights = new Map<string, number>();
  model.tensors.forEach((t, i) => {
    if (t.location === 'graph') weights.set(t.name, i);
  });
  for (const t of model.tensors) {
    if (t.dtype !== 'float32') return { reason: `tensor ${t.name} is ${t.dtype}, not float32` };
    for (const id of t.blocks) {
      const b = catalog.blocks.get(id);
      if (b?.base !== undefined || b?.codec !== undefined) return { reason: `tensor ${t.name} holds delta-encoded or coded blocks (decoded, not read in place)` };
    }
  }
  const steps: DenseStep[] = [];
  let cur = inp.name;
  let width = inp.shape[1];
  let maxWidth = width;
  let maxTiles = 1;
  const weightOf = (name: string): TensorEntry | undefined => (weights.has(name) ? model.tensors[weights.get(name)!] : undefined);
  const addBias = (name: string, n: number): string | undefined => {
    const b = weightOf(name);
    if (!b) return `bias ${name} is not an initializer`;
    const ok = (b.dims.length === 1 && b.dims[0] === n) || (b.dims.length === 2 && b.dims[0] === 1 && b.dims[1] === n);
    if (!ok) return `bias ${name} [${b.dims.join(', ')}] does not broadcast as [${n}]`;
    steps.push({ op: 'bias', tensor: weights.get(name)!, n });
    return undefined;
  };
  const addDense = (name: string, transB: boolean): string | undefined => {
    const w = weightOf(name);
    if (!w || w.dims.length !== 2) return `weight ${name} is not a 2-D initializer`;
    const [r, c] = w.dims;
    const k = transB ? c : r;
    const n = transB ? r : c;
    if (k !== width) return `weight ${name} expects ${k} features, the activation has ${width}`;
    steps.push({ op: 'dense', tensor: weights.get(name)!, k, n, transB });
    maxTiles = Math.max(maxTiles, gridOf(w.dims, tile).count);
    width = n;
    maxWidth = Math.max(maxWidth, n);
    return undefined;
  };
  for (const node of graph.node) {
    if (node.domain && node.domain !== 'ai.onnx') return { reason: `node ${node.opType} of domain ${node.domain}` };
    const ins = node.input;
    if (node.output.length !== 1) return { reason: `${node.opType} with ${node.output.length} outputs` };
    let why: string | undefined;
    switch (node.opType) {
      case 'MatMul':
        if (ins[0] !== cur) return { reason: 'graph is not a single chain' };
        why = addDense(ins[1], false);
        break;
      case 'Gemm': {
        if (ins[0] !== cur) return { reason: 'graph is not a single chain' };
        const f = (n: string, d: number) => attr(node, n)?.f ?? d;
        const i = (n: string) => Number(attr(node, n)?.i ?? 0n);
        if (f('alpha', 1) !== 1 || f('beta', 1) !== 1 || i('transA') !== 0) return { reason: 'Gemm with alpha/beta ≠ 1 or transA' };
        why = addDense(ins[1], i('transB') === 1);
        if (!why && ins[2]) why = addBias(ins[2], width);
        break;
      }
      case 'Add': {
        const other = ins[0] === cur ? ins[1] : ins[1] === cur ? ins[0] : undefined;
        if (other === undefined) return { reason: 'Add not on the chain' };
        why = addBias(other, width);
        break;
      }
      case 'Relu':
        if (ins[0] !== cur) return { reason: 'graph is not a single chain' };
        steps.push({ op: 'relu' });
        break;
      case 'Softmax': {
        if (ins[0] !== cur) return { reason: 'graph is not a single chain' };
        const axis = Number(attr(node, 'axis')?.i ?? -1n);
        if (axis !== -1 && axis !== 1) return { reason: `Softmax over axis ${axis}` };
        steps.push({ op: 'softmax' });
        break;
      }
      default:
        return { reason: `operator ${node.opType} has no block-native kernel` };
    }
    if (why) return { reason: why };
    cur = node.output[0];
  }
  if (cur !== out.name) return { reason: 'the chain does not end at the graph output' };
  if (!steps.some((s) => s.op === 'dense')) return { reason: 'no dense layer' };
  return { input: inp.name, output: out.name, inFeatures: inp.shape[1], outFeatures: width, maxWidth, steps, maxTiles };
}

/** Per-run tile addresses: the byte address of each block of a tensor, given its page's frame. */
export function tileAddresses(t: TensorEntry, catalog: BlockTable, frameOf: (page: number) => number, out: Int32Array): number {
  for (let i = 0; i < t.blocks.length; i++) {
    const b = catalog.blocks.get(t.blocks[i])!;
    out[i] = frameOf(b.page) + b.offset;
  }
  return t.blocks.length;
}

/** Bias segments (ptr, start, len triples) of a bias tensor's tiles. */
export function biasSegments(t: TensorEntry, catalog: BlockTable, tile: TileShape, frameOf: (page: number) => number, out: Int32Array): number {
  const grid = gridOf(t.dims, tile);
  let s = 0;
  for (let i = 0; i < grid.count; i++) {
    const { r0, c0, h, w } = tileExtent(grid, tile, i);
    const b = catalog.blocks.get(t.blocks[i])!;
    const base = frameOf(b.page) + b.offset;
    if (w === grid.cols) {
      // Whole rows ([n] as n x 1, or [1, n]): the tile is one contiguous run.
      out[s * 3] = base;
      out[s * 3 + 1] = r0 * grid.cols + c0;
      out[s * 3 + 2] = h * w;
      s++;
      continue;
    }
    for (let a = 0; a < h; a++) {
      out[s * 3] = base + a * w * 4;
      out[s * 3 + 1] = (r0 + a) * grid.cols + c0;
      out[s * 3 + 2] = w;
      s++;
    }
  }
  return s;
}

/** Checks a dense model's feed: one float32 [batch, features] tensor. Returns its data and batch. */
export function denseFeed(model: string, plan: DensePlan, feeds: Record<string, unknown>): { data: Float32Array; batch: number } {
  for (const name of Object.keys(feeds)) {
    if (name !== plan.input) throw new InferenceError('INVALID_FEEDS', `model "${model}" has no input "${name}"; its inputs are: ${plan.input}.`);
  }
  const f = feeds[plan.input] as { data?: unknown; dims?: unknown; type?: string; dtype?: string } | undefined;
  if (!f) throw new InferenceError('INVALID_FEEDS', `model "${model}" needs input "${plan.input}" (float32 [N, ${plan.inFeatures}]).`);
  const dtype = f.type ?? f.dtype ?? 'float32';
  if (dtype !== 'float32') throw new InferenceError('INVALID_FEEDS', `input "${plan.input}" must be float32, got ${dtype}.`);
  const dims = f.dims as number[];
  if (!Array.isArray(dims) || dims.length !== 2 || dims.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new InferenceError('INVALID_FEEDS', `input "${plan.input}" must have rank 2 ([N, ${plan.inFeatures}]), got [${Array.isArray(dims) ? dims.join(', ') : String(dims)}].`);
  }
  if (dims[1] !== plan.inFeatures) throw new InferenceError('INVALID_FEEDS', `input "${plan.input}" dim 1 must be ${plan.inFeatures}, got ${dims[1]} (shape [${dims.join(', ')}]).`);
  // Checked like every plain feed (src/onnx/tensor-values.ts): a string or null is refused, not NaN or 0.
  const data = tensorData('float32', f.data, `input "${plan.input}"`) as Float32Array;
  if (data.length !== dims[0] * dims[1]) throw new InferenceError('INVALID_FEEDS', `input "${plan.input}": ${data.length} values given, dims [${dims.join(', ')}] need ${dims[0] * dims[1]}.`);
  return { data, batch: dims[0] };
}
