/**
 * Layers with hand-written backward passes for the zoo's CNN and ViT families, every matrix
 * product on the project's WASM SIMD gemm (convolution as im2col + gemm, attention as batched
 * gemms). Deterministic: fixed summation order, seeded init, no Math.random.
 *
 * Activations are row-major batch-first arrays. Images are NHWC ([B, 28, 28, 1] is the same
 * memory as the NCHW [B, 1, 28, 28] the ONNX graphs take); the convolutions keep NHWC inside, so
 * im2col rows are output pixels and the gemm writes NHWC directly. Weights use PyTorch's layouts
 * (Linear [out, in], Conv [out, in, kh, kw]), so export writes them as they are.
 */
import type { Gemm } from '../../src/kernels/gemm.ts';
import { ADAM_B1, ADAM_B2, EpochSampler, Rng, adamUpdate } from './train.ts';

/** A trainable tensor; `grad` is filled by backward when `needGrad`. */
export interface Param {
  name: string;
  /** PyTorch / ONNX dims. */
  dims: number[];
  value: Float32Array;
  grad: Float32Array;
  /** Backward computes this parameter's gradient (frozen parameters skip the work). */
  needGrad: boolean;
}

export function param(name: string, dims: number[], init: (n: number) => Float32Array): Param {
  const n = dims.reduce((a, d) => a * d, 1);
  return { name, dims, value: init(n), grad: new Float32Array(n), needGrad: true };
}

export const zeros = (n: number) => new Float32Array(n);
export const normal = (rng: Rng, std: number) => (n: number) => Float32Array.from({ length: n }, () => rng.normal() * std);
export const ones = (n: number) => new Float32Array(n).fill(1);

/** A layer over `rows` rows per sample; forward caches what backward needs. */
export interface Module {
  readonly params: Param[];
  /** Floats per sample in and out. */
  readonly inSize: number;
  readonly outSize: number;
  forward(x: Float32Array, batch: number): Float32Array;
  /** Gradient of the input from the output's; accumulates nothing: parameter grads are overwritten. */
  backward(dy: Float32Array, batch: number, needDx: boolean): Float32Array | null;
}

/**
 * y = x·Wᵀ + b over `rows` rows per sample (tokens). W is [out, in] (PyTorch's Linear, ONNX Gemm
 * transB=1) or, with `layout: 'in-out'`, [in, out] (what the exporter writes for a MatMul).
 */
export class Linear implements Module {
  readonly weight: Param;
  readonly bias: Param;
  private x: Float32Array = zeros(0);
  gemm!: Gemm;
  constructor(name: string, readonly inDim: number, readonly outDim: number, rng: Rng,
    readonly rows = 1, std = Math.sqrt(2 / inDim), readonly layout: 'out-in' | 'in-out' = 'out-in', weightName = `${name}.weight`) {
    this.weight = param(weightName, layout === 'out-in' ? [outDim, inDim] : [inDim, outDim], normal(rng, std));
    this.bias = param(`${name}.bias`, [outDim], zeros);
  }
  get params() { return [this.weight, this.bias]; }
  get inSize() { return this.rows * this.inDim; }
  get outSize() { return this.rows * this.outDim; }
  forward(x: Float32Array, batch: number): Float32Array {
    const m = batch * this.rows;
    this.x = x;
    const y = new Float32Array(m * this.outDim);
    this.gemm.matmul(m, this.outDim, this.inDim, x, this.weight.value, y, { transB: this.layout === 'out-in' });
    const b = this.bias.value, d = this.outDim;
    for (let r = 0, o = 0; r < m; r++, o += d) for (let j = 0; j < d; j++) y[o + j] += b[j];
    return y;
  }
  backward(dy: Float32Array, batch: number, needDx: boolean): Float32Array | null {
    const m = batch * this.rows;
    if (this.weight.needGrad) {
      if (this.layout === 'out-in') this.gemm.matmul(this.outDim, this.inDim, m, dy, this.x, this.weight.grad, { transA: true });
      else this.gemm.matmul(this.inDim, this.outDim, m, this.x, dy, this.weight.grad, { transA: true });
    }
    if (this.bias.needGrad) {
      const g = this.bias.grad, d = this.outDim;
      g.fill(0);
      for (let r = 0, o = 0; r < m; r++, o += d) for (let j = 0; j < d; j++) g[j] += dy[o + j];
    }
    if (!needDx) return null;
    const dx = new Float32Array(m * this.inDim);
    this.gemm.matmul(m, this.inDim, this.outDim, dy, this.weight.value, dx, { transB: this.layout === 'in-out' });
    return dx;
  }
}

