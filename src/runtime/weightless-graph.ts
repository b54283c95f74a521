/**
 * A model's graph with its weights turned into graph inputs, so an onnxruntime session holds the
 * graph only and is fed the weights from one pooled copy on every run (onnxruntime-node does not
 * copy input tensors: docs/TOOLCHAIN.md#sharing-weights-across-sessions-measured-2026-12-01-onnxruntime-130).
 *
 * Which weights become inputs, and why the others stay in the graph:
 * - main-graph initializers and Constant nodes' `value` tensors (PP-OCR keeps its weights in
 *   Constant nodes): the Constant node is removed and its output becomes an input of that name;
 * - initializers and Constants inside If/Loop/Scan subgraphs are hoisted to main-graph inputs
 *   (a subgraph reads outer-scope values by name), but only when the name is defined once in the
 *   whole model, so hoisting cannot make a reference resolve to another value;
 * - small tensors stay: integer ones under `minBytes` (shape inference and constant folding need
 *   tensors such as Reshape's shape) and float ones of fewer than `minFloatElements` elements
 *   (scalars such as GELU's 0.5). Float tensors above that are fed even when small (biases,
 *   norm scales): they are what fine-tunes change, so models that differ only in weights end up
 *   with byte-identical weight-less graphs and share one session;
 * - tensors in functions and training graphs, and tensor attributes of other ops, stay.
 *
 * Slots are in the skeleton's walk order (src/onnx/model.ts), which is the store's tensor order;
 * the slots that stay keep that order in the rewritten skeleton, so `assembleModel(skeleton,
 * inlineData)` fills them.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  ModelProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  TensorProto_DataType,
  type GraphProto,
  type NodeProto,
  type TensorProto,
} from 'onnx-buf';
import { InvalidModelError } from '../errors.ts';

/** One weight slot of the skeleton, as the store lists it (walk order). */
export interface WeightSlot {
  name: string;
  location: string;
  bytes: number;
  dtype: string;
}

export interface WeightlessGraph {
  /** The skeleton with the fed weights removed; its remaining slots are `inline`, in order. */
  skeleton: Uint8Array;
  /** Slot index → the graph input that receives it. */
  fed: { slot: number; input: string }[];
  /** Slot indexes still in the graph (their bytes are part of the session's own memory). */
  inline: number[];
  /** Nodes left to compute (every graph's, subgraphs included; fed Constant nodes removed). */
  nodes: number;
  /** Elements of the model's own inputs at batch 1 (symbolic dimensions counted as 1). */
  inputElements: number;
  /** Whether an input has a symbolic dimension past the first (batch): its run's size is unknown. */
  dynamicInputs: boolean;
}

/** Integer tensors smaller than this stay in the graph (onnx's own external-data threshold). */
export const FEED_MIN_BYTES = 1024;
/** Float tensors with fewer elements than this stay in the graph (constants, not weights). */
export const FEED_MIN_FLOAT_ELEMENTS = 16;

const FLOAT_BYTES: Record<string, number> = { float32: 4, float16: 2, bfloat16: 2, float64: 8 };

interface Visit {
  tensor: TensorProto;
  graph: GraphProto;
  /** The Constant node holding it, or undefined for an initializer. */
  node?: NodeProto;
  /** Set when the tensor is some other op's attribute (never fed). */
  attribute: boolean;
  main: boolean;
}

