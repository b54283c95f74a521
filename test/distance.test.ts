import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  blockRegion, l2Reference, maxAbsReference, similarityReference, WasmBlockDistance, NETSDB_SIMILARITY_EPS,
  type BlockRegion,
} from '../src/kernels/distance.ts';
import { Xoshiro128 } from '../src/kernels/lsh.ts';
import { InvalidArgumentError } from '../src/errors.ts';

const wasm = await WasmBlockDistance.create();

function gaussians(n: number, seed: number, sigma: number): Float32Array {
  const v = new Xoshiro128(seed).gaussians(new Float32Array(n));
  for (let i = 0; i < n; i++) v[i] *= sigma;
  return v;
}
/** A tile whose padding (outside validRows x validCols) is zero. */
function padded(tileRows: number, tileCols: number, validRows: number, validCols: number, values: Float32Array): Float32Array {
  const t = new Float32Array(tileRows * tileCols);
  for (let r = 0; r < validRows; r++) for (let c = 0; c < validCols; c++) t[r * tileCols + c] = values[r * tileCols + c];
  return t;
}

const shapes: Array<[number, number, number, number]> = [
  [64, 64, 64, 64], [64, 64, 17, 64], [64, 64, 33, 23], [16, 16, 16, 5], [8, 9, 7, 9], [8, 13, 3, 1], [1, 4096, 1, 4093],
];

for (const [tr, tc, vr, vc] of shapes) {
  test(`wasm and TS twin agree bit for bit on a ${vr}x${vc} region of a ${tr}x${tc} tile`, () => {
    const region = blockRegion(tr, tc, vr, vc);
    const t = tr * tc;
    const q = padded(tr, tc, vr, vc, gaussians(t, tr * 7 + vc, 0.05));
    // Candidates: near copies (so similarity is neither 0 nor 1) and unrelated blocks.
    const count = 13;
    const cands = new Float32Array(count * t);
    for (let i = 0; i < count; i++) {
      const noise = gaussians(t, 100 + i, i % 2 ? 0.008 : 0.05);
      for (let j = 0; j < t; j++) cands[i * t + j] = (i % 2 ? q[j] : 0) + noise[j];
    }
    const list = Array.from({ length: count }, (_, i) => cands.slice(i * t, (i + 1) * t));
    for (const [name, ref] of [['l2', l2Reference], ['maxAbs', maxAbsReference], ['similarity', similarityReference]] as const) {
      const want = ref(q, cands, region);
      const got = wasm[name](q, cands, region);
      assert.equal(Array.from(got), Array.from(want), name);
      assert.equal(Array.from(wasm[name](q, list, region)), Array.from(want), `${name} (list of tiles)`);
    }
    const sims = similarityReference(q, cands, region);
    if (vr * vc >= 64) assert.ok(sims[1] > 0.5 && sims[1] < 1, `near-copy similarity ${sims[1]}`);
  });
}

test('distances match double-precision definitions within 1e-5 relative', () => {
  const region = blockRegion(32, 32, 20, 31);
  const q = gaussians(1024, 1, 0.05);
  const cands = gaussians(1024 * 5, 2, 0.05);
  const l2 = wasm.l2(q, cands, region);
  const mx = wasm.maxAbs(q, cands, region);
  const sim = wasm.similarity(q, cands, region, 0.03);
  for (let c = 0; c < 5; c++) {
    let s = 0, m = 0, n = 0;
    for (let r = 0; r < 20; r++) {
      for (let j = 0; j < 31; j++) {
        const d = Math.fround(q[r * 32 + j] - cands[c * 1024 + r * 32 + j]);
        s += d * d; m = Math.max(m, Math.abs(d)); if (Math.abs(d) <= Math.fround(0.03)) n++;
      }
    }
    assert.ok(Math.abs(l2[c] - Math.sqrt(s)) <= 1e-5 * Math.sqrt(s), `l2 ${l2[c]} vs ${Math.sqrt(s)}`);
    assert.is(mx[c], Math.fround(m));
    assert.is(sim[c], Math.fround(n / 620));
  }
});

test('padding is excluded: blocks equal on the valid region are identical, whatever lies outside', () => {
  const region = blockRegion(8, 8, 5, 6);
  const q = padded(8, 8, 5, 6, gaussians(64, 3, 1));
  const other = q.slice();
  other[7] = 9; // column 7 of row 0: padding
  other[63] = -9; // last row: padding
  assert.equal(Array.from(wasm.similarity(q, other, region)), [1]);
  assert.equal(Array.from(wasm.l2(q, other, region)), [0]);
  assert.equal(Array.from(wasm.maxAbs(q, other, region)), [0]);
  other[5] += 1; // inside
  assert.is(wasm.similarity(q, other, region)[0], Math.fround(29 / 30));
  assert.is(wasm.maxAbs(q, other, region)[0], 1);
});

test('netsDB similarity counts |x - y| <= 0.01', () => {
  const region = blockRegion(1, 8);
  const q = new Float32Array(8);
  const c = Float32Array.from([0, 0.005, -0.0099, 0.0101, 0.5, -0.02, 0, 0]);
  assert.is(NETSDB_SIMILARITY_EPS, 0.01);
  assert.is(wasm.similarity(q, c, region)[0], 5 / 8);
  assert.is(similarityReference(q, c, region)[0], 5 / 8);
});

test('more candidates than one wasm chunk', () => {
  const region = blockRegion(64, 64);
  const q = gaussians(4096, 5, 0.05);
  const count = 300; // chunks hold 256 tiles of 4096 floats
  const cands = gaussians(4096 * count, 6, 0.05);
  cands.set(q, 299 * 4096);
  const got = wasm.l2(q, cands, region);
  assert.equal(Array.from(got), Array.from(l2Reference(q, cands, region)));
  assert.is(got[299], 0);
  assert.is(wasm.similarity(q, cands, region)[299], 1);
});

test('bad regions and shapes are typed errors', () => {
  const isArg = (e: unknown) => e instanceof InvalidArgumentError;
  assert.throws(() => blockRegion(8, 8, 9, 8), isArg);
  assert.throws(() => blockRegion(8, 8, 2, -1), isArg);
  assert.throws(() => blockRegion(0, 8), isArg);
  const region: BlockRegion = blockRegion(8, 8);
  assert.throws(() => wasm.l2(new Float32Array(63), new Float32Array(64), region), isArg);
  assert.throws(() => wasm.l2(new Float32Array(64), new Float32Array(65), region), isArg);
  assert.throws(() => wasm.maxAbs(new Float32Array(64), [new Float32Array(64), new Float32Array(8)], region), isArg);
  assert.throws(() => similarityReference(new Float32Array(64), new Float32Array(64), blockRegion(8, 8, 0, 8)), isArg);
  assert.is(wasm.l2(new Float32Array(64), new Float32Array(0), region).length, 0);
});

test.run();
