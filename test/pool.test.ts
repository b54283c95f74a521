/** BufferPool behaviour: the budget, pins, single flight, errors, invalidation, random interleavings. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BufferPool, seededRandom } from '../src/pool/index.ts';
import { CapacityError, CorruptionError, InvalidArgumentError, StoreError } from '../src/errors.ts';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}
const page = (id: number, bytes: number, version = 0) => new Uint8Array(bytes).fill((id * 31 + version) & 0xff);
/** uvu has no assert.rejects: resolve the promise and match its rejection by regex or predicate. */
async function rejects(p: Promise<unknown>, expect: RegExp | ((e: unknown) => boolean), msg?: string): Promise<void> {
  const outcome = await p.then(() => ({ ok: true as const }), (e: unknown) => ({ ok: false as const, e }));
  if (outcome.ok) assert.unreachable(msg ?? 'expected a rejection');
  else assert.ok(expect instanceof RegExp ? expect.test((outcome.e as Error).message) : expect(outcome.e), msg ?? String(outcome.e));
}
const tick = () => new Promise((r) => setTimeout(r, 0));

test('constructor rejects a missing budget, fetch or a bad page size', () => {
  const fetch = async () => new Uint8Array(1);
  assert.throws(() => new BufferPool({ budgetBytes: 0, policy: 'lru', fetch }), (e: unknown) => e instanceof InvalidArgumentError);
  assert.throws(() => new BufferPool({ budgetBytes: NaN, policy: 'lru', fetch }), (e: unknown) => e instanceof InvalidArgumentError);
  assert.throws(() => new BufferPool({ budgetBytes: 10, policy: 'lru', fetch, pageBytes: -1 }), (e: unknown) => e instanceof InvalidArgumentError);
  assert.throws(() => new BufferPool({ budgetBytes: 10, policy: 'nope' as 'lru', fetch }), /unknown eviction policy "nope"/);
});

test('a pin with no known size is refused clearly', async () => {
  const pool = new BufferPool({ budgetBytes: 10, policy: 'lru', fetch: async () => new Uint8Array(1) });
  await rejects(pool.pin(1), /size of page 1 is unknown/);
  assert.ok((await pool.pin(1, { bytes: 1 })).length === 1);
  await rejects(pool.pin(-3, { bytes: 1 }), /non-negative integer/);
});

test('single flight: concurrent pins of one page share one fetch and one array', async () => {
  const calls: number[] = [];
  const d = deferred<Uint8Array>();
  const pool = new BufferPool({ budgetBytes: 100, policy: 'lru', pageBytes: 10, fetch: (id) => (calls.push(id), d.promise) });
  const pins = Array.from({ length: 10 }, () => pool.pin(7));
  assert.equal(calls, [7]);
  assert.is(pool.stats().inFlightBytes, 10);
  assert.is(pool.pinCount(7), 10);
  d.resolve(page(7, 10));
  const got = await Promise.all(pins);
  assert.ok(got.every((g) => g === got[0]));
  const s = pool.stats();
  assert.equal([s.misses, s.joins, s.hits, s.inFlightBytes, s.bytesFetched], [1, 9, 0, 0, 10]);
  for (let i = 0; i < 10; i++) pool.unpin(7);
  await pool.pin(7);
  assert.is(pool.stats().hits, 1);
  assert.equal(calls, [7]);
});

test('pinned pages are never evicted; an unfittable request fails with budget, need and pinned bytes, evicting nothing', async () => {
  let fetches = 0;
  const pool = new BufferPool({ budgetBytes: 100, policy: 'lru', pageBytes: 40, fetch: async (id) => (fetches++, page(id, 40)) });
  await pool.pin(1);
  await pool.pin(2);
  const before = pool.stats();
  const err = await pool.pin(3).then(() => null, (e: unknown) => e);
  assert.instance(err, CapacityError);
  assert.is((err as CapacityError).code, 'BUDGET_EXCEEDED');
  assert.match((err as Error).message, /page 3 needs 40 bytes/);
  assert.match((err as Error).message, /budget 100 bytes/);
  assert.match((err as Error).message, /80 bytes pinned/);
  assert.equal(pool.stats(), before);
  assert.ok(pool.isResident(1) && pool.isResident(2));
  assert.equal(pool.checkInvariants(), []);
  pool.unpin(1);
  await pool.pin(3); // now 1 can go
  assert.not.ok(pool.isResident(1));
  assert.ok(pool.isResident(2) && pool.isResident(3));
  assert.is(fetches, 3);
  assert.ok(pool.stats().peakResidentBytes <= 100);
});

