/**
 * `npm run bench -- dedup [--quick] [--json]`: near-duplicate dedup on the zoo (its fine-tune
 * family and its unrelated scratch controls, all in one store), one fresh store per method:
 * exact-only (what ingest does), netsDB-style, MISTIQUE-style, ours lossy at 0.5 and 1 point,
 * ours lossless (deltas), and ours lossy 1 point followed by lossless deltas.
 *
 * Every model is scored on its own task (bench/zoo/tasks.ts: noisy digits for the noise
 * fine-tune, shifted digits for the shift fine-tunes, the head's labels for a head). Accuracy
 * loops score on the model's validation split (from the first half of MNIST's test images); the
 * reported drop is measured on its disjoint held-out split (from the second half), per model
 * against the model as added, worst model in points. Lossy substitutions are settled before
 * bytes are counted. --quick runs the tiny zoo.
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-web';
import { readFile } from 'node:fs/promises';
import type { BenchOptions } from './run.ts';
import { buildZoo, evaluationSplit, type EvaluationSplit, type Manifest } from './zoo/build.ts';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { createEvaluator, type EvalSet } from '../src/dedup/evaluate.ts';
import { dedupLossless, dedupModels, type DedupMethod, type ModelDedupReport } from '../src/dedup/planner.ts';

ort.env.wasm.numThreads = 1;

/** The first `limit` samples of a model's own evaluation split, as an evaluation set. */
function evalSetOf(split: EvaluationSplit, inputName: string, inputDims: number[], limit = Infinity): EvalSet {
  const n = Math.min(limit, split.n);
  const per = inputDims.reduce((a, d) => a * d, 1);
  return { input: inputName, dims: [n, ...inputDims], data: split.images.subarray(0, n * per), labels: Int32Array.from(split.taskLabels.subarray(0, n)) };
}

interface MethodResult {
  method: string;
  storedBytes: number;
  logicalBytes: number;
  /** Worst held-out accuracy drop over the models, in points. */
  accuracyDrop: number;
  evaluations: number;
  /** Wall time of the method (exact-only: the ingest, which every method also pays). */
  ms: number;
  blocksReplaced: number;
  /** Stored-bytes reduction against storing every model whole: logical - stored. */
  savedBytes: number;
  /** Scratch controls: substitutions made, and those that cost held-out accuracy. */
  controlSubstitutions: number;
  controlSubstitutionsCostingAccuracy: number;
  /** Time to read every model's weights back (tensorData), ms. */
  readMs: number;
  perModel?: { name: string; blocksReplaced: number; bytesSaved: number; validationBefore: number; validationAfter: number; heldOutDrop: number; evaluations: number }[];
}

