/**
 * A damaged page (or delta chain) makes every read path fail with a typed error, promptly: never a
 * read that waits or retries for ever. Each damage is made on disk (the file store's pages.dat) and
 * in memory (the memory store's sealed pages), and read through export (BlockSource, with the
 * read-only store's re-read-the-catalog retry), readPageInto (the server's page frames), an add
 * that compares its duplicates with the damaged page, an add batch reading back a page it wrote,
 * and the server. Every read runs under `finishes`: a hang fails the test with its name.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-web';
import { openStore } from '../src/node/open.ts';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { PAGE_HEADER_BYTES } from '../src/store/page-format.ts';
import { BlockSource, DecodedBaseCache } from '../src/store/block-source.ts';
import { blockCodecReady, encodeBlock } from '../src/codecs/block-codec.ts';
import type { BlockEntry, ModelEntry } from '../src/catalog/catalog.ts';
import { Server } from '../src/runtime/server.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { codeOf, rng, tempDir } from './helpers.ts';

ort.env.wasm.numThreads = 1;
const TILE = { rows: 16, cols: 16 };
const PAGE = 4096;
const SLOT = PAGE_HEADER_BYTES + PAGE;
const IN = 48;
// ~14 KB of weights each: four pages, so a batch has written pages behind its open one.
const MODELS = { a: mlp({ inputDim: IN, hidden: 64, outputDim: 8, seed: 1 }), b: mlp({ inputDim: IN, hidden: 64, outputDim: 8, seed: 2 }) };

/** Bounds a read: a promise that has not settled in `ms` fails the test, naming what hung. */
async function finishes<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms (a read that never ends)`)), ms);
  });
  try {
    return await Promise.race([p, hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** `p` fails with `code` (a TesseraError), within the bound. */
async function failsWith(p: Promise<unknown>, code: string, what: string): Promise<void> {
  assert.is(await finishes(codeOf(p), what), code, what);
}

/** How a sealed page is damaged: given its bytes and another page's, the bytes stored instead. */
const DAMAGE: Record<string, (sealed: Uint8Array, other: Uint8Array) => Uint8Array> = {
  'a flipped payload bit': (s) => {
    const out = s.slice();
    out[PAGE_HEADER_BYTES + 5] ^= 1;
    return out;
  },
  'a zeroed header': (s) => {
    const out = s.slice();
    out.fill(0, 0, PAGE_HEADER_BYTES);
    return out;
  },
  'a length past the page': (s) => {
    const out = s.slice();
    new DataView(out.buffer).setUint32(12, 0xffffffff, true);
    return out;
  },
  "another page's sealed bytes": (_, other) => other.slice(),
  'a page cut short': (s) => s.slice(0, PAGE_HEADER_BYTES + 10),
  'no bytes at all': () => new Uint8Array(0),
};

/** A page of b's (its first) to damage, and another page, whose bytes one damage stores instead. */
function pagesOf(store: TesseraStore): { page: number; other: number } {
  const page = store.catalog.pagesRead(store.model('b'))[0];
  const other = [...store.catalog.pages.keys()].find((p) => p !== page)!;
  return { page, other };
}

/** Every read of `page` fails PAGE_CORRUPT; models not on it still export; nothing changes. */
async function checkReads(store: TesseraStore, page: number, what: string): Promise<void> {
  const on = new Set(store.modelsOnPage(page));
  assert.ok(on.size > 0, `${what}: a model reads page ${page}`);
  for (const name of ['a', 'b'] as const) {
    if (on.has(name)) await failsWith(store.exportModel(name), 'PAGE_CORRUPT', `${what}: export ${name}`);
    else assert.equal(await finishes(store.exportModel(name), `${what}: export ${name}`), MODELS[name], `${what}: ${name} exports intact`);
  }
  await failsWith(store.readPageInto(page, new Uint8Array(SLOT)), 'PAGE_CORRUPT', `${what}: readPageInto`);
  if (!store.backend.readOnly) {
    // Its blocks are all duplicates of a stored model's: the add compares them with the damaged page.
    const victim = [...on][0] as 'a' | 'b';
    await failsWith(store.add(`${victim}-again`, MODELS[victim]), 'PAGE_CORRUPT', `${what}: add comparing duplicates`);
    assert.equal(store.listModels().sort(), ['a', 'b'], `${what}: the failed add changed the store`);
  }
}

test('file store: a page damaged on disk is PAGE_CORRUPT on every read path, for writers and readers', async () => {
  const tmp = await tempDir();
  try {
    for (const [kind, damage] of Object.entries(DAMAGE)) {
      const dir = join(tmp.path, kind.replace(/\W+/g, '-'));
      const s = await openStore(dir, { create: true, pageSize: PAGE, tile: TILE });
      for (const [name, onnx] of Object.entries(MODELS)) await s.add(name, onnx);
      let { page, other } = pagesOf(s);
      const file = join(dir, 'pages.dat');
      const bytes = new Uint8Array(await readFile(file));
      const slot = (id: number) => bytes.slice(id * SLOT, (id + 1) * SLOT);
      if (damage(slot(page), slot(other)).length < SLOT) {
        // A slot cut short can only be the file's last: damage the highest page, and cut the file there.
        page = Math.max(...s.catalog.pages.keys());
        other = [...s.catalog.pages.keys()].find((p) => p !== page)!;
        await s.close();
        await writeFile(file, bytes.subarray(0, page * SLOT));
        await writeFile(file, damage(slot(page), slot(other)), { flag: 'a' });
      } else {
        await s.close();
        bytes.set(damage(slot(page), slot(other)), page * SLOT);
        await writeFile(file, bytes);
      }
      const reader = await openStore(dir, { readOnly: true });
      try {
        await checkReads(reader, page, `file, read-only, ${kind}`);
      } finally {
        await reader.close();
      }
      const writer = await openStore(dir);
      try {
        await checkReads(writer, page, `file, writer, ${kind}`);
      } finally {
        await writer.close();
      }
    }
  } finally {
    await tmp.cleanup();
  }
});

async function memoryStore(): Promise<{ store: TesseraStore; sealed: Map<number, Uint8Array> }> {
  const pages = new MemoryPageStore({ pageSize: PAGE });
  const store = await TesseraStore.open(pages, { tile: TILE });
  for (const [name, onnx] of Object.entries(MODELS)) await store.add(name, onnx);
  return { store, sealed: pages.sealed };
}

test('memory store: a page damaged in memory is PAGE_CORRUPT on every read path', async () => {
  for (const [kind, damage] of Object.entries(DAMAGE)) {
    const { store, sealed } = await memoryStore();
    const { page, other } = pagesOf(store);
    sealed.set(page, damage(sealed.get(page)!, sealed.get(other)!));
    await checkReads(store, page, `memory, ${kind}`);
    await store.close();
  }
});

test('an add batch reading back a page it wrote, damaged since, fails PAGE_CORRUPT (memory and file)', async () => {
  const tmp = await tempDir();
  try {
    for (const where of ['memory', 'file']) {
      const pages = new MemoryPageStore({ pageSize: PAGE });
      const store = where === 'memory' ? await TesseraStore.open(pages, { tile: TILE }) : await openStore(join(tmp.path, 'batch'), { create: true, pageSize: PAGE, tile: TILE });
      const batch = store.addBatch();
      await batch.add('a', MODELS.a);
      // The batch's first page is written (two pages were opened after it); damage it.
      if (where === 'memory') pages.sealed.get(0)![PAGE_HEADER_BYTES + 1] ^= 1;
      else {
        const file = join(tmp.path, 'batch', 'pages.dat');
        const bytes = new Uint8Array(await readFile(file));
        bytes[PAGE_HEADER_BYTES + 1] ^= 1;
        await writeFile(file, bytes);
      }
      // Every block of a second copy is a duplicate of one placed by this batch, read back to compare.
      await failsWith(batch.add('a-again', MODELS.a), 'PAGE_CORRUPT', `${where}: batch read-back`);
      assert.equal(store.listModels(), [], `${where}: nothing is committed`);
      await store.close();
    }
  } finally {
    await tmp.cleanup();
  }
});

test('the server: a request over a damaged page fails PAGE_CORRUPT each time, and other models still run', async () => {
  const x = () => {
    const r = rng(7);
    return new ort.Tensor('float32', Float32Array.from({ length: 2 * IN }, () => r() * 2 - 1), [2, IN]);
  };
  for (const executor of ['kernel', 'shared-weights'] as const) {
    const { store, sealed } = await memoryStore();
    const { page, other } = pagesOf(store);
    const want = new Map<string, Float32Array>();
    const clean = await Server.create(store, { budgetBytes: 4 << 20, sessionOverheadBytes: 64 << 10, executor });
    for (const m of ['a', 'b']) want.set(m, (await clean.run(m, { X: x() })).Y.data as Float32Array);
    await clean.close();
    sealed.set(page, DAMAGE['a flipped payload bit'](sealed.get(page)!, sealed.get(other)!));
    const server = await Server.create(store, { budgetBytes: 4 << 20, sessionOverheadBytes: 64 << 10, executor });
    const on = new Set(store.modelsOnPage(page));
    for (let round = 0; round < 2; round++) {
      for (const m of ['a', 'b']) {
        const what = `${executor}: ${m}, round ${round}`;
        if (on.has(m)) await failsWith(server.run(m, { X: x() }), 'PAGE_CORRUPT', what);
        else assert.equal(Array.from((await finishes(server.run(m, { X: x() }), what)).Y.data as Float32Array), Array.from(want.get(m)!), what);
      }
    }
    await server.close();
    await store.close();
  }
});

/** A block table over one page of coded blocks (`bases[i]`: the base of block i + 1, or undefined). */
async function codedChain(contents: Uint8Array[], bases: (number | undefined)[], hash: (id: number) => string) {
  await blockCodecReady();
  const stored = contents.map((c, i) => encodeBlock(c, bases[i] === undefined ? undefined : contents[bases[i]! - 1], 4));
  const page = new Uint8Array(stored.reduce((n, s) => n + s.length, 0));
  const blocks = new Map<number, BlockEntry>();
  let at = 0;
  stored.forEach((s, i) => {
    page.set(s, at);
    blocks.set(i + 1, { page: 0, offset: at, length: s.length, hash: hash(i + 1), refs: 1, codec: 'zstd-planes', size: contents[i].length, ...(bases[i] !== undefined ? { base: bases[i] } : {}) });
    at += s.length;
  });
  return { blocks, page };
}

function contentsNear(n: number): Uint8Array[] {
  const r = rng(11);
  const first = Float32Array.from({ length: 16 * 16 }, () => r() - 0.5);
  return Array.from({ length: n }, (_, i) => new Uint8Array(first.map((v, k) => v + (k % 7 === i ? 1e-4 : 0)).buffer));
}

test('a delta chain whose blocks share one hash (blocks hashed wrongly) decodes, through the base cache, without waiting on itself', async () => {
  const contents = contentsNear(3);
  // 1 is a delta of 2, a delta of 3; all three carry the same hash.
  const { blocks, page } = await codedChain(contents, [2, 3, undefined], () => 'same-hash');
  const source = new BlockSource({ blocks }, TILE, async () => page, { baseCache: new DecodedBaseCache() });
  const got = await finishes(source.block(1), 'decoding a chain of equal hashes');
  assert.equal(Array.from(got), Array.from(contents[0]));
  assert.equal(Array.from(await finishes(source.block(2), 'block 2')), Array.from(contents[1]));
});

test('a delta cycle in a block table is CATALOG_CORRUPT on read, with or without the base cache, for one block and a whole tensor', async () => {
  const contents = contentsNear(3);
  // 1 -> 2 -> 3 -> 2: the chain from 1 comes back to 2.
  const { blocks, page } = await codedChain(contents, [2, 3, undefined], (id) => `h${id}`);
  blocks.get(3)!.base = 2;
  const model = { tensors: [{ name: 'w', dtype: 'float32', dims: [16, 16], blocks: [1] }] } as unknown as ModelEntry;
  for (const baseCache of [new DecodedBaseCache(), undefined]) {
    const source = new BlockSource({ blocks }, TILE, async () => page, { baseCache });
    const what = baseCache ? 'with a cache' : 'without a cache';
    await failsWith(source.block(1), 'CATALOG_CORRUPT', `${what}: block 1`);
    await failsWith(source.block(3), 'CATALOG_CORRUPT', `${what}: block 3`);
    await failsWith(Promise.all([source.block(2), source.block(3)]), 'CATALOG_CORRUPT', `${what}: blocks 2 and 3 at once`);
    await failsWith(source.tensors(model), 'CATALOG_CORRUPT', `${what}: a tensor`);
  }
});

test.run();
