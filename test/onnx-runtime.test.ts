/**
 * Models rebuilt by assembleModel / assembleModelExternal run in onnxruntime-web with outputs
 * bit-identical to the original model's.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-web';
import { assembleModel, assembleModelExternal, parseModel } from '../src/onnx/model.ts';
import * as B from '../tools/fixtures/onnx-builders.ts';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

type Feeds = Record<string, ort.Tensor>;

async function run(model: Uint8Array, feeds: Feeds, externalData?: { path: string; data: Uint8Array }[]): Promise<Record<string, number[]>> {
  const session = await ort.InferenceSession.create(model, externalData ? { externalData } : {});
  try {
    const out = await session.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(new Uint32Array((v.data as Float32Array).slice().buffer))]));
  } finally {
    await session.release();
  }
}

/** Original, assembled inline, assembled external (and, if given, the original read from external files). */
async function assertSameOutputs(model: Uint8Array, feeds: Feeds, label: string, smallTensorsExternal = true): Promise<void> {
  const expected = await run(model, feeds);
  const p = await parseModel(model);
  const data = p.tensors.map((t) => t.data);
  assert.equal(await run(assembleModel(p.skeleton, data), feeds), expected, `${label}: assembleModel`);
  const ext = assembleModelExternal(p.skeleton, data);
  assert.equal(await run(ext.model, feeds, [{ path: ext.location, data: ext.externalData }]), expected, `${label}: assembleModelExternal`);
  if (smallTensorsExternal) {
    // every main-graph tensor external, however small (the fixtures' weights are tiny)
    const all = assembleModelExternal(p.skeleton, data, 'all.bin', { minBytes: 1 });
    assert.equal(await run(all.model, feeds, [{ path: all.location, data: all.externalData }]), expected, `${label}: assembleModelExternal minBytes 1`);
  }
}

const floats = (dims: number[], seed: number) => new ort.Tensor('float32', B.randomFloats(dims.reduce((a, b) => a * b, 1), seed), dims);

test('MLP (MatMul + Add), Gemm, float16 weights: identical outputs', async () => {
  const X = floats([4, 16], 1);
  await assertSameOutputs(B.mlp({ inputDim: 16, hidden: 32, outputDim: 10, seed: 1 }), { X }, 'mlp');
  await assertSameOutputs(B.mlp({ inputDim: 16, hidden: 32, outputDim: 10, seed: 2, gemm: true, batch: 4 }), { X }, 'gemm');
  await assertSameOutputs(B.mlp({ inputDim: 16, hidden: 32, outputDim: 10, seed: 3, dtype: 'float16' }), { X }, 'fp16');
  await assertSameOutputs(B.mlp({ inputDim: 16, hidden: 32, outputDim: 10, seed: 4, encoding: 'typed' }), { X }, 'typed mlp');
});

test('If with nested If (both branches), Loop, Constant, local function, typed fields', async () => {
  const X = floats([2, 3], 5);
  for (const cond of [true, false]) {
    await assertSameOutputs(B.ifModel(6), { X, cond: new ort.Tensor('bool', [cond], []) }, `if ${cond}`);
  }
  await assertSameOutputs(B.loopModel(7), { X: floats([4], 8) }, 'loop');
  await assertSameOutputs(B.constantModel(9), { X }, 'constant');
  await assertSameOutputs(B.functionModel(10), { X }, 'function');
  // its Reshape shape must stay inline (shape inference cannot read external data), so only the default threshold
  await assertSameOutputs(B.typedFieldsModel(11), { X: floats([3, 4], 12) }, 'typed fields', false);
});

test('a model read from external files assembles to the same outputs', async () => {
  const model = B.mlp({ inputDim: 8, hidden: 8, outputDim: 4, seed: 13 });
  const X = floats([2, 8], 14);
  const expected = await run(model, { X });
  const ext = B.withExternalData(model, { files: 'each' });
  assert.equal(await run(ext.model, { X }, [...ext.files].map(([path, data]) => ({ path, data }))), expected, 'fixture itself');
  const p = await parseModel(ext.model, { readExternal: async (loc) => ext.files.get(loc)! });
  assert.equal(await run(assembleModel(p.skeleton, p.tensors.map((t) => t.data)), { X }), expected);
});

test('sanity: a changed weight changes the output', async () => {
  const model = B.mlp({ inputDim: 8, hidden: 8, outputDim: 4, seed: 15 });
  const X = floats([2, 8], 16);
  const p = await parseModel(model);
  const data = p.tensors.map((t) => t.data.slice());
  data[3][0] ^= 0x40; // b2[0]: flip an exponent bit
  assert.not.equal(await run(assembleModel(p.skeleton, data), { X }), await run(model, { X }));
});

test.run();
