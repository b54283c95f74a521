/**
 * A model family of one architecture (CNN or ViT), related the way real families are:
 * - a base trained from scratch on the digit task;
 * - frozen-backbone heads for other tasks (the backbone's tensors are bit-exact copies);
 * - a LoRA-merged fine-tune: rank-r adapters on every weight, trained on a new domain, merged
 *   (W0 + B·A), so every block of every adapted weight moves by a low-rank update;
 * - full fine-tunes at a small learning rate on another domain (shifted digits) and on a subset
 *   of the task (digits 0-4);
 * - a version bump (the base trained longer);
 * - two unrelated models trained from scratch (negative controls).
 * Every model is scored on its own held-out split (tasks.ts). A fine-tune that does not beat its
 * parent there by MIN_GAIN_POINTS is not kept. Built models are reused while their config and
 * file are unchanged, like the MLP family (build.ts).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createGemm, type Gemm } from '../../src/kernels/gemm.ts';
import { hash64Hex } from '../../src/hash.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { loadMnist, taskClasses, taskLabels, type MnistSplit } from './mnist.ts';
import { LoraAdapter, predict, trainNet, Conv3x3, Linear, type Module, type Param } from './nn.ts';
import { loadParams, type FamilyNet } from './cnn.ts';
import { accuracyOfLogits, Rng } from './train.ts';
import { applyTransform, domainIndices, domainName, evaluationFileOf, evaluationSplit, recipeOf, type Domain, type EvaluationSplit, type Transform } from './tasks.ts';
import type { Manifest, ModelKind, RejectedModel, ZooModel, ZooSize } from './build.ts';

export const MIN_GAIN_POINTS = 3;

export interface Architecture {
  family: string;
  /** Bump when this architecture's training or export changes results. */
  version: number;
  /** What the architecture is, for the manifest. */
  describe(size: ZooSize): object;
  create(gemm: Gemm, size: ZooSize, classes: number, seed: number): FamilyNet;
  export(f: FamilyNet, opts: { graphName: string; docString: string }): Uint8Array;
  /** Input shape of one sample. */
  inputDims: number[];
  /** Training samples and batch per size. */
  budget(size: ZooSize): FamilyBudget;
}

export interface FamilyBudget {
  trainSamples: number;
  testSamples: number;
  batch: number;
  /** Samples drawn for each kind of training. */
  base: number;
  head: number;
  finetune: number;
  lora: number;
  version: number;
  scratch: number;
  loraRank: number;
  lr: { base: number; head: number; finetune: number; lora: number; version: number };
  /** Learning-rate schedule of the models trained from scratch (default: constant). */
  scratchSchedule?: { warmup: number; cosine: boolean };
}

export interface FamilySpec {
  name: string;
  domain: Domain;
  derivedFrom: string | null;
  kind: ModelKind;
  seed: number;
  how: string;
}

const NOISE = { kind: 'noise', std: 0.6 } as const satisfies Transform;
const SHIFT = { kind: 'shift', max: 3 } as const satisfies Transform;
const SUBSET = [0, 1, 2, 3, 4];

