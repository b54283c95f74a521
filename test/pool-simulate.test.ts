/** The trace simulator and its seeded workload generators. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { distinctBytes, fineTuneFamily, hitRatioTable, pageSharers, simulate, zipfTrace } from '../src/pool/index.ts';
import { InvalidArgumentError } from '../src/errors.ts';

const names = (n: number) => Array.from({ length: n }, (_, i) => `m${i}`);

test('zipfTrace is seeded, skewed as asked, and reshuffles popularity per phase', () => {
  const models = names(10);
  const a = zipfTrace({ models, skew: 1.2, requests: 4000, seed: 3 });
  assert.equal(a, zipfTrace({ models, skew: 1.2, requests: 4000, seed: 3 }));
  assert.not.equal(a, zipfTrace({ models, skew: 1.2, requests: 4000, seed: 4 }));
  const counts = (t: string[]) => [...t.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>()).values()].sort((x, y) => y - x);
  const c = counts(a);
  // Zipf(1.2) over 10: the top model draws 1/H ≈ 0.39 of requests, the 10th ≈ 0.024.
  assert.ok(c[0] / 4000 > 0.33 && c[0] / 4000 < 0.45, `top share ${c[0] / 4000}`);
  const uniform = counts(zipfTrace({ models, skew: 0, requests: 4000, seed: 3 }));
  assert.ok(uniform[0] / 4000 < 0.13);
  const shifting = zipfTrace({ models, skew: 2, requests: 2000, seed: 5, phases: 2 });
  const top = (t: string[]) => counts(t) && [...t.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>())].sort((x, y) => y[1] - x[1])[0][0];
  assert.not.equal(top(shifting.slice(0, 1000)), top(shifting.slice(1000)));
  assert.throws(() => zipfTrace({ models: [], skew: 1, requests: 1, seed: 1 }), (e: unknown) => e instanceof InvalidArgumentError);
});

test('fineTuneFamily: backbone shared by all, group pages by each group, the rest private', () => {
  const f = fineTuneFamily({ models: 6, pagesPerModel: 10, sharedFraction: 0.5, groupFraction: 0.2, groups: 3, pageBytes: 100 });
  const users = pageSharers(f);
  assert.is(users.size, 5 + 3 * 2 + 6 * 3);
  assert.is(distinctBytes(f), users.size * 100);
  const sharerCounts = [...users.values()].map((u) => u.length).sort((x, y) => x - y);
  assert.equal(sharerCounts.filter((n) => n === 6).length, 5);
  assert.equal(sharerCounts.filter((n) => n === 2).length, 6);
  assert.equal(sharerCounts.filter((n) => n === 1).length, 18);
  const flat = fineTuneFamily({ models: 6, pagesPerModel: 10, sharing: false });
  assert.is(pageSharers(flat).size, 60);
});

test('simulate: everything fits → every counted touch hits; page and byte ratios agree for equal pages', async () => {
  const f = fineTuneFamily({ models: 8, pagesPerModel: 6 });
  const trace = [...names(0), ...f.models.map((m) => m.name), ...zipfTrace({ models: f.models.map((m) => m.name), skew: 1, requests: 200, seed: 1 })];
  const r = await simulate(f, trace, 'lru', distinctBytes(f), { warmupRequests: 8 });
  assert.is(r.hitRatio, 1);
  assert.is(r.byteHitRatio, 1);
  assert.is(r.requests, trace.length - 8);
  assert.is(r.evictions, 0);
  const tight = await simulate(f, trace, 'lru', Math.floor(distinctBytes(f) * 0.4));
  assert.ok(tight.hitRatio < 1 && Math.abs(tight.hitRatio - tight.byteHitRatio) < 1e-12);
  assert.ok(tight.peakResidentBytes <= Math.floor(distinctBytes(f) * 0.4));
});

test('simulate: byte hit ratio weighs pages by size', async () => {
  const layout = { models: [{ name: 'a', pages: [1, 2] }, { name: 'b', pages: [3] }], pageBytes: (id: number) => (id === 3 ? 30 : 10) };
  // Budget 30: a (20 bytes) and b (30 bytes) evict each other: after warm-up nothing hits.
  const r = await simulate(layout, ['a', 'b', 'a', 'b', 'a', 'a'], 'lru', 30, { warmupRequests: 2 });
  // Counted: a (miss, 2 pages), b (miss), a (miss), a (hit, 2 pages) → 2 of 7 pages, 20 of 90 bytes.
  assert.is(r.hitRatio, 2 / 7);
  assert.ok(Math.abs(r.byteHitRatio - 20 / 90) < 1e-12, String(r.byteHitRatio));
});

test('simulate refuses a model larger than the budget and a model the layout lacks', async () => {
  const f = fineTuneFamily({ models: 4, pagesPerModel: 10, pageBytes: 1 });
  try {
    await simulate(f, ['ft-000'], 'lru', 5);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, InvalidArgumentError);
    assert.match((e as Error).message, /needs 10 bytes, more than the simulated budget of 5/);
  }
  try {
    await simulate(f, ['nope'], 'lru', 100);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /"nope"/);
  }
});

test('on a small shared family, dedup-aware is at least as good as LRU, LFU, ARC, SIEVE and S3-FIFO', async () => {
  const f = fineTuneFamily({ models: 12, pagesPerModel: 10 });
  const trace = zipfTrace({ models: f.models.map((m) => m.name), skew: 1, requests: 600, seed: 11 });
  const table = await hitRatioTable(f, trace, ['lru', 'lfu', 'arc', 'sieve', 's3fifo', 'dedup-order', 'dedup'], [0.3, 0.5]);
  for (const frac of ['0.3', '0.5']) {
    const best = Math.max(...['lru', 'lfu', 'arc', 'sieve', 's3fifo'].map((p) => table[p][frac]));
    assert.ok(table.dedup[frac] >= best, `budget ${frac}: dedup ${table.dedup[frac]} vs best ${best}`);
  }
});

test.run();
