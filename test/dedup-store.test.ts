import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { parseModel } from '../src/onnx/model.ts';
import { encodeDelta, decodeDelta } from '../src/codecs/delta.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { perturbed } from '../tools/fixtures/family.ts';
import { TesseraError } from '../src/errors.ts';
import { codeOf, rng } from './helpers.ts';
import { createHash } from 'node:crypto';
import { decodeRecord, encodeRecord, Catalog } from '../src/catalog/catalog.ts';
import { dedupLossless } from '../src/dedup/planner.ts';
import type { StoreCore } from '../src/store/core.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const TILE = { rows: 16, cols: 16 };

async function family() {
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: 1 << 16 }), { tile: TILE });
  const base = mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 1 });
  // A full fine-tune: every weight nudged a little (no exact duplicates left).
  const ft = await perturbed(base, { seed: 3, scale: 1e-4 });
  await store.add('base', base);
  await store.add('ft', ft);
  return { store, base, ft };
}

/** Pairs each block of `ft` with the block in the same slot of `base`. */
function sameSlotPairs(store: TesseraStore) {
  const b = store.model('base');
  const f = store.model('ft');
  return f.tensors.flatMap((t, ti) => Array.from(t.blocks, (id, i) => ({ tensor: ti, index: i, block: id, base: b.tensors[ti].blocks[i] })));
}

async function tensorsEqual(store: TesseraStore, name: string, onnx: Uint8Array) {
  const want = (await parseModel(onnx)).tensors.map((t) => t.data);
  const got = await store.tensorData(name);
  got.forEach((g, i) => assert.ok(Buffer.from(g).equals(Buffer.from(want[i])), `tensor ${i} of ${name}`));
}

test('delta codec is lossless for any bytes and small for near-duplicate floats', () => {
  const r = rng(5);
  const base = new Float32Array(4096).map(() => r() - 0.5);
  const near = base.map((v) => v + (r() - 0.5) * 1e-4);
  const bytes = new Uint8Array(near.buffer);
  const delta = encodeDelta(bytes, new Uint8Array(base.buffer), 4);
  assert.ok(Buffer.from(decodeDelta(delta, new Uint8Array(base.buffer))).equals(Buffer.from(bytes)));
  assert.ok(delta.length < bytes.length * 0.75, `delta ${delta.length} of ${bytes.length}`);
  const noise = Uint8Array.from({ length: 999 }, () => Math.floor(r() * 256));
  const other = Uint8Array.from({ length: 999 }, () => Math.floor(r() * 256));
  assert.ok(Buffer.from(decodeDelta(encodeDelta(noise, other, 1), other)).equals(Buffer.from(noise)));
});

test('lossless deltas shrink a fine-tune and read back bit-exact, across reopen', async () => {
  const { store, ft, base } = await family();
  const before = store.stats().storedBytes;
  const r = await store.storeDeltas('ft', sameSlotPairs(store));
  assert.ok(r.replaced > 0);
  const after = store.stats().storedBytes;
  assert.is(before - after, r.bytesSaved);
  assert.ok(after < before * 0.9, `${after} vs ${before}`);
  await tensorsEqual(store, 'ft', ft);
  await tensorsEqual(store, 'base', base);
  assert.equal((await store.verify()).catalogProblems, []);
  // Removing the base keeps the fine-tune readable: deltas hold their bases.
  await store.remove('base');
  await tensorsEqual(store, 'ft', ft);
  const again = await TesseraStore.open(store.backend);
  await tensorsEqual(again, 'ft', ft);
  assert.ok((await again.verify()).ok);
});

test('substitutions are recorded, undoable, and settle frees the originals', async () => {
  const { store, ft } = await family();
  const pairs = sameSlotPairs(store).slice(0, 5);
  await store.substitute('ft', pairs.map((p) => ({ tensor: p.tensor, index: p.index, to: p.base, distance: 0.5 })));
  const subs = store.model('ft').substitutions!;
  assert.is(subs.length, 5);
  assert.equal(subs[0], { tensor: pairs[0].tensor, index: pairs[0].index, from: pairs[0].block, to: pairs[0].base, distance: 0.5 });
  const [a] = await store.readBlocks([store.model('ft').tensors[pairs[0].tensor].blocks[pairs[0].index]]);
  const [b] = await store.readBlocks([pairs[0].base]);
  assert.ok(Buffer.from(a).equals(Buffer.from(b)), 'slot now reads the representative');
  const stored = store.stats().storedBytes;
  assert.is(await store.undoSubstitutions('ft'), 5);
  await tensorsEqual(store, 'ft', ft);
  assert.is(store.stats().storedBytes, stored, 'originals were kept all along');
  await store.substitute('ft', pairs.map((p) => ({ tensor: p.tensor, index: p.index, to: p.base, distance: 0.5 })));
  await store.settle('ft');
  assert.ok(store.stats().storedBytes < stored);
  assert.is(await store.undoSubstitutions('ft'), 0);
  assert.ok((await store.verify()).ok);
});