export class Relu implements Module {
  readonly params: Param[] = [];
  private y: Float32Array = zeros(0);
  constructor(readonly inSize: number) {}
  get outSize() { return this.inSize; }
  forward(x: Float32Array): Float32Array {
    const y = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) y[i] = x[i] > 0 ? x[i] : 0;
    this.y = y;
    return y;
  }
  backward(dy: Float32Array, _b: number, needDx: boolean): Float32Array | null {
    if (!needDx) return null;
    const dx = new Float32Array(dy.length);
    for (let i = 0; i < dy.length; i++) dx[i] = this.y[i] > 0 ? dy[i] : 0;
    return dx;
  }
}

/** 3x3 convolution, stride 1, padding 1, NHWC inside; weight [out, in, 3, 3]. */
export class Conv3x3 implements Module {
  readonly weight: Param;
  readonly bias: Param;
  private cols: Float32Array = zeros(0);
  gemm!: Gemm;
  constructor(name: string, readonly inC: number, readonly outC: number, readonly side: number, rng: Rng) {
    this.weight = param(`${name}.weight`, [outC, inC, 3, 3], normal(rng, Math.sqrt(2 / (inC * 9))));
    this.bias = param(`${name}.bias`, [outC], zeros);
  }
  get params() { return [this.weight, this.bias]; }
  get inSize() { return this.side * this.side * this.inC; }
  get outSize() { return this.side * this.side * this.outC; }
  private get k() { return this.inC * 9; }
  forward(x: Float32Array, batch: number): Float32Array {
    const S = this.side, C = this.inC, K = this.k, P = batch * S * S;
    const cols = this.cols.length === P * K ? this.cols : new Float32Array(P * K);
    cols.fill(0);
    // cols[(b, y, x), c*9 + ky*3 + kx] = in[b, y+ky-1, x+kx-1, c] (the weight's column order).
    for (let b = 0; b < batch; b++) {
      for (let y = 0; y < S; y++) {
        for (let xx = 0; xx < S; xx++) {
          const row = ((b * S + y) * S + xx) * K;
          for (let ky = 0; ky < 3; ky++) {
            const sy = y + ky - 1;
            if (sy < 0 || sy >= S) continue;
            for (let kx = 0; kx < 3; kx++) {
              const sx = xx + kx - 1;
              if (sx < 0 || sx >= S) continue;
              const src = ((b * S + sy) * S + sx) * C;
              const tap = ky * 3 + kx;
              for (let c = 0; c < C; c++) cols[row + c * 9 + tap] = x[src + c];
            }
          }
        }
      }
    }
    this.cols = cols;
    const y = new Float32Array(P * this.outC);
    this.gemm.matmul(P, this.outC, K, cols, this.weight.value, y, { transB: true });
    const bias = this.bias.value, O = this.outC;
    for (let p = 0, o = 0; p < P; p++, o += O) for (let j = 0; j < O; j++) y[o + j] += bias[j];
    return y;
  }
  backward(dy: Float32Array, batch: number, needDx: boolean): Float32Array | null {
    const S = this.side, C = this.inC, K = this.k, P = batch * S * S, O = this.outC;
    if (this.weight.needGrad) this.gemm.matmul(O, K, P, dy, this.cols, this.weight.grad, { transA: true });
    if (this.bias.needGrad) {
      const g = this.bias.grad;
      g.fill(0);
      for (let p = 0, o = 0; p < P; p++, o += O) for (let j = 0; j < O; j++) g[j] += dy[o + j];
    }
    if (!needDx) return null;
    const dcols = new Float32Array(P * K);
    this.gemm.matmul(P, K, O, dy, this.weight.value, dcols);
    const dx = new Float32Array(batch * S * S * C);
    for (let b = 0; b < batch; b++) {
      for (let y = 0; y < S; y++) {
        for (let xx = 0; xx < S; xx++) {
          const row = ((b * S + y) * S + xx) * K;
          for (let ky = 0; ky < 3; ky++) {
            const sy = y + ky - 1;
            if (sy < 0 || sy >= S) continue;
            for (let kx = 0; kx < 3; kx++) {
              const sx = xx + kx - 1;
              if (sx < 0 || sx >= S) continue;
              const dst = ((b * S + sy) * S + sx) * C;
              const tap = ky * 3 + kx;
              for (let c = 0; c < C; c++) dx[dst + c] += dcols[row + c * 9 + tap];
            }
          }
        }
      }
    }
    return dx;
  }
}

