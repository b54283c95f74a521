/**
 * Publishing a store as static files and importing from it: only missing pages are fetched,
 * models come back bit-identical, and interrupted or damaged downloads store nothing.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openStore } from '../src/node/open.ts';
import { folderSource, publishStore } from '../src/node/publish.ts';
import { importModels, INDEX_FILE, PublishedStore, type PublishedSource } from '../src/store/published.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { TesseraStore } from '../src/store/store.ts';
import { TesseraError } from '../src/errors.ts';
import { codeOf, tempDir } from './helpers.ts';
import { parseModel } from '../src/onnx/model.ts';
import { familyMember, perturbed } from '../tools/fixtures/family.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';

const TILE = { rows: 32, cols: 32 };
const member = (headSeed: number) => familyMember({ inputDim: 256, hidden: 128, outputDim: 10, backboneSeed: 7, headSeed });
const models = { a: member(1), b: member(2), c: member(3) };

async function published(): Promise<{ dir: string; cleanup: () => Promise<void>; exports: Record<string, Uint8Array> }> {
  const tmp = await tempDir();
  const store = await openStore(join(tmp.path, 'store'), { create: true, pageSize: 16384, tile: TILE });
  const exports: Record<string, Uint8Array> = {};
  for (const [name, bytes] of Object.entries(models)) {
    await store.add(name, bytes);
    exports[name] = await store.exportModel(name);
  }
  await publishStore(store, join(tmp.path, 'pub'));
  await store.close();
  return { dir: join(tmp.path, 'pub'), cleanup: tmp.cleanup, exports };
}

const localStore = (tile = TILE) => TesseraStore.open(new MemoryPageStore({ pageSize: 65536 }), { tile });

test('a related model fetches only the pages holding blocks the local store lacks', async () => {
  const pub = await published();
  try {
    const source = folderSource(pub.dir);
    const remote = await PublishedStore.open(source);
    assert.equal(remote.listModels().map((m) => m.name), ['a', 'b', 'c']);
    const local = await localStore();
    const [ra] = await importModels(local, remote, ['a']);
    assert.is(ra.status, 'imported');
    assert.is(ra.pagesFetched, ra.pagesRead);
    const planB = remote.plan(local, 'b');
    const [rb] = await importModels(local, remote, ['b']);
    assert.is(rb.pagesFetched, planB.missingPages.length);
    assert.is(rb.bytesFetched, planB.bytesToFetch);
    assert.ok(rb.pagesFetched >= 1 && rb.pagesFetched < rb.pagesRead, `b fetched ${rb.pagesFetched} of ${rb.pagesRead} pages`);
    // The head is 128x10 floats + 10 biases: all b needs beyond a.
    assert.ok(rb.bytesFetched < (128 * 10 + 10) * 4 * 2, `b fetched ${rb.bytesFetched} bytes`);
    assert.ok(rb.bytesFetched * 10 < rb.wholeFileBytes);
    assert.is(rb.newBlocks, 4 + 1);
    for (const name of ['a', 'b']) assert.equal(await local.exportModel(name), pub.exports[name], name);
    const again = await importModels(local, remote, ['a']);
    assert.is(again[0].status, 'present');
    assert.is(again[0].bytesFetched, 0);
    assert.ok((await local.verify()).ok);
    // Pages read from the folder = index + catalog + the pages the two imports fetched.
    assert.is(source.bytesRead, remote.bytesFetched);
  } finally {
    await pub.cleanup();
  }
});

test('an import interrupted mid-way stores nothing and leaves stored models servable; a retry completes', async () => {
  const pub = await published();
  try {
    const local = await localStore();
    const own = mlp({ inputDim: 64, hidden: 48, outputDim: 5, seed: 9 });
    await local.add('own', own);
    const ownExport = await local.exportModel('own');
    const before = await local.backend.listPages();
    const inner = folderSource(pub.dir);
    let pageGets = 0;
    const flaky: PublishedSource = {
      location: 'flaky',
      async get(path) {
        if (path.startsWith('pages/') && ++pageGets > 2) throw new TesseraError('IO_ERROR', `connection reset fetching ${path}`);
        return inner.get(path);
      },
    };
    const remote = await PublishedStore.open(flaky);
    assert.ok(remote.plan(local, 'a').missingPages.length > 2);
    assert.is(await codeOf(remote.importModel(local, 'a')), 'IO_ERROR');
    assert.equal(local.listModels(), ['own']);
    assert.equal(await local.backend.listPages(), before);
    assert.equal(await local.exportModel('own'), ownExport);
    const [r] = await importModels(local, folderSource(pub.dir), ['a']);
    assert.is(r.status, 'imported');
    assert.equal(await local.exportModel('a'), pub.exports.a);
  } finally {
    await pub.cleanup();
  }
});

test('a damaged page file is PAGE_CORRUPT and nothing is stored', async () => {
  const pub = await published();
  try {
    const files = await readdir(join(pub.dir, 'pages'));
    const victim = join(pub.dir, 'pages', files[0]);
    const bytes = await readFile(victim);
    bytes[bytes.length - 1] ^= 0x10;
    await writeFile(victim, bytes);
    const local = await localStore();
    assert.is(await codeOf(importModels(local, folderSource(pub.dir))), 'PAGE_CORRUPT');
    assert.equal(local.listModels(), []);
    assert.equal(await local.backend.listPages(), []);
  } finally {
    await pub.cleanup();
  }
});

test('wrong tile, unknown model, missing or foreign index give clear errors', async () => {
  const pub = await published();
  try {
    const remote = await PublishedStore.open(folderSource(pub.dir));
    const other = await localStore({ rows: 64, cols: 64 });
    let e: unknown;
    try {
      await remote.importModel(other, 'a');
    } catch (x) {
      e = x;
    }
    assert.is((e as TesseraError).code, 'INVALID_ARGUMENT');
    assert.match((e as Error).message, /32x32 tiles/);
    assert.is(await codeOf(remote.importModel(await localStore(), 'zzz')), 'MODEL_NOT_FOUND');
    assert.is(await codeOf(PublishedStore.open(folderSource(join(pub.dir, 'pages')))), 'IO_ERROR');
    await writeFile(join(pub.dir, INDEX_FILE), JSON.stringify({ format: 'something-else' }));
    assert.is(await codeOf(PublishedStore.open(folderSource(pub.dir))), 'NOT_A_STORE');
  } finally {
    await pub.cleanup();
  }
});

test('the catalog travels deflated (in the index when small), inflated to exactly its stated size; a version 2 store (plain catalog) still imports', async () => {
  const pub = await published();
  try {
    const index = JSON.parse(await readFile(join(pub.dir, INDEX_FILE), 'utf8'));
    assert.is(index.catalog.encoding, 'deflate-raw');
    assert.ok(index.catalog.bytes * 2 < index.catalog.size, `catalog ${index.catalog.bytes} bytes deflated, ${index.catalog.size} inflated`);
    // Small: carried in the index too, so opening the store reads one file.
    assert.type(index.catalog.inline, 'string');
    assert.type(index.blocks.inline, 'string');
    const once = folderSource(pub.dir);
    await PublishedStore.open(once);
    assert.is(once.bytesRead, (await readFile(join(pub.dir, INDEX_FILE))).length);
    // A stated size below what the file inflates to is refused (the bound on a deflate bomb), and
    // so is a copy in the index that is not the file its SHA-256 names.
    await writeFile(join(pub.dir, INDEX_FILE), JSON.stringify({ ...index, catalog: { ...index.catalog, size: index.catalog.size - 1 } }));
    assert.is(await codeOf(PublishedStore.open(folderSource(pub.dir))), 'CATALOG_CORRUPT');
    await writeFile(join(pub.dir, INDEX_FILE), JSON.stringify({ ...index, blocks: { ...index.blocks, inline: index.catalog.inline } }));
    assert.is(await codeOf(PublishedStore.open(folderSource(pub.dir))), 'CATALOG_CORRUPT');
    // Version 2: the same catalog, plain.
    const plain = inflateRawSync(await readFile(join(pub.dir, index.catalog.file)));
    const file = `catalog.${index.catalog.xxh64}.msgpack`;
    await writeFile(join(pub.dir, file), plain);
    const { inline: _, ...blocks } = index.blocks;
    await writeFile(join(pub.dir, INDEX_FILE), JSON.stringify({ ...index, version: 2, blocks, catalog: { file, bytes: plain.length, xxh64: index.catalog.xxh64, sha256: createHash('sha256').update(plain).digest('hex') } }));
    const local = await localStore();
    const [r] = await importModels(local, folderSource(pub.dir), ['a']);
    assert.is(r.status, 'imported');
    assert.equal(await local.exportModel('a'), pub.exports.a);
  } finally {
    await pub.cleanup();
  }
});

test('republishing after a removal writes only new pages and drops stale files', async () => {
  const tmp = await tempDir();
  try {
    const store = await openStore(join(tmp.path, 's'), { create: true, pageSize: 16384, tile: TILE });
    await store.add('a', models.a);
    await store.add('b', models.b);
    const out = join(tmp.path, 'pub');
    const first = await publishStore(store, out);
    assert.is(first.pagesWritten, first.pages);
    await store.remove('b');
    await store.add('c', models.c);
    const second = await publishStore(store, out);
    assert.ok(second.pagesWritten < second.pages);
    assert.ok(second.staleFilesRemoved >= 1);
    assert.is((await readdir(join(out, 'pages'))).length, second.pages);
    const local = await localStore();
    await importModels(local, folderSource(out));
    assert.equal(local.listModels(), ['a', 'c']);
    assert.equal(await local.exportModel('c'), await store.exportModel('c'));
    await store.close();
  } finally {
    await tmp.cleanup();
  }
});

test('a lossless delta model fetches only its deltas when the local store holds the bases, and stays deltas there', async () => {
  const tmp = await tempDir();
  try {
    const store = await openStore(join(tmp.path, 'store'), { create: true, pageSize: 16384, tile: TILE });
    const base = mlp({ inputDim: 256, hidden: 128, outputDim: 10, seed: 5 });
    const ft = await perturbed(base, { seed: 9, scale: 1e-4 });
    await store.add('base', base);
    await store.add('ft', ft);
    const pairs = store.model('ft').tensors.flatMap((t, ti) => Array.from(t.blocks, (id, i) => ({ block: id, base: store.model('base').tensors[ti].blocks[i] })));
    assert.ok((await store.storeDeltas('ft', pairs, { minSaving: 0 })).replaced > 0); // every delta smaller than its block coded alone
    const want = await store.exportModel('ft');
    await publishStore(store, join(tmp.path, 'pub'));
    await store.close();
    const remote = await PublishedStore.open(folderSource(join(tmp.path, 'pub')));
    const local = await TesseraStore.open(new MemoryPageStore({ pageSize: 16384 }), { tile: TILE });
    const [rb] = await importModels(local, remote, ['base']);
    const [rf] = await importModels(local, remote, ['ft']);
    assert.ok(rf.bytesFetched < rb.bytesFetched * 0.9, `ft fetched ${rf.bytesFetched}, base ${rb.bytesFetched}`);
    const got = await local.exportModel('ft');
    const [a, b] = [await parseModel(want), await parseModel(got)];
    a.tensors.forEach((t, i) => assert.ok(Buffer.from(t.data).equals(Buffer.from(b.tensors[i].data)), t.name));
    // Stored as the deltas that travelled (not decoded and stored whole): as many delta blocks as
    // published, each against a block of base, and the stored bytes those of the deltas.
    const deltasOf = (s: { catalog: TesseraStore['catalog'] }, name: string) => s.catalog.models.get(name)!.tensors.flatMap((t) => Array.from(t.blocks)).filter((id) => s.catalog.blocks.get(id)!.base !== undefined);
    const published = deltasOf(remote, 'ft');
    assert.ok(published.length > 0);
    const kept = deltasOf(local, 'ft');
    assert.is(kept.length, published.length);
    const baseBlocks = new Set(local.model('base').tensors.flatMap((t) => Array.from(t.blocks)));
    assert.ok(kept.every((id) => baseBlocks.has(local.catalog.blocks.get(id)!.base!)));
    assert.ok(rf.bytesStored < rb.bytesStored * 0.9, `ft stored ${rf.bytesStored}, base ${rb.bytesStored}`);
    assert.ok((await local.verify()).ok);

    // Alone (no base held): the bases it needs come too, stored once, only as bases; and in one
    // batch with base, the same store as two imports.
    const alone = await TesseraStore.open(new MemoryPageStore({ pageSize: 16384 }), { tile: TILE });
    const [ra] = await importModels(alone, remote, ['ft']);
    assert.is(deltasOf(alone, 'ft').length, published.length);
    // The same blocks as base then ft, packed onto other pages (a page header more or less).
    assert.ok(Math.abs(ra.bytesStored - (rb.bytesStored + rf.bytesStored)) <= 4 * 32, `ft alone stored ${ra.bytesStored}, base then ft ${rb.bytesStored} + ${rf.bytesStored}`);
    assert.equal(await alone.exportModel('ft'), got);
    const batch = await TesseraStore.open(new MemoryPageStore({ pageSize: 16384 }), { tile: TILE });
    const reports = await importModels(batch, remote, ['base', 'ft']);
    assert.equal(reports.map((r) => r.bytesStored), [rb.bytesStored, rf.bytesStored]);
    assert.equal(reports.map((r) => r.bytesFetched), [rb.bytesFetched, rf.bytesFetched]);
    assert.is(deltasOf(batch, 'ft').length, published.length);
    assert.equal(await batch.exportModel('ft'), got);
    assert.equal(await batch.exportModel('base'), await local.exportModel('base'));
  } finally {
    await tmp.cleanup();
  }
});

test('an imported real model exports byte-identical to its original file (tensors in typed fields stay typed)', async () => {
  // Silero VAD v5 and v6 hold tensors in int64_data / float_data: exported as raw_data, each
  // grew by 6 bytes (issue 12). The importer must carry each tensor's field through.
  const dist = 'node_modules/@ricky0123/vad-web/dist';
  const files = ['silero_vad_v5.onnx', 'silero_vad_v6.onnx'];
  const originals = await Promise.all(files.map((f) => readFile(join(dist, f)).catch(() => {
    throw new Error(`${dist}/${f} is missing: this test needs the @ricky0123/vad-web package installed (npm install).`);
  })));
  const tmp = await tempDir();
  try {
    const store = await openStore(join(tmp.path, 'store'), { create: true });
    for (let i = 0; i < files.length; i++) await store.add(`m${i}`, originals[i]);
    await publishStore(store, join(tmp.path, 'pub'));
    await store.close();
    const local = await TesseraStore.open(new MemoryPageStore({ pageSize: 1 << 20 }));
    const reports = await importModels(local, folderSource(join(tmp.path, 'pub')));
    assert.equal(reports.map((r) => r.status), ['imported', 'imported']);
    for (let i = 0; i < files.length; i++) {
      const typed = local.catalog.models.get(`m${i}`)!.tensors.filter((t) => t.encoding !== undefined && t.encoding !== 'raw');
      assert.ok(typed.length > 0, `${files[i]} should hold tensors in typed fields (else this test proves nothing)`);
      const exported = await local.exportModel(`m${i}`);
      assert.is(exported.length, originals[i].length, files[i]);
      assert.ok(Buffer.compare(Buffer.from(exported), originals[i]) === 0, `${files[i]}: export of the imported model differs from the original`);
    }
  } finally {
    await tmp.cleanup();
  }
});

test.run();