test('bad substitutions are refused without changing the store', async () => {
  const { store } = await family();
  const before = JSON.stringify(store.stats());
  assert.is(await codeOf(store.substitute('ft', [{ tensor: 99, index: 0, to: 0, distance: 0 }])), 'INVALID_ARGUMENT');
  assert.is(await codeOf(store.substitute('ft', [{ tensor: 0, index: 0, to: 123456, distance: 0 }])), 'INVALID_ARGUMENT');
  assert.is(await codeOf(store.substitute('ghost', [])), 'MODEL_NOT_FOUND');
  assert.is(JSON.stringify(store.stats()), before);
});

test('compact repacks onto fewer pages, settles substitutions, and every model reads back bit-exact', async () => {
  const { store, ft, base } = await family();
  const third = mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 9 });
  await store.add('third', third);
  await store.add('fourth', mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 10 }));
  await store.storeDeltas('ft', sameSlotPairs(store));
  await store.remove('fourth');
  const pairs = sameSlotPairs(store).slice(0, 2);
  const third0 = store.model('third').tensors[0].blocks[0];
  await store.substitute('third', [{ tensor: 0, index: 0, to: pairs[0].base, distance: 1 }]);
  const expectedThird = await store.tensorData('third');
  const before = store.stats();
  const r = await store.compact();
  const after = store.stats();
  assert.is(r.settled, 1);
  assert.ok(r.pagesAfter < r.pagesBefore, `${r.pagesAfter} < ${r.pagesBefore}`);
  assert.is(after.pages, after.pageLowerBound, 'relaxed packing reaches the byte bound here');
  assert.ok(after.storedBytes < before.storedBytes, 'the settled original is gone');
  assert.not.ok(store.catalog.blocks.has(third0));
  await tensorsEqual(store, 'ft', ft);
  await tensorsEqual(store, 'base', base);
  const got = await store.tensorData('third');
  got.forEach((g, i) => assert.ok(Buffer.from(g).equals(Buffer.from(expectedThird[i]))));
  const v = await store.verify();
  assert.ok(v.ok, JSON.stringify(v));
  assert.is(v.leakedPages.length, 0);
  const again = await TesseraStore.open(store.backend);
  assert.equal(again.stats(), after);
});

test('a compaction cut off before its commit leaves the old layout intact', async () => {
  const { store, ft } = await family();
  await store.add('other', mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 11 }));
  await store.remove('base');
  const backend = store.backend as MemoryPageStore;
  const stats = store.stats();
  const append = backend.appendCatalog.bind(backend);
  backend.appendCatalog = async () => {
    throw new TesseraError('IO_ERROR', 'simulated power cut during commit');
  };
  assert.is(await codeOf(store.compact()), 'IO_ERROR');
  backend.appendCatalog = append;
  const reopened = await TesseraStore.open(backend);
  assert.equal(reopened.stats(), stats);
  await tensorsEqual(reopened, 'ft', ft);
  await reopened.collectGarbage();
  assert.ok((await reopened.verify()).ok);
});

test('lossless coding: every block coded where it pays, exports byte-identical, survives snapshot, reopen, compact and rm', async () => {
  const { store, ft, base } = await family();
  const other = mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 9 });
  await store.add('other', other);
  const before = store.stats().storedBytes;
  const reports = await dedupLossless(store);
  const coded = [...store.catalog.blocks.values()].filter((b) => b.codec === 'zstd-planes');
  assert.ok(reports.find((r) => r.name === 'ft')!.blocksReplaced > 0, 'the fine-tune is stored as deltas');
  assert.ok(reports.find((r) => r.name === 'other')!.blocksCoded > 0, 'an unrelated model is coded alone');
  for (const b of coded) assert.ok(b.length < b.size!, 'no coded block is bigger than its content');
  assert.is(before - store.stats().storedBytes, reports.reduce((a, r) => a + r.bytesSaved, 0));
  for (const [name, onnx] of [['base', base], ['ft', ft], ['other', other]] as const) assert.is(sha256(await store.exportModel(name)), sha256(onnx), name);
  assert.ok((await store.verify()).ok);
  // The catalog folds into a snapshot and reopens with the codecs; compaction keeps them.
  await store.checkpoint();
  const again = await TesseraStore.open(store.backend);
  assert.is([...again.catalog.blocks.values()].filter((b) => b.codec === 'zstd-planes').length, coded.length);
  await again.compact();
  for (const [name, onnx] of [['base', base], ['ft', ft], ['other', other]] as const) assert.is(sha256(await again.exportModel(name)), sha256(onnx), name);
  await again.remove('base');
  await tensorsEqual(again, 'ft', ft);
  // Adding a model again finds its exact duplicates among the coded blocks (by content size, not stored size).
  const stored = again.stats().storedBytes;
  await again.add('other-again', other);
  assert.is(again.stats().storedBytes, stored);
  assert.ok((await again.verify()).ok);
});