test('a page larger than the whole budget is refused, not squeezed in', async () => {
  const pool = new BufferPool({ budgetBytes: 100, policy: 'arc', fetch: async () => new Uint8Array(101), sizeOf: () => 101 });
  await rejects(pool.pin(1), (e: unknown) => e instanceof CapacityError && /needs 101 bytes/.test((e as Error).message));
  assert.equal(pool.checkInvariants(), []);
  assert.is(pool.stats().residentBytes, 0);
});

test('a failing fetch does not poison the pool: waiters see the error, the next pin retries', async () => {
  let attempt = 0;
  const pool = new BufferPool({
    budgetBytes: 100,
    policy: 'dedup',
    pageBytes: 10,
    fetch: async (id) => {
      attempt++;
      if (attempt === 1) throw new Error('disk on fire');
      if (attempt === 2) throw new CorruptionError('PAGE_CORRUPT', `page ${id} checksum mismatch`, { pageId: id });
      return page(id, 10);
    },
  });
  const [a, b] = await Promise.allSettled([pool.pin(5), pool.pin(5)]);
  assert.is(a.status, 'rejected');
  assert.is(b.status, 'rejected');
  const wrapped = (a as PromiseRejectedResult).reason;
  assert.instance(wrapped, StoreError);
  assert.is(wrapped.code, 'IO_ERROR');
  assert.match(wrapped.message, /reading page 5 failed \(disk on fire\)/);
  assert.equal(pool.checkInvariants(), []);
  assert.equal([pool.stats().residentBytes, pool.stats().pinnedBytes, pool.pinCount(5)], [0, 0, 0]);
  await rejects(pool.pin(5), (e: unknown) => e instanceof CorruptionError, 'typed store errors pass through');
  assert.equal((await pool.pin(5))[0], page(5, 1)[0]);
  assert.is(pool.stats().fetchErrors, 2);
  assert.equal(pool.checkInvariants(), []);
});

test('a low size hint: the difference is evicted for when it fits, refused when it does not', async () => {
  const pool = new BufferPool({ budgetBytes: 50, policy: 'lru', sizeOf: () => 10, fetch: async (id) => page(id, id === 9 ? 60 : 30) });
  await pool.pin(1); // 30 bytes arrive for a 10-byte reservation: fits
  assert.is(pool.stats().residentBytes, 30);
  pool.unpin(1);
  await pool.pin(2); // reserve 10 (40), then 20 more evicts page 1
  assert.not.ok(pool.isResident(1));
  assert.is(pool.stats().residentBytes, 30);
  await rejects(pool.pin(9), (e: unknown) => e instanceof CapacityError && /size hint was low/.test((e as Error).message));
  assert.equal(pool.checkInvariants(), []);
  assert.ok(pool.stats().peakResidentBytes <= 50);
});

test('unpin mismatches are typed errors', async () => {
  const d = deferred<Uint8Array>();
  const pool = new BufferPool({ budgetBytes: 50, policy: 'lru', pageBytes: 10, fetch: () => d.promise });
  assert.throws(() => pool.unpin(3), /page 3: it is not pinned/);
  const p = pool.pin(3);
  assert.throws(() => pool.unpin(3), /still loading/);
  d.resolve(page(3, 10));
  await p;
  pool.unpin(3);
  assert.throws(() => pool.unpin(3), (e: unknown) => e instanceof InvalidArgumentError);
});

