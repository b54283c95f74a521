/**
 * The zoo's ViT: 16 patches of 7x7 pixels, a linear patch embedding plus learned positions,
 * pre-norm encoder layers (LayerNorm, multi-head self-attention, LayerNorm, MLP with exact GELU),
 * a final LayerNorm, the mean over tokens and a Linear head. Written as PyTorch 1.13 exports it
 * (opset 17): LayerNormalization, MatMul + Add for token-wise linears (weights [in, out]),
 * Reshape / Transpose / Gather to split heads, MatMul / Div / Softmax / MatMul for attention, Gemm
 * for the attention output projection and the head, GELU as Div / Erf / Add / Mul / Mul, residual
 * Adds, ReduceMean over tokens. Input `input` [batch, 1, 28, 28], output `logits`.
 * Attention's projections run on the WASM gemm, its core (scores, softmax, values) on the zoo's
 * WASM attention kernel (bench/zoo/kernels.ts).
 */
import type { Gemm } from '../../src/kernels/gemm.ts';
import { Linear, MeanPool, Sequential, bindGemm, ones, param, zeros, normal, type Module, type Param } from './nn.ts';
import { GraphWriter } from './onnx-graph.ts';
import { zooKernels } from './kernels.ts';
import { Rng } from './train.ts';
import type { FamilyNet } from './cnn.ts';
import type { Architecture } from './family.ts';
import type { ZooSize } from './build.ts';

const TOKENS = 16;
const PATCH = 49;

/** [B, 28*28] image -> [B, 16, 49] patches (row-major 4x4 grid of 7x7), PyTorch's reshape/permute. */
export class Patchify implements Module {
  readonly params: Param[] = [];
  readonly inSize = 784;
  readonly outSize = TOKENS * PATCH;
  forward(x: Float32Array, batch: number): Float32Array {
    const y = new Float32Array(batch * 784);
    for (let b = 0; b < batch; b++) {
      for (let py = 0; py < 4; py++) for (let px = 0; px < 4; px++) {
        const t = py * 4 + px;
        for (let iy = 0; iy < 7; iy++) for (let ix = 0; ix < 7; ix++) {
          y[b * 784 + t * PATCH + iy * 7 + ix] = x[b * 784 + (py * 7 + iy) * 28 + px * 7 + ix];
        }
      }
    }
    return y;
  }
  backward(): Float32Array | null {
    return null; // the first layer: nothing below needs a gradient
  }
}

/** Adds a learned position embedding [1, T, D] to every sample. */
export class AddPosition implements Module {
  readonly pos: Param;
  constructor(name: string, readonly dim: number, rng: Rng) {
    this.pos = param(name, [1, TOKENS, dim], normal(rng, 0.02));
  }
  get params() { return [this.pos]; }
  get inSize() { return TOKENS * this.dim; }
  get outSize() { return TOKENS * this.dim; }
  forward(x: Float32Array, batch: number): Float32Array {
    const y = x.slice();
    const n = TOKENS * this.dim, p = this.pos.value;
    for (let b = 0; b < batch; b++) for (let i = 0; i < n; i++) y[b * n + i] += p[i];
    return y;
  }
  backward(dy: Float32Array, batch: number, needDx: boolean): Float32Array | null {
    if (this.pos.needGrad) {
      const n = TOKENS * this.dim, g = this.pos.grad;
      g.fill(0);
      for (let b = 0; b < batch; b++) for (let i = 0; i < n; i++) g[i] += dy[b * n + i];
    }
    return needDx ? dy : null;
  }
}