test('add with code: the new blocks are stored coded, the model exports byte-identical', async () => {
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: 1 << 16 }), { tile: TILE });
  const base = mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 1 });
  await store.add('plain', base);
  const plainBytes = store.stats().storedBytes;
  await store.add('coded', mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 2 }), { code: true });
  const codedIds = new Set(store.model('coded').tensors.flatMap((t) => Array.from(t.blocks)));
  const plainIds = new Set(store.model('plain').tensors.flatMap((t) => Array.from(t.blocks)));
  assert.ok([...codedIds].some((id) => store.catalog.blocks.get(id)!.codec === 'zstd-planes'));
  assert.ok([...plainIds].every((id) => store.catalog.blocks.get(id)!.codec === undefined), 'blocks added before are left as they are');
  assert.ok(store.stats().storedBytes - plainBytes < plainBytes, 'the coded model takes less than the raw one');
  assert.is(sha256(await store.exportModel('coded')), sha256(mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 2 })));
  assert.ok((await store.verify()).ok);
});

test('records holding coded blocks are wrapped, so a tessera without codecs refuses them', async () => {
  const { store } = await family();
  await dedupLossless(store);
  const snap = store.catalog.snapshot();
  const reread = Catalog.load(snap, []);
  assert.is(reread.blocks.size, store.catalog.blocks.size);
  for (const [id, b] of store.catalog.blocks) assert.equal({ ...reread.blocks.get(id)! }, { ...b });
  // The wire: 'coded' around an 'add' or 'delta' record, 'recode' for coding in place.
  const rec = encodeRecord({ t: 'add', seq: 1, model: store.model('ft'), blocks: [{ id: 1, page: 0, offset: 0, length: 10, hash: '0123456789abcdef', codec: 'zstd-planes', size: 20 }], pages: [{ id: 0, used: 10 }] });
  const { decode } = await import('@msgpack/msgpack');
  assert.is((decode(rec) as { t: string }).t, 'coded');
  const back = decodeRecord(rec);
  assert.is(back.t, 'add');
  assert.equal(back.t === 'add' && { ...back.blocks[0] }, { id: 1, page: 0, offset: 0, length: 10, hash: '0123456789abcdef', codec: 'zstd-planes', size: 20 });
  const plain = encodeRecord({ t: 'add', seq: 1, model: store.model('ft'), blocks: [{ id: 1, page: 0, offset: 0, length: 10, hash: '0123456789abcdef' }], pages: [{ id: 0, used: 10 }] });
  assert.is((decode(plain) as { t: string }).t, 'add');
});

test('a store written before codecs (deflate deltas) still reads bit-exact', async () => {
  const { store, ft } = await family();
  // Write a delta the way tessera did before 'zstd-planes': deflate planes, no codec in the catalog.
  const core = (store as unknown as { core: StoreCore }).core;
  const reader = core.blocks();
  const writer = core.pageWriter();
  const blocks = [];
  const slots = [];
  let id = core.nextBlockId;
  for (const p of sameSlotPairs(store)) {
    const data = encodeDelta(await reader.block(p.block), await reader.block(p.base), 4);
    const { page, offset } = await writer.place(data);
    blocks.push({ id, page, offset, length: data.length, hash: store.catalog.blocks.get(p.block)!.hash, base: p.base });
    slots.push({ tensor: p.tensor, index: p.index, to: id++ });
  }
  const { pages } = await writer.finish();
  await core.commit({ t: 'delta', seq: writer.epoch, model: 'ft', blocks, pages, slots });
  assert.ok([...store.catalog.blocks.values()].some((b) => b.base !== undefined && b.codec === undefined));
  await tensorsEqual(store, 'ft', ft);
  // Lossless coding on top codes the raw blocks and leaves the old deltas readable.
  await dedupLossless(store);
  await tensorsEqual(await TesseraStore.open(store.backend), 'ft', ft);
  assert.ok((await store.verify()).ok);
});

test.run();
