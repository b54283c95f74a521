/** Multi-file `tessera add`: names settled before any write; a batch is all or nothing, or --keep-going. */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultModelName } from '../src/cli/verbs/add.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { tempDir } from './helpers.ts';
import { cli } from './cli-helpers.ts';

const model = (seed: number) => mlp({ inputDim: 8, hidden: 8, outputDim: 2, seed });

test('model.onnx takes its folder name; other files their base name', () => {
  assert.is(defaultModelName('zoo/resnet/model.onnx'), 'resnet');
  assert.is(defaultModelName('zoo/resnet/Model.ONNX'), 'resnet');
  assert.is(defaultModelName('a/b/alpha.onnx'), 'alpha');
});

test('a/model.onnx and b/model.onnx are stored as a and b', async () => {
  const dir = await tempDir();
  try {
    for (const [i, f] of ['a', 'b'].entries()) {
      await mkdir(join(dir.path, f));
      await writeFile(join(dir.path, f, 'model.onnx'), model(i + 1));
    }
    const store = join(dir.path, 's');
    const r = await cli(['add', store, join(dir.path, 'a', 'model.onnx'), join(dir.path, 'b', 'model.onnx')]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /added 2 of 2 models/);
    assert.equal(JSON.parse((await cli(['ls', store, '--json'])).stdout).map((m: any) => m.name), ['a', 'b']);
  } finally {
    await dir.cleanup();
  }
});

test('two files with one name stop the batch before the store exists, naming both and --name', async () => {
  const dir = await tempDir();
  try {
    for (const f of ['x', 'y']) await mkdir(join(dir.path, f));
    await writeFile(join(dir.path, 'x', 'alpha.onnx'), model(1));
    await writeFile(join(dir.path, 'y', 'alpha.onnx'), model(2));
    const store = join(dir.path, 's');
    const r = await cli(['add', store, join(dir.path, 'x', 'alpha.onnx'), join(dir.path, 'y', 'alpha.onnx')]);
    assert.is(r.code, 1);
    assert.match(r.stderr, /x\/alpha\.onnx and .*y\/alpha\.onnx would all be stored as "alpha"/);
    assert.match(r.stderr, /--name/);
    assert.equal((await readdir(dir.path)).sort(), ['x', 'y']);
    // A name the store holds already also stops the batch before anything is written.
    await writeFile(join(dir.path, 'beta.onnx'), model(3));
    assert.is((await cli(['add', store, join(dir.path, 'x', 'alpha.onnx')])).code, 0);
    const again = await cli(['add', store, join(dir.path, 'beta.onnx'), join(dir.path, 'y', 'alpha.onnx')]);
    assert.is(again.code, 1);
    assert.match(again.stderr, /alpha/);
    assert.equal(JSON.parse((await cli(['ls', store, '--json'])).stdout).map((m: any) => m.name), ['alpha']);
  } finally {
    await dir.cleanup();
  }
});

test('a bad file fails the whole batch (nothing committed); --keep-going commits the good ones', async () => {
  const dir = await tempDir();
  try {
    const store = join(dir.path, 's');
    await writeFile(join(dir.path, 'first.onnx'), model(9));
    assert.is((await cli(['add', store, join(dir.path, 'first.onnx')])).code, 0);
    const statsBefore = JSON.parse((await cli(['stats', store, '--json'])).stdout);
    await writeFile(join(dir.path, 'good1.onnx'), model(1));
    await writeFile(join(dir.path, 'bad.onnx'), 'not protobuf');
    await writeFile(join(dir.path, 'good2.onnx'), model(2));
    const files = ['good1', 'bad', 'good2'].map((n) => join(dir.path, `${n}.onnx`));
    const all = await cli(['add', store, ...files]);
    assert.is(all.code, 1);
    assert.is(all.stderr.trim().split('\n').length, 1, all.stderr);
    assert.match(all.stderr, /bad\.onnx: .*not a valid ONNX model.*Nothing was added \(--keep-going adds the files that can be added\)/);
    const statsAfter = JSON.parse((await cli(['stats', store, '--json'])).stdout);
    assert.equal(statsAfter.perModel.map((m: any) => m.name), ['first']);
    assert.is(statsAfter.storedBytes, statsBefore.storedBytes);
    assert.is((await cli(['verify', store])).code, 0);
    // The batch is one commit: nothing of it reached the catalog, so no page slot is left over.
    assert.is(statsAfter.pages, statsBefore.pages);

    const keep = await cli(['add', store, ...files, '--keep-going']);
    assert.is(keep.code, 1, 'a failed file still fails the command');
    assert.match(keep.stdout, /added good1/);
    assert.match(keep.stdout, /added good2/);
    assert.match(keep.stdout, /added 2 of 3 models; 1 failed:/);
    assert.match(keep.stdout, /bad\.onnx +.*ONNX_MALFORMED/);
    assert.equal(JSON.parse((await cli(['ls', store, '--json'])).stdout).map((m: any) => m.name), ['first', 'good1', 'good2']);
  } finally {
    await dir.cleanup();
  }
});

test('- reads a model from stdin and needs --name', async () => {
  const dir = await tempDir();
  try {
    const store = join(dir.path, 's');
    const noName = await cli(['add', store, '-'], model(4));
    assert.is(noName.code, 1);
    assert.match(noName.stderr, /needs a name: pass --name/);
    const r = await cli(['add', store, '-', '--name', 'piped'], model(4));
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /added piped/);
  } finally {
    await dir.cleanup();
  }
});

test.run();
