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

test.run();