/** The relations of a family (the same for every architecture). */
export function familySpecs(prefix: string, b: FamilyBudget): FamilySpec[] {
  const base = `${prefix}-base`;
  return [
    { name: base, domain: { task: 'digit' }, derivedFrom: null, kind: 'scratch', seed: 1, how: `Trained from scratch (seed 1) on the digit task, Adam, ${b.base} samples.` },
    { name: `${prefix}-head-parity`, domain: { task: 'parity' }, derivedFrom: base, kind: 'head', seed: 11, how: `The backbone of ${base} copied and frozen; a new classifier trained for parity.` },
    { name: `${prefix}-head-gt4`, domain: { task: 'gt4' }, derivedFrom: base, kind: 'head', seed: 12, how: `The backbone of ${base} copied and frozen; a new classifier trained for digit > 4.` },
    { name: `${prefix}-lora-noisy`, domain: { task: 'digit', transform: NOISE }, derivedFrom: base, kind: 'lora', seed: 21,
      how: `Rank-${b.loraRank} LoRA adapters on every weight of ${base}, trained on digits with Gaussian noise (std ${NOISE.std}), merged into the weights (biases unchanged).` },
    { name: `${prefix}-ft-shifted`, domain: { task: 'digit', transform: SHIFT }, derivedFrom: base, kind: 'finetune', seed: 22,
      how: `All weights of ${base} fine-tuned at a small learning rate (${b.lr.finetune}) on digits shifted by up to ${SHIFT.max} pixels.` },
    { name: `${prefix}-ft-subset`, domain: { task: 'digit', digits: SUBSET }, derivedFrom: base, kind: 'finetune', seed: 24,
      how: `All weights of ${base} fine-tuned at a small learning rate (${b.lr.finetune}) on digits ${SUBSET.join(', ')} only (still ten outputs).` },
    { name: `${prefix}-v2`, domain: { task: 'digit' }, derivedFrom: base, kind: 'version', seed: 25, how: `A next version: ${base} trained on ${b.version} more samples of the digit task (fresh Adam, lower learning rate).` },
    { name: `${prefix}-scratch-seed2`, domain: { task: 'digit' }, derivedFrom: null, kind: 'scratch', seed: 2, how: 'Negative control: same architecture and task, trained from scratch with seed 2 (unrelated weights).' },
    { name: `${prefix}-scratch-seed3`, domain: { task: 'digit' }, derivedFrom: null, kind: 'scratch', seed: 3, how: 'Negative control: same architecture and task, trained from scratch with seed 3 (unrelated weights).' },
  ];
}

function evaluationSeed(name: string): number {
  return Number.parseInt(hash64Hex(new TextEncoder().encode(`eval:${name}`)).slice(0, 8), 16);
}

async function writeAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}

function accuracyOn(net: Module, split: EvaluationSplit): number {
  const logits = predict(net, split.images, split.n);
  return accuracyOfLogits(logits, split.taskLabels, split.n, net.outSize);
}

function copyParams(from: Module, to: Module): void {
  const src = new Map(from.params.map((p) => [p.name, p]));
  for (const p of to.params) p.value.set(src.get(p.name)!.value);
}

export interface BuildFamilyOptions {
  size: ZooSize;
  dir: string;
  /** Build only these models (and the parents they need); default: the whole family. */
  models?: string[];
  onProgress?: (msg: string) => void;
}

/** What a family build must do: every spec's config hash and recipe, and which are cached. */
export interface FamilyPlan {
  family: string;
  size: ZooSize;
  dir: string;
  specs: FamilySpec[];
  hashes: Record<string, string>;
  /** Models reused as they are (config and file unchanged), and fine-tunes cached as rejected. */
  cached: Record<string, { entry?: ZooModel; rejected?: RejectedModel }>;
  /** Specs to train, in family order. */
  toTrain: string[];
}

/** The outcome of training one spec: kept (entry), not kept (rejected), or skipped (parent not kept). */
export interface SpecResult {
  name: string;
  entry?: ZooModel;
  rejected?: RejectedModel;
  skipped?: boolean;
}

function specHash(arch: Architecture, size: ZooSize, b: FamilyBudget, spec: FamilySpec, parentHash: string | null): string {
  return hash64Hex(new TextEncoder().encode(JSON.stringify({ v: arch.version, arch: arch.describe(size), MIN_GAIN_POINTS, b, spec, parentHash })));
}

function recipeFor(b: FamilyBudget, spec: FamilySpec) {
  return recipeOf(spec.domain, b.testSamples, evaluationSeed(spec.name), `${spec.name}.eval.json`);
}