export function weightlessGraph(skeleton: Uint8Array, slots: readonly WeightSlot[], opts: { minBytes?: number; minFloatElements?: number } = {}): WeightlessGraph {
  const minBytes = opts.minBytes ?? FEED_MIN_BYTES;
  const minFloat = opts.minFloatElements ?? FEED_MIN_FLOAT_ELEMENTS;
  const small = (s: WeightSlot) => (FLOAT_BYTES[s.dtype] ? s.bytes < minFloat * FLOAT_BYTES[s.dtype] : s.bytes < minBytes);
  let model;
  try {
    model = fromBinary(ModelProtoSchema, skeleton);
  } catch (e) {
    throw new InvalidModelError('ONNX_MALFORMED', `the skeleton cannot be decoded: ${(e as Error).message}`);
  }
  const main = model.graph;
  if (!main) throw new InvalidModelError('ONNX_MALFORMED', 'the skeleton has no graph');
  // The same walk as src/onnx/model.ts (initializers, then node attributes depth first), main
  // graph only: functions and training graphs come after it and are never fed.
  const visits: Visit[] = [];
  const definitions = new Map<string, number>();
  const define = (name: string) => definitions.set(name, (definitions.get(name) ?? 0) + 1);
  let nodes = 0;
  const walk = (graph: GraphProto, isMain: boolean): void => {
    nodes += graph.node.length;
    for (const i of graph.input) define(i.name);
    for (const t of graph.initializer) {
      define(t.name);
      if (t.dataType !== TensorProto_DataType.STRING) visits.push({ tensor: t, graph, attribute: false, main: isMain });
    }
    for (const node of graph.node) {
      for (const o of node.output) define(o);
      for (const attr of node.attribute) {
        const dense = (t: TensorProto) => t.dataType !== TensorProto_DataType.STRING;
        if (attr.t && dense(attr.t)) {
          const constant = node.opType === 'Constant' && (node.domain === '' || node.domain === 'ai.onnx') && attr.name === 'value' && node.output.length === 1;
          visits.push({ tensor: attr.t, graph, node: constant ? node : undefined, attribute: !constant, main: isMain });
        }
        for (const t of attr.tensors) if (dense(t)) visits.push({ tensor: t, graph, attribute: true, main: isMain });
        if (attr.g) walk(attr.g, false);
        for (const g of attr.graphs) walk(g, false);
      }
    }
  };
  walk(main, true);
  if (visits.length > slots.length) {
    throw new InvalidModelError('ONNX_MALFORMED', `the skeleton's main graph has ${visits.length} weight slots but the catalog lists ${slots.length}`);
  }
  const declared = new Set(main.input.map((i) => i.name));
  const initializers = new Set(main.initializer.map((t) => t.name));
  let inputElements = 0;
  let dynamicInputs = false;
  for (const i of main.input) {
    if (initializers.has(i.name) || i.type?.value.case !== 'tensorType') continue;
    const dims = i.type.value.value.shape?.dim ?? [];
    if (dims.some((d, k) => k > 0 && d.value.case !== 'dimValue')) dynamicInputs = true;
    inputElements += dims.reduce((n, d) => n * (d.value.case === 'dimValue' ? Math.max(1, Number(d.value.value)) : 1), 1);
  }
  const fed: { slot: number; input: string }[] = [];
  const inline: number[] = [];
  const removedInit = new Map<GraphProto, Set<TensorProto>>();
  const removedNodes = new Map<GraphProto, Set<NodeProto>>();
  const mark = <K, V>(m: Map<K, Set<V>>, k: K, v: V) => (m.get(k) ?? m.set(k, new Set()).get(k)!).add(v);
  slots.forEach((slot, i) => {
    const v = visits[i];
    if (!v || v.attribute || small(slot)) return inline.push(i);
    const input = v.node ? v.node.output[0] : v.tensor.name;
    // A hoisted subgraph value must be the only definition of its name.
    if (!input || (!v.main && definitions.get(input) !== 1) || (v.main && v.node && definitions.get(input) !== 1)) return inline.push(i);
    if (v.node) mark(removedNodes, v.graph, v.node);
    else mark(removedInit, v.graph, v.tensor);
    fed.push({ slot: i, input });
    if (v.main && !v.node && declared.has(input)) return; // old-style models list initializers as inputs already
    main.input.push(
      create(ValueInfoProtoSchema, {
        name: input,
        type: create(TypeProtoSchema, {
          value: {
            case: 'tensorType',
            value: create(TypeProto_TensorSchema, {
              elemType: v.tensor.dataType,
              shape: create(TensorShapeProtoSchema, { dim: v.tensor.dims.map((d) => create(TensorShapeProto_DimensionSchema, { value: { case: 'dimValue', value: d } })) }),
            }),
          },
        }),
      }),
    );
  });
  for (let i = visits.length; i < slots.length; i++) inline.push(i);
  for (const [g, set] of removedInit) g.initializer = g.initializer.filter((t) => !set.has(t));
  for (const [g, set] of removedNodes) (g.node = g.node.filter((n) => !set.has(n))), (nodes -= set.size);
  // Names and descriptions do not change what a graph computes, and exporters stamp each model's
  // own (the zoo writes its name and how it was made): dropped, so fine-tunes of one architecture
  // keep byte-identical weight-less graphs and share one session.
  model.docString = '';
  model.metadataProps = [];
  main.name = 'weightless';
  main.docString = '';
  return { skeleton: toBinary(ModelProtoSchema, model), fed, inline, nodes, inputElements, dynamicInputs };
}
