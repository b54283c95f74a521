import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createGemm, gemmRef, type GemmOptions } from '../src/kernels/gemm.ts';
import { InvalidArgumentError } from '../src/errors.ts';
import { rng } from './helpers.ts';

function randArray(n: number, r: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r() * 2 - 1;
  return a;
}

const gemm = await createGemm();

function compare(m: number, n: number, k: number, opts: GemmOptions, r: () => number): void {
  const a = randArray(m * k, r);
  const b = randArray(k * n, r);
  const c0 = randArray(m * n, r);
  const want = c0.slice();
  const got = c0.slice();
  gemmRef(m, n, k, a, b, want, opts);
  gemm.matmul(m, n, k, a, b, got, opts);
  // Sums of k terms of magnitude <= 1 in f32: rounding grows like sqrt(k)·eps.
  const tol = 1e-5 * (k + 1);
  for (let i = 0; i < m * n; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol)) {
      assert.unreachable(`m=${m} n=${n} k=${k} ${JSON.stringify(opts)}: C[${i}] = ${got[i]}, reference ${want[i]}`);
    }
  }
}

test('wasm gemm matches the TS reference on random shapes, all transposes, with and without accumulate', () => {
  const r = rng(42);
  const shapes: [number, number, number][] = [
    [1, 1, 1], [3, 5, 7], [4, 8, 16], [5, 9, 3], [17, 33, 65], [64, 64, 64], [65, 513, 257], [130, 10, 300],
    [1, 1024, 784], [128, 7, 5], [7, 3, 600],
  ];
  for (const [m, n, k] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const accumulate of [false, true]) compare(m, n, k, { transA, transB, accumulate }, r);
      }
    }
  }
  for (let t = 0; t < 30; t++) {
    const m = 1 + Math.floor(r() * 90), n = 1 + Math.floor(r() * 90), k = 1 + Math.floor(r() * 300);
    compare(m, n, k, { transA: r() < 0.5, transB: r() < 0.5, accumulate: r() < 0.5 }, r);
  }
});

test('k = 0 gives zeros (or keeps C when accumulating); NaN in C is overwritten without accumulate', () => {
  const c = new Float32Array([1, 2, 3, 4]);
  gemm.matmul(2, 2, 0, new Float32Array(0), new Float32Array(0), c, { accumulate: true });
  assert.equal(Array.from(c), [1, 2, 3, 4]);
  gemm.matmul(2, 2, 0, new Float32Array(0), new Float32Array(0), c);
  assert.equal(Array.from(c), [0, 0, 0, 0]);
  const nan = new Float32Array(6).fill(NaN);
  gemm.matmul(2, 3, 1, new Float32Array([1, 2]), new Float32Array([1, 1, 1]), nan);
  assert.equal(Array.from(nan), [1, 1, 1, 2, 2, 2]);
});

test('same inputs give bit-identical outputs (deterministic)', () => {
  const r = rng(7);
  const a = randArray(70 * 300, r), b = randArray(300 * 90, r);
  const c1 = new Float32Array(70 * 90), c2 = new Float32Array(70 * 90);
  gemm.matmul(70, 90, 300, a, b, c1);
  gemm.matmul(70, 90, 300, a, b, c2);
  assert.equal(Buffer.from(c1.buffer), Buffer.from(c2.buffer));
});

test('arrays too short for the shape are rejected with InvalidArgumentError', () => {
  for (const f of [gemm.matmul, gemmRef]) {
    assert.throws(() => f(2, 2, 2, new Float32Array(3), new Float32Array(4), new Float32Array(4)), (e: unknown) => e instanceof InvalidArgumentError);
    assert.throws(() => f(2, -1, 2, new Float32Array(3), new Float32Array(4), new Float32Array(4)), (e: unknown) => e instanceof InvalidArgumentError);
  }
});

test.run();
