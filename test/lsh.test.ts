import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  fhtReference, lshRandom, ReferenceLshHasher, resolveLshParams, WasmLshHasher, Xoshiro128,
  type LshFamily, type LshParams,
} from '../src/kernels/lsh.ts';
import { InvalidArgumentError } from '../src/errors.ts';
import { gaussianBlocks, withNoise } from '../tools/fixtures/blocks.ts';

const blocks = gaussianBlocks;
const perturb = withNoise;
function countEqual(a: Int32Array, b: Int32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) n++;
  return n;
}

// Shapes chosen to hit every kernel path: odd block counts (tiling leftovers), projection counts
// not divisible by 4, dims not divisible by 4 (padding), several FHT rotations, radix-2 tail stages.
const cases: Array<{ family: LshFamily; dim: number; bands: number; hashesPerBand?: number; count: number; rounds?: number }> = [
  { family: 'pstable', dim: 4096, bands: 90, count: 5 },
  { family: 'pstable', dim: 37, bands: 7, hashesPerBand: 3, count: 9 },
  { family: 'pstable-fht', dim: 4096, bands: 90, count: 5 },
  { family: 'pstable-fht', dim: 2000, bands: 30, hashesPerBand: 2, count: 4, rounds: 2 },
  { family: 'simhash', dim: 4096, bands: 32, count: 6 },
  { family: 'simhash', dim: 37, bands: 40, hashesPerBand: 13, count: 7, rounds: 1 },
  { family: 'simhash', dim: 8, bands: 3, hashesPerBand: 32, count: 3 },
];

for (const c of cases) {
  test(`wasm and TS twin give identical ${c.family} hashes (dim ${c.dim}, ${c.bands} bands x ${c.hashesPerBand ?? 'default'})`, async () => {
    const params: LshParams = { family: c.family, dim: c.dim, bands: c.bands, seed: 11, hashesPerBand: c.hashesPerBand, rounds: c.rounds };
    const v = blocks(c.count, c.dim, 1 + c.dim);
    const wasm = (await WasmLshHasher.create(params)).hash(v);
    const ref = new ReferenceLshHasher(params).hash(v);
    assert.is(wasm.length, c.count * c.bands);
    assert.equal(Array.from(wasm), Array.from(ref));
  });
}

test('wasm hashing in chunks equals hashing block by block', async () => {
  const h = await WasmLshHasher.create({ family: 'simhash', dim: 4096, bands: 16, seed: 5 });
  const count = h.chunkBlocks + 17;
  const v = blocks(count, 4096, 3);
  const all = h.hash(v);
  for (const i of [0, h.chunkBlocks - 1, h.chunkBlocks, count - 1]) {
    assert.equal(Array.from(h.hash(v.subarray(i * 4096, (i + 1) * 4096))), Array.from(all.subarray(i * 16, (i + 1) * 16)));
  }
});

test('fhtReference is multiplication by the Hadamard matrix', () => {
  const n = 16;
  const x = new Xoshiro128(9).gaussians(new Float32Array(n));
  const y = x.slice();
  fhtReference(y);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) {
      let bits = i & j, parity = 0;
      while (bits) { parity ^= bits & 1; bits >>= 1; }
      s += parity ? -x[j] : x[j];
    }
    assert.ok(Math.abs(s - y[i]) < 1e-4, `row ${i}: ${s} vs ${y[i]}`);
  }
});

test('pstable hashes are floor((a.v + b) / r) with netsDB defaults', () => {
  const params = resolveLshParams({ family: 'pstable', dim: 64, bands: 90, seed: 2 });
  assert.is(params.bucketWidth, Math.fround(0.09));
  assert.is(params.hashesPerBand, 1);
  const { matrix, offsets } = lshRandom(params);
  const v = blocks(20, 64, 8);
  const got = new ReferenceLshHasher(params).hash(v);
  let flips = 0;
  for (let b = 0; b < 20; b++) {
    for (let r = 0; r < 90; r++) {
      let dot = 0;
      for (let j = 0; j < 64; j++) dot += matrix[r * 64 + j] * v[b * 64 + j];
      const want = Math.floor((dot + offsets[r]) / 0.09);
      // f32 accumulation may land on the other side of a bucket boundary, very rarely
      if (got[b * 90 + r] !== want) flips++;
      assert.ok(Math.abs(got[b * 90 + r] - want) <= 1);
    }
  }
  assert.ok(flips <= 2, `${flips} boundary flips`);
  for (const o of offsets) assert.ok(o >= 0 && o < 0.09);
});