/** 2x2 max pooling, stride 2, floor (PyTorch MaxPool2d(2)), NHWC. */
export class MaxPool2 implements Module {
  readonly params: Param[] = [];
  private arg: Int32Array = new Int32Array(0);
  readonly outSide: number;
  constructor(readonly side: number, readonly channels: number) {
    this.outSide = Math.floor(side / 2);
  }
  get inSize() { return this.side * this.side * this.channels; }
  get outSize() { return this.outSide * this.outSide * this.channels; }
  forward(x: Float32Array, batch: number): Float32Array {
    const S = this.side, T = this.outSide, C = this.channels;
    const y = new Float32Array(batch * T * T * C);
    const arg = new Int32Array(y.length);
    for (let b = 0; b < batch; b++) {
      for (let oy = 0; oy < T; oy++) {
        for (let ox = 0; ox < T; ox++) {
          const o = ((b * T + oy) * T + ox) * C;
          for (let c = 0; c < C; c++) {
            let best = -Infinity, at = 0;
            for (let dy = 0; dy < 2; dy++) {
              for (let dx = 0; dx < 2; dx++) {
                const i = ((b * S + 2 * oy + dy) * S + 2 * ox + dx) * C + c;
                if (x[i] > best) { best = x[i]; at = i; }
              }
            }
            y[o + c] = best;
            arg[o + c] = at;
          }
        }
      }
    }
    this.arg = arg;
    return y;
  }
  backward(dy: Float32Array, batch: number, needDx: boolean): Float32Array | null {
    if (!needDx) return null;
    const dx = new Float32Array(batch * this.inSize);
    for (let i = 0; i < dy.length; i++) dx[this.arg[i]] += dy[i];
    return dx;
  }
}

/** Mean over the spatial positions (or tokens): [B, P, C] -> [B, C]. */
export class MeanPool implements Module {
  readonly params: Param[] = [];
  constructor(readonly positions: number, readonly channels: number) {}
  get inSize() { return this.positions * this.channels; }
  get outSize() { return this.channels; }
  forward(x: Float32Array, batch: number): Float32Array {
    const P = this.positions, C = this.channels;
    const y = new Float32Array(batch * C);
    for (let b = 0; b < batch; b++) {
      for (let p = 0; p < P; p++) {
        const i = (b * P + p) * C;
        for (let c = 0; c < C; c++) y[b * C + c] += x[i + c];
      }
      for (let c = 0; c < C; c++) y[b * C + c] /= P;
    }
    return y;
  }
  backward(dy: Float32Array, batch: number, needDx: boolean): Float32Array | null {
    if (!needDx) return null;
    const P = this.positions, C = this.channels;
    const dx = new Float32Array(batch * P * C);
    for (let b = 0; b < batch; b++) for (let p = 0; p < P; p++) for (let c = 0; c < C; c++) dx[(b * P + p) * C + c] = dy[b * C + c] / P;
    return dx;
  }
}

