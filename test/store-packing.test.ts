/**
 * Packing on real block-size mixes (issue 12, findings 1 and 7): compaction never grows a store,
 * keeps stored bytes and every model's bytes, and a second run writes nothing; many small models
 * share pages.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { packBytes } from '../src/pack/bytes.ts';
import type { DType } from '../src/onnx/dtypes.ts';
import { encode, graph, modelProto, randomElementBytes, tensorProto } from '../tools/fixtures/onnx-builders.ts';

const TILE = { rows: 8, cols: 8 };
/** Three full 8x8 tiles of 8-byte elements: small enough that packing decides page counts. */
const PAGE = 3 * 8 * 8 * 8;
const DTYPE_MIX: DType[] = ['float32', 'float16', 'int64', 'uint8', 'int32', 'float64', 'bool'];

interface TensorSpec {
  dtype: DType;
  dims: number[];
  seed: number;
}

/** An ONNX file holding only initializers (enough to ingest and export byte for byte). */
function weightsModel(tensors: TensorSpec[], perturb = 0): Uint8Array {
  const initializers = tensors.map((t, i) => {
    const count = t.dims.reduce((a, d) => a * d, 1);
    const bytes = randomElementBytes(t.dtype, count, t.seed);
    // A perturbed copy differs in its first byte only: a near-duplicate for delta blocks.
    if (perturb && bytes.length) bytes[0] ^= perturb;
    return tensorProto(`w${i}`, t.dtype, t.dims, bytes);
  });
  return encode(modelProto(graph({ nodes: [], inputs: [], outputs: [], initializers })));
}

const tensorArb: fc.Arbitrary<TensorSpec> = fc.record({
  dtype: fc.constantFrom(...DTYPE_MIX),
  dims: fc.oneof(fc.tuple(fc.integer({ min: 1, max: 40 })), fc.tuple(fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 24 }))),
  seed: fc.integer({ min: 1, max: 6 }), // few seeds: tensors repeat across models (exact dedup)
});

const opArb = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('add' as const), tensors: fc.array(tensorArb, { minLength: 1, maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('rm' as const), which: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delta' as const), which: fc.nat() }) },
);

test('compaction over random mixes of block sizes and dtypes never grows a store and keeps every byte', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 2, maxLength: 10 }), async (ops) => {
      const backend = new MemoryPageStore({ pageSize: PAGE });
      const store = await TesseraStore.open(backend, { tile: TILE });
      const files = new Map<string, Uint8Array>();
      const specs = new Map<string, TensorSpec[]>();
      let n = 0;
      for (const o of ops) {
        const names = [...files.keys()];
        if (o.op === 'add') {
          const name = `m${n++}`;
          files.set(name, weightsModel(o.tensors));
          specs.set(name, o.tensors);
          await store.add(name, files.get(name)!);
        } else if (o.op === 'rm' && names.length) {
          const name = names[o.which % names.length];
          await store.remove(name);
          files.delete(name);
        } else if (o.op === 'delta' && names.length) {
          // A near-duplicate of a stored model, its blocks re-stored as deltas against the original's.
          const of = names[o.which % names.length];
          const name = `m${n++}`;
          files.set(name, weightsModel(specs.get(of)!, 0x5a));
          specs.set(name, specs.get(of)!);
          await store.add(name, files.get(name)!);
          const pairs = store.model(name).tensors.flatMap((t, ti) => Array.from(t.blocks, (block, i) => ({ block, base: store.model(of).tensors[ti].blocks[i] })));
          await store.storeDeltas(name, pairs, { minSaving: 0 });
        }
      }
      const before = store.stats();
      const first = await store.compact();
      const after = store.stats();
      assert.ok(after.pages <= before.pages, `pages ${before.pages} -> ${after.pages}`);
      assert.is(first.pagesAfter, after.pages);
      assert.is(after.storedBytes, before.storedBytes);
      assert.is(after.blocks, before.blocks);
      // Every page but one holds at least a page minus its largest block, so no layout beats it
      // by more than that page.
      if (after.pages) assert.ok(after.pages <= Math.max(before.pageLowerBound, 1) * 2, `${after.pages} pages for a lower bound of ${after.pageLowerBound}`);
      for (const [name, bytes] of files) assert.equal(await store.exportModel(name), bytes, `${name} exports as it was added`);
      const v = await store.verify();
      assert.ok(v.ok, [...v.catalogProblems, ...v.damagedPages.map((d) => d.error)].join('; '));
      assert.equal(v.leakedPages, []);
      // Page slots in use are 0..pages-1 after compaction (nothing left above for a file to keep).
      assert.is(store.catalog.pageLimit(), after.pages);
      const second = await store.compact();
      assert.is(second.pagesWritten, 0, 'a second compaction writes nothing');
      assert.equal(store.stats(), after);
      // The repack records replay to the same layout.
      const reopened = await TesseraStore.open(backend);
      assert.equal(reopened.stats(), after);
      for (const [name, bytes] of files) assert.equal(await reopened.exportModel(name), bytes, `${name} after reopening`);
      await store.close();
    }),
    { numRuns: 40, seed: 12 },
  );
});

