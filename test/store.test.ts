import { readFile, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-web';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { openStore } from '../src/node/open.ts';
import { parseModel } from '../src/onnx/model.ts';
import { TesseraError } from '../src/errors.ts';
import { PAGE_HEADER_BYTES } from '../src/store/page-format.ts';
import type { PageStore } from '../src/store/page-store.ts';
import { mlp, ifModel, loopModel, constantModel, typedFieldsModel, allDtypesModel } from '../tools/fixtures/onnx-builders.ts';
import { perturbed } from '../tools/fixtures/family.ts';
import { codeOf, tempDir } from './helpers.ts';
import { openSession } from '../src/runtime/store-session.ts';

ort.env.wasm.numThreads = 1;
const TILE = { rows: 16, cols: 16 };

/** A fine-tune of `bytes`: tensor `which` perturbed, every other tensor bit-identical. */
const variant = (bytes: Uint8Array, which: number, seed: number) => perturbed(bytes, { seed, scale: 1e-3, tensors: [which] });

async function memoryStore(pageSize = 1 << 16): Promise<TesseraStore> {
  return TesseraStore.open(new MemoryPageStore({ pageSize }), { tile: TILE });
}

/** Everything observable about a store's committed state. */
async function fingerprint(store: TesseraStore): Promise<string> {
  return JSON.stringify({ stats: store.stats(), pages: await store.backend.listPages(), models: store.listModels() });
}

async function sameTensors(a: Uint8Array, b: Uint8Array): Promise<void> {
  const [pa, pb] = [await parseModel(a), await parseModel(b)];
  assert.is(pa.tensors.length, pb.tensors.length);
  pa.tensors.forEach((t, i) => {
    assert.is(pb.tensors[i].name, t.name);
    assert.equal(pb.tensors[i].dims, t.dims);
    assert.is(pb.tensors[i].dtype, t.dtype);
    assert.ok(Buffer.compare(Buffer.from(t.data), Buffer.from(pb.tensors[i].data)) === 0, `tensor ${t.name} differs`);
  });
}

test('identical tensors are stored once across models; stats count them once', async () => {
  const store = await memoryStore();
  const base = mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 1 });
  const ft = await variant(base, 2, 7); // second layer's weight changed, first layer shared
  const r1 = await store.add('base', base);
  const r2 = await store.add('ft', ft);
  assert.is(r1.newBlocks, r1.blocks);
  assert.ok(r2.newBlocks < r2.blocks / 2, `${r2.newBlocks} of ${r2.blocks} blocks new`);
  const s = store.stats();
  assert.is(s.logicalBytes, r1.logicalBytes + r2.logicalBytes);
  assert.is(s.storedBytes, r1.newBytes + r2.newBytes);
  assert.ok(s.dedupRatio > 1.5, `dedup ${s.dedupRatio}`);
  // A third copy of base adds nothing.
  const r3 = await store.add('base-copy', base);
  assert.is(r3.newBlocks, 0);
  assert.is(r3.newPages, 0);
  await store.close();
});

test('every model exports bit-exact: typed fields, all dtypes, fp16, If/Loop subgraphs, Constant nodes', async () => {
  const store = await memoryStore();
  const models: Record<string, Uint8Array> = {
    mlp: mlp({ inputDim: 40, hidden: 33, outputDim: 5, seed: 2 }),
    fp16: mlp({ inputDim: 20, hidden: 17, outputDim: 3, seed: 3, dtype: 'float16' }),
    gemm: mlp({ inputDim: 20, hidden: 17, outputDim: 3, seed: 4, gemm: true, batch: 2 }),
    iff: ifModel(5),
    loop: loopModel(6),
    constant: constantModel(7),
    typed: typedFieldsModel(8),
    dtypes: allDtypesModel(9),
  };
  for (const [name, bytes] of Object.entries(models)) await store.add(name, bytes);
  for (const [name, bytes] of Object.entries(models)) await sameTensors(bytes, await store.exportModel(name));
  assert.ok((await store.verify()).ok);
  await store.close();
});

