/** Each eviction policy on hand-made traces whose right answer is worked out in the comments. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BufferPool, createPolicy, DedupAwarePolicy, zipfTrace, type EvictionPolicy, type PageInfo, type PolicyName } from '../src/pool/index.ts';

/** Replays single-page accesses (pin then unpin) through a pool of `capacity` one-byte pages. */
async function replay(policy: PolicyName | EvictionPolicy, capacity: number, trace: number[], info?: (id: number) => PageInfo, sizes?: (id: number) => number) {
  const pool = new BufferPool({ budgetBytes: capacity, policy, fetch: async (id) => new Uint8Array(sizes?.(id) ?? 1), sizeOf: sizes ?? (() => 1), pageInfo: info });
  const hitsAt: boolean[] = [];
  for (const id of trace) {
    const before = pool.stats().hits;
    await pool.pin(id);
    pool.unpin(id);
    hitsAt.push(pool.stats().hits > before);
  }
  assert.equal(pool.checkInvariants(), []);
  return { pool, hits: hitsAt.filter(Boolean).length, hitsAt, resident: (ids: number[]) => ids.filter((id) => pool.isResident(id)) };
}

const cycle = (n: number, times: number) => Array.from({ length: n * times }, (_, i) => i % n);

test('LRU: exact residency on a small trace, zero hits on a loop one page larger than the pool', async () => {
  // 1,2,3 miss; 1 hits (order 2,3,1); 4 evicts 2; 2 evicts 3 → {1,4,2}.
  const r = await replay('lru', 3, [1, 2, 3, 1, 4, 2]);
  assert.is(r.hits, 1);
  assert.equal(r.resident([1, 2, 3, 4]), [1, 2, 4]);
  assert.is((await replay('lru', 3, cycle(4, 3))).hits, 0);
});

test('MRU beats LRU on a loop larger than the pool (exactly 6 hits in 3 passes of 4 pages, capacity 3)', async () => {
  // Pass 1: 0,1,2 miss, 3 evicts 2. Pass 2: 0,1 hit, 2 evicts 1, 3 hits. Pass 3: 0 hits, 1 evicts 0, 2,3 hit.
  const mru = await replay('mru', 3, cycle(4, 3));
  assert.is(mru.hits, 6);
  assert.equal(mru.resident([0, 1, 2, 3]), [1, 2, 3]);
});

test('LFU keeps a hot page through a scan that flushes it out of LRU', async () => {
  const trace = [0, 0, 0, 0, 0, ...Array.from({ length: 10 }, (_, i) => 10 + i), 0];
  const lfu = await replay('lfu', 2, trace);
  const lru = await replay('lru', 2, trace);
  assert.ok(lfu.hitsAt[trace.length - 1], 'LFU: the hot page survives the scan');
  assert.not.ok(lru.hitsAt[trace.length - 1], 'LRU: the scan evicted it');
  // Among equal counts LFU evicts the least recent: the scan's pages replace each other.
  assert.equal(lfu.resident([0, 18, 19]), [0, 19]);
});

test('SIEVE: one hit lets a page survive a sweep, without moving it (lazy promotion)', async () => {
  // Queue A,B,C (oldest first); hit A sets its bit. D: hand clears A, evicts B, stops at C.
  // E evicts C; F evicts D (unvisited) — A stays. LRU would have evicted A at F.
  const [A, B, C, D, E, F] = [1, 2, 3, 4, 5, 6];
  const trace = [A, B, C, A, D, E, F];
  const sieve = await replay('sieve', 3, trace);
  assert.equal(sieve.resident([A, B, C, D, E, F]), [A, E, F]);
  const lru = await replay('lru', 3, trace);
  assert.equal(lru.resident([A, B, C, D, E, F]), [D, E, F]);
  // The hand stays where it stopped (after D) and moves on towards newer pages: the next insert
  // evicts E, a new page never hit (quick demotion), while A waits for the hand to wrap around.
  await sieve.pool.pin(7);
  sieve.pool.unpin(7);
  assert.equal(sieve.resident([A, E, F, 7]), [A, F, 7]);
});

test('SIEVE passes over pinned pages without clearing their bit', async () => {
  const pool = new BufferPool({ budgetBytes: 2, policy: 'sieve', fetch: async () => new Uint8Array(1), pageBytes: 1 });
  await pool.pin(1);
  await pool.pin(2);
  pool.unpin(2);
  await pool.pin(3); // 1 is pinned: the hand passes it and evicts 2
  assert.ok(pool.isResident(1));
  assert.not.ok(pool.isResident(2));
  assert.equal(pool.checkInvariants(), []);
});

