/**
 * The conformance suite every PageStore backend must pass (memory, file, IndexedDB, PostgreSQL...).
 * A backend test calls `pageStoreConformance(name, factory)`; nothing here knows the backend.
 * Tests of a trait (persistence, the writer lock, concurrent readers) run when the backend's
 * `supports` declares it, and are registered as skips otherwise (uvu counts them as skipped); a
 * declared trait whose harness hook is missing fails, it never passes silently.
 * `storeBehaviour(name, factory)` runs the store-level behaviour (add, export, rm, compact,
 * verify, dedup, recovery) on a backend through the same kind of factory.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { PageStore } from '../src/store/page-store.ts';
import { TesseraError } from '../src/errors.ts';
import { PAGE_HEADER_BYTES } from '../src/store/page-format.ts';
import { rng } from './helpers.ts';
import { TesseraStore } from '../src/store/store.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { perturbed } from '../tools/fixtures/family.ts';

export interface BackendHarness {
  store: PageStore;
  /** Closes and opens the same storage again (supports.persistent). */
  reopen?: () => Promise<PageStore>;
  /** Opens the same storage a second time for writing, while `store` is open (supports.writerLock). */
  openWriter?: () => Promise<PageStore>;
  /** Opens the same storage read-only, while `store` is open (supports.concurrentReaders). */
  openReader?: () => Promise<PageStore>;
  /** Flips one bit of the stored bytes of page `id` (corruption check). */
  flipBit?: (id: number, bit: number) => Promise<void>;
  cleanup: () => Promise<void>;
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<TesseraError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, TesseraError);
    assert.is((e as TesseraError).code, code, (e as Error).message);
    return e as TesseraError;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error();
}

function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * 256);
  return out;
}

/** Every method of the PageStore contract but close: each must refuse a closed store. */
const CLOSED_CALLS: Record<string, (s: PageStore) => Promise<unknown>> = {
  readPage: (s) => s.readPage(0),
  readPageInto: (s) => s.readPageInto(0, new Uint8Array(PAGE_HEADER_BYTES + s.pageSize)),
  writePages: (s) => s.writePages([{ id: 0, epoch: 1, data: new Uint8Array(1) }]),
  appendCatalog: (s) => s.appendCatalog(new Uint8Array([1])),
  readCatalog: (s) => s.readCatalog(),
  checkpointCatalog: (s) => s.checkpointCatalog(new Uint8Array([1])),
  releasePages: (s) => s.releasePages([0]),
  listPages: (s) => s.listPages(),
  recover: (s) => s.recover(new Set()),
  commitStamp: (s) => s.commitStamp(),
};

/** Names of the methods an object offers (own and inherited), for the closed-trait coverage check. */
function methodsOf(o: object): string[] {
  const names = new Set<string>();
  for (let p = Object.getPrototypeOf(o); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const n of Object.getOwnPropertyNames(p)) {
      const d = Object.getOwnPropertyDescriptor(p, n)!;
      if (typeof d.value === 'function' && n !== 'constructor' && n !== 'checkOpen' && n !== 'checkWritable') names.add(n);
    }
  }
  return [...names].sort();
}

type Trait = keyof PageStore['supports'];