/** Modules in order; the last one gives the logits. */
export class Sequential implements Module {
  constructor(readonly layers: Module[]) {}
  get params() { return this.layers.flatMap((l) => l.params); }
  get inSize() { return this.layers[0].inSize; }
  get outSize() { return this.layers[this.layers.length - 1].outSize; }
  forward(x: Float32Array, batch: number): Float32Array {
    let h = x;
    for (const l of this.layers) h = l.forward(h, batch);
    return h;
  }
  backward(dy: Float32Array, batch: number, needDx: boolean): Float32Array | null {
    // Stop at the lowest layer that has (or sits above) a parameter needing a gradient.
    let lowest = this.layers.length;
    for (let i = 0; i < this.layers.length; i++) if (paramsOf(this.layers[i]).some((p) => p.needGrad)) { lowest = i; break; }
    let g: Float32Array | null = dy;
    for (let i = this.layers.length - 1; i >= 0 && g; i--) {
      if (i < lowest && !needDx) return null;
      g = this.layers[i].backward(g, batch, needDx || i > lowest);
    }
    return g;
  }
}

function paramsOf(m: Module): Param[] {
  return m.params;
}

/** Every module in a tree with a `gemm` field gets the kernel. */
export function bindGemm(m: Module, gemm: Gemm): void {
  const visit = (x: unknown) => {
    if (x instanceof Linear || x instanceof Conv3x3 || (typeof x === 'object' && x !== null && 'gemm' in x)) (x as { gemm: Gemm }).gemm = gemm;
    if (x instanceof Sequential) x.layers.forEach(visit);
    const kids = (x as { children?: Module[] }).children;
    if (kids) kids.forEach(visit);
  };
  visit(m);
}

/** Adam over a fixed list of tensors. */
export class Adam {
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private t = 0;
  constructor(private readonly tensors: { value: Float32Array; grad: Float32Array }[], public lr: number) {
    this.m = tensors.map((p) => new Float32Array(p.value.length));
    this.v = tensors.map((p) => new Float32Array(p.value.length));
  }
  step(): void {
    this.t++;
    const c1 = 1 / (1 - Math.pow(ADAM_B1, this.t));
    const c2 = 1 / (1 - Math.pow(ADAM_B2, this.t));
    this.tensors.forEach((p, i) => adamUpdate(p.value, p.grad, this.m[i], this.v[i], this.lr, c1, c2));
  }
}

/**
 * A LoRA adapter on one weight: W = W0 + (alpha / r)·B·A, with W viewed as rows x cols (a conv
 * weight as out x in·kh·kw), A (r x cols) random, B (rows x r) zero, so training starts at W0.
 * The layer computes dW as usual; the adapter turns it into dA, dB.
 */
export class LoraAdapter {
  readonly rows: number;
  readonly cols: number;
  readonly base: Float32Array;
  readonly a: { value: Float32Array; grad: Float32Array };
  readonly b: { value: Float32Array; grad: Float32Array };
  readonly scale: number;
  constructor(readonly target: Param, readonly rank: number, rng: Rng, alpha = rank) {
    this.rows = target.dims[0];
    this.cols = target.value.length / this.rows;
    this.base = target.value.slice();
    this.scale = alpha / rank;
    this.a = { value: normal(rng, 1 / Math.sqrt(this.cols))(rank * this.cols), grad: new Float32Array(rank * this.cols) };
    this.b = { value: new Float32Array(this.rows * rank), grad: new Float32Array(this.rows * rank) };
    target.needGrad = true;
  }
  /** W = W0 + scale·B·A (before each forward, and once more at the end: the merge). */
  apply(gemm: Gemm): void {
    const w = this.target.value;
    gemm.matmul(this.rows, this.cols, this.rank, this.b.value, this.a.value, w);
    for (let i = 0; i < w.length; i++) w[i] = this.base[i] + this.scale * w[i];
  }
  /** dB = scale·dW·Aᵀ, dA = scale·Bᵀ·dW. */
  gradients(gemm: Gemm): void {
    const dw = this.target.grad;
    gemm.matmul(this.rows, this.rank, this.cols, dw, this.a.value, this.b.grad, { transB: true });
    gemm.matmul(this.rank, this.cols, this.rows, this.b.value, dw, this.a.grad, { transA: true });
    for (const g of [this.a.grad, this.b.grad]) for (let i = 0; i < g.length; i++) g[i] *= this.scale;
  }
}

