/**
 * Byte-identical export on built models: tensors in typed fields (float_data, int64_data,
 * int32_data, double_data, uint64_data), with no data field, and in raw_data come back in the
 * field they arrived in, through a file store's persisted catalog; catalogs written before the
 * per-tensor encoding existed still load (and export as raw_data).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { decode, encode } from '@msgpack/msgpack';
import { openStore } from '../src/node/open.ts';
import { decodeRecord, encodeRecord } from '../src/catalog/catalog.ts';
import { parseModel } from '../src/onnx/model.ts';
import * as B from '../tools/fixtures/onnx-builders.ts';
import { tempDir } from './helpers.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** An empty initializer with no data field at all (what onnx's make_tensor writes for no values). */
function emptyNoFieldModel(): Uint8Array {
  const empty = B.tensorProto('none', 'float32', [0, 3], new Uint8Array(0));
  delete (empty as { rawData?: unknown }).rawData; // unset: no raw_data field on the wire
  return B.encode(B.modelProto(B.graph({ name: 'empty', nodes: [B.node('Identity', ['none'], ['Y'])], inputs: [], outputs: [B.valueInfo('Y', B.FLOAT, [0, 3])], initializers: [empty] })));
}

test('typed fields, empty tensors and raw_data export byte-identical, also after reopening a file store', async () => {
  const models: Record<string, Uint8Array> = {
    typed: B.typedFieldsModel(3),
    'all-typed': B.allDtypesModel(5, 'typed'),
    'all-raw': B.allDtypesModel(5, 'raw'),
    'empty-no-field': emptyNoFieldModel(),
    constants: B.constantModel(2),
    branches: B.ifModel(4),
  };
  const encodings = (await parseModel(models['all-typed'])).tensors.map((t) => t.encoding ?? 'raw');
  assert.ok(encodings.includes('int64') && encodings.includes('float') && encodings.includes('int32') && encodings.includes('double') && encodings.includes('uint64'), encodings.join(','));
  assert.equal((await parseModel(models['empty-no-field'])).tensors.map((t) => t.encoding), ['none']);
  const dir = await tempDir();
  try {
    let store = await openStore(dir.path, { create: true });
    for (const [name, bytes] of Object.entries(models)) {
      await store.add(name, bytes);
      assert.is(sha256(await store.exportModel(name)), sha256(bytes), name);
    }
    await store.close();
    store = await openStore(dir.path);
    for (const [name, bytes] of Object.entries(models)) assert.is(sha256(await store.exportModel(name)), sha256(bytes), `${name} after reopen`);
    await store.close();
  } finally {
    await dir.cleanup();
  }
});

test('a catalog record without per-tensor encodings (older tessera) still loads; an unknown encoding is refused', async () => {
  const p = await parseModel(B.typedFieldsModel(3));
  const model = {
    name: 'm', addedAt: 'x', skeleton: p.skeleton, inputs: p.inputs, outputs: p.outputs, sourceBytes: 1,
    tensors: p.tensors.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.dims, location: t.location, blocks: new Uint32Array(0), ...(t.encoding ? { encoding: t.encoding } : {}) })),
  };
  const bytes = encodeRecord({ t: 'add', seq: 1, model, blocks: [], pages: [] });
  const back = decodeRecord(bytes);
  assert.equal(back.t === 'add' && back.model.tensors.map((t) => t.encoding), ['float', 'int32', 'int64', 'double', 'int32']);
  const wire = decode(bytes) as { model: { tensors: unknown[][] } };
  const old = structuredClone(wire);
  for (const t of old.model.tensors) t.length = 5;
  const loaded = decodeRecord(encode(old));
  assert.equal(loaded.t === 'add' && loaded.model.tensors.map((t) => t.encoding), [undefined, undefined, undefined, undefined, undefined]);
  const bad = structuredClone(wire);
  bad.model.tensors[0][5] = 'float_data_v9';
  assert.throws(() => decodeRecord(encode(bad)), (e: Error & { code?: string }) => e.code === 'CATALOG_CORRUPT' && /unknown encoding/.test(e.message));
});

test.run();
