/**
 * Single-precision matrix product C = op(A)·op(B) (+ C), row-major, as training needs it:
 * forward X·W, backward dX = dY·Wᵀ (transB), dW = Xᵀ·dY (transA). Two implementations with one
 * signature: `gemmRef` (plain TS, the reference) and the WASM SIMD kernel from assembly/gemm.ts
 * (`createGemm`). They agree up to float rounding (the kernel sums in a blocked order).
 */
import { InvalidArgumentError } from '../errors.ts';
import { Arena, instantiateKernel, layout } from './wasm-runtime.ts';
import { wasmBase64 } from './wasm/gemm.ts';

export interface GemmOptions {
  /** A is stored k x m and used transposed. */
  transA?: boolean;
  /** B is stored n x k and used transposed. */
  transB?: boolean;
  /** Add the product to C instead of overwriting it. */
  accumulate?: boolean;
}

/** C[m x n] = op(A)[m x k] · op(B)[k x n] (+ C when accumulate). Arrays may be longer than needed. */
export type GemmFn = (
  m: number, n: number, k: number,
  a: Float32Array, b: Float32Array, c: Float32Array,
  opts?: GemmOptions,
) => void;

export interface Gemm {
  readonly kind: 'wasm' | 'ts';
  readonly matmul: GemmFn;
}

function checkShapes(m: number, n: number, k: number, a: Float32Array, b: Float32Array, c: Float32Array): void {
  for (const [name, v] of [['m', m], ['n', n], ['k', k]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new InvalidArgumentError(`gemm: ${name} must be a non-negative integer, got ${v}`);
  }
  if (a.length < m * k) throw new InvalidArgumentError(`gemm: A holds ${a.length} floats, needs m*k = ${m * k}`);
  if (b.length < k * n) throw new InvalidArgumentError(`gemm: B holds ${b.length} floats, needs k*n = ${k * n}`);
  if (c.length < m * n) throw new InvalidArgumentError(`gemm: C holds ${c.length} floats, needs m*n = ${m * n}`);
}

/** Plain-TS reference: i-k-j loops (row-streaming, so it is a fair baseline), f32 storage. */
export const gemmRef: GemmFn = (m, n, k, a, b, c, opts = {}) => {
  checkShapes(m, n, k, a, b, c);
  const { transA = false, transB = false, accumulate = false } = opts;
  if (!accumulate) c.fill(0, 0, m * n);
  if (transB) {
    // op(B)[kk][j] = b[j*k + kk]: a dot product per output.
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        const bo = j * k;
        for (let kk = 0; kk < k; kk++) s += (transA ? a[kk * m + i] : a[i * k + kk]) * b[bo + kk];
        c[i * n + j] += s;
      }
    }
    return;
  }
  for (let i = 0; i < m; i++) {
    const co = i * n;
    for (let kk = 0; kk < k; kk++) {
      const aik = transA ? a[kk * m + i] : a[i * k + kk];
      if (aik === 0) continue;
      const bo = kk * n;
      for (let j = 0; j < n; j++) c[co + j] += aik * b[bo + j];
    }
  }
};

/** The reference wrapped as a `Gemm` (same interface as the WASM one, for benchmarks and tests). */
export function createGemmRef(): Gemm {
  return { kind: 'ts', matmul: gemmRef };
}

interface GemmExports {
  heapBase(): number;
  gemmWorkspaceBytes(): number;
  gemm(
    transA: number, transB: number, m: number, n: number, k: number,
    a: number, lda: number, b: number, ldb: number, c: number, ldc: number, beta: number, work: number,
  ): void;
}

/**
 * The WASM SIMD kernel. Each call copies A, B (and C when accumulating) into the kernel's memory
 * and C back out: O(mk + kn + mn) copying against O(mkn) arithmetic, a few percent at training
 * sizes, and callers keep plain Float32Arrays.
 */
export async function createGemm(): Promise<Gemm> {
  const { exports, memory } = await instantiateKernel<GemmExports>('gemm', wasmBase64);
  const arena = new Arena(memory, exports.heapBase());
  const workBytes = exports.gemmWorkspaceBytes();
  const matmul: GemmFn = (m, n, k, a, b, c, opts = {}) => {
    checkShapes(m, n, k, a, b, c);
    const { transA = false, transB = false, accumulate = false } = opts;
    if (m === 0 || n === 0) return;
    const { offsets, total } = layout([workBytes, m * k * 4, k * n * 4, m * n * 4]);
    const base = arena.reserve(total);
    const buf = arena.buffer;
    const [pw, pa, pb, pc] = offsets.map((o) => base + o);
    new Float32Array(buf, pa, m * k).set(a.length === m * k ? a : a.subarray(0, m * k));
    new Float32Array(buf, pb, k * n).set(b.length === k * n ? b : b.subarray(0, k * n));
    const cView = new Float32Array(buf, pc, m * n);
    if (accumulate) cView.set(c.length === m * n ? c : c.subarray(0, m * n));
    exports.gemm(
      transA ? 1 : 0, transB ? 1 : 0, m, n, k,
      pa, transA ? m : k, pb, transB ? k : n, pc, n, accumulate ? 1 : 0, pw,
    );
    c.set(cView);
  };
  return { kind: 'wasm', matmul };
}