export async function run(opts: BenchOptions): Promise<object> {
  const size = opts.quick ? 'tiny' : 'standard';
  const dir = join(import.meta.dirname, 'zoo', opts.quick ? 'tiny-models' : 'models');
  const manifest: Manifest = await buildZoo({ size, dir, onProgress: (m) => console.error(m) });
  // The accuracy loops see at most this many samples of each model's validation split (an
  // evaluation is a full pass); the drop is reported on the model's whole held-out split.
  const validationN = opts.quick ? Infinity : 1000;
  const files = await Promise.all(manifest.models.map(async (m) => ({ m, bytes: new Uint8Array(await readFile(join(dir, m.file))) })));
  const controls = new Set(manifest.models.filter((m) => m.derivedFrom === null && m.name.startsWith('scratch')).map((m) => m.name));

  const freshStore = async () => {
    const store = await TesseraStore.open(new MemoryPageStore({ pageSize: 1 << 20 }));
    const t0 = performance.now();
    for (const { m, bytes } of files) await store.add(m.name, bytes);
    return { store, ingestMs: performance.now() - t0 };
  };

  const heldOut = new Map<string, EvalSet>(manifest.models.map((m) => [m.name, evalSetOf(evaluationSplit(m.evaluation, 'heldOut'), manifest.inputName, manifest.inputDims)]));
  const validationSets = new Map<string, EvalSet>(manifest.models.map((m) => [m.name, evalSetOf(evaluationSplit(m.evaluation, 'validation'), manifest.inputName, manifest.inputDims, validationN)]));
  const heldOutAccuracy = async (store: TesseraStore, name: string) => {
    const model = store.model(name);
    const w = await store.tensorData(name);
    return (await createEvaluator(model, w, heldOut.get(name)!)).score(w);
  };
  const { store: reference } = await freshStore();
  const original = new Map<string, number>();
  for (const m of manifest.models) original.set(m.name, await heldOutAccuracy(reference, m.name));
  const originalTensors = new Map<string, Uint8Array[]>();
  for (const m of manifest.models) originalTensors.set(m.name, await reference.tensorData(m.name));
  console.error('held-out accuracy as added:', Object.fromEntries([...original].map(([k, v]) => [k, +(v * 100).toFixed(2)])));

  const measure = async (method: string, store: TesseraStore, ms: number, evaluations: number, reports: ModelDedupReport[] | null, replacedByModel: Map<string, number>): Promise<MethodResult> => {
    for (const name of store.listModels()) await store.settle(name);
    const s = store.stats();
    let worst = 0;
    let controlSubs = 0;
    let controlCosting = 0;
    const drops = new Map<string, number>();
    for (const name of store.listModels()) {
      const tensors = await store.tensorData(name);
      const same = tensors.every((t, i) => Buffer.from(t).equals(Buffer.from(originalTensors.get(name)![i])));
      if (same) continue; // bit-exact: no drop
      const drop = (original.get(name)! - (await heldOutAccuracy(store, name))) * 100;
      drops.set(name, drop);
      worst = Math.max(worst, drop);
      if (controls.has(name)) {
        controlSubs += replacedByModel.get(name) ?? 0;
        if (drop > 0) controlCosting += replacedByModel.get(name) ?? 0;
      }
    }
    const readStart = performance.now();
    for (const name of store.listModels()) await store.tensorData(name);
    const readMs = performance.now() - readStart;
    const result: MethodResult = {
      method, storedBytes: s.storedBytes, logicalBytes: s.logicalBytes, accuracyDrop: +worst.toFixed(3), evaluations, ms: Math.round(ms),
      blocksReplaced: [...replacedByModel.values()].reduce((a, b) => a + b, 0), savedBytes: s.logicalBytes - s.storedBytes,
      controlSubstitutions: controlSubs, controlSubstitutionsCostingAccuracy: controlCosting, readMs: Math.round(readMs),
    };
    if (reports) {
      result.perModel = reports.map((r) => ({
        name: r.name, blocksReplaced: r.blocksReplaced, bytesSaved: r.bytesSaved, validationBefore: r.accuracyBefore, validationAfter: r.accuracyAfter,
        heldOutDrop: +(drops.get(r.name) ?? 0).toFixed(3), evaluations: r.evaluations,
      }));
    }
    console.error(`${method}: stored ${(s.storedBytes / 2 ** 20).toFixed(2)} MiB of ${(s.logicalBytes / 2 ** 20).toFixed(2)} MiB, worst drop ${worst.toFixed(2)} pt, ${evaluations} evaluations, ${Math.round(ms)} ms`);
    return result;
  };

  const validation = (name: string) => validationSets.get(name)!;
  const lossy = async (method: DedupMethod, maxDrop: number, store: TesseraStore) => {
    const t0 = performance.now();
    const reports = await dedupModels(store, {
      method, maxDrop,
      evaluator: (model, weights) => createEvaluator(model, weights, validation(model.name)),
      onProgress: (p) => { if (p.step === 'commit' && p.done === 1) console.error(`  ${method} ${p.model} done`); },
    });
    return { reports, ms: performance.now() - t0 };
  };

  const methods: MethodResult[] = [];
  {
    const { store, ingestMs } = await freshStore();
    methods.push(await measure('exact-only', store, ingestMs, 0, null, new Map()));
  }
  const lossyRuns: [string, DedupMethod, number][] = [
    ['netsdb-style (1 pt)', 'netsdb', 0.01],
    ['mistique-style (1 pt)', 'mistique', 0.01],
    ['ours lossy (0.5 pt)', 'ours', 0.005],
    ['ours lossy (1 pt)', 'ours', 0.01],
  ];
  for (const [label, method, maxDrop] of lossyRuns) {
    const { store } = await freshStore();
    const { reports, ms } = await lossy(method, maxDrop, store);
    methods.push(await measure(label, store, ms, reports.reduce((a, r) => a + r.evaluations, 0), reports, new Map(reports.map((r) => [r.name, r.blocksReplaced]))));
  }
  {
    const { store } = await freshStore();
    const t0 = performance.now();
    const reports = await dedupLossless(store);
    methods.push(await measure('ours lossless (deltas)', store, performance.now() - t0, 0, null, new Map(reports.map((r) => [r.name, r.blocksReplaced]))));
  }
  {
    const { store } = await freshStore();
    const t0 = performance.now();
    const { reports } = await lossy('ours', 0.01, store);
    for (const name of store.listModels()) await store.settle(name);
    const deltas = await dedupLossless(store);
    const replaced = new Map(reports.map((r) => [r.name, r.blocksReplaced]));
    for (const d of deltas) replaced.set(d.name, (replaced.get(d.name) ?? 0) + d.blocksReplaced);
    methods.push(await measure('ours lossy (1 pt) + lossless', store, performance.now() - t0, reports.reduce((a, r) => a + r.evaluations, 0), reports, replaced));
  }

  const by = (m: string) => methods.find((x) => x.method === m)!;
  const exact = by('exact-only');
  const netsdb = by('netsdb-style (1 pt)');
  const comparisons = ['ours lossy (1 pt)', 'ours lossy (1 pt) + lossless', 'ours lossless (deltas)'].map((m) => {
    const o = by(m);
    return {
      method: m,
      savingVsNetsdb: +(o.savedBytes / Math.max(1, netsdb.savedBytes)).toFixed(3),
      savingVsExactOnly: +(o.savedBytes / Math.max(1, exact.savedBytes)).toFixed(3),
      timeVsNetsdb: +(o.ms / Math.max(1, netsdb.ms)).toFixed(3),
      evaluationsVsNetsdb: +(o.evaluations / Math.max(1, netsdb.evaluations)).toFixed(3),
      withinOnePoint: o.accuracyDrop <= 1,
    };
  });

  const kernels = await kernelFigures();
  return {
    zoo: {
      size, models: manifest.models.length, controls: [...controls],
      tasks: Object.fromEntries(manifest.models.map((m) => [m.name, { domain: m.domain, heldOutSamples: heldOut.get(m.name)!.dims[0], validationSamples: validation(m.name).dims[0] }])),
    },
    goal: { savingVsNetsdb: 1.5, savingVsExactOnly: 1.1, fasterThanNetsdb: true, maxDropPoints: 1 },
    methods: methods.map(({ perModel, ...m }) => m),
    comparisons,
    perModel: Object.fromEntries(methods.filter((m) => m.perModel).map((m) => [m.method, m.perModel])),
    kernels,
  };
}