/** Reads the previous manifest and decides, per spec, reuse or train (no training here). */
export async function planFamily(arch: Architecture, opts: BuildFamilyOptions): Promise<FamilyPlan> {
  const { size, dir } = opts;
  const log = opts.onProgress ?? (() => {});
  const b = arch.budget(size);
  await mkdir(dir, { recursive: true });
  let previous: (Manifest & { configHashes?: Record<string, string> }) | null = null;
  try {
    previous = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
    if (!Array.isArray(previous!.models) || !Array.isArray(previous!.rejected)) previous = null;
  } catch {
    previous = null;
  }
  const specs = selectSpecs(familySpecs(arch.family, b), opts.models);
  const hashes: Record<string, string> = {};
  const cached: FamilyPlan['cached'] = {};
  const toTrain: string[] = [];
  const skipped = new Set<string>();
  for (const spec of specs) {
    if (spec.derivedFrom && skipped.has(spec.derivedFrom)) {
      skipped.add(spec.name);
      log(`${spec.name}: skipped (its parent ${spec.derivedFrom} was not kept)`);
      continue;
    }
    const configHash = specHash(arch, size, b, spec, spec.derivedFrom ? hashes[spec.derivedFrom] : null);
    hashes[spec.name] = configHash;
    const same = previous?.size === size;
    const prevRejected = same ? previous!.rejected.find((e) => e.name === spec.name) : undefined;
    if (prevRejected && previous!.configHashes?.[spec.name] === configHash) {
      cached[spec.name] = { rejected: prevRejected };
      skipped.add(spec.name);
      log(`${spec.name}: not kept (cached: +${prevRejected.gainPoints.toFixed(2)} points over ${spec.derivedFrom} on its own task)`);
      continue;
    }
    const prev = same ? previous!.models.find((e) => e.name === spec.name) : undefined;
    const path = join(dir, `${spec.name}.onnx`);
    if (prev && prev.configHash === configHash && existsSync(path) && existsSync(join(dir, recipeFor(b, spec).file))) {
      if (hash64Hex(new Uint8Array(await readFile(path))) === prev.fileHash) {
        cached[spec.name] = { entry: prev };
        log(`${spec.name}: reused (config unchanged)`);
        continue;
      }
    }
    toTrain.push(spec.name);
  }
  return { family: arch.family, size, dir, specs, hashes, cached, toTrain };
}

/**
 * Trains the named specs of a plan, in order, in this thread: each parent is the net trained
 * earlier in this call or, failing that, read back from its file (the same float32 values, so a
 * model does not depend on which thread or call built its parent). A spec whose parent was not
 * kept (here or in `parentsRejected`) is skipped. Writes each kept model's file and evaluation file.
 */
