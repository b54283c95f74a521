/**
 * A small, deterministic MLP trainer (ReLU between layers, softmax cross-entropy, Adam) whose
 * matrix products run on the WASM SIMD gemm. Same seeds and inputs give bit-identical weights:
 * the PRNG is seeded, the gemm's summation order is fixed and everything else is plain f32/f64
 * arithmetic in a fixed order.
 */
import type { Gemm } from '../../src/kernels/gemm.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { mulberry32 } from '../../src/random.ts';

/** One fully connected layer, ONNX MatMul layout: y = x·weight + bias, weight is inDim x outDim. */
export interface Layer {
  name: string;
  inDim: number;
  outDim: number;
  weight: Float32Array;
  bias: Float32Array;
}

/** Layers applied in order, ReLU after every layer but the last (which gives the logits). */
export interface Mlp {
  layers: Layer[];
}

/** mulberry32: small, fast, seeded; the zoo never calls Math.random. */
export class Rng {
  private spare: number | null = null;
  /** Uniform in [0, 1). */
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed ^ 0x9e3779b9);
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Standard normal (Box-Muller, the second value kept for the next call). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const u = 1 - this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    const a = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(a);
    return r * Math.cos(a);
  }
  /** A fresh permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }
}

/** He-initialised MLP (weights ~ N(0, 2/inDim), biases 0); layers named fc1, fc2, ... */
export function initMlp(dims: number[], seed: number, firstIndex = 1): Mlp {
  const rng = new Rng(seed);
  const layers: Layer[] = [];
  for (let l = 0; l + 1 < dims.length; l++) {
    const inDim = dims[l], outDim = dims[l + 1];
    const weight = new Float32Array(inDim * outDim);
    const std = Math.sqrt(2 / inDim);
    for (let i = 0; i < weight.length; i++) weight[i] = rng.normal() * std;
    layers.push({ name: `fc${l + firstIndex}`, inDim, outDim, weight, bias: new Float32Array(outDim) });
  }
  return { layers };
}

export function cloneMlp(m: Mlp): Mlp {
  return { layers: m.layers.map((l) => ({ ...l, weight: l.weight.slice(), bias: l.bias.slice() })) };
}

export function paramCount(m: Mlp): number {
  return m.layers.reduce((s, l) => s + l.weight.length + l.bias.length, 0);
}

function addBias(z: Float32Array, rows: number, bias: Float32Array): void {
  const d = bias.length;
  for (let r = 0, o = 0; r < rows; r++, o += d) for (let j = 0; j < d; j++) z[o + j] += bias[j];
}

function relu(z: Float32Array, len: number): void {
  for (let i = 0; i < len; i++) if (z[i] < 0) z[i] = 0;
}

/**
 * Runs `layers` over n rows of x (n x layers[0].inDim), in chunks, returning n x outDim of the
 * last one; ReLU after each layer, and after the last only when `reluLast` (backbone features).
 */
export function forwardLayers(gemm: Gemm, layers: Layer[], x: Float32Array, n: number, reluLast: boolean, chunk = 1024): Float32Array {
  const inDim = layers[0].inDim;
  const outDim = layers[layers.length - 1].outDim;
  const out = new Float32Array(n * outDim);
  const widest = Math.max(...layers.map((l) => l.outDim));
  const bufs = [new Float32Array(chunk * widest), new Float32Array(chunk * widest)];
  for (let r0 = 0; r0 < n; r0 += chunk) {
    const rows = Math.min(chunk, n - r0);
    let h = x.subarray(r0 * inDim, (r0 + rows) * inDim);
    layers.forEach((l, i) => {
      const last = i === layers.length - 1;
      const z = last ? out.subarray(r0 * outDim, (r0 + rows) * outDim) : bufs[i % 2];
      gemm.matmul(rows, l.outDim, l.inDim, h, l.weight, z);
      addBias(z, rows, l.bias);
      if (!last || reluLast) relu(z, rows * l.outDim);
      h = z;
    });
  }
  return out;
}

/** Logits of n input rows. */
export function forward(gemm: Gemm, m: Mlp, x: Float32Array, n: number): Float32Array {
  return forwardLayers(gemm, m.layers, x, n, false);
}

/** Fraction of rows whose arg-max logit equals the label. */
export function accuracyOfLogits(logits: Float32Array, labels: Uint8Array, n: number, classes: number): number {
  let right = 0;
  for (let r = 0; r < n; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[r * classes + c] > logits[r * classes + best]) best = c;
    if (best === labels[r]) right++;
  }
  return n === 0 ? 0 : right / n;
}

/** In-place batch augmentations applied to the assembled minibatch (rows of 28x28 images). */
export type Augment = (x: Float32Array, rows: number, rng: Rng) => void;

export interface TrainConfig {
  /** Rows of `inputs` the trainer may draw from (default: all). */
  indices?: Int32Array;
  /** Optimizer steps; each draws the next `batch` rows of a seeded shuffle, reshuffled per pass. */
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  /** Layers below this index are frozen (not updated, no gradient flows into them). */
  trainFrom?: number;
  augment?: Augment;
  onStep?: (step: number, loss: number) => void;
}

/** Training samples drawn in shuffled epochs: a fresh permutation of `pool` each time it runs out. */
export class EpochSampler {
  private order: Int32Array;
  private cursor = 0;
  constructor(private readonly pool: ArrayLike<number>, private readonly rng: Rng) {
    this.order = rng.permutation(pool.length);
  }
  next(): number {
    if (this.cursor === this.order.length) {
      this.order = this.rng.permutation(this.pool.length);
      this.cursor = 0;
    }
    return this.pool[this.order[this.cursor++]];
  }
}