export function pageStoreConformance(name: string, make: (pageSize: number) => Promise<BackendHarness>, declared?: PageStore['supports']): void {
  const test = suite(`PageStore conformance: ${name}`);
  const PAGE = 8192;
  /** A test of a trait: a skip when the backend declares it lacks it; the declaration itself is checked. */
  const traitTest = (trait: Trait, title: string, body: (h: BackendHarness) => Promise<void>) => {
    if (declared && !declared[trait]) return test.skip(`${title} [${trait}: not supported]`, () => {});
    test(`${title} [${trait}]`, async () => {
      const h = await make(PAGE);
      try {
        assert.ok(h.store.supports[trait], `${name} does not declare supports.${trait}`);
        await body(h);
      } finally {
        await h.cleanup();
      }
    });
  };

  test('supports is declared and matches what the suite was told', async () => {
    const h = await make(PAGE);
    try {
      for (const t of ['persistent', 'concurrentReaders', 'writerLock'] as const) assert.type(h.store.supports[t], 'boolean', `supports.${t}`);
      if (declared) assert.equal(h.store.supports, declared);
    } finally {
      await h.cleanup();
    }
  });

  test('every method of a closed store is refused with STORE_CLOSED; close is idempotent', async () => {
    const h = await make(PAGE);
    try {
      const methods = methodsOf(h.store).filter((m) => m !== 'close');
      const contract = Object.keys(CLOSED_CALLS).sort();
      for (const m of contract) assert.ok(methods.includes(m), `${name} lacks PageStore.${m}`);
      await h.store.close();
      await h.store.close();
      for (const m of contract) await rejectsWith(CLOSED_CALLS[m](h.store), 'STORE_CLOSED');
      // A backend's own extra methods too: any that does I/O (returns a promise) must refuse.
      for (const m of methods.filter((x) => !contract.includes(x))) {
        let result: unknown;
        try {
          result = (h.store as unknown as Record<string, () => unknown>)[m]();
        } catch (e) {
          assert.is((e as TesseraError).code, 'STORE_CLOSED', `${m}: ${(e as Error).message}`);
          continue;
        }
        if (result instanceof Promise) await rejectsWith(result, 'STORE_CLOSED');
      }
    } finally {
      await h.cleanup();
    }
  });

  test('the commit stamp changes with every append and checkpoint', async () => {
    const h = await make(PAGE);
    try {
      const seen = [await h.store.commitStamp()];
      assert.type(seen[0], 'string');
      if (seen[0] === 'static') return; // the backend cannot tell: readers never see a change
      await h.store.appendCatalog(new Uint8Array([1]));
      seen.push(await h.store.commitStamp());
      await h.store.checkpointCatalog(new Uint8Array([9]));
      seen.push(await h.store.commitStamp());
      await h.store.appendCatalog(new Uint8Array([2]));
      seen.push(await h.store.commitStamp());
      assert.is(new Set(seen).size, seen.length, `stamps: ${seen.join(', ')}`);
      assert.is(await h.store.commitStamp(), seen[3], 'reading the stamp twice without a commit gives the same stamp');
    } finally {
      await h.cleanup();
    }
  });

  test('recover releases every slot the committed catalog does not reference', async () => {
    const h = await make(PAGE);
    try {
      await h.store.writePages([0, 1, 2, 3].map((id) => ({ id, epoch: 1, data: randomBytes(40, id) })));
      await h.store.appendCatalog(new Uint8Array([1]));
      assert.equal(await h.store.recover(new Set([0, 2])), [1, 3]);
      assert.equal(await h.store.listPages(), [0, 2]);
      assert.equal(await h.store.readPage(2, 1), randomBytes(40, 2));
      assert.equal(await h.store.recover(new Set([0, 2])), []);
    } finally {
      await h.cleanup();
    }
  });

  test('pages round-trip exactly, short pages included', async () => {
    const h = await make(PAGE);
    try {
      const pages = [0, 1, 5].map((id, i) => ({ id, epoch: 3, data: randomBytes([PAGE, 100, 0][i], id + 1) }));
      await h.store.writePages(pages);
      for (const p of pages) assert.equal(await h.store.readPage(p.id, 3), p.data);
      assert.equal(await h.store.listPages(), [0, 1, 5]);
    } finally {
      await h.cleanup();
    }
  });

  test('readPageInto gives readPage\'s bytes as a view of the caller\'s buffer, verified the same way', async () => {
    const h = await make(PAGE);
    try {
      const pages = [0, 1, 5].map((id, i) => ({ id, epoch: 3, data: randomBytes([PAGE, 100, 0][i], id + 7) }));
      await h.store.writePages(pages);
      // One buffer reused for every read, filled with junk first: nothing of an earlier read shows through.
      const target = new Uint8Array(PAGE_HEADER_BYTES + PAGE + 16).fill(0xa5);
      for (const p of pages) {
        const got = await h.store.readPageInto(p.id, target, 3);
        assert.ok(got.buffer === target.buffer && got.byteOffset === target.byteOffset + PAGE_HEADER_BYTES, 'a view of the target at the header');
        assert.equal(got, await h.store.readPage(p.id, 3));
        assert.equal(got, p.data);
      }
      await rejectsWith(h.store.readPageInto(3, target), 'PAGE_CORRUPT');
      await rejectsWith(h.store.readPageInto(1, target, 4), 'PAGE_CORRUPT');
      await rejectsWith(h.store.readPageInto(0, new Uint8Array(PAGE)), 'INVALID_ARGUMENT');
    } finally {
      await h.cleanup();
    }
  });

  test('a page never written, or read at the wrong epoch, is PAGE_CORRUPT', async () => {
    const h = await make(PAGE);
    try {
      await h.store.writePages([{ id: 2, epoch: 7, data: randomBytes(64, 9) }]);
      await rejectsWith(h.store.readPage(3), 'PAGE_CORRUPT');
      const e = await rejectsWith(h.store.readPage(2, 8), 'PAGE_CORRUPT');
      assert.match(e.message, /epoch/);
    } finally {
      await h.cleanup();
    }
  });

  test('a payload larger than the page size is refused and nothing is written', async () => {
    const h = await make(PAGE);
    try {
      await rejectsWith(h.store.writePages([{ id: 0, epoch: 1, data: new Uint8Array(PAGE + 1) }]), 'INVALID_ARGUMENT');
      assert.equal(await h.store.listPages(), []);
    } finally {
      await h.cleanup();
    }
  });

  test('catalog records append in order; a checkpoint replaces snapshot and records', async () => {
    const h = await make(PAGE);
    try {
      assert.equal(await h.store.readCatalog(), { snapshot: null, records: [] });
      await h.store.appendCatalog(new Uint8Array([1, 2]));
      await h.store.appendCatalog(new Uint8Array([3]));
      assert.equal((await h.store.readCatalog()).records, [new Uint8Array([1, 2]), new Uint8Array([3])]);
      await h.store.checkpointCatalog(new Uint8Array([9, 9, 9]));
      assert.equal(await h.store.readCatalog(), { snapshot: new Uint8Array([9, 9, 9]), records: [] });
      await h.store.appendCatalog(new Uint8Array([4]));
      assert.equal((await h.store.readCatalog()).records, [new Uint8Array([4])]);
    } finally {
      await h.cleanup();
    }
  });

  test('released pages are no longer listed', async () => {
    const h = await make(PAGE);
    try {
      await h.store.writePages([0, 1, 2, 3].map((id) => ({ id, epoch: 1, data: randomBytes(32, id) })));
      await h.store.releasePages([1, 3]);
      assert.equal(await h.store.listPages(), [0, 2]);
      assert.equal(await h.store.readPage(2, 1), randomBytes(32, 2));
    } finally {
      await h.cleanup();
    }
  });

  test('every single-bit flip in a page is detected', async () => {
    const h = await make(PAGE);
    try {
      assert.ok(h.flipBit, `${name}: the harness must provide flipBit (every backend can have its bytes damaged)`);
      const data = randomBytes(512, 4);
      const r = rng(77);
      for (let trial = 0; trial < 64; trial++) {
        await h.store.writePages([{ id: 0, epoch: 1, data }]);
        const bit = Math.floor(r() * (512 + 32) * 8);
        await h.flipBit!(0, bit);
        await rejectsWith(h.store.readPage(0, 1), 'PAGE_CORRUPT');
      }
    } finally {
      await h.cleanup();
    }
  });

  traitTest('persistent', 'pages and catalog survive close and reopen', async (h) => {
    assert.ok(h.reopen, `${name} declares persistence: the harness must provide reopen`);
    const data = randomBytes(3000, 5);
    await h.store.writePages([{ id: 4, epoch: 2, data }]);
    await h.store.appendCatalog(new Uint8Array([7, 7]));
    const again = await h.reopen!();
    assert.equal(await again.readPage(4, 2), data);
    assert.equal((await again.readCatalog()).records, [new Uint8Array([7, 7])]);
    assert.is(again.pageSize, PAGE);
  });

  traitTest('writerLock', 'a second writer is refused with STORE_LOCKED while one is open', async (h) => {
    assert.ok(h.openWriter, `${name} declares a writer lock: the harness must provide openWriter`);
    let second: PageStore | undefined;
    try {
      second = await h.openWriter!();
    } catch (e) {
      assert.instance(e, TesseraError);
      assert.is((e as TesseraError).code, 'STORE_LOCKED');
    }
    if (second) {
      await second.close();
      assert.unreachable('a second writer was let in');
    }
  });

  traitTest('concurrentReaders', 'a reader beside the writer sees each commit and cannot write', async (h) => {
    assert.ok(h.openReader, `${name} declares concurrent readers: the harness must provide openReader`);
    await h.store.writePages([{ id: 0, epoch: 1, data: randomBytes(100, 1) }]);
    await h.store.appendCatalog(new Uint8Array([1]));
    const reader = await h.openReader!();
    try {
      assert.ok(reader.readOnly);
      assert.equal((await reader.readCatalog()).records, [new Uint8Array([1])]);
      const stamp = await reader.commitStamp();
      await h.store.appendCatalog(new Uint8Array([2]));
      if (stamp !== 'static') assert.is.not(await reader.commitStamp(), stamp, "the reader's commit stamp follows the writer's commits");
      assert.equal((await reader.readCatalog()).records, [new Uint8Array([1]), new Uint8Array([2])]);
      assert.equal(await reader.readPage(0, 1), randomBytes(100, 1));
      await rejectsWith(reader.writePages([{ id: 1, epoch: 2, data: new Uint8Array(1) }]), 'STORE_LOCKED');
      await rejectsWith(reader.appendCatalog(new Uint8Array([3])), 'STORE_LOCKED');
      await rejectsWith(reader.releasePages([0]), 'STORE_LOCKED');
      assert.equal(await reader.recover(new Set()), []);
      assert.equal(await h.store.listPages(), [0]);
    } finally {
      await reader.close();
    }
  });

  test.run();
}

