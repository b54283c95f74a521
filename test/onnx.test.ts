/** ONNX parse / assemble: round trips, traversal, typed fields, validation. No inference here. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { create, equals, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  ModelProtoSchema,
  SparseTensorProtoSchema,
  TensorProtoSchema,
  TensorProto_DataType,
  type ModelProto,
  type TensorProto,
} from 'onnx-buf';
import { assembleModel, assembleModelExternal, parseModel, skeletonInfo, type ParsedModel } from '../src/onnx/model.ts';
import { DTYPES, dtypeFromOnnx, dtypeToOnnx, type DType } from '../src/onnx/dtypes.ts';
import { TesseraError } from '../src/errors.ts';
import * as B from '../tools/fixtures/onnx-builders.ts';

const ALL_DTYPES = Object.keys(DTYPES) as DType[];

async function rejects(p: Promise<unknown> | (() => unknown), code: string, ...mentions: string[]): Promise<TesseraError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected an error with code ${code}, got success`);
  assert.instance(err, TesseraError, `expected a TesseraError, got ${err}`);
  const te = err as TesseraError;
  assert.is(te.code, code, te.message);
  for (const m of mentions) assert.ok(te.message.includes(m), `message "${te.message}" should mention "${m}"`);
  return te;
}

/** Parses, assembles, re-parses: tensors and skeleton must come back bit-identical. */
async function roundTrip(bytes: Uint8Array): Promise<ParsedModel> {
  const p = await parseModel(bytes);
  const again = await parseModel(assembleModel(p.skeleton, p.tensors.map((t) => t.data)));
  assert.equal(again.skeleton, p.skeleton, 'skeleton changed over a round trip');
  assert.is(again.tensors.length, p.tensors.length);
  p.tensors.forEach((t, i) => {
    const u = again.tensors[i];
    assert.equal([u.name, u.dtype, u.dims, u.location], [t.name, t.dtype, t.dims, t.location]);
    assert.ok(bytesEqual(u.data, t.data), `tensor ${t.name} data changed`);
  });
  // assembleModelExternal must describe the same tensors
  const ext = assembleModelExternal(p.skeleton, p.tensors.map((t) => t.data));
  const files = new Map([[ext.location, ext.externalData]]);
  const viaExt = await parseModel(ext.model, { readExternal: async (loc) => files.get(loc)! });
  assert.equal(viaExt.skeleton, p.skeleton, 'external variant has another skeleton');
  p.tensors.forEach((t, i) => assert.ok(bytesEqual(viaExt.tensors[i].data, t.data), `external: tensor ${t.name} changed`));
  return p;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Every tensor with data (initializers and attribute tensors), by walking the proto independently. */
function rawTensors(m: ModelProto): Map<string, TensorProto> {
  const out = new Map<string, TensorProto>();
  const visit = (g: NonNullable<ModelProto['graph']>) => {
    for (const t of g.initializer) out.set(t.name, t);
    for (const n of g.node) for (const a of n.attribute) {
      if (a.t) out.set(a.t.name || n.output[0], a.t);
      if (a.g) visit(a.g);
      a.graphs.forEach(visit);
    }
  };
  visit(m.graph!);
  return out;
}

// ---------------------------------------------------------------------------------------------

test('dtypes: table, both directions, unsupported codes', async () => {
  for (const d of ALL_DTYPES) {
    assert.is(dtypeFromOnnx(dtypeToOnnx(d)), d);
  }
  assert.is(DTYPES.float16.bytes, 2);
  assert.is(DTYPES.bool.bytes, 1);
  assert.is(DTYPES.int64.float, false);
  assert.is(DTYPES.bfloat16.float, true);
  const T = TensorProto_DataType;
  for (const [code, name] of [
    [T.FLOAT8E4M3FN, 'FLOAT8E4M3FN'],
    [T.FLOAT8E5M2, 'FLOAT8E5M2'],
    [T.INT4, 'INT4'],
    [T.UINT4, 'UINT4'],
    [T.COMPLEX64, 'COMPLEX64'],
    [T.STRING, 'STRING'],
    [T.UNDEFINED, 'UNDEFINED'],
    [99, 'code 99'],
  ] as const) {
    await rejects(() => dtypeFromOnnx(code, 'w0'), 'ONNX_UNSUPPORTED_DTYPE', 'w0', name);
  }
});

test('mlp: extracts all initializers with metadata; round trip is bit-exact', async () => {
  const bytes = B.mlp({ inputDim: 7, hidden: 5, outputDim: 3, seed: 1 });
  const p = await roundTrip(bytes);
  assert.equal(
    p.tensors.map((t) => [t.name, t.dtype, t.dims, t.location]),
    [
      ['W1', 'float32', [7, 5], 'graph'],
      ['b1', 'float32', [5], 'graph'],
      ['W2', 'float32', [5, 3], 'graph'],
      ['b2', 'float32', [3], 'graph'],
    ],
  );
  const orig = rawTensors(fromBinary(ModelProtoSchema, bytes));
  for (const t of p.tensors) assert.ok(bytesEqual(t.data, orig.get(t.name)!.rawData));
  assert.equal(p.inputs, [{ name: 'X', dtype: 'float32', shape: ['N', 7] }]);
  assert.equal(p.outputs, [{ name: 'Y', dtype: 'float32', shape: ['N', 3] }]);
  assert.equal(p.opsets, [{ domain: '', version: 17 }]);
  assert.is(p.irVersion, 8);
  // the skeleton is small: no weight bytes left in it
  assert.ok(p.skeleton.length < bytes.length - (7 * 5 + 5 + 5 * 3 + 3) * 4 + 64, `skeleton ${p.skeleton.length} of ${bytes.length}`);
});

test('skeleton keeps everything but the data (names, docs, metadata, opsets)', async () => {
  const m = fromBinary(ModelProtoSchema, B.ifModel(3));
  m.docString = 'doc';
  m.metadataProps.push(create((await import('onnx-buf')).StringStringEntryProtoSchema, { key: 'author', value: 'me' }));
  m.graph!.initializer[0].docString = 'bias doc';
  const p = await parseModel(toBinary(ModelProtoSchema, m));
  const expected = fromBinary(ModelProtoSchema, toBinary(ModelProtoSchema, m));
  for (const t of rawTensors(expected).values()) t.rawData = new Uint8Array(0);
  const got = fromBinary(ModelProtoSchema, p.skeleton);
  for (const t of rawTensors(got).values()) t.rawData = new Uint8Array(0);
  assert.ok(equals(ModelProtoSchema, got, expected), 'skeleton differs from the model beyond tensor data');
  assert.is(got.docString, 'doc');
  assert.is(got.graph!.initializer[0].docString, 'bias doc');
});

test('unknown protobuf fields survive parse and assemble', async () => {
  const m = fromBinary(ModelProtoSchema, B.mlp({ inputDim: 3, hidden: 2, outputDim: 1, seed: 2 }));
  m.$unknown = [{ no: 999, wireType: 0, data: Uint8Array.of(42) }];
  m.graph!.initializer[0].$unknown = [{ no: 777, wireType: 2, data: Uint8Array.of(3, 1, 2, 3) }];
  const p = await roundTrip(toBinary(ModelProtoSchema, m));
  const back = fromBinary(ModelProtoSchema, assembleModel(p.skeleton, p.tensors.map((t) => t.data)));
  assert.equal(back.$unknown?.map((u) => u.no), [999]);
  assert.equal(back.graph!.initializer[0].$unknown?.map((u) => u.no), [777]);
});

test('If with nested If: subgraph initializers at every depth, deterministic order and locations', async () => {
  const p = await roundTrip(B.ifModel(4));
  assert.equal(
    p.tensors.map((t) => `${t.name}@${t.location}`),
    [
      'B@graph',
      'A@graph/If_0.then_branch',
      'D@graph/If_0.then_branch/If_inner.then_branch',
      'E@graph/If_0.then_branch/If_inner.else_branch',
      'C@graph/If_0.else_branch',
    ],
  );
  const p2 = await parseModel(B.ifModel(4));
  assert.equal(p2.skeleton, p.skeleton);
  const info = skeletonInfo(p.skeleton);
  assert.equal(info.tensors, p.tensors.map(({ name, dtype, dims, location }) => ({ name, dtype, dims, location })));
  assert.equal(info.inputs, p.inputs);
  assert.equal(info.outputs, p.outputs);
  assert.equal(p.inputs, [
    { name: 'X', dtype: 'float32', shape: [2, 3] },
    { name: 'cond', dtype: 'bool', shape: [] },
  ]);
});

test('Loop body initializer, scalar int64 and bool initializers', async () => {
  const p = await roundTrip(B.loopModel(5));
  assert.equal(
    p.tensors.map((t) => [t.name, t.dtype, t.dims, t.location]),
    [
      ['M', 'int64', [], 'graph'],
      ['keep_going', 'bool', [], 'graph'],
      ['K', 'float32', [4], 'graph/Loop_0.body'],
    ],
  );
  assert.equal(Array.from(new BigInt64Array(p.tensors[0].data.slice().buffer)), [3n]);
});

test('Constant node tensors (main graph and inside functions) are extracted', async () => {
  const p = await roundTrip(B.constantModel(6));
  assert.equal(p.tensors.map((t) => `${t.name}@${t.location}`), ['scale@graph', 'offset@graph']);
  const f = await roundTrip(B.functionModel(7));
  assert.equal(f.tensors.map((t) => `${t.name}@${t.location}`), ['S@graph', 'c@functions/tessera.test.AddConst']);
  assert.equal(f.opsets, [
    { domain: '', version: 17 },
    { domain: 'tessera.test', version: 1 },
  ]);
});

test('training graphs and Constant tensors inside subgraphs are extracted too', async () => {
  const { TrainingInfoProtoSchema } = await import('onnx-buf');
  const m = fromBinary(ModelProtoSchema, B.loopModel(2));
  const body = m.graph!.node[0].attribute[0].g!;
  body.node.push(B.node('Constant', [], ['unused_c'], { value: B.int64Tensor('', [2], [5, 6]) }, 'BodyConst'));
  m.trainingInfo.push(
    create(TrainingInfoProtoSchema, {
      initialization: B.graph({ nodes: [], inputs: [], outputs: [], initializers: [B.floatTensor('init_w', [2], [1, 2])] }),
    }),
  );
  const p = await roundTrip(toBinary(ModelProtoSchema, m));
  assert.equal(p.tensors.map((t) => `${t.name}@${t.location}`), [
    'M@graph',
    'keep_going@graph',
    'K@graph/Loop_0.body',
    'unused_c@graph/Loop_0.body',
    'init_w@training[0].initialization',
  ]);
});

test('every dtype round-trips bit-exactly, from raw_data and from typed fields alike', async () => {
  const raw = await roundTrip(B.allDtypesModel(11, 'raw'));
  const typed = await roundTrip(B.allDtypesModel(11, 'typed'));
  assert.is(raw.tensors.length, ALL_DTYPES.length * 2 + 1);
  assert.equal(typed.skeleton, raw.skeleton, 'typed-field and raw models must give the same skeleton');
  raw.tensors.forEach((t, i) => {
    const u = typed.tensors[i];
    assert.equal([u.name, u.dtype, u.dims], [t.name, t.dtype, t.dims]);
    assert.is(t.data.length, t.dims.reduce((a, b) => a * b, 1) * DTYPES[t.dtype].bytes);
    assert.ok(bytesEqual(u.data, t.data), `${t.name}: typed-field bytes differ from raw bytes`);
  });
  const orig = rawTensors(fromBinary(ModelProtoSchema, B.allDtypesModel(11, 'raw')));
  for (const t of raw.tensors) assert.ok(bytesEqual(t.data, orig.get(t.name)!.rawData), t.name);
  assert.equal(raw.tensors.at(-1)!.dims, [0, 5]);
  assert.is(raw.tensors.at(-1)!.data.length, 0);
});

test('typed fields: float16 bit patterns in int32_data, negative ints, uint32 in uint64_data', async () => {
  const m = B.modelProto(
    B.graph({
      nodes: [],
      inputs: [],
      outputs: [],
      initializers: [
        create(TensorProtoSchema, { name: 'h', dataType: TensorProto_DataType.FLOAT16, dims: [2n], int32Data: [0x3c00, 0xc000] }),
        create(TensorProtoSchema, { name: 'i8', dataType: TensorProto_DataType.INT8, dims: [3n], int32Data: [-128, -1, 127] }),
        create(TensorProtoSchema, { name: 'u32', dataType: TensorProto_DataType.UINT32, dims: [2n], uint64Data: [4294967295n, 1n] }),
        create(TensorProtoSchema, { name: 'i64', dataType: TensorProto_DataType.INT64, dims: [2n], int64Data: [-(2n ** 63n), 2n ** 63n - 1n] }),
        create(TensorProtoSchema, { name: 'b', dataType: TensorProto_DataType.BOOL, dims: [3n], int32Data: [1, 0, 1] }),
        create(TensorProtoSchema, { name: 'd', dataType: TensorProto_DataType.DOUBLE, dims: [1n], doubleData: [Math.PI] }),
      ],
    }),
  );
  const p = await roundTrip(B.encode(m));
  const [h, i8, u32, i64, b, d] = p.tensors.map((t) => t.data);
  assert.equal(Array.from(h), [0x00, 0x3c, 0x00, 0xc0]);
  assert.equal(Array.from(i8), [0x80, 0xff, 0x7f]);
  assert.equal(Array.from(u32), [255, 255, 255, 255, 1, 0, 0, 0]);
  assert.equal(Array.from(new BigInt64Array(i64.slice().buffer)), [-(2n ** 63n), 2n ** 63n - 1n]);
  assert.equal(Array.from(b), [1, 0, 1]);
  assert.equal(Array.from(new Float64Array(d.slice().buffer)), [Math.PI]);
});

test('STRING tensors and sparse initializers stay in the skeleton untouched', async () => {
  const m = fromBinary(ModelProtoSchema, B.mlp({ inputDim: 2, hidden: 2, outputDim: 2, seed: 3 }));
  const enc = new TextEncoder();
  m.graph!.initializer.push(create(TensorProtoSchema, { name: 'labels', dataType: TensorProto_DataType.STRING, dims: [2n], stringData: [enc.encode('cat'), enc.encode('dog')] }));
  m.graph!.sparseInitializer.push(
    create(SparseTensorProtoSchema, {
      dims: [4n],
      values: B.floatTensor('sp', [1], [2.5]),
      indices: B.int64Tensor('sp_idx', [1], [2]),
    }),
  );
  const p = await roundTrip(toBinary(ModelProtoSchema, m));
  assert.equal(p.tensors.map((t) => t.name), ['W1', 'b1', 'W2', 'b2']);
  const sk = fromBinary(ModelProtoSchema, p.skeleton);
  assert.equal(sk.graph!.initializer[4].stringData.map((s) => new TextDecoder().decode(s)), ['cat', 'dog']);
  assert.equal(Array.from(new Float32Array(sk.graph!.sparseInitializer[0].values!.rawData.slice().buffer)), [2.5]);
});

test('inputs exclude initializers that older models also list as graph inputs', async () => {
  const m = fromBinary(ModelProtoSchema, B.mlp({ inputDim: 2, hidden: 2, outputDim: 2, seed: 3 }));
  m.graph!.input.push(B.valueInfo('W1', B.FLOAT, [2, 2]));
  m.irVersion = 3n;
  const p = await parseModel(toBinary(ModelProtoSchema, m));
  assert.equal(p.inputs.map((i) => i.name), ['X']);
  assert.is(p.irVersion, 3);
});

test('tensor data aliases the input buffer (no copy for raw_data)', async () => {
  const bytes = B.mlp({ inputDim: 64, hidden: 64, outputDim: 8, seed: 9 });
  const p = await parseModel(bytes);
  assert.is(p.tensors[0].data.buffer, bytes.buffer);
});

// ---------------------------------------------------------------------------------------------
// Validation

test('random bytes and empty input: ONNX_MALFORMED', async () => {
  await rejects(parseModel(new Uint8Array(0)), 'ONNX_MALFORMED', 'not a valid ONNX model', 'no graph');
  for (let seed = 1; seed <= 20; seed++) {
    const r = B.rng(seed);
    const junk = Uint8Array.from({ length: 16 + seed * 37 }, () => Math.floor(r() * 256));
    await rejects(parseModel(junk), 'ONNX_MALFORMED', 'not a valid ONNX model');
  }
  await rejects(parseModel(new TextEncoder().encode('{"not": "onnx"}')), 'ONNX_MALFORMED');
});

test('truncated real models at many offsets: ONNX_MALFORMED, never a crash', async () => {
  for (const bytes of [B.mlp({ inputDim: 6, hidden: 4, outputDim: 2, seed: 1 }), B.ifModel(2), B.functionModel(3)]) {
    const cuts = [1, 2, 5, 10, 50, Math.floor(bytes.length / 4), Math.floor(bytes.length / 2), Math.floor((bytes.length * 3) / 4), bytes.length - 10, bytes.length - 1];
    for (const cut of cuts) {
      await rejects(parseModel(bytes.subarray(0, cut)), 'ONNX_MALFORMED', 'the input');
    }
  }
});

test('data length not matching dims: ONNX_MALFORMED naming the tensor', async () => {
  const m = fromBinary(ModelProtoSchema, B.mlp({ inputDim: 3, hidden: 2, outputDim: 1, seed: 2 }));
  m.graph!.initializer[1].rawData = m.graph!.initializer[1].rawData.subarray(1);
  await rejects(parseModel(toBinary(ModelProtoSchema, m)), 'ONNX_MALFORMED', '"b1"', '7 bytes', 'expected 8');

  const t = fromBinary(ModelProtoSchema, B.typedFieldsModel(1));
  t.graph!.initializer[0].floatData.pop();
  await rejects(parseModel(toBinary(ModelProtoSchema, t)), 'ONNX_MALFORMED', '"W"', '23 elements');

  const wrongField = B.modelProto(B.graph({ nodes: [], inputs: [], outputs: [], initializers: [create(TensorProtoSchema, { name: 'q', dataType: TensorProto_DataType.INT32, dims: [2n], floatData: [1, 2] })] }));
  await rejects(parseModel(B.encode(wrongField)), 'ONNX_MALFORMED', '"q"');

  const noData = B.modelProto(B.graph({ nodes: [], inputs: [], outputs: [], initializers: [create(TensorProtoSchema, { name: 'nd', dataType: TensorProto_DataType.FLOAT, dims: [2n] })] }));
  await rejects(parseModel(B.encode(noData)), 'ONNX_MALFORMED', '"nd"', '0 bytes');
});

test('random byte corruption of real models: success or a TesseraError, never a raw exception', async () => {
  const models = [B.mlp({ inputDim: 6, hidden: 4, outputDim: 2, seed: 1 }), B.ifModel(2), B.loopModel(3), B.functionModel(4), B.typedFieldsModel(5)];
  const r = B.rng(42);
  for (let it = 0; it < 600; it++) {
    const m = models[it % models.length].slice();
    for (let k = 0; k < 1 + (it % 4); k++) m[Math.floor(r() * m.length)] = Math.floor(r() * 256);
    try {
      const p = await parseModel(m);
      assembleModel(p.skeleton, p.tensors.map((t) => t.data));
    } catch (e) {
      assert.instance(e, TesseraError, `iteration ${it}: ${e}`);
    }
  }
});

test('negative or absurd dims: ONNX_MALFORMED', async () => {
  const withDims = (dims: bigint[]) =>
    B.encode(B.modelProto(B.graph({ nodes: [], inputs: [], outputs: [], initializers: [create(TensorProtoSchema, { name: 'big', dataType: TensorProto_DataType.FLOAT, dims })] })));
  await rejects(parseModel(withDims([-1n, 4n])), 'ONNX_MALFORMED', '"big"', '-1');
  await rejects(parseModel(withDims([65536n, 65536n])), 'ONNX_MALFORMED', '"big"', '2^31');
  await rejects(parseModel(withDims([2n ** 40n])), 'ONNX_MALFORMED', '"big"');
});

test('unsupported dtypes (FLOAT8, INT4, unknown code) anywhere: ONNX_UNSUPPORTED_DTYPE', async () => {
  for (const [code, name] of [
    [TensorProto_DataType.FLOAT8E4M3FN, 'FLOAT8E4M3FN'],
    [TensorProto_DataType.INT4, 'INT4'],
    [99, 'code 99'],
  ] as const) {
    const m = fromBinary(ModelProtoSchema, B.ifModel(1));
    const thenBranch = m.graph!.node[0].attribute.find((a) => a.name === 'then_branch')!.g!;
    thenBranch.initializer[0].dataType = code;
    await rejects(parseModel(toBinary(ModelProtoSchema, m)), 'ONNX_UNSUPPORTED_DTYPE', '"A"', name);
  }
});

test('no opset_import with IR >= 3 (cut just after the graph): ONNX_MALFORMED', async () => {
  const m = fromBinary(ModelProtoSchema, B.mlp({ inputDim: 2, hidden: 2, outputDim: 2, seed: 3 }));
  m.opsetImport = [];
  await rejects(parseModel(toBinary(ModelProtoSchema, m)), 'ONNX_MALFORMED', 'opset');
});

test('assemble checks tensor count and sizes; skeleton garbage is ONNX_MALFORMED', async () => {
  const p = await parseModel(B.mlp({ inputDim: 3, hidden: 2, outputDim: 1, seed: 2 }));
  const data = p.tensors.map((t) => t.data);
  await rejects(() => assembleModel(p.skeleton, data.slice(1)), 'INVALID_ARGUMENT', '4 tensors', '3 data');
  await rejects(() => assembleModel(p.skeleton, [data[0], data[1].subarray(1), data[2], data[3]]), 'INVALID_ARGUMENT', '"b1"', '8 bytes');
  await rejects(() => assembleModelExternal(p.skeleton, data.slice(1)), 'INVALID_ARGUMENT');
  await rejects(() => skeletonInfo(Uint8Array.of(1, 2, 3)), 'ONNX_MALFORMED', 'skeleton');
  await rejects(() => assembleModel(p.skeleton.subarray(0, 20), data), 'ONNX_MALFORMED', 'skeleton');
});

test('fixture number formats: float16 and bfloat16 bit patterns', () => {
  assert.equal([1, -2, 65504, 0.5, 1e6, 2 ** -24, 1e-9].map(B.float16Bits), [0x3c00, 0xc000, 0x7bff, 0x3800, 0x7c00, 0x0001, 0x0000]);
  assert.equal([1, -2, 3.140625].map(B.bfloat16Bits), [0x3f80, 0xc000, 0x4049]);
});

test.run();
