/**
 * The IndexedDB backend in Node, against fake-indexeddb: the shared conformance suite, reopen,
 * quota errors (simulated at the object-store level) leaving stored models intact, and the
 * same store under TesseraStore. test/browser.test.ts runs the same suite in real Chromium.
 */
import 'fake-indexeddb/auto';
import { IDBObjectStore as FDBObjectStore } from 'fake-indexeddb';
import { openDB } from 'idb';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IdbPageStore } from '../src/browser/idb-store.ts';
import { TesseraStore } from '../src/store/store.ts';
import { TesseraError } from '../src/errors.ts';
import { pageStoreConformance, storeBehaviour } from './store-conformance.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { codeOf } from './helpers.ts';

let dbCounter = 0;
const freshName = () => `tessera-test-${process.pid}-${++dbCounter}`;

pageStoreConformance('indexeddb (fake-indexeddb)', async (pageSize) => {
  const name = freshName();
  let store = await IdbPageStore.open(name, { pageSize });
  return {
    store,
    reopen: async () => {
      await store.close();
      store = await IdbPageStore.open(name, { create: false });
      return store;
    },
    openWriter: () => IdbPageStore.open(name, { create: false }),
    openReader: () => IdbPageStore.open(name, { readOnly: true }),
    flipBit: async (id, bit) => {
      await store.flush(); // a page written since the last commit is held in memory until then
      const db = await openDB(name);
      const sealed = new Uint8Array((await db.get('pages', id)) as Uint8Array);
      const used = 32 + new DataView(sealed.buffer).getUint32(12, true);
      const b = bit % (used * 8);
      sealed[b >> 3] ^= 1 << (b & 7);
      await db.put('pages', sealed, id);
      db.close();
    },
    cleanup: async () => {
      await store.close();
      await IdbPageStore.destroy(name);
    },
  };
}, { persistent: true, concurrentReaders: true, writerLock: false }); // Node 20 has no Web Locks; Chromium's run has them

storeBehaviour('indexeddb (fake-indexeddb)', async () => {
  const name = freshName();
  const h = {
    backend: (await IdbPageStore.open(name, { pageSize: 8192 })) as import('../src/store/page-store.ts').PageStore,
    reopen: async () => {
      await h.backend.close();
      return IdbPageStore.open(name, { create: false });
    },
    cleanup: async () => {
      await h.backend.close();
      await IdbPageStore.destroy(name);
    },
  };
  return h;
});

test('indexeddb: a database without a store is NOT_A_STORE unless created; read-only refuses writes', async () => {
  const name = freshName();
  assert.is(await codeOf(IdbPageStore.open(name, { create: false })), 'NOT_A_STORE');
  const s = await IdbPageStore.open(name, { pageSize: 4096 });
  await s.close();
  const r = await IdbPageStore.open(name, { readOnly: true });
  assert.is(r.pageSize, 4096);
  assert.is(await codeOf(r.appendCatalog(new Uint8Array([1]))), 'STORE_LOCKED');
  await r.close();
  assert.is(await codeOf(r.readPage(0)), 'STORE_CLOSED');
  await IdbPageStore.destroy(name);
});

test('indexeddb: QuotaExceededError becomes QUOTA_EXCEEDED and every stored model stays intact', async () => {
  const name = freshName();
  const a = mlp({ inputDim: 96, hidden: 64, outputDim: 10, seed: 1 });
  const b = mlp({ inputDim: 96, hidden: 64, outputDim: 10, seed: 2 });
  const store = await TesseraStore.open(await IdbPageStore.open(name, { pageSize: 65536 }), { tile: { rows: 32, cols: 32 } });
  const realPut = FDBObjectStore.prototype.put;
  try {
    await store.add('a', a);
    const before = await store.exportModel('a');
    // The browser reports a full quota as a QuotaExceededError DOMException on the write.
    FDBObjectStore.prototype.put = function () {
      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    };
    let err: unknown;
    try {
      await store.add('b', b);
    } catch (e) {
      err = e;
    }
    FDBObjectStore.prototype.put = realPut;
    assert.instance(err, TesseraError);
    assert.is((err as TesseraError).code, 'QUOTA_EXCEEDED');
    assert.match((err as Error).message, /quota/);
    assert.match((err as Error).message, /intact/);
    assert.equal(store.listModels(), ['a']);
    assert.equal(await store.exportModel('a'), before);
    assert.ok((await store.verify()).ok);
    // After space is freed the same add succeeds, and reopening sees both.
    await store.add('b', b);
    const exportedB = await store.exportModel('b');
    await store.close();
    const again = await TesseraStore.open(await IdbPageStore.open(name));
    assert.equal(again.listModels(), ['a', 'b']);
    assert.equal(await again.exportModel('a'), before);
    assert.equal(await again.exportModel('b'), exportedB);
    const report = await again.verify();
    assert.ok(report.ok);
    assert.equal(report.leakedPages, []);
    await again.close();
  } finally {
    FDBObjectStore.prototype.put = realPut;
    await IdbPageStore.destroy(name);
  }
});

