/**
 * The zoo's non-GEMM training kernels (GELU with its derivative; multi-head attention forward and
 * backward over a whole batch), in WASM SIMD from assembly/zoo-train.ts, with plain-TS reference
 * twins (`zooKernelsRef`) that compute the same formulas in the same order up to float rounding.
 * In plain TS these ops were about half of a ViT training step (erf's Math.exp alone ~30 ns per
 * element; attention as ~9,000 tiny gemm calls a step).
 */
import { Arena, instantiateKernel, layout } from '../../src/kernels/wasm-runtime.ts';
import { wasmBase64 } from '../../src/kernels/wasm/zoo-train.ts';

export interface ZooKernels {
  readonly kind: 'wasm' | 'ts';
  /** y = GELU(x), slope = GELU'(x), elementwise. */
  gelu(x: Float32Array, y: Float32Array, slope: Float32Array): void;
  /** qkv [B, T, 3·H·dh] -> out [B, T, H·dh] and the softmax p [B, H, T, T]. */
  attentionForward(qkv: Float32Array, out: Float32Array, p: Float32Array, batch: number, tokens: number, heads: number, dh: number, scale: number): void;
  /** dOut [B, T, H·dh] (with the forward's qkv and p) -> dqkv [B, T, 3·H·dh]. */
  attentionBackward(dOut: Float32Array, qkv: Float32Array, p: Float32Array, dqkv: Float32Array, batch: number, tokens: number, heads: number, dh: number, scale: number): void;
}

const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

export function zooKernelsRef(): ZooKernels {
  return {
    kind: 'ts',
    gelu(x, y, slope) {
      for (let i = 0; i < x.length; i++) {
        const v = x[i];
        const a = Math.abs(v) * INV_SQRT2;
        const t = 1 / (1 + 0.3275911 * a);
        const e = Math.exp(-a * a);
        const erfA = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * e;
        const cdf = 0.5 * (1 + (v < 0 ? -erfA : erfA));
        y[i] = v * cdf;
        slope[i] = cdf + v * e * INV_SQRT_2PI;
      }
    },
    attentionForward(qkv, out, p, B, T, H, dh, scale) {
      const D = H * dh, row = 3 * D;
      for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
        const base = b * T * row, ps = (b * H + h) * T * T;
        for (let i = 0; i < T; i++) {
          const q = base + i * row + h * dh, pr = ps + i * T;
          let max = -Infinity;
          for (let j = 0; j < T; j++) {
            const k = base + j * row + D + h * dh;
            let s = 0;
            for (let c = 0; c < dh; c++) s += qkv[q + c] * qkv[k + c];
            p[pr + j] = s * scale;
            max = Math.max(max, p[pr + j]);
          }
          let sum = 0;
          for (let j = 0; j < T; j++) {
            p[pr + j] = Math.exp(p[pr + j] - max);
            sum += p[pr + j];
          }
          const o = (b * T + i) * D + h * dh;
          out.fill(0, o, o + dh);
          for (let j = 0; j < T; j++) {
            p[pr + j] /= sum;
            const v = base + j * row + 2 * D + h * dh;
            for (let c = 0; c < dh; c++) out[o + c] += p[pr + j] * qkv[v + c];
          }
        }
      }
    },
    attentionBackward(dOut, qkv, p, dqkv, B, T, H, dh, scale) {
      const D = H * dh, row = 3 * D;
      dqkv.fill(0, 0, B * T * row);
      const dp = new Float64Array(T);
      for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
        const base = b * T * row, ps = (b * H + h) * T * T;
        for (let i = 0; i < T; i++) {
          const dOi = (b * T + i) * D + h * dh, pr = ps + i * T;
          let s = 0;
          for (let j = 0; j < T; j++) {
            const v = base + j * row + 2 * D + h * dh;
            let d = 0;
            for (let c = 0; c < dh; c++) d += dOut[dOi + c] * qkv[v + c];
            dp[j] = d;
            s += d * p[pr + j];
          }
          const qi = base + i * row + h * dh;
          for (let j = 0; j < T; j++) {
            const pij = p[pr + j], ds = pij * (dp[j] - s) * scale;
            const kj = base + j * row + D + h * dh, vj = kj + D;
            for (let c = 0; c < dh; c++) {
              dqkv[vj + c] += pij * dOut[dOi + c];
              dqkv[qi + c] += ds * qkv[kj + c];
              dqkv[kj + c] += ds * qkv[qi + c];
            }
          }
        }
      }
    },
  };
}

interface ZooTrainExports {
  heapBase(): number;
  geluForward(x: number, y: number, slope: number, n: number): void;
  attentionForward(qkv: number, out: number, p: number, batch: number, tokens: number, heads: number, dh: number, scale: number): void;
  attentionBackward(dOut: number, qkv: number, p: number, dqkv: number, batch: number, tokens: number, heads: number, dh: number, scale: number, work: number): void;
}

/** The WASM kernels; each call copies its inputs into kernel memory and its outputs back. */
export async function createZooKernels(): Promise<ZooKernels> {
  const { exports, memory } = await instantiateKernel<ZooTrainExports>('zoo-train', wasmBase64);
  const arena = new Arena(memory, exports.heapBase());
  const f32 = (ptr: number, n: number) => new Float32Array(arena.buffer, ptr, n);
  const ref = zooKernelsRef();
  return {
    kind: 'wasm',
    gelu(x, y, slope) {
      const n = x.length, padded = (n + 3) & ~3;
      const { offsets, total } = layout([padded * 4, padded * 4, padded * 4]);
      const base = arena.reserve(total);
      const [px, py, ps] = offsets.map((o) => base + o);
      f32(px, n).set(x);
      exports.geluForward(px, py, ps, padded);
      y.set(f32(py, n));
      slope.set(f32(ps, n));
    },
    attentionForward(qkv, out, p, B, T, H, dh, scale) {
      if (dh % 4) return ref.attentionForward(qkv, out, p, B, T, H, dh, scale);
      const D = H * dh;
      const { offsets, total } = layout([B * T * 3 * D * 4, B * T * D * 4, B * H * T * T * 4]);
      const base = arena.reserve(total);
      const [pq, po, pp] = offsets.map((o) => base + o);
      f32(pq, B * T * 3 * D).set(qkv.subarray(0, B * T * 3 * D));
      exports.attentionForward(pq, po, pp, B, T, H, dh, scale);
      out.set(f32(po, B * T * D));
      p.set(f32(pp, B * H * T * T));
    },
    attentionBackward(dOut, qkv, p, dqkv, B, T, H, dh, scale) {
      if (dh % 4) return ref.attentionBackward(dOut, qkv, p, dqkv, B, T, H, dh, scale);
      const D = H * dh;
      const { offsets, total } = layout([B * T * D * 4, B * T * 3 * D * 4, B * H * T * T * 4, B * T * 3 * D * 4, T * 4]);
      const base = arena.reserve(total);
      const [pd, pq, pp, pg, pw] = offsets.map((o) => base + o);
      f32(pd, B * T * D).set(dOut.subarray(0, B * T * D));
      f32(pq, B * T * 3 * D).set(qkv.subarray(0, B * T * 3 * D));
      f32(pp, B * H * T * T).set(p.subarray(0, B * H * T * T));
      exports.attentionBackward(pd, pq, pp, pg, B, T, H, dh, scale, pw);
      dqkv.set(f32(pg, B * T * 3 * D));
    },
  };
}

/** One instance per thread (top-level await: the module is small and compiles in well under 1 ms). */
export const zooKernels: ZooKernels = await createZooKernels();