/** Key figures of the kernel benchmark (bench/results/kernels.json, from `npm run bench -- kernels`). */
async function kernelFigures(): Promise<object> {
  try {
    const k = JSON.parse(await readFile(join(import.meta.dirname, 'results', 'kernels.json'), 'utf8'));
    const kk = k.kernels ?? k;
    return {
      source: 'bench/results/kernels.json',
      date: k.date,
      hashing: kk.hashing?.map((h: any) => ({ family: h.family, wasmGBps: h.wasmGBps, ratioVsTs: h.ratio })),
      distances: kk.distances?.map((d: any) => ({ kernel: d.kernel, region: d.region, wasmGBps: d.wasmGBps, ratioVsTs: d.ratio })),
      recall: kk.recall?.filter((r: any) => r.relativeNoise === 0.19999999999999998 || r.note).map((r: any) => ({ family: r.family, relativeNoise: r.relativeNoise, recall: r.recall, falseCandidatesPerQuery: r.falseCandidatesPerQuery, note: r.note })),
      scaling: kk.scaling?.map((s: any) => ({ family: s.family, blocks: [s.blocksN, s.blocks10N], searchRatio10x: s.searchRatio, candidatesPerBlock: [s.candidatesPerBlockN, s.candidatesPerBlock10N] })),
    };
  } catch {
    return { note: 'bench/results/kernels.json not found: run `npm run bench -- kernels`' };
  }
}