test('indexeddb: a quota failure on the catalog append leaves the old catalog', async () => {
  const name = freshName();
  const s = await IdbPageStore.open(name, { pageSize: 4096 });
  const realAdd = FDBObjectStore.prototype.add;
  try {
    await s.appendCatalog(new Uint8Array([1]));
    FDBObjectStore.prototype.add = function () {
      throw new DOMException('full', 'QuotaExceededError');
    };
    assert.is(await codeOf(s.appendCatalog(new Uint8Array([2]))), 'QUOTA_EXCEEDED');
    FDBObjectStore.prototype.add = realAdd;
    assert.equal((await s.readCatalog()).records, [new Uint8Array([1])]);
  } finally {
    FDBObjectStore.prototype.add = realAdd;
    await s.close();
    await IdbPageStore.destroy(name);
  }
});

test('indexeddb: large catalog values are kept deflated and read back exactly; plain values (older stores) still read', async () => {
  const name = freshName();
  const s = await IdbPageStore.open(name, { pageSize: 4096 });
  try {
    // A record like an import's: structured bytes that deflate well, and a tiny one kept plain.
    const big = new Uint8Array(64 << 10).map((_, i) => (i % 97) ^ (i >> 9));
    await s.appendCatalog(big);
    await s.appendCatalog(new Uint8Array([7, 8, 9]));
    const db = await openDB(name);
    const stored = (await db.getAll('log')) as unknown[];
    const packed = stored[0] as { deflated: Uint8Array; size: number };
    assert.ok(packed.deflated instanceof Uint8Array && packed.size === big.length && packed.deflated.length * 4 < big.length, 'the large record is stored deflated');
    assert.ok(stored[1] instanceof Uint8Array, 'a small record is stored plain');
    assert.ok((await s.catalogBytes()) < big.length / 4);
    // A record as a store written before deflating wrote it: plain bytes.
    await db.add('log', big.slice(0, 5000));
    db.close();
    const { records } = await s.readCatalog();
    assert.equal(records, [big, new Uint8Array([7, 8, 9]), big.slice(0, 5000)]);
    // The snapshot likewise; a damaged deflated value is CATALOG_CORRUPT, not a wrong catalog.
    await s.checkpointCatalog(big);
    assert.equal((await s.readCatalog()).snapshot, big);
    const db2 = await openDB(name);
    const snap = (await db2.get('meta', 'snapshot')) as { deflated: Uint8Array; size: number };
    await db2.put('meta', { ...snap, size: snap.size - 1 }, 'snapshot');
    db2.close();
    assert.is(await codeOf(s.readCatalog()), 'CATALOG_CORRUPT');
  } finally {
    await s.close();
    await IdbPageStore.destroy(name);
  }
});

test('indexeddb: a schema 1 database (before adopted pages were recorded) is upgraded on open and reads as before', async () => {
  const written = freshName();
  const old = freshName();
  const model = mlp({ inputDim: 96, hidden: 64, outputDim: 10, seed: 3 });
  try {
    const store = await TesseraStore.open(await IdbPageStore.open(written, { pageSize: 65536 }), { tile: { rows: 32, cols: 32 } });
    await store.add('m', model);
    const exported = await store.exportModel('m');
    await store.close();
    // The same values in a database laid out as schema 1 wrote it: meta, pages, log only.
    const from = await openDB(written);
    const v1 = await openDB(old, 1, {
      upgrade(d) {
        d.createObjectStore('meta');
        d.createObjectStore('pages');
        d.createObjectStore('log', { autoIncrement: true });
      },
    });
    for (const name of ['meta', 'pages', 'log']) {
      const keys = await from.getAllKeys(name);
      const values = await from.getAll(name);
      for (let i = 0; i < keys.length; i++) await v1.put(name, values[i], keys[i]);
    }
    from.close();
    v1.close();
    const upgraded = await TesseraStore.open(await IdbPageStore.open(old, { create: false }));
    assert.equal(upgraded.listModels(), ['m']);
    assert.equal(await upgraded.exportModel('m'), exported);
    assert.ok((await upgraded.verify()).ok);
    await upgraded.close();
    const db = await openDB(old);
    assert.is(db.version, 2);
    assert.ok(db.objectStoreNames.contains('adopted'));
    db.close();
  } finally {
    await IdbPageStore.destroy(written);
    await IdbPageStore.destroy(old);
  }
});

test.run();