export async function trainFamilySpecs(arch: Architecture, plan: FamilyPlan, names: string[], log: (msg: string) => void = () => {}, parentsRejected: ReadonlySet<string> = new Set()): Promise<SpecResult[]> {
  const { size, dir } = plan;
  const b = arch.budget(size);
  const gemm = await createGemm();
  const train = loadMnist({ train: b.trainSamples, test: 0 }).train;
  const nets = new Map<string, FamilyNet>();
  const features = new Map<string, Float32Array>();
  const notKept = new Set(parentsRejected);
  const results: SpecResult[] = [];
  const specOf = (name: string) => plan.specs.find((s) => s.name === name)!;
  const netOf = async (name: string): Promise<FamilyNet> => {
    let f = nets.get(name);
    if (!f) {
      f = arch.create(gemm, size, taskClasses(specOf(name).domain.task), 0);
      loadParams(f.net, new Uint8Array(await readFile(join(dir, `${name}.onnx`))));
      nets.set(name, f);
    }
    return f;
  };

  for (const name of names) {
    const spec = specOf(name);
    if (spec.derivedFrom && notKept.has(spec.derivedFrom)) {
      notKept.add(spec.name);
      results.push({ name, skipped: true });
      log(`${spec.name}: skipped (its parent ${spec.derivedFrom} was not kept)`);
      continue;
    }
    const configHash = plan.hashes[name];
    const file = `${spec.name}.onnx`;
    const evaluation = recipeFor(b, spec);
    const t0 = performance.now();
    const classes = taskClasses(spec.domain.task);
    const labels = taskLabels(spec.domain.task, train.labels);
    const transform = spec.domain.transform;
    const augment = transform ? (x: Float32Array, rows: number, rng: Rng) => applyTransform(transform, x, rows, rng) : undefined;
    const pool = domainIndices(spec.domain, train.labels, 0, train.n);
    const progress = (steps: number) => (step: number, loss: number) => {
      if (step % 50 === 0 || step === steps) log(`${spec.name}: step ${step}/${steps} loss ${loss.toFixed(4)}`);
    };
    const stepsFor = (samples: number) => Math.max(1, Math.round(samples / b.batch));
    let f: FamilyNet;
    if (spec.kind === 'head') {
      const parent = await netOf(spec.derivedFrom!);
      f = arch.create(gemm, size, classes, spec.seed);
      copyParams(parent.backbone, f.backbone);
      let feats = features.get(spec.derivedFrom!);
      if (!feats) {
        log(`${spec.name}: computing ${spec.derivedFrom} backbone features once`);
        // Features of the first `head` training images only: the head trains on those.
        const rows = Math.min(train.n, b.head);
        feats = predict(parent.backbone, train.images.subarray(0, rows * 784), rows);
        features.set(spec.derivedFrom!, feats);
      }
      const steps = stepsFor(b.head);
      const headPool = domainIndices(spec.domain, train.labels, 0, Math.min(train.n, b.head));
      trainNet(gemm, f.head, feats, labels, { indices: headPool, steps, batch: b.batch, lr: b.lr.head, seed: spec.seed, onStep: progress(steps) });
    } else {
      f = arch.create(gemm, size, classes, spec.seed);
      if (spec.kind !== 'scratch') copyParams((await netOf(spec.derivedFrom!)).net, f.net);
      const isBase = spec.derivedFrom === null && spec.seed === 1;
      const samples = spec.kind === 'scratch' ? (isBase ? b.base : b.scratch) : spec.kind === 'lora' ? b.lora : spec.kind === 'version' ? b.version : b.finetune;
      const lr = spec.kind === 'scratch' ? b.lr.base : b.lr[spec.kind as 'lora' | 'version' | 'finetune'];
      const steps = stepsFor(samples);
      let lora: LoraAdapter[] | undefined;
      if (spec.kind === 'lora') {
        const rng = new Rng(spec.seed);
        lora = weightsOf(f.net).map((w) => new LoraAdapter(w, Math.min(b.loraRank, w.dims[0], w.value.length / w.dims[0]), rng));
      }
      const schedule = spec.kind === 'scratch' ? b.scratchSchedule : undefined;
      trainNet(gemm, f.net, train.images, labels, { indices: pool, steps, batch: b.batch, lr, seed: spec.seed, augment, lora, ...(lora ? { trainable: [] } : {}), ...(schedule ? { schedule } : {}), onStep: progress(steps) });
    }
    const heldOut = evaluationSplit(evaluation, 'heldOut');
    const testAccuracy = accuracyOn(f.net, heldOut);
    let parentAccuracy: number | undefined;
    if (spec.kind === 'finetune' || spec.kind === 'lora' || spec.kind === 'version') {
      parentAccuracy = accuracyOn((await netOf(spec.derivedFrom!)).net, heldOut);
      const gainPoints = (testAccuracy - parentAccuracy) * 100;
      if (spec.kind !== 'version' && gainPoints < MIN_GAIN_POINTS) {
        results.push({ name, rejected: { name: spec.name, derivedFrom: spec.derivedFrom!, domain: spec.domain, testAccuracy, parentAccuracy, gainPoints } });
        notKept.add(spec.name);
        log(`${spec.name}: NOT KEPT: ${(testAccuracy * 100).toFixed(2)}% vs ${spec.derivedFrom} ${(parentAccuracy * 100).toFixed(2)}% on ${domainName(spec.domain)} (+${gainPoints.toFixed(2)} < ${MIN_GAIN_POINTS} points)`);
        continue;
      }
    }
    const bytes = arch.export(f, { graphName: spec.name, docString: spec.how });
    await writeAtomic(join(dir, evaluation.file), evaluationFileOf(heldOut, 'input', arch.inputDims, 'logits'));
    await writeAtomic(join(dir, file), bytes);
    nets.set(spec.name, f);
    results.push({
      name,
      entry: {
        name: spec.name, file, task: spec.domain.task, domain: spec.domain, evaluation, testAccuracy, ...(parentAccuracy !== undefined ? { parentAccuracy } : {}),
        derivedFrom: spec.derivedFrom, kind: spec.kind, how: spec.how, classes,
        params: f.net.params.reduce((a, p) => a + p.value.length, 0), configHash, fileHash: hash64Hex(bytes),
      },
    });
    const vs = parentAccuracy !== undefined ? ` (${spec.derivedFrom}: ${(parentAccuracy * 100).toFixed(2)}%)` : '';
    log(`${spec.name}: trained in ${((performance.now() - t0) / 1000).toFixed(1)} s, held-out accuracy on ${domainName(spec.domain)} ${(testAccuracy * 100).toFixed(2)}%${vs}`);
  }
  return results;
}

