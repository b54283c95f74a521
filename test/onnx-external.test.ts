/** ONNX external data: reading it (present, missing, truncated, path escape) and writing it. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, TensorProto_DataLocation } from 'onnx-buf';
import { assembleModelExternal, parseModel, EXTERNAL_DATA_ALIGNMENT } from '../src/onnx/model.ts';
import { TesseraError } from '../src/errors.ts';
import * as B from '../tools/fixtures/onnx-builders.ts';

async function rejects(p: Promise<unknown>, code: string, ...mentions: string[]): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, TesseraError, String(e));
    const te = e as TesseraError;
    assert.is(te.code, code, te.message);
    for (const m of mentions) assert.ok(te.message.includes(m), `message "${te.message}" should mention "${m}"`);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

const reader = (files: Map<string, Uint8Array>, calls: string[] = []) => async (loc: string) => {
  calls.push(loc);
  const f = files.get(loc);
  if (!f) throw new Error(`ENOENT: no such file "${loc}"`);
  return f;
};

const MLP = B.mlp({ inputDim: 6, hidden: 5, outputDim: 3, seed: 21 });

function sameTensors(a: Awaited<ReturnType<typeof parseModel>>, b: Awaited<ReturnType<typeof parseModel>>) {
  assert.equal(a.skeleton, b.skeleton);
  assert.equal(
    a.tensors.map((t) => [t.name, t.dtype, t.dims, t.location, Array.from(t.data)]),
    b.tensors.map((t) => [t.name, t.dtype, t.dims, t.location, Array.from(t.data)]),
  );
}

test('external data in one file (odd offsets) or one file per tensor reads like inline data', async () => {
  const inline = await parseModel(MLP);
  for (const opts of [{ files: 'one' as const, align: 1 }, { files: 'one' as const, align: 3 }, { files: 'each' as const }]) {
    const ext = B.withExternalData(MLP, opts);
    const calls: string[] = [];
    const p = await parseModel(ext.model, { readExternal: reader(ext.files, calls) });
    sameTensors(p, inline);
    assert.equal(calls.sort(), [...ext.files.keys()].sort(), 'each file is read exactly once');
  }
});

test('external data in subgraphs, and with no length entry (rest of the file)', async () => {
  const model = B.ifModel(5);
  const inline = await parseModel(model);
  const ext = B.withExternalData(model, { files: 'each' });
  sameTensors(await parseModel(ext.model, { readExternal: reader(ext.files) }), inline);
  const m = fromBinary(ModelProtoSchema, ext.model);
  m.graph!.initializer[0].externalData = m.graph!.initializer[0].externalData.filter((e) => e.key === 'location');
  sameTensors(await parseModel(toBinary(ModelProtoSchema, m), { readExternal: reader(ext.files) }), inline);
});

test('no reader, missing file, truncated file: ONNX_EXTERNAL_DATA naming tensor and file', async () => {
  const ext = B.withExternalData(MLP, { location: 'w.data' });
  await rejects(parseModel(ext.model), 'ONNX_EXTERNAL_DATA', '"W1"', '"w.data"', 'no external data reader');
  await rejects(parseModel(ext.model, { readExternal: reader(new Map()) }), 'ONNX_EXTERNAL_DATA', '"W1"', '"w.data"', 'ENOENT');
  const file = ext.files.get('w.data')!;
  await rejects(
    parseModel(ext.model, { readExternal: reader(new Map([['w.data', file.subarray(0, file.length - 1)]])) }),
    'ONNX_EXTERNAL_DATA',
    '"b2"',
    '"w.data"',
    'shorter',
  );
  await rejects(parseModel(ext.model, { readExternal: async () => 'not bytes' as unknown as Uint8Array }), 'ONNX_EXTERNAL_DATA', 'Uint8Array');
});

test('locations that are absolute or leave the folder are refused', async () => {
  for (const bad of ['../w.data', '/etc/passwd', 'sub/../../w.data', '..\\w.data', 'C:\\w.data', '\\\\server\\share', 'file:///etc/passwd']) {
    const ext = B.withExternalData(MLP, { location: bad });
    const calls: string[] = [];
    await rejects(parseModel(ext.model, { readExternal: reader(ext.files, calls) }), 'ONNX_EXTERNAL_DATA', '"W1"', 'refused');
    assert.equal(calls, [], `reader must not be called for ${bad}`);
  }
  // a subfolder is fine
  const ok = B.withExternalData(MLP, { location: 'weights/w..data' });
  await parseModel(ok.model, { readExternal: reader(ok.files) });
});

test('bad external_data entries: no location, bad offset, length not matching dims', async () => {
  const ext = B.withExternalData(MLP, { location: 'w.data' });
  const edit = (fn: (entries: { key: string; value: string }[]) => void) => {
    const m = fromBinary(ModelProtoSchema, ext.model);
    fn(m.graph!.initializer[0].externalData);
    return toBinary(ModelProtoSchema, m);
  };
  await rejects(parseModel(edit((e) => e.splice(0, 1)), { readExternal: reader(ext.files) }), 'ONNX_EXTERNAL_DATA', '"W1"', 'location');
  await rejects(parseModel(edit((e) => (e[1].value = '-4')), { readExternal: reader(ext.files) }), 'ONNX_EXTERNAL_DATA', 'offset');
  await rejects(parseModel(edit((e) => (e[2].value = '4')), { readExternal: reader(ext.files) }), 'ONNX_MALFORMED', '"W1"', 'expected 120');
});

test('a reader error for a shared file fails once, without unhandled rejections', async () => {
  const ext = B.withExternalData(MLP, { location: 'w.data' });
  let calls = 0;
  await rejects(
    parseModel(ext.model, {
      readExternal: async () => {
        calls++;
        throw new Error('disk on fire');
      },
    }),
    'ONNX_EXTERNAL_DATA',
    'disk on fire',
  );
  assert.is(calls, 1);
});

test('assembleModelExternal: one aligned buffer for the main graph, subgraph tensors inline', async () => {
  const p = await parseModel(B.ifModel(8));
  const out = assembleModelExternal(p.skeleton, p.tensors.map((t) => t.data), 'blob.bin', { minBytes: 1 });
  assert.is(out.location, 'blob.bin');
  const m = fromBinary(ModelProtoSchema, out.model);
  const b = m.graph!.initializer[0];
  assert.is(b.dataLocation, TensorProto_DataLocation.EXTERNAL);
  assert.equal(b.externalData.map((e) => [e.key, e.value]), [['location', 'blob.bin'], ['offset', '0'], ['length', '12']]);
  assert.is(out.externalData.length, EXTERNAL_DATA_ALIGNMENT);
  const thenA = m.graph!.node[0].attribute[0].g!.initializer[0];
  assert.is(thenA.dataLocation, TensorProto_DataLocation.DEFAULT);
  assert.is(thenA.rawData.length, 24);

  const q = await parseModel(B.mlp({ inputDim: 5, hidden: 3, outputDim: 2, seed: 1 }));
  const o2 = assembleModelExternal(q.skeleton, q.tensors.map((t) => t.data), undefined, { minBytes: 1 });
  const offsets = fromBinary(ModelProtoSchema, o2.model).graph!.initializer.map((t) => Number(t.externalData.find((e) => e.key === 'offset')!.value));
  assert.equal(offsets, [0, 64, 128, 192]);
  offsets.forEach((o, i) => assert.equal(o2.externalData.subarray(o, o + q.tensors[i].data.length), q.tensors[i].data));
});

test('assembleModelExternal leaves empty and small tensors inline', async () => {
  const m = fromBinary(ModelProtoSchema, B.mlp({ inputDim: 16, hidden: 32, outputDim: 4, seed: 2 }));
  m.graph!.initializer.push(B.floatTensor('nothing', [0, 3], []));
  const p = await parseModel(toBinary(ModelProtoSchema, m));
  const where = (out: { model: Uint8Array }) =>
    fromBinary(ModelProtoSchema, out.model).graph!.initializer.map((t) => `${t.name}:${t.dataLocation === TensorProto_DataLocation.EXTERNAL ? 'ext' : t.rawData.length}`);
  const data = p.tensors.map((t) => t.data);
  // W1 2048 B, b1 128 B, W2 512 B, b2 16 B, nothing 0 B; default threshold 1024 B
  assert.equal(where(assembleModelExternal(p.skeleton, data)), ['W1:ext', 'b1:128', 'W2:512', 'b2:16', 'nothing:0']);
  assert.equal(where(assembleModelExternal(p.skeleton, data, 'w', { minBytes: 100 })), ['W1:ext', 'b1:ext', 'W2:ext', 'b2:16', 'nothing:0']);
  assert.equal(where(assembleModelExternal(p.skeleton, data, 'w', { minBytes: 0 })), ['W1:ext', 'b1:ext', 'W2:ext', 'b2:ext', 'nothing:0']);
  assert.is(assembleModelExternal(p.skeleton, data).externalData.length, 2048);
});

test.run();
