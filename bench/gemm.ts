/**
 * GFLOP/s of the WASM SIMD gemm against its plain-TS twin (the baseline), same run, same inputs,
 * at the shapes MLP training uses (batch 128 through 784-1024-256), in all three orientations.
 */
import { createGemm, createGemmRef, type Gemm, type GemmOptions } from '../src/kernels/gemm.ts';
import type { BenchOptions } from './run.ts';

interface Case { name: string; m: number; n: number; k: number; opts: GemmOptions }

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

/** Best-of-reps GFLOP/s, each rep running at least `minMs`. */
function measure(g: Gemm, c: Case, minMs: number, reps: number): number {
  const a = fill(c.m * c.k, 1), b = fill(c.k * c.n, 2), out = new Float32Array(c.m * c.n);
  g.matmul(c.m, c.n, c.k, a, b, out, c.opts); // warm-up (compile tiers, memory growth)
  let best = 0;
  for (let r = 0; r < reps; r++) {
    let iters = 0;
    const t0 = performance.now();
    let t = t0;
    do {
      g.matmul(c.m, c.n, c.k, a, b, out, c.opts);
      iters++;
      t = performance.now();
    } while (t - t0 < minMs);
    best = Math.max(best, (2 * c.m * c.n * c.k * iters) / ((t - t0) * 1e6));
  }
  return best;
}

export async function run(opts: BenchOptions): Promise<object> {
  const cases: Case[] = [
    { name: 'forward X·W 128x784 · 784x1024', m: 128, n: 1024, k: 784, opts: {} },
    { name: 'backward dX = dY·Wᵀ 128x1024 · (256x1024)ᵀ', m: 128, n: 256, k: 1024, opts: { transB: true } },
    { name: 'backward dW = Xᵀ·dY (128x784)ᵀ · 128x1024', m: 784, n: 1024, k: 128, opts: { transA: true } },
    { name: 'square 256', m: 256, n: 256, k: 256, opts: {} },
    { name: 'small 64x10 · (k=256)', m: 64, n: 10, k: 256, opts: {} },
  ];
  const wasm = await createGemm();
  const ts = createGemmRef();
  const minMs = opts.quick ? 150 : 500;
  const reps = opts.quick ? 2 : 4;
  const rows = [];
  for (const c of cases) {
    const wasmGflops = measure(wasm, c, minMs, reps);
    const tsGflops = measure(ts, c, minMs, reps);
    const row = { case: c.name, m: c.m, n: c.n, k: c.k, wasmGflops: +wasmGflops.toFixed(2), tsGflops: +tsGflops.toFixed(2), ratio: +(wasmGflops / tsGflops).toFixed(2) };
    console.log(`${c.name}: wasm ${row.wasmGflops} GFLOP/s, ts ${row.tsGflops} GFLOP/s, ${row.ratio}x`);
    rows.push(row);
  }
  return { baseline: 'plain-TS gemmRef (i-k-j loops), same run', unit: 'GFLOP/s (best of reps)', cases: rows };
}