test('invalidate: an unpinned page is dropped; a pinned one stays with its reader and is counted until unpinned', async () => {
  let version = 0;
  const pool = new BufferPool({ budgetBytes: 25, policy: 'sieve', pageBytes: 10, fetch: async (id) => page(id, 10, version) });
  await pool.pin(1);
  pool.unpin(1);
  assert.ok(pool.invalidate(1));
  assert.not.ok(pool.isResident(1));
  assert.not.ok(pool.invalidate(1));
  const old = await pool.pin(1);
  version = 1;
  pool.invalidate(1);
  const fresh = await pool.pin(1);
  assert.not.equal(fresh[0], old[0]);
  assert.is(pool.stats().residentBytes, 20, 'both copies are held');
  await rejects(pool.pin(2), (e: unknown) => e instanceof CapacityError, 'the reader\'s old copy still counts');
  pool.unpin(1, old);
  assert.is(pool.stats().residentBytes, 10);
  assert.is(old[0], page(1, 1, 0)[0], 'the reader\'s bytes were never replaced');
  pool.unpin(1);
  assert.equal(pool.checkInvariants(), []);
});

test('invalidate during a fetch: its waiters get that fetch, later pins fetch again', async () => {
  const ds: Array<ReturnType<typeof deferred<Uint8Array>>> = [];
  const pool = new BufferPool({ budgetBytes: 100, policy: 'lru', pageBytes: 10, fetch: () => (ds.push(deferred<Uint8Array>()), ds[ds.length - 1].promise) });
  const first = pool.pin(4);
  pool.invalidate(4);
  const second = pool.pin(4);
  assert.is(ds.length, 2);
  ds[0].resolve(page(4, 10, 0));
  ds[1].resolve(page(4, 10, 1));
  const [a, b] = await Promise.all([first, second]);
  assert.is.not(a, b);
  assert.is(pool.stats().residentBytes, 20);
  pool.unpin(4, a);
  assert.is(pool.stats().residentBytes, 10);
  pool.unpin(4);
  assert.ok(pool.isResident(4));
  assert.equal(pool.checkInvariants(), []);
});

test('withPages pins all, passes pages in order, unpins whatever fn does, and unwinds a partial failure', async () => {
  const pool = new BufferPool({ budgetBytes: 30, policy: 'lfu', pageBytes: 10, fetch: async (id) => { if (id === 99) throw new Error('gone'); return page(id, 10); } });
  const firsts = await pool.withPages([1, 2, 1], (pages) => pages.map((p) => p[0]), { model: 'm' });
  assert.equal(firsts, [page(1, 1)[0], page(2, 1)[0], page(1, 1)[0]]);
  assert.is(pool.stats().pinnedBytes, 0);
  await rejects(pool.withPages([1, 2], () => { throw new Error('fn failed'); }), /fn failed/);
  assert.is(pool.stats().pinnedBytes, 0);
  await rejects(pool.withPages([1, 99, 2], () => 0), /gone/);
  assert.is(pool.stats().pinnedBytes, 0);
  await rejects(pool.withPages([1, 2, 3, 4], () => 0), (e: unknown) => e instanceof CapacityError);
  assert.is(pool.stats().pinnedBytes, 0);
  assert.equal(pool.checkInvariants(), []);
});