test('sessions from the store give outputs identical to the original file', async () => {
  const store = await memoryStore();
  const cases: [string, Uint8Array, Record<string, ort.Tensor>][] = [
    ['mlp', mlp({ inputDim: 40, hidden: 33, outputDim: 5, seed: 2 }), { X: new ort.Tensor('float32', Float32Array.from({ length: 80 }, (_, i) => Math.sin(i)), [2, 40]) }],
    ['fp16', mlp({ inputDim: 20, hidden: 17, outputDim: 3, seed: 3, dtype: 'float16' }), { X: new ort.Tensor('float32', Float32Array.from({ length: 20 }, (_, i) => Math.cos(i)), [1, 20]) }],
    ['loop', loopModel(6), {}],
    ['iff', ifModel(5), {}],
  ];
  for (const [name, bytes, feedsIn] of cases) {
    await store.add(name, bytes);
    const original = await ort.InferenceSession.create(bytes);
    const feeds = { ...feedsIn };
    // Fill any input the case did not give with deterministic values of the right type.
    for (const [i, inName] of original.inputNames.entries()) {
      if (feeds[inName]) continue;
      const meta = (original.inputMetadata as any)[i];
      const dims = (meta.shape as (number | string)[]).map((d) => (typeof d === 'number' ? d : 2));
      const n = dims.reduce((a, d) => a * d, 1);
      feeds[inName] = meta.type === 'bool' ? new ort.Tensor('bool', Uint8Array.from({ length: n }, () => 1), dims) : new ort.Tensor('float32', Float32Array.from({ length: n }, (_, k) => k / 3), dims);
    }
    const expected = await original.run(feeds);
    for (const mode of ['external', 'inline'] as const) {
      const s = await openSession(store, name, { mode });
      const got = await s.run(feeds);
      for (const k of Object.keys(expected)) assert.equal(Array.from(got[k].data as Float32Array), Array.from(expected[k].data as Float32Array), `${name}/${mode}/${k}`);
      await s.release();
    }
    await original.release();
  }
  await store.close();
});

test('bad feeds give INVALID_FEEDS naming the input', async () => {
  const store = await memoryStore();
  await store.add('m', mlp({ inputDim: 8, hidden: 4, outputDim: 2, seed: 1 }));
  const s = await openSession(store, 'm');
  assert.is(await codeOf(s.run({})), 'INVALID_FEEDS');
  assert.is(await codeOf(s.run({ X: { data: [1, 2, 3], dims: [1, 8] } })), 'INVALID_FEEDS');
  assert.is(await codeOf(s.run({ X: { data: new Array(9).fill(0), dims: [1, 9] } })), 'INVALID_FEEDS');
  assert.is(await codeOf(s.run({ X: { data: new Array(8).fill(0), dims: [1, 8] }, Z: { data: [1], dims: [1] } })), 'INVALID_FEEDS');
  const ok = await s.run({ X: { data: new Array(16).fill(0.5), dims: [2, 8] } });
  assert.equal(ok.Y.dims, [2, 2]);
  await s.release();
  await store.close();
});

test('failed adds leave the store exactly as it was', async () => {
  const store = await memoryStore();
  const good = mlp({ inputDim: 32, hidden: 16, outputDim: 4, seed: 3 });
  await store.add('good', good);
  const before = await fingerprint(store);
  assert.is(await codeOf(store.add('x', new Uint8Array([1, 2, 3, 4, 5]))), 'ONNX_MALFORMED');
  assert.is(await codeOf(store.add('x', good.subarray(0, good.length - 100))), 'ONNX_MALFORMED');
  assert.is(await codeOf(store.add('good', good)), 'MODEL_EXISTS');
  assert.is(await codeOf(store.add('../evil', good)), 'INVALID_NAME');
  assert.is(await codeOf(store.add('/abs', good)), 'INVALID_NAME');
  assert.is(await codeOf(() => store.model('nope')), 'MODEL_NOT_FOUND');
  assert.is(before, await fingerprint(store));
  await store.close();
});

test('a commit that fails leaves the old state, and its written pages are reused', async () => {
  const backend = new MemoryPageStore({ pageSize: 1 << 16 });
  let failNext = false;
  const flaky: PageStore = Object.create(backend);
  flaky.appendCatalog = async (r: Uint8Array) => {
    if (failNext) {
      failNext = false;
      throw new TesseraError('IO_ERROR', 'simulated crash during commit');
    }
    return backend.appendCatalog(r);
  };
  const store = await TesseraStore.open(flaky, { tile: TILE });
  await store.add('a', mlp({ inputDim: 32, hidden: 16, outputDim: 4, seed: 1 }));
  const before = store.stats();
  failNext = true;
  assert.is(await codeOf(store.add('b', mlp({ inputDim: 32, hidden: 16, outputDim: 4, seed: 2 }))), 'IO_ERROR');
  assert.equal(store.stats(), before);
  assert.ok(!store.has('b'));
  // The catalog as stored agrees: reopening shows the same state.
  const again = await TesseraStore.open(backend);
  assert.equal(again.stats(), before);
  await store.add('b', mlp({ inputDim: 32, hidden: 16, outputDim: 4, seed: 2 }));
  assert.is((await store.verify()).leakedPages.length, 0);
});

