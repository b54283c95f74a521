import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { FilePageStore } from '../src/node/file-store.ts';
import { PAGE_HEADER_BYTES } from '../src/store/page-format.ts';
import { pageStoreConformance, storeBehaviour } from './store-conformance.ts';
import { codeOf, tempDir } from './helpers.ts';

pageStoreConformance('memory', async (pageSize) => {
  const store = new MemoryPageStore({ pageSize });
  return {
    store,
    flipBit: async (id, bit) => {
      const sealed = store.sealed.get(id)!;
      const b = bit % (sealed.length * 8);
      sealed[b >> 3] ^= 1 << (b & 7);
    },
    cleanup: async () => store.close(),
  };
}, { persistent: false, concurrentReaders: false, writerLock: false });

pageStoreConformance('file', async (pageSize) => {
  const dir = await tempDir();
  const path = join(dir.path, 'store');
  let store = await FilePageStore.open(path, { create: true, pageSize });
  return {
    store,
    reopen: async () => {
      await store.close();
      store = await FilePageStore.open(path);
      return store;
    },
    openWriter: () => FilePageStore.open(path),
    openReader: () => FilePageStore.open(path, { readOnly: true }),
    flipBit: async (id, bit) => {
      const f = join(path, 'pages.dat');
      const bytes = await readFile(f);
      const slot = id * (PAGE_HEADER_BYTES + pageSize);
      const used = PAGE_HEADER_BYTES + new DataView(bytes.buffer, bytes.byteOffset).getUint32(slot + 12, true);
      const b = bit % (used * 8);
      bytes[slot + (b >> 3)] ^= 1 << (b & 7);
      await writeFile(f, bytes);
    },
    cleanup: async () => {
      await store.close();
      await dir.cleanup();
    },
  };
}, { persistent: true, concurrentReaders: true, writerLock: true });

storeBehaviour('memory', async () => ({ backend: new MemoryPageStore({ pageSize: 8192 }), cleanup: async () => {} }));

storeBehaviour('file', async () => {
  const dir = await tempDir();
  const path = join(dir.path, 'store');
  const h = {
    backend: await FilePageStore.open(path, { create: true, pageSize: 8192 }) as import('../src/store/page-store.ts').PageStore,
    reopen: async () => {
      await h.backend.close();
      return FilePageStore.open(path);
    },
    cleanup: async () => {
      await h.backend.close();
      await dir.cleanup();
    },
  };
  return h;
});

test('file store: a torn last catalog record is ignored and cut off by the next writer', async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, 's');
    const s = await FilePageStore.open(path, { create: true, pageSize: 4096 });
    await s.appendCatalog(new Uint8Array([1, 2, 3]));
    await s.appendCatalog(new Uint8Array(100).fill(5));
    await s.close();
    const log = join(path, 'catalog.log');
    const bytes = await readFile(log);
    await writeFile(log, bytes.subarray(0, bytes.length - 10)); // crash mid-append
    const r = await FilePageStore.open(path, { readOnly: true });
    assert.equal((await r.readCatalog()).records, [new Uint8Array([1, 2, 3])]);
    await r.close();
    const w = await FilePageStore.open(path);
    assert.is((await readFile(log)).length, 12 + 3);
    await w.appendCatalog(new Uint8Array([4]));
    assert.equal((await w.readCatalog()).records, [new Uint8Array([1, 2, 3]), new Uint8Array([4])]);
    await w.close();
  } finally {
    await dir.cleanup();
  }
});

test('file store: a second writer is refused; a dead writer\'s lock is taken over', async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, 's');
    const a = await FilePageStore.open(path, { create: true, pageSize: 4096 });
    assert.is(await codeOf(FilePageStore.open(path)), 'STORE_LOCKED');
    const reader = await FilePageStore.open(path, { readOnly: true });
    await reader.close();
    await a.close();
    await writeFile(join(path, 'LOCK'), '999999999'); // an older tessera's lock: a pid, no such process
    const b = await FilePageStore.open(path);
    const owner = JSON.parse(await readFile(join(path, 'LOCK'), 'utf8'));
    assert.is(owner.pid, process.pid);
    assert.match(owner.token, /^[0-9a-f]{32}$/);
    await b.close();
    assert.is(await readFile(join(path, 'LOCK')).then(() => 'still there', () => 'gone'), 'gone');
  } finally {
    await dir.cleanup();
  }
});

test('file store: folders that are not stores are refused with NOT_A_STORE', async () => {
  const dir = await tempDir();
  try {
    assert.is(await codeOf(FilePageStore.open(join(dir.path, 'missing'))), 'NOT_A_STORE');
    await writeFile(join(dir.path, 'file'), 'x');
    assert.is(await codeOf(FilePageStore.open(join(dir.path, 'file'), { create: true })), 'NOT_A_STORE');
    await writeFile(join(dir.path, 'other.txt'), 'x');
    assert.is(await codeOf(FilePageStore.open(dir.path, { create: true })), 'NOT_A_STORE');
    await writeFile(join(dir.path, 'tessera.json'), '{not json');
    assert.is(await codeOf(FilePageStore.open(dir.path)), 'NOT_A_STORE');
  } finally {
    await dir.cleanup();
  }
});

test.run();