test('generator: same seed, same numbers; Gaussians have mean 0 and variance 1', () => {
  const a = new Xoshiro128(42).gaussians(new Float32Array(20000));
  const b = new Xoshiro128(42).gaussians(new Float32Array(20000));
  assert.equal(a, b);
  const mean = a.reduce((s, x) => s + x, 0) / a.length;
  const variance = a.reduce((s, x) => s + (x - mean) ** 2, 0) / a.length;
  assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.05, `variance ${variance}`);
  assert.not.equal(Array.from(new Xoshiro128(43).gaussians(new Float32Array(4))), Array.from(a.subarray(0, 4)));
});

test('pstable-fht coordinates are distributed like a.v: collision rate tracks dense pstable', async () => {
  // Same r, same noise: both families should collide in a similar share of bands.
  const dim = 4096;
  const base = blocks(8, dim, 21);
  const near = perturb(base, 22, 0.002); // |delta| ~ 0.13 ~ 1.4 r
  const shares: number[] = [];
  for (const family of ['pstable', 'pstable-fht'] as const) {
    const h = await WasmLshHasher.create({ family, dim, bands: 90, seed: 4 });
    shares.push(countEqual(h.hash(base), h.hash(near)) / (8 * 90));
  }
  assert.ok(Math.abs(shares[0] - shares[1]) < 0.1, `collision shares ${shares.join(' vs ')}`);
  assert.ok(shares[0] > 0.2 && shares[0] < 0.8, `dense share ${shares[0]}`);
});

for (const family of ['pstable', 'pstable-fht', 'simhash'] as const) {
  test(`${family}: identical blocks agree in every band, near-duplicates in many, unrelated in few`, async () => {
    const dim = 1024;
    const h = await WasmLshHasher.create({ family, dim, bands: 32, seed: 9, hashesPerBand: family === 'simhash' ? 16 : 1 });
    const base = blocks(16, dim, 31);
    const hb = h.hash(base);
    assert.equal(Array.from(h.hash(base.slice())), Array.from(hb));
    const near = countEqual(hb, h.hash(perturb(base, 32, 0.0005))) / hb.length;
    const far = countEqual(hb, h.hash(blocks(16, dim, 33))) / hb.length;
    assert.ok(near > 0.5, `near-duplicate band agreement ${near}`);
    assert.ok(far < near / 3, `unrelated band agreement ${far} vs near ${near}`);
  });
}

test('different seeds give different hashes', async () => {
  const v = blocks(4, 256, 1);
  const a = (await WasmLshHasher.create({ family: 'simhash', dim: 256, bands: 8, seed: 1 })).hash(v);
  const b = (await WasmLshHasher.create({ family: 'simhash', dim: 256, bands: 8, seed: 2 })).hash(v);
  assert.ok(countEqual(a, b) < 4);
});

test('bad parameters and inputs are typed errors', async () => {
  const bad: Array<Partial<LshParams>> = [
    { family: 'minhash' as LshFamily }, { dim: 0 }, { bands: 1.5 }, { seed: 0.5 },
    { family: 'simhash', hashesPerBand: 33 }, { bucketWidth: 0 }, { bucketWidth: Number.NaN }, { rounds: 0 },
  ];
  for (const b of bad) {
    assert.throws(() => resolveLshParams({ family: 'pstable', dim: 16, bands: 4, seed: 1, ...b }), (e: unknown) => e instanceof InvalidArgumentError);
  }
  const h = await WasmLshHasher.create({ family: 'pstable', dim: 16, bands: 4, seed: 1 });
  assert.throws(() => h.hash(new Float32Array(17)), (e: unknown) => e instanceof InvalidArgumentError && /16 floats/.test((e as Error).message));
  assert.throws(() => new ReferenceLshHasher(h.params).hash(new Float32Array(32), 3), (e: unknown) => e instanceof InvalidArgumentError);
  assert.is(h.hash(new Float32Array(0)).length, 0);
});

test.run();