/** LayerNorm over the last dim (eps 1e-5), rows = tokens. */
export class LayerNorm implements Module {
  readonly weight: Param;
  readonly bias: Param;
  private xhat: Float32Array = zeros(0);
  private inv: Float32Array = zeros(0);
  constructor(name: string, readonly dim: number, readonly rows = TOKENS) {
    this.weight = param(`${name}.weight`, [dim], ones);
    this.bias = param(`${name}.bias`, [dim], zeros);
  }
  get params() { return [this.weight, this.bias]; }
  get inSize() { return this.rows * this.dim; }
  get outSize() { return this.rows * this.dim; }
  forward(x: Float32Array, batch: number): Float32Array {
    const R = batch * this.rows, D = this.dim, g = this.weight.value, bt = this.bias.value;
    const y = new Float32Array(R * D), xhat = new Float32Array(R * D), inv = new Float32Array(R);
    for (let r = 0; r < R; r++) {
      const o = r * D;
      let mean = 0;
      for (let j = 0; j < D; j++) mean += x[o + j];
      mean /= D;
      let v = 0;
      for (let j = 0; j < D; j++) v += (x[o + j] - mean) ** 2;
      const s = 1 / Math.sqrt(v / D + 1e-5);
      inv[r] = s;
      for (let j = 0; j < D; j++) {
        const h = (x[o + j] - mean) * s;
        xhat[o + j] = h;
        y[o + j] = h * g[j] + bt[j];
      }
    }
    this.xhat = xhat;
    this.inv = inv;
    return y;
  }
  backward(dy: Float32Array, batch: number, needDx: boolean): Float32Array | null {
    const R = batch * this.rows, D = this.dim, g = this.weight.value, xhat = this.xhat;
    if (this.weight.needGrad || this.bias.needGrad) {
      const gw = this.weight.grad, gb = this.bias.grad;
      gw.fill(0);
      gb.fill(0);
      for (let r = 0; r < R; r++) for (let j = 0; j < D; j++) {
        gw[j] += dy[r * D + j] * xhat[r * D + j];
        gb[j] += dy[r * D + j];
      }
    }
    if (!needDx) return null;
    const dx = new Float32Array(R * D);
    for (let r = 0; r < R; r++) {
      const o = r * D;
      let m1 = 0, m2 = 0;
      for (let j = 0; j < D; j++) {
        const d = dy[o + j] * g[j];
        m1 += d;
        m2 += d * xhat[o + j];
      }
      m1 /= D;
      m2 /= D;
      for (let j = 0; j < D; j++) dx[o + j] = this.inv[r] * (dy[o + j] * g[j] - m1 - xhat[o + j] * m2);
    }
    return dx;
  }
}

/**
 * GELU, exact form 0.5·x·(1 + erf(x/√2)), erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7:
 * training only; ONNX Erf is exact). Forward also keeps the derivative Φ(x) + x·φ(x), which
 * shares erf's exp(-x²/2), so backward is one multiply per element.
 */
export class Gelu implements Module {
  readonly params: Param[] = [];
  private slope: Float32Array = zeros(0);
  constructor(readonly inSize: number) {}
  get outSize() { return this.inSize; }
  forward(x: Float32Array): Float32Array {
    const y = new Float32Array(x.length);
    const slope = this.slope.length === x.length ? this.slope : new Float32Array(x.length);
    zooKernels.gelu(x, y, slope);
    this.slope = slope;
    return y;
  }
  backward(dy: Float32Array, _b: number, needDx: boolean): Float32Array | null {
    if (!needDx) return null;
    const n = dy.length, dx = new Float32Array(n), slope = this.slope;
    for (let i = 0; i < n; i++) dx[i] = dy[i] * slope[i];
    return dx;
  }
}

/** Multi-head self-attention over T tokens: one qkv projection, softmax(q·kᵀ/√dh)·v, an output projection. */
export class SelfAttention implements Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly children: Module[];
  gemm = null as unknown as Gemm;
  private qkvOut: Float32Array = zeros(0);
  private p: Float32Array = zeros(0);
  constructor(readonly path: string, readonly dim: number, readonly heads: number, rng: Rng, initStd?: number) {
    // The exporter writes in_proj as MatMul ([in, out]) and out_proj as Gemm ([out, in]).
    this.qkv = new Linear(`${path}.in_proj`, dim, 3 * dim, rng, TOKENS, initStd ?? Math.sqrt(1 / dim), 'in-out', `${path}.in_proj_weight`);
    this.proj = new Linear(`${path}.out_proj`, dim, dim, rng, TOKENS, initStd ?? Math.sqrt(1 / dim));
    this.children = [this.qkv, this.proj];
  }
  get params() { return [...this.qkv.params, ...this.proj.params]; }
  get inSize() { return TOKENS * this.dim; }
  get outSize() { return TOKENS * this.dim; }
  private get dh() { return this.dim / this.heads; }

  forward(x: Float32Array, batch: number): Float32Array {
    const T = TOKENS, D = this.dim, H = this.heads;
    const qkv = this.qkv.forward(x, batch);
    const p = new Float32Array(batch * H * T * T), merged = new Float32Array(batch * T * D);
    zooKernels.attentionForward(qkv, merged, p, batch, T, H, this.dh, 1 / Math.sqrt(this.dh));
    this.qkvOut = qkv;
    this.p = p;
    return this.proj.forward(merged, batch);
  }

  backward(dy: Float32Array, batch: number, needDx: boolean): Float32Array | null {
    const T = TOKENS, D = this.dim, H = this.heads;
    const dMerged = this.proj.backward(dy, batch, true)!;
    const dqkv = new Float32Array(batch * T * 3 * D);
    zooKernels.attentionBackward(dMerged, this.qkvOut, this.p, dqkv, batch, T, H, this.dh, 1 / Math.sqrt(this.dh));
    return this.qkv.backward(dqkv, batch, needDx);
  }
}