test('file store: models persist across reopen, through checkpoints, and rm frees pages', async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, 'store');
    let store = await openStore(path, { create: true, tile: TILE, pageSize: 1 << 16 });
    const models = Array.from({ length: 5 }, (_, i) => mlp({ inputDim: 48, hidden: 24, outputDim: 6, seed: 10 + i }));
    for (let i = 0; i < 3; i++) await store.add(`m${i}`, models[i]);
    await store.checkpoint();
    for (let i = 3; i < 5; i++) await store.add(`m${i}`, models[i]);
    await store.remove('m1');
    const stats = store.stats();
    await store.close();
    store = await openStore(path, { readOnly: true });
    assert.equal(store.stats(), stats);
    assert.equal(store.listModels(), ['m0', 'm2', 'm3', 'm4']);
    for (const i of [0, 2, 3, 4]) await sameTensors(models[i], await store.exportModel(`m${i}`));
    assert.ok((await store.verify()).ok);
    await store.close();
    store = await openStore(path);
    for (const n of store.listModels()) await store.remove(n);
    assert.is(store.stats().pages, 0);
    assert.is((await stat(join(path, 'pages.dat'))).size, 0);
    await store.close();
  } finally {
    await dir.cleanup();
  }
});

test('file store: an add cut off before its commit leaves no trace after reopen', async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, 'store');
    let store = await openStore(path, { create: true, tile: TILE, pageSize: 1 << 16 });
    await store.add('a', mlp({ inputDim: 48, hidden: 24, outputDim: 6, seed: 1 }));
    const before = store.stats();
    const logBefore = await readFile(join(path, 'catalog.log'));
    await store.add('b', mlp({ inputDim: 48, hidden: 24, outputDim: 6, seed: 2 }));
    await store.close();
    // Simulate the crash: the pages of 'b' reached the disk, its catalog record only partly.
    const log = await readFile(join(path, 'catalog.log'));
    await writeFile(join(path, 'catalog.log'), log.subarray(0, logBefore.length + 20));
    store = await openStore(path);
    assert.equal(store.stats(), before);
    const v = await store.verify();
    assert.ok(v.ok);
    assert.is(v.leakedPages.length, 0, 'pages of the lost add were cut on open');
    await store.close();
  } finally {
    await dir.cleanup();
  }
});

test('a flipped bit in a page is caught before inference, naming page and models', async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, 'store');
    const store = await openStore(path, { create: true, tile: TILE, pageSize: 1 << 16 });
    const base = mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 1 });
    await store.add('base', base);
    await store.add('ft', await variant(base, 2, 3));
    await store.close();
    const f = join(path, 'pages.dat');
    const bytes = await readFile(f);
    bytes[PAGE_HEADER_BYTES + 100] ^= 0x10; // inside page 0's payload
    await writeFile(f, bytes);
    const s = await openStore(path, { readOnly: true });
    let err: any;
    try {
      await openSession(s, 'ft');
    } catch (e) {
      err = e;
    }
    assert.is(err?.code, 'PAGE_CORRUPT');
    assert.match(err.message, /page 0/);
    assert.equal(err.models.sort(), ['base', 'ft']);
    const v = await s.verify();
    assert.not.ok(v.ok);
    assert.equal(v.damagedPages.map((d) => d.page), [0]);
    assert.equal(v.damagedPages[0].models.sort(), ['base', 'ft']);
    await s.close();
  } finally {
    await dir.cleanup();
  }
});

test('opening something that is not a store, or a missing model, gives typed errors', async () => {
  const dir = await tempDir();
  try {
    assert.is(await codeOf(openStore(join(dir.path, 'nothing'))), 'NOT_A_STORE');
    const store = await openStore(join(dir.path, 's'), { create: true });
    assert.is(await codeOf(store.exportModel('missing')), 'MODEL_NOT_FOUND');
    assert.is(await codeOf(store.remove('missing')), 'MODEL_NOT_FOUND');
    assert.is(await codeOf(openSession(store, 'missing')), 'MODEL_NOT_FOUND');
    await store.close();
  } finally {
    await dir.cleanup();
  }
});

test.run();
