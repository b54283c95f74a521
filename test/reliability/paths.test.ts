import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { addModelFile, externalDataReader, openStore } from '../../src/node/open.ts';
import { folderSource } from '../../src/node/publish.ts';
import { validateModelName } from '../../src/store/store.ts';
import { mlp, withExternalData } from '../../tools/fixtures/onnx-builders.ts';
import { codeOf, tempDir } from '../helpers.ts';
import { PAGE_SIZE, TILE } from '../../tools/reliability/models.ts';

const ESCAPING = ['', '.', '..', '../x', 'a/b', 'a\\b', '/abs', '\\abs', 'C:\\x', 'C:x', '.hidden', 'a..b', '..a', 'x\0y', 'a/../../b', 'a'.repeat(129), ' a', 'a\n'];

test('model names that are paths are refused with INVALID_NAME and change nothing', async () => {
  const dir = await tempDir();
  try {
    const store = await openStore(join(dir.path, 's'), { create: true, tile: TILE, pageSize: PAGE_SIZE });
    const model = mlp({ inputDim: 8, hidden: 4, outputDim: 2, seed: 1 });
    for (const name of ESCAPING) assert.is(await codeOf(store.add(name, model)), 'INVALID_NAME', JSON.stringify(name));
    assert.equal(store.listModels(), []);
    assert.equal(await store.backend.listPages(), []);
    await store.add('ok.name_1+v-2', model);
    await store.close();
  } finally {
    await dir.cleanup();
  }
});

test('property: every accepted model name is one plain path segment inside any folder', () => {
  const root = resolve('/tmp/tessera-root');
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[A-Za-z0-9./\\:_+-]{0,20}$/), fc.constantFrom(...ESCAPING)), (name) => {
      try {
        validateModelName(name);
      } catch (e) {
        return (e as { code?: string }).code === 'INVALID_NAME';
      }
      const target = resolve(root, name);
      return !/[\\/]/.test(name) && !name.includes('..') && target.startsWith(root + sep) && target.slice(root.length + 1) === name;
    }),
    { numRuns: 3000, seed: 42 },
  );
});

test('external data outside the model folder is refused before any read', async () => {
  const dir = await tempDir();
  try {
    const models = join(dir.path, 'models');
    await mkdir(join(models, 'sub'), { recursive: true });
    const store = await openStore(join(dir.path, 's'), { create: true, tile: TILE, pageSize: PAGE_SIZE });
    const base = mlp({ inputDim: 16, hidden: 8, outputDim: 2, seed: 2 });
    for (const location of ['../secret.bin', 'sub/../../secret.bin', join(dir.path, 'secret.bin'), '/etc/hostname', '..\\secret.bin', 'file:///etc/hostname']) {
      const { model, files } = withExternalData(base, { location });
      await writeFile(join(dir.path, 'secret.bin'), files.values().next().value!); // the bytes exist: only the check stops the read
      const file = join(models, 'm.onnx');
      await writeFile(file, model);
      assert.is(await codeOf(addModelFile(store, file)), 'ONNX_EXTERNAL_DATA', location);
    }
    const read = externalDataReader(join(models, 'm.onnx'));
    for (const loc of ['..', '../secret.bin', 'sub/../../secret.bin', '/etc/hostname']) assert.is(await codeOf(read(loc)), 'ONNX_EXTERNAL_DATA', loc);
    await writeFile(join(models, 'sub', 'in.bin'), new Uint8Array([1, 2]));
    assert.equal(await read('sub/in.bin'), new Uint8Array([1, 2]));
    assert.equal(store.listModels(), []);
    await store.close();
  } finally {
    await dir.cleanup();
  }
});

test('a published-store folder source never reads outside its folder', async () => {
  const dir = await tempDir();
  try {
    await writeFile(join(dir.path, 'secret'), 'x');
    const src = folderSource(join(dir.path, 'pub'));
    assert.is(await codeOf(src.get('../secret')), 'IO_ERROR');
    assert.is(await codeOf(src.get('pages/../../secret')), 'IO_ERROR');
    assert.is(await codeOf(src.get(join(dir.path, 'secret'))), 'IO_ERROR'); // joined under the folder: missing there
    assert.is(src.bytesRead, 0);
  } finally {
    await dir.cleanup();
  }
});

test.run();