export interface NetTrainConfig {
  /** Rows of `inputs` the trainer may draw from. */
  indices: Int32Array;
  steps: number;
  batch: number;
  lr: number;
  /**
   * Learning-rate schedule: `warmup` steps rising linearly to `lr`, then a cosine decay to 0 at
   * the last step (default: constant `lr`). Short from-scratch runs of a transformer need both.
   */
  schedule?: { warmup: number; cosine: boolean };
  seed: number;
  /** Parameters updated (default: all); the rest are frozen. */
  trainable?: Param[];
  /** LoRA adapters (their targets are not updated directly; merged at the end). */
  lora?: LoraAdapter[];
  augment?: (x: Float32Array, rows: number, rng: Rng) => void;
  onStep?: (step: number, loss: number) => void;
}

/** Softmax cross-entropy: fills dz = (softmax - onehot) / B, returns the mean loss. */
export function softmaxCrossEntropy(logits: Float32Array, labels: Uint8Array, batch: number, classes: number, dz: Float32Array): number {
  let loss = 0;
  for (let r = 0; r < batch; r++) {
    const o = r * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[o + c]);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[o + c] - max);
    for (let c = 0; c < classes; c++) dz[o + c] = Math.exp(logits[o + c] - max) / sum / batch;
    dz[o + labels[r]] -= 1 / batch;
    loss += Math.log(sum) + max - logits[o + labels[r]];
  }
  return loss / batch;
}

/** The learning rate of step 1..steps under a warm-up + cosine schedule. */
export function scheduledLr(lr: number, s: { warmup: number; cosine: boolean }, step: number, steps: number): number {
  if (step <= s.warmup) return (lr * step) / (s.warmup + 1);
  if (!s.cosine) return lr;
  const t = (step - s.warmup) / Math.max(1, steps - s.warmup);
  return 0.5 * lr * (1 + Math.cos(Math.PI * t));
}

/** Minibatch Adam on softmax cross-entropy; updates the net (or its adapters, merged at the end). */
export function trainNet(gemm: Gemm, net: Module, inputs: Float32Array, labels: Uint8Array, cfg: NetTrainConfig): { finalLoss: number } {
  const all = net.params;
  const lora = cfg.lora ?? [];
  const loraTargets = new Set(lora.map((l) => l.target));
  const trainable = new Set(cfg.trainable ?? (lora.length ? [] : all));
  for (const p of all) p.needGrad = trainable.has(p) || loraTargets.has(p);
  const opt = new Adam([...all.filter((p) => trainable.has(p)), ...lora.flatMap((l) => [l.a, l.b])], cfg.lr);
  const inDim = net.inSize, classes = net.outSize, B = cfg.batch;
  const rng = new Rng(cfg.seed);
  const pool = cfg.indices;
  const sampler = new EpochSampler(pool, rng);
  const x = new Float32Array(B * inDim);
  const y = new Uint8Array(B);
  const dz = new Float32Array(B * classes);
  let loss = 0;
  for (let step = 1; step <= cfg.steps; step++) {
    for (let r = 0; r < B; r++) {
      const s = sampler.next();
      x.set(inputs.subarray(s * inDim, (s + 1) * inDim), r * inDim);
      y[r] = labels[s];
    }
    cfg.augment?.(x, B, rng);
    if (cfg.schedule) opt.lr = scheduledLr(cfg.lr, cfg.schedule, step, cfg.steps);
    for (const l of lora) l.apply(gemm);
    const logits = net.forward(x, B);
    loss = softmaxCrossEntropy(logits, y, B, classes, dz);
    net.backward(dz, B, false);
    for (const l of lora) l.gradients(gemm);
    opt.step();
    cfg.onStep?.(step, loss);
  }
  for (const l of lora) l.apply(gemm);
  for (const p of all) p.needGrad = true;
  return { finalLoss: loss };
}

/** Logits of n rows, in chunks. */
export function predict(net: Module, x: Float32Array, n: number, chunk = 256): Float32Array {
  const out = new Float32Array(n * net.outSize);
  for (let r0 = 0; r0 < n; r0 += chunk) {
    const rows = Math.min(chunk, n - r0);
    out.set(net.forward(x.subarray(r0 * net.inSize, (r0 + rows) * net.inSize), rows), r0 * net.outSize);
  }
  return out;
}
