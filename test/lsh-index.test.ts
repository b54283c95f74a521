import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LshIndex } from '../src/dedup/lsh-index.ts';
import type { LshFamily } from '../src/kernels/lsh.ts';
import { gaussianBlocks, withNoise } from '../tools/fixtures/blocks.ts';
import { InvalidArgumentError } from '../src/errors.ts';

const dim = 1024;
const blocks = (count: number, seed: number) => gaussianBlocks(count, dim, seed);
const perturb = withNoise;
const ids = (from: number, n: number) => Uint32Array.from({ length: n }, (_, i) => from + i);
const block = (v: Float32Array, i: number) => v.subarray(i * dim, (i + 1) * dim);

const settings: Array<{ family: LshFamily; bands: number; hashesPerBand: number; noise: number }> = [
  { family: 'simhash', bands: 16, hashesPerBand: 16, noise: 0.002 },
  { family: 'pstable-fht', bands: 16, hashesPerBand: 2, noise: 0.001 },
  { family: 'pstable', bands: 16, hashesPerBand: 2, noise: 0.001 },
];

for (const s of settings) {
  test(`${s.family} index finds each block's near-duplicate and few unrelated blocks`, async () => {
    const index = await LshIndex.create({ family: s.family, dim, bands: s.bands, hashesPerBand: s.hashesPerBand, seed: 3 });
    const base = blocks(40, 1);
    index.add(ids(1000, 40), base);
    assert.is(index.size, 40);
    const near = perturb(base, 2, s.noise);
    const sets = index.candidatesMany(near);
    let found = 0, unrelated = 0;
    for (let q = 0; q < 40; q++) {
      const got = Array.from(sets.ids.subarray(sets.offsets[q], sets.offsets[q + 1]));
      if (got[0] === 1000 + q) found++;
      unrelated += got.filter((id) => id !== 1000 + q).length;
    }
    assert.ok(found >= 38, `near-duplicates ranked first: ${found}/40`);
    assert.ok(unrelated <= 40, `unrelated candidates: ${unrelated} over 40 queries`);
    const strangers = index.candidatesMany(blocks(40, 99));
    assert.ok(strangers.ids.length <= 40, `candidates for unrelated queries: ${strangers.ids.length}`);
  });
}

test('an identical block collides in every band and is found by a single query', async () => {
  const index = await LshIndex.create({ family: 'simhash', dim, bands: 12, seed: 7 });
  const base = blocks(10, 4);
  index.add(ids(0, 10), base);
  const c = index.candidates(block(base, 6));
  assert.is(c.ids[0], 6);
  assert.is(c.collisions[0], 12);
  assert.is(index.candidates(block(base, 6), { exclude: 6 }).ids.includes(6), false);
  assert.ok(index.has(6));
  assert.not.ok(index.has(10));
});

test('incremental adds: later blocks are found together with earlier ones, ordered by collisions then id', async () => {
  const index = await LshIndex.create({ family: 'simhash', dim, bands: 24, hashesPerBand: 8, seed: 1 });
  const base = blocks(1, 5);
  index.add(Uint32Array.of(50), base);
  index.add(Uint32Array.of(7), base.slice()); // an exact duplicate, added later with a smaller id
  index.add(Uint32Array.of(9), perturb(base, 6, 0.004));
  index.add(ids(100, 30), blocks(30, 8));
  assert.is(index.size, 33);
  const c = index.candidates(base);
  assert.equal(Array.from(c.ids.subarray(0, 2)), [7, 50]);
  assert.equal(Array.from(c.collisions.subarray(0, 2)), [24, 24]);
  assert.is(c.ids[2], 9);
  assert.ok(c.collisions[2] < 24 && c.collisions[2] >= 12, `perturbed copy collides in ${c.collisions[2]} bands`);
  const strict = index.candidates(base, { minCollisions: 24 });
  assert.equal(Array.from(strict.ids), [7, 50]);
  assert.equal(Array.from(index.candidates(base, { limit: 1 }).ids), [7]);
});

test('wasm and TS-twin backends give the same candidates', async () => {
  const opts = { family: 'pstable-fht' as const, dim, bands: 20, hashesPerBand: 1, seed: 12, bucketWidth: 0.5 };
  const a = await LshIndex.create(opts);
  const b = await LshIndex.create({ ...opts, backend: 'ts' });
  const base = blocks(20, 9);
  a.add(ids(0, 20), base);
  b.add(ids(0, 20), base);
  const q = perturb(base.subarray(0, 5 * dim), 10, 0.01);
  const ca = a.candidatesMany(q);
  const cb = b.candidatesMany(q);
  assert.equal(Array.from(ca.offsets), Array.from(cb.offsets));
  assert.equal(Array.from(ca.ids), Array.from(cb.ids));
  assert.ok(ca.ids.length > 5, 'some candidates beyond the near-duplicates (wide buckets)');
});

test('hash once, add and query by hashes', async () => {
  const index = await LshIndex.create({ family: 'simhash', dim, bands: 8, seed: 2 });
  const base = blocks(5, 11);
  const h = index.hash(base);
  index.addHashes(ids(0, 5), h);
  const sets = index.candidatesForHashes(h, { minCollisions: 8 });
  assert.equal(Array.from(sets.ids), [0, 1, 2, 3, 4]);
  assert.equal(Array.from(sets.offsets), [0, 1, 2, 3, 4, 5]);
});

test('bad input is a typed error and leaves the index unchanged', async () => {
  const isArg = (e: unknown) => e instanceof InvalidArgumentError;
  const index = await LshIndex.create({ family: 'simhash', dim, bands: 4, seed: 2 });
  index.add(ids(0, 2), blocks(2, 1));
  assert.throws(() => index.add(ids(2, 2), blocks(1, 1)), isArg);
  assert.throws(() => index.add(Uint32Array.of(5, 1), blocks(2, 3)), (e: unknown) => isArg(e) && /id 1 is already/.test((e as Error).message));
  assert.throws(() => index.add(Uint32Array.of(8, 8), blocks(2, 3)), isArg);
  assert.is(index.size, 2);
  assert.not.ok(index.has(5));
  assert.throws(() => index.candidates(new Float32Array(dim - 1)), isArg);
  assert.throws(() => index.candidatesMany(new Float32Array(dim + 1)), isArg);
  assert.throws(() => index.candidatesForHashes(new Int32Array(4), { minCollisions: 0 }), isArg);
  await LshIndex.create({ family: 'simhash', dim, bands: 0, seed: 1 }).then(
    () => assert.unreachable('bands 0 accepted'),
    (e: unknown) => assert.ok(isArg(e)),
  );
});

test.run();
