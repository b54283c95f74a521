/**
 * Several models added in one commit (AddBatch, addModelFiles, `tessera add a b c`): one catalog
 * record for the batch, duplicates across the batch stored once, small models sharing pages,
 * the same state after reopening (journal) and after a checkpoint (snapshot); a bad file stops the
 * batch with nothing committed, or with keepGoing is reported while the others are committed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addModelFiles, openStore } from '../src/node/open.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { perturbed } from '../tools/fixtures/family.ts';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-batch-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const logRecords = (store: string) => {
  // catalog.log frames: u32 length | u64 checksum | payload.
  const log = readFileSync(join(store, 'catalog.log'));
  let n = 0;
  for (let pos = 0; pos + 12 <= log.length; pos += 12 + log.readUInt32LE(pos)) n++;
  return n;
};

test('a batch commits once; blocks shared across it are stored once; reopened and checkpointed it reads the same', async () => {
  await withDir(async (dir) => {
    const base = mlp({ inputDim: 64, hidden: 48, outputDim: 8, seed: 1 });
    const tuned = await perturbed(base, { seed: 2, scale: 1e-2, tensors: [2, 3] });
    const other = mlp({ inputDim: 32, hidden: 16, outputDim: 4, seed: 3 });
    const files = { base, tuned, copy: base, other };
    for (const [n, b] of Object.entries(files)) await writeFile(join(dir, `${n}.onnx`), b);
    const path = join(dir, 'store');
    const store = await openStore(path, { create: true, tile: { rows: 16, cols: 16 } });
    const before = logRecords(path);
    const { added, failed } = await addModelFiles(store, Object.keys(files).map((n) => join(dir, `${n}.onnx`)));
    assert.equal(failed, []);
    assert.is(logRecords(path) - before, 1, 'one catalog record for the batch');
    const byName = Object.fromEntries(added.map((r) => [r.name, r]));
    assert.is(byName.copy.newBlocks, 0, 'a model repeated in the batch adds no block');
    assert.ok(byName.tuned.newBlocks < byName.tuned.blocks / 2, 'a fine-tune in the batch shares its base blocks');
    // Four small models (~50 KB together, under 1/8 of a 1 MiB page) share one page.
    assert.is(store.catalog.pages.size, 1);
    const check = async (s: typeof store) => {
      for (const [n, b] of Object.entries(files)) assert.equal(await s.exportModel(n), b, n);
      assert.equal((await s.verify()).ok, true);
    };
    await check(store);
    await store.close();
    const reopened = await openStore(path);
    await check(reopened);
    await reopened.checkpoint();
    await reopened.close();
    const fromSnapshot = await openStore(path);
    await check(fromSnapshot);
    assert.equal(fromSnapshot.listModels().sort(), Object.keys(files).sort());
    await fromSnapshot.close();
  });
});

test('a bad file stops the batch with nothing committed; with keepGoing it is reported and the others are committed', async () => {
  await withDir(async (dir) => {
    const good = [0, 1, 2].map((k) => mlp({ inputDim: 32, hidden: 16, outputDim: 4, seed: 10 + k }));
    for (const [k, b] of good.entries()) await writeFile(join(dir, `g${k}.onnx`), b);
    await writeFile(join(dir, 'bad.onnx'), good[0].subarray(0, good[0].length - 7));
    const list = [join(dir, 'g0.onnx'), join(dir, 'bad.onnx'), join(dir, 'g1.onnx')];
    const path = join(dir, 'store');
    const store = await openStore(path, { create: true, tile: { rows: 16, cols: 16 } });
    await addModelFiles(store, [join(dir, 'g2.onnx')]);
    const pagesBefore = [...store.catalog.pages.keys()];
    let code = '';
    try {
      await addModelFiles(store, list);
    } catch (e) {
      code = (e as { code?: string }).code ?? String(e);
    }
    assert.is(code, 'ONNX_MALFORMED');
    assert.equal(store.listModels(), ['g2'], 'nothing of the failed batch is committed');
    assert.equal([...store.catalog.pages.keys()], pagesBefore);
    const r = await addModelFiles(store, list, { keepGoing: true });
    assert.equal(r.added.map((a) => a.name), ['g0', 'g1']);
    assert.equal(r.failed.map((f) => [f.file, f.error.code]), [[list[1], 'ONNX_MALFORMED']]);
    await store.close();
    const reopened = await openStore(path);
    assert.equal(reopened.listModels().sort(), ['g0', 'g1', 'g2']);
    for (const k of [0, 1, 2]) assert.equal(await reopened.exportModel(`g${k}`), good[k]);
    const v = await reopened.verify();
    assert.equal([v.ok, v.leakedPages], [true, []]);
    await reopened.close();
  });
});

test.run();