/** A store-level harness: a fresh backend, and (persistent backends) the same storage reopened. */
export interface StoreHarness {
  backend: PageStore;
  reopen?: () => Promise<PageStore>;
  cleanup: () => Promise<void>;
}

/** Pairs (block of `model`, block at the same place in `other`) that differ: lossless-delta candidates. */
function deltaPairs(store: TesseraStore, model: string, other: string): { block: number; base: number }[] {
  const a = store.model(model).tensors;
  const b = store.model(other).tensors;
  const out: { block: number; base: number }[] = [];
  a.forEach((t, ti) => t.blocks.forEach((id, i) => {
    if (b[ti].blocks[i] !== id) out.push({ block: id, base: b[ti].blocks[i] });
  }));
  return out;
}

/** Store-level behaviour every backend must show: the same assertions on memory, file, IndexedDB... */
export function storeBehaviour(name: string, make: () => Promise<StoreHarness>): void {
  const test = suite(`store behaviour: ${name}`);
  const TILE = { rows: 16, cols: 16 };
  const base = mlp({ inputDim: 40, hidden: 24, outputDim: 6, seed: 1 });
  const models = { a: base, b: base };
  const ready = perturbed(base, { seed: 2, scale: 1e-3 }).then((b) => void (models.b = b));
  const open = (h: StoreHarness) => TesseraStore.open(h.backend, { tile: TILE });

  test('add, export bit-exact, dedup a repeat, rm, compact, verify', async () => {
    await ready;
    const h = await make();
    try {
      const store = await open(h);
      const ra = await store.add('a', models.a);
      const rc = await store.add('c', models.a);
      assert.is(rc.newBlocks, 0, 'a repeat stores no new block');
      await store.add('b', models.b);
      const exported = await store.exportModel('a');
      assert.equal(await store.exportModel('c'), exported);
      assert.is((await store.remove('a')).freedPages, 0, 'c still holds a\'s pages');
      await store.remove('c');
      assert.equal(store.listModels(), ['b']);
      const b = await store.exportModel('b');
      const { pagesAfter } = await store.compact();
      assert.ok(pagesAfter >= 1);
      assert.equal(await store.exportModel('b'), b);
      const v = await store.verify();
      assert.ok(v.ok, JSON.stringify(v));
      assert.equal(v.leakedPages, []);
      assert.ok(ra.newBlocks > 0);
      if (h.reopen) {
        await store.close();
        const again = await TesseraStore.open(await h.reopen());
        assert.equal(again.listModels(), ['b']);
        assert.equal(await again.exportModel('b'), b);
        h.backend = again.backend;
      }
    } finally {
      await h.cleanup();
    }
  });

  test('lossy substitute, undo and settle; lossless deltas stay bit-exact', async () => {
    await ready;
    const h = await make();
    try {
      const store = await open(h);
      await store.add('a', models.a);
      await store.add('b', models.b);
      const b = await store.exportModel('b');
      const t0 = store.model('b').tensors[0];
      await store.substitute('b', [{ tensor: 0, index: 0, to: store.model('a').tensors[0].blocks[0], distance: 0.1 }]);
      assert.not.equal(await store.exportModel('b'), b);
      assert.is(await store.undoSubstitutions('b'), 1);
      assert.equal(await store.exportModel('b'), b);
      await store.substitute('b', [{ tensor: 0, index: 0, to: store.model('a').tensors[0].blocks[0], distance: 0.1 }]);
      await store.settle('b');
      assert.is(store.model('b').tensors[0].blocks[0], store.model('a').tensors[0].blocks[0]);
      assert.ok(t0);
      const a = await store.exportModel('a');
      const r = await store.storeDeltas('a', deltaPairs(store, 'a', 'b'), { minSaving: 0 });
      assert.ok(r.replaced > 0);
      assert.equal(await store.exportModel('a'), a);
      const v = await store.verify();
      assert.ok(v.ok, JSON.stringify(v));
      assert.equal(v.leakedPages, []);
    } finally {
      await h.cleanup();
    }
  });

  test('a writer open reclaims slots no commit references (crash recovery)', async () => {
    const h = await make();
    try {
      const store = await open(h);
      await store.add('a', models.a);
      const live = new Set(store.catalog.pages.keys());
      // What a writer killed before its commit leaves: pages in free slots.
      // Two ids past every committed page: free slots a later add would use.
      const top = Math.max(-1, ...store.catalog.pages.keys()) + 1;
      const free = [top, top + 1];
      await h.backend.writePages(free.map((id) => ({ id, epoch: 999, data: new Uint8Array(64).fill(7) })));
      assert.equal((await store.verify()).leakedPages, free);
      const again = await TesseraStore.open(h.backend);
      assert.equal((await again.verify()).leakedPages, []);
      assert.equal(new Set(again.catalog.pages.keys()), live);
      assert.ok((await again.verify()).ok);
    } finally {
      await h.cleanup();
    }
  });

  test.run();
}