test('ARC resists a scan that LRU does not: pages seen twice stay in T2', async () => {
  const trace = [0, 1, 0, 1, ...Array.from({ length: 10 }, (_, i) => 10 + i), 0, 1];
  const arc = await replay('arc', 4, trace);
  const lru = await replay('lru', 4, trace);
  assert.equal(arc.hitsAt.slice(-2), [true, true]);
  assert.equal(lru.hitsAt.slice(-2), [false, false]);
});

test('ARC adapts: ghost hits in B1 grow T1 until ARC evicts from T2 instead', async () => {
  // 0,1 twice → T2 {0,1}. 2,3 → T1 {2,3}. 4 evicts 2, 5 evicts 3 (p = 0: T1 is over target) → B1 {2,3}.
  // 2 hits ghost B1: p = 1, T1 (2 pages) > p: evicts 4. 3 hits ghost B1: p = 2, now T1 (1 page) ≤ p,
  // so ARC evicts T2's least recent page, 0, and keeps the recent page 5.
  const arc = await replay('arc', 4, [0, 1, 0, 1, 2, 3, 4, 5, 2, 3]);
  assert.equal(arc.resident([0, 1, 2, 3, 4, 5]), [1, 2, 3, 5]);
  // Without the ghost hits (fresh pages instead) ARC keeps evicting from T1 and 0 stays.
  const fresh = await replay('arc', 4, [0, 1, 0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(fresh.resident([0, 1, 6, 7]), [0, 1, 6, 7]);
});

test('cost model: shared pages are evicted last; among unshared, cost = bytes / reference distance', async () => {
  const info = (id: number): PageInfo => ({ sharers: id === 0 ? 3 : 1 });
  // 0 is oldest but shared: 3 evicts 1 (oldest unshared).
  const r = await replay('cost', 3, [0, 1, 2, 3], info);
  assert.equal(r.resident([0, 1, 2, 3]), [0, 2, 3]);
  // Variable sizes: page 1 (4 bytes, distance 2: cost 2) outlasts page 2 (1 byte, distance 1: cost 1),
  // though LRU would evict page 1.
  const sizes = (id: number) => (id === 1 ? 4 : 1);
  const v = await replay('cost', 5, [1, 2, 3], info, sizes);
  assert.equal(v.resident([1, 2, 3]), [1, 3]);
  const lru = await replay('lru', 5, [1, 2, 3], info, sizes);
  assert.equal(lru.resident([1, 2, 3]), [2, 3]);
});

test('dedup-aware: a page worth three models outranks one model\'s page even if older and less touched', () => {
  const p = new DedupAwarePolicy();
  const shared = { id: 1, bytes: 1, sharers: 3, models: ['a', 'b', 'c'] };
  const own = { id: 2, bytes: 1, sharers: 1, models: ['x'] };
  for (const m of ['a', 'b', 'c']) p.onRequest(m);
  p.onInsert({ ...shared, model: 'c' });
  p.onRequest('x');
  p.onRequest('x');
  p.onInsert({ ...own, model: 'x' });
  p.onHit({ ...own, model: 'x' });
  // LRU and in-cache LFU would both pick page 1 (older, one touch against two).
  assert.is(p.victim(() => true), 2);
  assert.is(p.victim((id) => id !== 2), 1, 'victim respects the filter');
});

test('dedup-aware: popularity decays, so a model that turned hot outranks a formerly hot one', () => {
  const p = new DedupAwarePolicy({ halfLifeRequests: 10 });
  for (let i = 0; i < 50; i++) p.onRequest('old');
  p.onInsert({ id: 1, bytes: 1, sharers: 1, models: ['old'] });
  for (let i = 0; i < 40; i++) p.onRequest('new');
  p.onInsert({ id: 2, bytes: 1, sharers: 1, models: ['new'] });
  assert.is(p.victim(() => true), 1);
  // Counts stay finite and ordered over very long runs (the increment is rescaled).
  for (let i = 0; i < 20000; i++) p.onRequest(i % 2 ? 'new' : 'other');
  assert.ok(Number.isFinite(p.popularityOf('new')) && p.popularityOf('new') > 0);
  p.onHit({ id: 2, bytes: 1, sharers: 1, models: ['new'] });
  assert.is(p.victim(() => true), 1);
});

test('dedup-aware: a page fetched for a popular model is valued at once; bigger pages cost more per byte', () => {
  const p = new DedupAwarePolicy();
  for (let i = 0; i < 5; i++) p.onRequest('hot');
  p.onRequest('cold');
  p.onInsert({ id: 1, bytes: 1, sharers: 1, models: ['cold'] });
  p.onHit({ id: 1, bytes: 1, sharers: 1, models: ['cold'] });
  p.onHit({ id: 1, bytes: 1, sharers: 1, models: ['cold'] });
  p.onInsert({ id: 2, bytes: 1, sharers: 1, models: ['hot'] });
  assert.is(p.victim(() => true), 1, 'the new page of the hot model stays');
  p.onInsert({ id: 3, bytes: 10, sharers: 1, models: ['hot'] });
  assert.is(p.victim((id) => id !== 1), 3, 'same models, ten times the bytes: lower value per byte');
});

test('S3-FIFO: a one-shot scan passes through the small queue and never flushes the hot set', async () => {
  // Capacity 10 pages, S = 10% = 1 page. Each hot page is hit while still in S, so when S is over
  // its share it moves to M instead of leaving. The 20 scan pages are never hit: each leaves S for
  // the ghost queue, and M (the hot set) is never touched. LRU loses every hot page to the scan.
  const hot = [0, 1, 2, 3, 4];
  const trace = [...hot.flatMap((p) => [p, p]), ...Array.from({ length: 20 }, (_, i) => 100 + i), ...hot];
  const s3 = await replay('s3fifo', 10, trace);
  const lru = await replay('lru', 10, trace);
  assert.equal(s3.hitsAt.slice(-5), [true, true, true, true, true]);
  assert.equal(lru.hitsAt.slice(-5), [false, false, false, false, false]);
  // M holds the 5 hot pages; the other 5 slots hold the newest scan pages.
  assert.equal(s3.resident(Array.from({ length: 20 }, (_, i) => 100 + i)), [115, 116, 117, 118, 119]);
});

test('S3-FIFO: a page evicted from S and asked for again while remembered goes straight to M', async () => {
  // Capacity 3. 0, 0, 1, 1, 7 fill S (0 and 1 hit once). 8 needs room: S is over its share, so
  // 0 and 1 (hit) move to M and 7 (never hit) leaves for the ghost queue. 7 again: a miss, but
  // remembered, so it enters M, and the room comes from S: 8 leaves.
  const r = await replay('s3fifo', 3, [0, 0, 1, 1, 7, 8, 7]);
  assert.equal(r.resident([0, 1, 7, 8]), [0, 1, 7]);
  assert.is(r.hitsAt[6], false, 'the ghost hit is a miss that re-enters in M');
});

test('dedup-aware beats LRU and LFU on a shared-backbone trace through the pool', async () => {
  // Page 0 is the backbone of models a,b,c (round robin); between their requests come two one-off
  // models with a page each. Capacity 2. In round 0 the backbone has the same popularity as a
  // one-off model (one request, and older), so it is evicted once; from then on a+b outweigh any
  // one-off model and it stays: 28 hits of 29 possible. LRU always loses it to the two one-offs.
  const models = new Map<number, string[]>([[0, ['a', 'b', 'c']]]);
  const info = (id: number): PageInfo => ({ sharers: models.get(id)?.length ?? 1, models: models.get(id) ?? [`m${id}`] });
  const run = async (policy: PolicyName) => {
    const pool = new BufferPool({ budgetBytes: 2, policy, fetch: async () => new Uint8Array(1), pageBytes: 1, pageInfo: info });
    let hits = 0;
    for (let r = 0; r < 30; r++) {
      const model = ['a', 'b', 'c'][r % 3];
      const before = pool.stats().hits;
      await pool.withPages([0], () => undefined, { model });
      hits += pool.stats().hits - before;
      const scan = 100 + r;
      await pool.withPages([scan], () => undefined, { model: `m${scan}` });
      await pool.withPages([scan + 1000], () => undefined, { model: `m${scan + 1000}` });
    }
    return hits;
  };
  const dedup = await run('dedup');
  assert.is(dedup, 28);
  assert.is(await run('lru'), 0);
  assert.ok(dedup >= (await run('lfu')));
});

test('dedup-aware: a scan of one-off cold models evicts its own pages, never the hot set', async () => {
  // Capacity 10 one-page models: hot models h0..h4 requested 4 times each, then 40 cold models
  // once each. A cold page starts at one request's worth, below every hot page, so the cold pages
  // replace each other; LRU loses every hot page to the scan.
  const run = async (policy: PolicyName) => {
    const pool = new BufferPool({ budgetBytes: 10, policy, fetch: async () => new Uint8Array(1), pageBytes: 1, pageInfo: (id) => ({ sharers: 1, models: [`m${id}`] }) });
    const request = (id: number) => pool.withPages([id], () => undefined, { model: `m${id}` });
    for (let round = 0; round < 4; round++) for (let h = 0; h < 5; h++) await request(h);
    for (let c = 0; c < 40; c++) await request(100 + c);
    assert.equal(pool.checkInvariants(), []);
    return [0, 1, 2, 3, 4].filter((h) => pool.isResident(h)).length;
  };
  assert.is(await run('dedup'), 5);
  assert.is(await run('lru'), 0);
});

test('dedup-aware: a page counts once per request however often it is pinned, and keeps its count when evicted', () => {
  const p = new DedupAwarePolicy({ halfLifeRequests: 1e9 }); // no decay: counts are request counts
  p.onRequest('a');
  p.onInsert({ id: 1, bytes: 1, sharers: 1, models: ['a'], model: 'a' });
  p.onHit({ id: 1, bytes: 1, sharers: 1, models: ['a'], model: 'a' });
  p.onHit({ id: 1, bytes: 1, sharers: 1, models: ['a'], model: 'a' });
  for (let i = 0; i < 2; i++) {
    p.onRequest('b');
    p.onInsert({ id: 2, bytes: 1, sharers: 1, models: ['b'], model: 'b' });
  }
  // Page 1: one request (three pins); page 2: two requests.
  assert.is(p.victim(() => true), 1);
  p.onRemove(2, true);
  p.onRequest('a');
  p.onHit({ id: 1, bytes: 1, sharers: 1, models: ['a'], model: 'a' });
  p.onRequest('a');
  p.onHit({ id: 1, bytes: 1, sharers: 1, models: ['a'], model: 'a' });
  // Page 1 now has 3 requests; page 2 comes back with its 2 remembered plus this one: 3, and is newer.
  p.onRequest('b');
  p.onInsert({ id: 2, bytes: 1, sharers: 1, models: ['b'], model: 'b' });
  assert.is(p.victim(() => true), 1, 'equal counts: the least recent goes');
  p.onRequest('b');
  p.onHit({ id: 2, bytes: 1, sharers: 1, models: ['b'], model: 'b' });
  p.onRequest('a');
  p.onRequest('a');
  p.onHit({ id: 1, bytes: 1, sharers: 1, models: ['a'], model: 'a' });
  // a: 5 requests, but page 1 was used by 4 of them; b's page by its 4: the tie goes to recency.
  assert.is(p.victim(() => true), 2);
});

test('dedup-aware chooses its memory: long for stable popularity, short when popularity shifts', () => {
  const models = Array.from({ length: 20 }, (_, i) => `m${i}`);
  const stable = new DedupAwarePolicy();
  for (const m of zipfTrace({ models, skew: 1, requests: 4000, seed: 3 })) stable.onRequest(m);
  assert.ok(stable.halfLife >= 512, `stable popularity: half-life ${stable.halfLife}`);
  const shifting = new DedupAwarePolicy();
  for (const m of zipfTrace({ models, skew: 1.2, requests: 4000, seed: 3, phases: 40 })) shifting.onRequest(m);
  assert.ok(shifting.halfLife <= 64, `popularity reshuffled every 100 requests: half-life ${shifting.halfLife}`);
  const fixed = new DedupAwarePolicy({ halfLifeRequests: 50 });
  for (const m of zipfTrace({ models, skew: 1, requests: 500, seed: 3 })) fixed.onRequest(m);
  assert.is(fixed.halfLife, 50);
});

test('every policy keeps the budget with variable page sizes and evicts until the new page fits', async () => {
  for (const name of ['lru', 'mru', 'lfu', 'arc', 'sieve', 's3fifo', 'cost', 'dedup-order', 'dedup']) {
    const sizes = (id: number) => 1 + ((id * 7) % 5);
    const trace = Array.from({ length: 300 }, (_, i) => (i * 13 + (i >> 3)) % 23);
    const r = await replay(createPolicy(name), 9, trace, undefined, sizes);
    const s = r.pool.stats();
    assert.ok(s.peakResidentBytes <= 9, `${name}: peak ${s.peakResidentBytes}`);
    assert.ok(s.evictions > 0);
  }
});

test.run();