test('packBytes: every block on one page, no page over its size, within the first-fit bound', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 512 }), { minLength: 1, maxLength: 300 }), fc.array(fc.array(fc.nat(), { maxLength: 40 }), { maxLength: 5 }), (sizes, models) => {
      const m = models.map((ids) => ids.map((i) => i % sizes.length));
      const { pages, used } = packBytes(m, sizes, 1536);
      const seen = pages.flat().sort((a, b) => a - b);
      assert.equal(seen, sizes.map((_, i) => i));
      pages.forEach((p, k) => {
        const bytes = p.reduce((s, b) => s + sizes[b], 0);
        assert.is(used[k], bytes);
        assert.ok(bytes <= 1536);
      });
      const total = sizes.reduce((a, b) => a + b, 0);
      // Stage 1 pages are >= 97% full; stage 2 (first-fit) pages but the last exceed 1536 - 512.
      assert.ok(pages.length <= Math.ceil(total / (1536 - 512)) + 1, `${pages.length} pages for ${total} bytes`);
    }),
    { numRuns: 200, seed: 7 },
  );
});

test('many small models share pages: 82 tiny models make one page, and each reads back exactly', async () => {
  const backend = new MemoryPageStore({ pageSize: 1 << 20 });
  const store = await TesseraStore.open(backend);
  const files: Uint8Array[] = [];
  for (let i = 0; i < 82; i++) {
    // ~150 bytes of weights each: a bias, an int64 shape, a few uint8 values.
    files.push(weightsModel([{ dtype: 'float32', dims: [24], seed: 100 + i }, { dtype: 'int64', dims: [4], seed: 300 + i }, { dtype: 'uint8', dims: [22], seed: 500 + i }]));
    await store.add(`tiny${i}`, files[i]);
  }
  const s = store.stats();
  assert.is(s.pageLowerBound, 1);
  assert.is(s.pages, 1, `${s.pages} pages for ${s.storedBytes} bytes of blocks`);
  // The shared page moves to a fresh slot on each add (copy-on-write); old slots are released.
  assert.equal(await backend.listPages(), [...store.catalog.pages.keys()]);
  for (let i = 0; i < 82; i++) assert.equal(await store.exportModel(`tiny${i}`), files[i]);
  const reopened = await TesseraStore.open(backend);
  assert.equal(reopened.stats(), s);
  assert.ok((await reopened.verify()).ok);
  // Removing one leaves the others readable from the shared page.
  await reopened.remove('tiny3');
  assert.equal(await reopened.exportModel('tiny4'), files[4]);
  assert.is(reopened.stats().pages, 1);
});

test('a shared page cut off before its commit leaves the page it copied intact', async () => {
  const backend = new MemoryPageStore({ pageSize: 1 << 16 });
  const store = await TesseraStore.open(backend);
  const a = weightsModel([{ dtype: 'float32', dims: [30], seed: 1 }]);
  await store.add('a', a);
  const before = store.stats();
  const pages = [...store.catalog.pages.keys()];
  const append = backend.appendCatalog.bind(backend);
  backend.appendCatalog = async () => {
    throw new Error('simulated power cut during commit');
  };
  await store.add('b', weightsModel([{ dtype: 'float32', dims: [30], seed: 2 }])).catch(() => {});
  backend.appendCatalog = append;
  const reopened = await TesseraStore.open(backend);
  assert.equal(reopened.stats(), before);
  assert.equal([...reopened.catalog.pages.keys()], pages);
  assert.equal(await reopened.exportModel('a'), a);
  assert.ok((await reopened.verify()).ok);
});

test.run();