test('random async interleavings (fixed seed): budget kept, pins honoured, single flight, consistent after failures', async () => {
  for (const policy of ['lru', 'mru', 'lfu', 'arc', 'sieve', 's3fifo', 'cost', 'dedup-order', 'dedup'] as const) {
    const rand = seededRandom(policy.length * 7919 + 1);
    const budget = 200;
    const trueSize = (id: number) => 5 + ((id * 37) % 30);
    const inFlight = new Map<number, number>();
    const pending: Array<() => void> = [];
    let maxConcurrentPerPage = 0;
    const pool = new BufferPool({
      budgetBytes: budget,
      policy,
      // Hints are exact except for pages ≡ 0 mod 7, which arrive 3 bytes bigger than announced.
      sizeOf: (id) => (id % 7 === 0 ? trueSize(id) - 3 : trueSize(id)),
      pageInfo: (id) => ({ sharers: 1 + (id % 3), models: [`m${id % 4}`, `m${id % 5}`] }),
      fetch: (id) =>
        new Promise<Uint8Array>((resolve, reject) => {
          const n = (inFlight.get(id) ?? 0) + 1;
          inFlight.set(id, n);
          maxConcurrentPerPage = Math.max(maxConcurrentPerPage, n);
          pending.push(() => {
            inFlight.set(id, inFlight.get(id)! - 1);
            if (rand() < 0.1) reject(new Error(`flaky read of ${id}`));
            else resolve(page(id, trueSize(id)));
          });
        }),
    });
    /** Pins this test holds: id → arrays, each marked stale once its page was invalidated. */
    const held = new Map<number, Array<{ data: Uint8Array; stale: boolean }>>();
    const epochs = new Map<number, number>();
    let outcomes = { ok: 0, capacity: 0, io: 0 };
    const check = () => {
      assert.equal(pool.checkInvariants(), [], `${policy}`);
      assert.ok(pool.stats().residentBytes <= budget);
      for (const [id, arrays] of held) {
        const current = arrays.filter((a) => !a.stale).length;
        if (current === 0) continue;
        assert.ok(pool.isResident(id), `${policy}: pinned page ${id} was evicted`);
        assert.ok(pool.pinCount(id) >= current, `${policy}: pins of page ${id}`); // more while pins are being delivered
      }
    };
    const worker = async (w: number) => {
      for (let step = 0; step < 60; step++) {
        const r = rand();
        if (r < 0.55) {
          const id = Math.floor(rand() * 24);
          const epoch = epochs.get(id) ?? 0;
          try {
            const data = await pool.pin(id, { model: `m${w}` });
            assert.is(data.length, trueSize(id));
            assert.is(data[0], page(id, 1)[0]);
            const list = held.get(id) ?? [];
            // Invalidated after this pin registered: the pin holds the copy the invalidate set aside.
            list.push({ data, stale: (epochs.get(id) ?? 0) !== epoch });
            held.set(id, list);
            outcomes.ok++;
          } catch (e) {
            if (e instanceof CapacityError) outcomes.capacity++;
            else if (e instanceof StoreError) outcomes.io++;
            else throw e;
          }
        } else if (r < 0.9) {
          const ids = [...held.keys()].filter((k) => held.get(k)!.length > 0);
          if (ids.length) {
            const id = ids[Math.floor(rand() * ids.length)];
            pool.unpin(id, held.get(id)!.pop()!.data);
          }
        } else if (r < 0.95) {
          const id = Math.floor(rand() * 24);
          epochs.set(id, (epochs.get(id) ?? 0) + 1);
          if (pool.invalidate(id)) for (const a of held.get(id) ?? []) a.stale = true;
        } else {
          pool.recordRequest(`m${w}`);
        }
        check();
        await tick();
      }
    };
    // A scheduler settles pending fetches in random order while the workers run.
    let running = true;
    const settler = (async () => {
      while (running || pending.length) {
        if (pending.length) pending.splice(Math.floor(rand() * pending.length), 1)[0]();
        if (running) check();
        await tick();
      }
    })();
    try {
      await Promise.all(Array.from({ length: 6 }, (_, w) => worker(w)));
    } finally {
      running = false;
      await settler;
    }
    for (const [id, arrays] of held) for (const a of arrays) pool.unpin(id, a.data);
    held.clear();
    check();
    const s = pool.stats();
    assert.is(s.pinnedBytes, 0);
    assert.ok(s.peakResidentBytes <= budget);
    assert.is(maxConcurrentPerPage, 1, `${policy}: one fetch per page at a time`);
    assert.ok(outcomes.ok > 50 && outcomes.capacity > 0 && outcomes.io > 0, `${policy}: ${JSON.stringify(outcomes)}`);
    assert.ok(s.joins > 0 && s.evictions > 0, `${policy}: ${JSON.stringify(s)}`);
  }
});

test.run();
