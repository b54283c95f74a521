import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addBiasRef, createDenseKernel, denseTiledRef, reluRef, softmaxRowsRef } from '../src/kernels/dense.ts';
import { codeOf, rng } from './helpers.ts';

function randomArray(n: number, rand: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rand() * 2 - 1;
  return a;
}

/** Tiles of a [rows x cols] matrix in grid order, each its in-bounds h x w floats. */
function tilesOf(w: Float32Array, rows: number, cols: number, tr: number, tc: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let r0 = 0; r0 < rows; r0 += tr) {
    for (let c0 = 0; c0 < cols; c0 += tc) {
      const h = Math.min(tr, rows - r0);
      const ww = Math.min(tc, cols - c0);
      const t = new Float32Array(h * ww);
      for (let a = 0; a < h; a++) for (let b = 0; b < ww; b++) t[a * ww + b] = w[(r0 + a) * cols + c0 + b];
      out.push(t);
    }
  }
  return out;
}

function close(a: Float32Array, b: Float32Array, tol: number): void {
  assert.is(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - b[i]) > tol * (1 + Math.abs(b[i]))) assert.unreachable(`element ${i}: ${a[i]} vs ${b[i]}`);
}

test('dense kernel matches its TS twin on ragged tiled weights (both layouts), bias, relu, softmax', async () => {
  const kernel = await createDenseKernel(1 << 20);
  const { exports: k, memory } = kernel;
  const rand = rng(7);
  for (const [m, kk, n, tr, tc, transB] of [[1, 37, 45, 8, 16, false], [5, 64, 33, 16, 16, true], [3, 19, 70, 64, 64, false], [4, 70, 9, 7, 5, true]] as const) {
    const x = randomArray(m * kk, rand);
    const wRows = transB ? n : kk;
    const wCols = transB ? kk : n;
    const tiles = tilesOf(randomArray(wRows * wCols, rand), wRows, wCols, tr, tc);
    const bias = randomArray(n, rand);
    const ref = new Float32Array(m * n);
    denseTiledRef(x, m, kk, n, tiles, tr, tc, transB, ref);
    addBiasRef(ref, m, n, [{ data: bias.subarray(0, 5), start: 0 }, { data: bias.subarray(5), start: 5 }]);
    reluRef(ref, m * n);
    // Place everything in kernel memory: x, y, the tiles (at odd offsets), the pointer table, bias.
    let p = kernel.base;
    const alloc = (bytes: number, pad = 0) => {
      const at = p + pad;
      p = at + bytes + 64;
      return at;
    };
    const px = alloc(x.byteLength);
    const py = alloc(m * n * 4);
    const ptable = alloc(tiles.length * 4);
    const tablePtrs = tiles.map((t) => {
      const at = alloc(t.byteLength, 4); // 4-byte aligned only, as blocks on a page may be
      new Float32Array(memory.buffer, at, t.length).set(t);
      return at;
    });
    new Int32Array(memory.buffer, ptable, tiles.length).set(tablePtrs);
    const pb = alloc(bias.byteLength);
    new Float32Array(memory.buffer, pb, n).set(bias);
    const psegs = alloc(24);
    new Int32Array(memory.buffer, psegs, 6).set([pb, 0, 5, pb + 20, 5, n - 5]);
    new Float32Array(memory.buffer, px, x.length).set(x);
    k.denseTiled(px, m, kk, n, ptable, tr, tc, transB ? 1 : 0, py);
    k.addBias(py, m, n, psegs, 2);
    k.relu(py, m * n);
    close(new Float32Array(memory.buffer, py, m * n).slice(), ref, 1e-5);
    softmaxRowsRef(ref, m, n);
    k.softmaxRows(py, m, n);
    close(new Float32Array(memory.buffer, py, m * n).slice(), ref, 1e-5);
  }
});

test('dense kernel memory is sized once and refuses more than wasm32 addresses', async () => {
  const kernel = await createDenseKernel(3 << 20);
  assert.ok(kernel.memory.buffer.byteLength >= kernel.end);
  assert.is(await codeOf(createDenseKernel(5 * 1024 ** 3)), 'INVALID_ARGUMENT');
});

test.run();