/** y = x + inner(x). */
export class Residual implements Module {
  readonly children: Module[];
  constructor(readonly inner: Sequential) {
    this.children = [inner];
  }
  get params() { return this.inner.params; }
  get inSize() { return this.inner.inSize; }
  get outSize() { return this.inner.outSize; }
  forward(x: Float32Array, batch: number): Float32Array {
    const y = this.inner.forward(x, batch);
    for (let i = 0; i < y.length; i++) y[i] += x[i];
    return y;
  }
  backward(dy: Float32Array, batch: number, needDx: boolean): Float32Array | null {
    const d = this.inner.backward(dy, batch, needDx);
    if (!needDx) return null;
    const dx = d ?? new Float32Array(dy.length);
    for (let i = 0; i < dx.length; i++) dx[i] += dy[i];
    return dx;
  }
}

export interface VitConfig {
  dim: number;
  depth: number;
  heads: number;
  mlp: number;
  /** Every Linear weight ~ N(0, initStd²) (timm's ViT init, 0.02); default: fan-in scaled. */
  initStd?: number;
}

/** Encoder layer l's two residual blocks: attention and MLP. */
function encoderLayer(l: number, c: VitConfig, rng: Rng): Residual[] {
  const p = `encoder.layers.${l}`;
  const attn = new Residual(new Sequential([new LayerNorm(`${p}.norm1`, c.dim), new SelfAttention(`${p}.self_attn`, c.dim, c.heads, rng, c.initStd)]));
  const mlp = new Residual(new Sequential([
    new LayerNorm(`${p}.norm2`, c.dim),
    new Linear(`${p}.linear1`, c.dim, c.mlp, rng, TOKENS, c.initStd ?? Math.sqrt(2 / c.dim), 'in-out'),
    new Gelu(TOKENS * c.mlp),
    new Linear(`${p}.linear2`, c.mlp, c.dim, rng, TOKENS, c.initStd ?? Math.sqrt(1 / c.mlp), 'in-out'),
  ]));
  return [attn, mlp];
}

export function createVit(gemm: Gemm, c: VitConfig, classes: number, seed: number): FamilyNet {
  const rng = new Rng(seed);
  const layers: Module[] = [
    new Patchify(),
    new Linear('patch', PATCH, c.dim, rng, TOKENS, c.initStd ?? Math.sqrt(1 / PATCH), 'in-out'),
    new AddPosition('pos', c.dim, rng),
  ];
  for (let l = 0; l < c.depth; l++) layers.push(...encoderLayer(l, c, rng));
  layers.push(new LayerNorm('norm', c.dim), new MeanPool(TOKENS, c.dim));
  const backbone = new Sequential(layers);
  const head = new Linear('head', c.dim, classes, rng, 1, c.initStd ?? Math.sqrt(1 / c.dim));
  const net = new Sequential([backbone, head]);
  bindGemm(net, gemm);
  return { net, backbone, head };
}