export const ADAM_B1 = 0.9;
export const ADAM_B2 = 0.999;
const ADAM_EPS = 1e-8;

// A small monomorphic function of its own so V8 optimises the hot loop well (~1M params a step).
export function adamUpdate(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lr: number, c1: number, c2: number): void {
  const n = p.length;
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const mi = ADAM_B1 * m[i] + (1 - ADAM_B1) * gi;
    const vi = ADAM_B2 * v[i] + (1 - ADAM_B2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= (lr * c1 * mi) / (Math.sqrt(vi * c2) + ADAM_EPS);
  }
}

/** Minibatch Adam (β1 0.9, β2 0.999, ε 1e-8) on softmax cross-entropy. Updates `m` in place. */
export function trainMlp(gemm: Gemm, m: Mlp, inputs: Float32Array, labels: Uint8Array, cfg: TrainConfig): { finalLoss: number } {
  const L = m.layers;
  const inDim = L[0].inDim;
  const classes = L[L.length - 1].outDim;
  const trainFrom = cfg.trainFrom ?? 0;
  if (trainFrom < 0 || trainFrom >= L.length) throw new InvalidArgumentError(`trainFrom ${trainFrom} outside 0..${L.length - 1}`);
  const pool = cfg.indices ?? Int32Array.from({ length: labels.length }, (_, i) => i);
  if (pool.length === 0) throw new InvalidArgumentError('no training samples');
  const B = cfg.batch;
  const rng = new Rng(cfg.seed);
  // Activations: acts[0] = input batch, acts[l+1] = output of layer l (post-ReLU except last).
  const acts = [new Float32Array(B * inDim), ...L.map((l) => new Float32Array(B * l.outDim))];
  const grads = L.map((l) => new Float32Array(B * l.outDim)); // dLoss/dz of each layer
  const gW = L.map((l, i) => (i >= trainFrom ? new Float32Array(l.weight.length) : new Float32Array(0)));
  const gB = L.map((l, i) => (i >= trainFrom ? new Float32Array(l.bias.length) : new Float32Array(0)));
  const mom = L.map((l, i) => (i >= trainFrom ? { mW: new Float32Array(l.weight.length), vW: new Float32Array(l.weight.length), mB: new Float32Array(l.bias.length), vB: new Float32Array(l.bias.length) } : null));
  const yBatch = new Uint8Array(B);
  const sampler = new EpochSampler(pool, rng);
  let loss = 0;
  for (let step = 1; step <= cfg.steps; step++) {
    // Assemble the batch.
    const x = acts[0];
    for (let r = 0; r < B; r++) {
      const s = sampler.next();
      x.set(inputs.subarray(s * inDim, (s + 1) * inDim), r * inDim);
      yBatch[r] = labels[s];
    }
    cfg.augment?.(x, B, rng);

    // Forward.
    for (let l = 0; l < L.length; l++) {
      const z = acts[l + 1];
      gemm.matmul(B, L[l].outDim, L[l].inDim, acts[l], L[l].weight, z);
      addBias(z, B, L[l].bias);
      if (l < L.length - 1) relu(z, B * L[l].outDim);
    }

    // Softmax cross-entropy: dz = (softmax - onehot) / B.
    const logits = acts[L.length];
    const dz = grads[L.length - 1];
    loss = 0;
    for (let r = 0; r < B; r++) {
      const o = r * classes;
      let max = -Infinity;
      for (let c = 0; c < classes; c++) max = Math.max(max, logits[o + c]);
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += Math.exp(logits[o + c] - max);
      for (let c = 0; c < classes; c++) dz[o + c] = Math.exp(logits[o + c] - max) / sum / B;
      dz[o + yBatch[r]] -= 1 / B;
      loss += Math.log(sum) + max - logits[o + yBatch[r]];
    }
    loss /= B;

    // Backward, top layer down to trainFrom.
    for (let l = L.length - 1; l >= trainFrom; l--) {
      const layer = L[l];
      const g = grads[l];
      gemm.matmul(layer.inDim, layer.outDim, B, acts[l], g, gW[l], { transA: true }); // dW = Xᵀ·dZ
      const gb = gB[l];
      gb.fill(0);
      for (let r = 0, o = 0; r < B; r++, o += layer.outDim) for (let j = 0; j < layer.outDim; j++) gb[j] += g[o + j];
      if (l > trainFrom) {
        const below = grads[l - 1];
        gemm.matmul(B, layer.inDim, layer.outDim, g, layer.weight, below, { transB: true }); // dX = dZ·Wᵀ
        const h = acts[l];
        for (let i = 0; i < B * layer.inDim; i++) if (h[i] <= 0) below[i] = 0; // through the ReLU
      }
    }

    // Adam.
    const c1 = 1 / (1 - Math.pow(ADAM_B1, step));
    const c2 = 1 / (1 - Math.pow(ADAM_B2, step));
    const lr = cfg.lr;
    for (let l = trainFrom; l < L.length; l++) {
      const st = mom[l]!;
      const pairs: [Float32Array, Float32Array, Float32Array, Float32Array][] = [
        [L[l].weight, gW[l], st.mW, st.vW],
        [L[l].bias, gB[l], st.mB, st.vB],
      ];
      for (const [p, g, mm, vv] of pairs) adamUpdate(p, g, mm, vv, lr, c1, c2);
    }
    cfg.onStep?.(step, loss);
  }
  return { finalLoss: loss };
}