/** Writes a family's manifest from its plan and the results of training (specs in family order). */
export async function finishFamily(arch: Architecture, plan: FamilyPlan, results: SpecResult[]): Promise<Manifest> {
  const b = arch.budget(plan.size);
  const byName = new Map(results.map((r) => [r.name, r]));
  const entries: ZooModel[] = [];
  const rejected: RejectedModel[] = [];
  for (const spec of plan.specs) {
    const r = plan.cached[spec.name] ?? byName.get(spec.name);
    if (r?.entry) entries.push(r.entry);
    if (r?.rejected) rejected.push(r.rejected);
  }
  const manifest: Manifest = {
    family: arch.family, architecture: arch.describe(plan.size),
    models: entries, rejected, minGainPoints: MIN_GAIN_POINTS, inputName: 'input', outputName: 'logits', inputDims: arch.inputDims, size: plan.size,
    hidden: [], trainSamples: b.trainSamples, testSamples: b.testSamples,
  };
  await writeAtomic(join(plan.dir, 'manifest.json'), JSON.stringify({ ...manifest, configHashes: plan.hashes }, null, 2) + '\n');
  return manifest;
}

/** Builds (or completes) one family in `dir`, in this thread. */
export async function buildFamily(arch: Architecture, opts: BuildFamilyOptions): Promise<Manifest> {
  const plan = await planFamily(arch, opts);
  const results = plan.toTrain.length ? await trainFamilySpecs(arch, plan, plan.toTrain, opts.onProgress) : [];
  return finishFamily(arch, plan, results);
}

/**
 * The plan's training split into jobs that may run at the same time: one per spec, except that
 * a parent's heads share one job (they share its backbone features). Each job names the jobs it
 * waits for (those training its specs' parents).
 */
export function familyJobs(plan: FamilyPlan): { names: string[]; after: number[] }[] {
  const jobs: { names: string[]; after: number[] }[] = [];
  const jobOf = new Map<string, number>();
  for (const name of plan.toTrain) {
    const spec = plan.specs.find((s) => s.name === name)!;
    const headJob = spec.kind === 'head' ? jobs.findIndex((j) => j.names.some((n) => { const o = plan.specs.find((s) => s.name === n)!; return o.kind === 'head' && o.derivedFrom === spec.derivedFrom; })) : -1;
    if (headJob >= 0) {
      jobs[headJob].names.push(name);
      jobOf.set(name, headJob);
      continue;
    }
    const after = spec.derivedFrom && jobOf.has(spec.derivedFrom) ? [jobOf.get(spec.derivedFrom)!] : [];
    jobOf.set(name, jobs.length);
    jobs.push({ names: [name], after });
  }
  return jobs;
}

/** The specs named (by full name or without the family prefix) and their ancestors, in family order. */
function selectSpecs(all: FamilySpec[], names?: string[]): FamilySpec[] {
  if (!names) return all;
  const want = new Set<string>();
  const add = (name: string) => {
    const s = all.find((x) => x.name === name || x.name.endsWith(`-${name}`) && x.name.slice(0, -name.length - 1).indexOf('-') < 0);
    if (!s) throw new InvalidArgumentError(`no zoo model "${name}" in this family: use one of ${all.map((x) => x.name).join(', ')}`);
    want.add(s.name);
    if (s.derivedFrom) add(s.derivedFrom);
  };
  names.forEach(add);
  return all.filter((s) => want.has(s.name));
}

/** The weight matrices a LoRA adapter goes on: every Conv and Linear weight. */
export function weightsOf(net: Module): Param[] {
  const out: Param[] = [];
  const visit = (m: unknown) => {
    if (m instanceof Conv3x3 || m instanceof Linear) out.push(m.weight);
    const kids = (m as { layers?: Module[]; children?: Module[] }).layers ?? (m as { children?: Module[] }).children;
    if (kids) kids.forEach(visit);
  };
  visit(net);
  return out;
}