export function exportVit(f: FamilyNet, opts: { graphName: string; docString: string }): Uint8Array {
  const g = new GraphWriter();
  const w = (p: Param) => g.weight(p.name, p.dims, p.value);
  const layers = f.backbone.layers;
  const patch = layers[1] as Linear;
  const D = patch.outDim;
  let x = g.node('Reshape', '', ['input', g.constInt64('', [-1, 4, 7, 4, 7])]);
  x = g.node('Transpose', '', [x], { perm: [0, 1, 3, 2, 4] });
  x = g.node('Reshape', '/Reshape_1', [x, g.constInt64('', [-1, TOKENS, PATCH])]);
  x = g.node('MatMul', '/patch', [x, w(patch.weight)]);
  x = g.node('Add', '/patch', [x, w(patch.bias)]);
  x = g.node('Add', '', [x, w((layers[2] as AddPosition).pos)]);
  const layerNorm = (path: string, ln: LayerNorm, inp: string) => g.node('LayerNormalization', path, [inp, w(ln.weight), w(ln.bias)], { axis: -1, epsilon: { float: 1e-5 } });
  for (const block of layers.slice(3)) {
    if (!(block instanceof Residual)) continue;
    const [ln, body, ...rest] = block.inner.layers;
    const lnName = (ln as LayerNorm).weight.name.replace(/\.weight$/, '');
    const path = `/${lnName.replace(/\.norm[12]$/, '').replace(/\./g, '/')}`;
    const h = layerNorm(`${path}/${lnName.split('.').pop()}`, ln as LayerNorm, x);
    let y: string;
    if (body instanceof SelfAttention) {
      const a = body, H = a.heads, dh = D / H, ap = `${path}/self_attn`;
      let qkv = g.node('MatMul', ap, [h, w(a.qkv.weight)]);
      qkv = g.node('Add', ap, [qkv, w(a.qkv.bias)]);
      const split = g.node('Reshape', ap, [qkv, g.constInt64(ap, [-1, TOKENS, 3, H, dh])]);
      const heads = g.node('Transpose', ap, [split], { perm: [2, 0, 3, 1, 4] });
      const [q, k, v] = [0, 1, 2].map((i) => g.node('Gather', `${ap}/Gather_${i}`, [heads, g.constInt64Scalar(ap, i)], { axis: 0 }));
      const kt = g.node('Transpose', `${ap}/Transpose_k`, [k], { perm: [0, 1, 3, 2] });
      let s = g.node('MatMul', `${ap}/MatMul_qk`, [q, kt]);
      s = g.node('Div', ap, [s, g.constFloat(ap, Math.sqrt(dh))]);
      s = g.node('Softmax', ap, [s], { axis: -1 });
      let o = g.node('MatMul', `${ap}/MatMul_v`, [s, v]);
      o = g.node('Transpose', `${ap}/Transpose_o`, [o], { perm: [0, 2, 1, 3] });
      o = g.node('Reshape', `${ap}/Reshape_o`, [o, g.constInt64(ap, [-1, D])]);
      o = g.node('Gemm', `${ap}/out_proj`, [o, w(a.proj.weight), w(a.proj.bias)], { alpha: { float: 1 }, beta: { float: 1 }, transB: 1 });
      y = g.node('Reshape', `${ap}/Reshape_out`, [o, g.constInt64(ap, [-1, TOKENS, D])]);
    } else {
      const fc1 = body as Linear, fc2 = rest[1] as Linear;
      let m = g.node('MatMul', `${path}/linear1`, [h, w(fc1.weight)]);
      m = g.node('Add', `${path}/linear1`, [m, w(fc1.bias)]);
      const half = g.node('Div', `${path}/activation`, [m, g.constFloat(`${path}/activation`, Math.SQRT2)]);
      let e = g.node('Erf', `${path}/activation`, [half]);
      e = g.node('Add', `${path}/activation`, [e, g.constFloat(`${path}/activation`, 1)]);
      e = g.node('Mul', `${path}/activation`, [m, e]);
      e = g.node('Mul', `${path}/activation/Mul_1`, [e, g.constFloat(`${path}/activation`, 0.5)]);
      m = g.node('MatMul', `${path}/linear2`, [e, w(fc2.weight)]);
      y = g.node('Add', `${path}/linear2`, [m, w(fc2.bias)]);
    }
    x = g.node('Add', `${path}/Add_${body instanceof SelfAttention ? 'attn' : 'mlp'}`, [x, y]);
  }
  const norm = layers.find((l, i) => i > 2 && l instanceof LayerNorm) as LayerNorm;
  x = layerNorm('/norm', norm, x);
  x = g.node('ReduceMean', '', [x], { axes: [1], keepdims: 0 });
  g.node('Gemm', '/head', [x, w(f.head.weight), w(f.head.bias)], { alpha: { float: 1 }, beta: { float: 1 }, transB: 1 }, 'logits');
  return g.finish({ graphName: opts.graphName, docString: opts.docString, input: ['input', ['batch', 1, 28, 28]], output: ['logits', ['batch', f.head.outDim]] });
}

const VIT_SIZES: Record<ZooSize, VitConfig> = {
  // 1.19 M parameters: dim 128, 6 layers, 4 heads, MLP 512 (the reference graph's shape, 6 deep).
  standard: { dim: 128, depth: 6, heads: 4, mlp: 512 },
  tiny: { dim: 32, depth: 2, heads: 2, mlp: 64 },
};

export const vitArchitecture: Architecture = {
  family: 'vit',
  // 2: GELU and attention on the WASM kernels; the base and controls trained 4x / 6x longer with
  // a warm-up + cosine schedule (version 1's base, 125 constant-rate steps, held out 72%).
  version: 2,
  inputDims: [1, 28, 28],
  describe: (size) => ({ ...VIT_SIZES[size], patches: '16 of 7x7', norm: 'pre-norm LayerNorm', activation: 'GELU (erf)', pooling: 'mean over tokens' }),
  create: (gemm, size, classes, seed) => createVit(gemm, VIT_SIZES[size], classes, seed),
  export: exportVit,
  budget: (size) => size === 'standard'
    ? { trainSamples: 16000, testSamples: 4000, batch: 64, base: 32000, head: 6000, finetune: 2500, lora: 2500, version: 2500, scratch: 16000, loraRank: 8,
      lr: { base: 1e-3, head: 3e-3, finetune: 2e-4, lora: 2e-3, version: 2e-4 }, scratchSchedule: { warmup: 25, cosine: true } }
    : { trainSamples: 2000, testSamples: 1000, batch: 32, base: 2000, head: 1500, finetune: 1000, lora: 1000, version: 500, scratch: 500, loraRank: 4,
      lr: { base: 2e-3, head: 3e-3, finetune: 5e-4, lora: 3e-3, version: 3e-4 } },
};
