import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { BlockSource, DecodedBaseCache } from '../src/store/block-source.ts';
import { parseModel } from '../src/onnx/model.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { perturbed } from '../tools/fixtures/family.ts';
import { dedupLossless } from '../src/dedup/planner.ts';
import { InvalidArgumentError } from '../src/errors.ts';

const TILE = { rows: 16, cols: 16 };

/** A base and two fine-tunes of it, stored as lossless deltas against the base's (coded) blocks. */
async function family() {
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: 1 << 16 }), { tile: TILE });
  const base = mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 1 });
  const ft1 = await perturbed(base, { seed: 3, scale: 1e-4 });
  const ft2 = await perturbed(base, { seed: 4, scale: 1e-4 });
  await store.add('base', base);
  await store.add('ft1', ft1);
  await store.add('ft2', ft2);
  await dedupLossless(store);
  return { store, models: { base, ft1, ft2 } };
}

async function assertReadsBack(store: TesseraStore, name: string, onnx: Uint8Array) {
  const want = (await parseModel(onnx)).tensors.map((t) => t.data);
  const got = await store.tensorData(name);
  got.forEach((g, i) => assert.ok(Buffer.from(g).equals(Buffer.from(want[i])), `tensor ${i} of ${name}`));
}

/** Delta blocks whose base costs a decode (a coded or delta block): what the cache holds. */
function decodedBases(store: TesseraStore) {
  const blocks = store.catalog.blocks;
  return [...blocks.values()].filter((b) => b.base !== undefined && (blocks.get(b.base)!.codec !== undefined || blocks.get(b.base)!.base !== undefined));
}

test('a second fine-tune reads its coded bases from the store cache, bit-exact', async () => {
  const { store, models } = await family();
  assert.ok(decodedBases(store).length > 0, 'the fine-tunes are deltas against coded base blocks');
  const cache = store.baseCache;
  cache.clear();
  const misses0 = cache.misses;
  await assertReadsBack(store, 'ft1', models.ft1);
  const misses = cache.misses - misses0;
  assert.ok(misses > 0, 'the first read decodes its bases');
  assert.ok(cache.bytes > 0 && cache.bytes <= cache.maxBytes);
  const hits0 = cache.hits;
  const misses1 = cache.misses;
  await assertReadsBack(store, 'ft2', models.ft2);
  assert.is(cache.misses, misses1, 'the second fine-tune decodes no base again');
  assert.ok(cache.hits - hits0 >= misses, `${cache.hits - hits0} hits`);
  await assertReadsBack(store, 'base', models.base);
  // After compaction and a remove (block ids may be reused) the cache, keyed by content hash, stays right.
  await store.compact();
  await store.remove('ft1');
  await store.add('ft1-again', models.ft1);
  await assertReadsBack(store, 'ft2', models.ft2);
  await assertReadsBack(store, 'ft1-again', models.ft1);
});

test('the cache holds at most its bound, drops the least recently used, and a source without one decodes every time', async () => {
  const { store, models } = await family();
  const sizes = decodedBases(store).map((b) => store.catalog.blocks.get(b.base!)!.size!);
  const one = Math.max(...sizes);
  const small = new DecodedBaseCache(one * 2);
  const pages = (id: number) => store.backend.readPage(id);
  const read = async (cache?: DecodedBaseCache) => {
    const src = new BlockSource(store.catalog, store.config.tile, pages, { baseCache: cache });
    return src.tensors(store.model('ft2'));
  };
  const want = (await parseModel(models.ft2)).tensors.map((t) => t.data);
  for (const got of [await read(small), await read(small), await read(undefined)]) {
    got.forEach((g, i) => assert.ok(Buffer.from(g).equals(Buffer.from(want[i])), `tensor ${i}`));
  }
  assert.ok(small.bytes <= small.maxBytes, `${small.bytes} of ${small.maxBytes}`);
  assert.ok(small.misses > 2, 'a two-block cache cannot hold every base');
  const none = new DecodedBaseCache(0);
  await read(none);
  assert.is(none.bytes, 0);
  assert.throws(() => new DecodedBaseCache(-1), (e: unknown) => e instanceof InvalidArgumentError);
  // A reader under a memory budget (the server) opts out: its sources get no cache.
  const before = store.baseCache.misses + store.baseCache.hits;
  await store.blockSource({ baseCache: false }).tensors(store.model('ft1'));
  assert.is(store.baseCache.misses + store.baseCache.hits, before);
});

test.run();
