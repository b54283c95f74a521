/**
 * The conformance suite every PageStore backend must pass (memory, file, IndexedDB, ...).
 * A backend test calls `pageStoreConformance(name, factory)`; nothing here knows the backend.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { PageStore } from '../src/store/page-store.ts';
import { TesseraError } from '../src/errors.ts';
import { rng } from './helpers.ts';

export interface BackendHarness {
  store: PageStore;
  /** Closes and opens the same storage again (persistence check); absent for volatile backends. */
  reopen?: () => Promise<PageStore>;
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

export function pageStoreConformance(name: string, make: (pageSize: number) => Promise<BackendHarness>): void {
  const test = suite(`PageStore conformance: ${name}`);
  const PAGE = 8192;

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
    if (!h.flipBit) return h.cleanup();
    try {
      const data = randomBytes(512, 4);
      const r = rng(77);
      for (let trial = 0; trial < 64; trial++) {
        await h.store.writePages([{ id: 0, epoch: 1, data }]);
        const bit = Math.floor(r() * (512 + 32) * 8);
        await h.flipBit(0, bit);
        await rejectsWith(h.store.readPage(0, 1), 'PAGE_CORRUPT');
      }
    } finally {
      await h.cleanup();
    }
  });

  test('pages and catalog survive close and reopen', async () => {
    const h = await make(PAGE);
    if (!h.reopen) return h.cleanup();
    try {
      const data = randomBytes(3000, 5);
      await h.store.writePages([{ id: 4, epoch: 2, data }]);
      await h.store.appendCatalog(new Uint8Array([7, 7]));
      const again = await h.reopen();
      assert.equal(await again.readPage(4, 2), data);
      assert.equal((await again.readCatalog()).records, [new Uint8Array([7, 7])]);
      assert.is(again.pageSize, PAGE);
    } finally {
      await h.cleanup();
    }
  });

  test.run();
}
