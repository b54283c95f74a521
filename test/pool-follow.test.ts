/** The default 'dedup' policy: the dedup-aware order following the best of its shadow caches. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ArcPolicy, BufferPool, DedupFollowPolicy, distinctBytes, fineTuneFamily, LruPolicy, MruPolicy, S3FifoPolicy, ShadowCache, simulate, zipfTrace,
  type EvictionPolicy,
} from '../src/pool/index.ts';

const sizes = (id: number) => 1 + ((id * 7) % 5);

test('a shadow cache holds exactly what a pool with the same policy holds, and counts its misses', async () => {
  for (const make of [() => new LruPolicy(), () => new ArcPolicy(), () => new S3FifoPolicy()]) {
    const pool = new BufferPool({ budgetBytes: 12, policy: make(), fetch: async (id) => new Uint8Array(sizes(id)), sizeOf: sizes });
    const shadow = new ShadowCache(make());
    shadow.setCapacity(12);
    let missBytes = 0;
    for (let i = 0; i < 400; i++) {
      const id = (i * 13 + (i >> 3) + ((i * i) % 7)) % 29;
      const before = pool.stats().misses;
      await pool.pin(id);
      pool.unpin(id);
      if (pool.stats().misses > before) missBytes += sizes(id);
      shadow.onRequest(undefined, i + 1);
      shadow.access({ id, bytes: sizes(id), sharers: 1 });
      for (let p = 0; p < 29; p++) assert.is(shadow.holds(p), pool.isResident(p), `${pool.policy.name}, access ${i}, page ${p}`);
    }
    assert.is(shadow.missBytes, missBytes, `${pool.policy.name}: undecayed miss bytes`);
  }
});

/** Single-page models m0..m{n-1} in a loop through a pool of `capacity` one-byte pages; returns hits. */
async function loop(policy: EvictionPolicy, capacity: number, n: number, passes: number) {
  const pool = new BufferPool({ budgetBytes: capacity, policy, fetch: async () => new Uint8Array(1), pageBytes: 1, pageInfo: (id) => ({ sharers: 1, models: [`m${id}`] }) });
  for (let i = 0; i < n * passes; i++) await pool.withPages([i % n], () => undefined, { model: `m${i % n}` });
  assert.equal(pool.checkInvariants(), []);
  return pool.stats().hits;
}

test('following: on a loop one third larger than the pool, the policy follows an MRU shadow to its hits', async () => {
  // A loop of 40 pages through 30: LRU, and the dedup-aware order (equal counts, ties by
  // recency), miss every time; MRU keeps 29 pages fixed and hits them. With MRU as its one
  // candidate the policy switches once the evidence is in, and ends within a few percent of MRU.
  const mru = await loop(new MruPolicy(), 30, 40, 40);
  const plain = await loop(new DedupFollowPolicy({ candidates: [] }), 30, 40, 40);
  const follow = new DedupFollowPolicy({ candidates: [() => new MruPolicy()] });
  const followed = await loop(follow, 30, 40, 40);
  assert.is(plain, 0);
  assert.is(follow.leader, 'mru');
  assert.is(follow.leaderChanges, 1);
  assert.ok(followed >= 0.9 * mru, `followed ${followed} hits, MRU alone ${mru}`);
});

test('following S3-FIFO where it beats the dedup-aware order (4-phase shifts, 80% budget): at or above both', async () => {
  const layout = fineTuneFamily({ models: 50, pagesPerModel: 40, sharedFraction: 0.4, groupFraction: 0.3, groups: 10, pageBytes: 1 });
  const trace = zipfTrace({ models: layout.models.map((m) => m.name), skew: 0.8, requests: 4000, seed: 1, phases: 4 });
  const budget = Math.floor(distinctBytes(layout) * 0.8);
  const order = (await simulate(layout, trace, 'dedup-order', budget)).hitRatio;
  const s3fifo = (await simulate(layout, trace, 's3fifo', budget)).hitRatio;
  const policy = new DedupFollowPolicy();
  const followed = (await simulate(layout, trace, () => policy, budget)).hitRatio;
  assert.ok(s3fifo > order + 0.001, `the trace must show the gap: S3-FIFO ${s3fifo}, order ${order}`);
  assert.ok(followed >= s3fifo, `followed ${followed}, S3-FIFO ${s3fifo}, order ${order}`);
  assert.ok(policy.leaderChanges <= 8, `${policy.leaderChanges} leader changes in 4000 requests`);
});

test('a one-shot scan of cold models leaves the hot set resident whichever shadow leads', async () => {
  // As in pool-policies.test.ts: 5 hot one-page models requested 4 times each, then 40 cold
  // models once each, capacity 10. Following the dedup-aware order's shadow or S3-FIFO's (its
  // small queue takes the scan), the cold pages replace each other.
  for (const leader of [0, 1]) {
    const policy = new DedupFollowPolicy({ leader });
    const pool = new BufferPool({ budgetBytes: 10, policy, fetch: async () => new Uint8Array(1), pageBytes: 1, pageInfo: (id) => ({ sharers: 1, models: [`m${id}`] }) });
    const request = (id: number) => pool.withPages([id], () => undefined, { model: `m${id}` });
    for (let round = 0; round < 4; round++) for (let h = 0; h < 5; h++) await request(h);
    for (let c = 0; c < 40; c++) await request(100 + c);
    assert.equal(pool.checkInvariants(), []);
    assert.is(policy.leader, leader === 0 ? 'dedup-order' : 's3fifo');
    assert.equal([0, 1, 2, 3, 4].filter((h) => pool.isResident(h)), [0, 1, 2, 3, 4], `following ${policy.leader}`);
  }
});

test.run();
