/**
 * A model family of one architecture (CNN or ViT), related the way real families are:
 * - a base trained from scratch on the digit task;
 * - frozen-backbone heads for other tasks (the backbone's tensors are bit-exact copies);
 * - a LoRA-merged fine-tune: rank-r adapters on every weight, trained on a new domain, merged
 *   (W0 + B·A), so every block of every adapted weight moves by a low-rank update;
 * - a full fine-tune at a small learning rate on another domain;
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

/** Builds (or completes) one family in `dir`. */
export async function buildFamily(arch: Architecture, opts: BuildFamilyOptions): Promise<Manifest> {
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
  let gemm: Gemm | undefined;
  let train: MnistSplit | undefined;
  const nets = new Map<string, FamilyNet>();
  const hashes = new Map<string, string>();
  const features = new Map<string, Float32Array>();
  const entries: ZooModel[] = [];
  const rejected: RejectedModel[] = [];
  const skipped = new Set<string>();

  const netOf = async (name: string): Promise<FamilyNet> => {
    let f = nets.get(name);
    if (!f) {
      const spec = specs.find((s) => s.name === name)!;
      f = arch.create(gemm!, size, taskClasses(spec.domain.task), 0);
      loadParams(f.net, new Uint8Array(await readFile(join(dir, `${name}.onnx`))));
      nets.set(name, f);
    }
    return f;
  };

  for (const spec of specs) {
    if (spec.derivedFrom && skipped.has(spec.derivedFrom)) {
      skipped.add(spec.name);
      log(`${spec.name}: skipped (its parent ${spec.derivedFrom} was not kept)`);
      continue;
    }
    const parentHash = spec.derivedFrom ? hashes.get(spec.derivedFrom)! : null;
    const configHash = hash64Hex(new TextEncoder().encode(JSON.stringify({ v: arch.version, arch: arch.describe(size), MIN_GAIN_POINTS, b, spec, parentHash })));
    hashes.set(spec.name, configHash);
    const file = `${spec.name}.onnx`;
    const path = join(dir, file);
    const evaluation = recipeOf(spec.domain, b.testSamples, evaluationSeed(spec.name), `${spec.name}.eval.json`);
    const same = previous?.size === size;
    const prevRejected = same ? previous!.rejected.find((e) => e.name === spec.name) : undefined;
    if (prevRejected && previous!.configHashes?.[spec.name] === configHash) {
      rejected.push(prevRejected);
      skipped.add(spec.name);
      log(`${spec.name}: not kept (cached: +${prevRejected.gainPoints.toFixed(2)} points over ${spec.derivedFrom} on its own task)`);
      continue;
    }
    const prev = same ? previous!.models.find((e) => e.name === spec.name) : undefined;
    if (prev && prev.configHash === configHash && existsSync(path) && existsSync(join(dir, evaluation.file))) {
      if (hash64Hex(new Uint8Array(await readFile(path))) === prev.fileHash) {
        entries.push(prev);
        log(`${spec.name}: reused (config unchanged)`);
        continue;
      }
    }

    const t0 = performance.now();
    gemm ??= await createGemm();
    train ??= loadMnist({ train: b.trainSamples, test: 0 }).train;
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
      const samples = spec.kind === 'scratch' ? (spec.derivedFrom === null && spec.seed === 1 ? b.base : b.scratch) : spec.kind === 'lora' ? b.lora : spec.kind === 'version' ? b.version : b.finetune;
      const lr = spec.kind === 'scratch' ? b.lr.base : b.lr[spec.kind as 'lora' | 'version' | 'finetune'];
      const steps = stepsFor(samples);
      let lora: LoraAdapter[] | undefined;
      if (spec.kind === 'lora') {
        const rng = new Rng(spec.seed);
        lora = weightsOf(f.net).map((w) => new LoraAdapter(w, Math.min(b.loraRank, w.dims[0], w.value.length / w.dims[0]), rng));
      }
      trainNet(gemm, f.net, train.images, labels, { indices: pool, steps, batch: b.batch, lr, seed: spec.seed, augment, lora, ...(lora ? { trainable: [] } : {}), onStep: progress(steps) });
    }
    const heldOut = evaluationSplit(evaluation, 'heldOut');
    const testAccuracy = accuracyOn(f.net, heldOut);
    let parentAccuracy: number | undefined;
    if (spec.kind === 'finetune' || spec.kind === 'lora' || spec.kind === 'version') {
      parentAccuracy = accuracyOn((await netOf(spec.derivedFrom!)).net, heldOut);
      const gainPoints = (testAccuracy - parentAccuracy) * 100;
      if (spec.kind !== 'version' && gainPoints < MIN_GAIN_POINTS) {
        rejected.push({ name: spec.name, derivedFrom: spec.derivedFrom!, domain: spec.domain, testAccuracy, parentAccuracy, gainPoints });
        skipped.add(spec.name);
        log(`${spec.name}: NOT KEPT: ${(testAccuracy * 100).toFixed(2)}% vs ${spec.derivedFrom} ${(parentAccuracy * 100).toFixed(2)}% on ${domainName(spec.domain)} (+${gainPoints.toFixed(2)} < ${MIN_GAIN_POINTS} points)`);
        continue;
      }
    }
    const bytes = arch.export(f, { graphName: spec.name, docString: spec.how });
    await writeAtomic(join(dir, evaluation.file), evaluationFileOf(heldOut, 'input', arch.inputDims, 'logits'));
    await writeAtomic(path, bytes);
    nets.set(spec.name, f);
    entries.push({
      name: spec.name, file, task: spec.domain.task, domain: spec.domain, evaluation, testAccuracy, ...(parentAccuracy !== undefined ? { parentAccuracy } : {}),
      derivedFrom: spec.derivedFrom, kind: spec.kind, how: spec.how, classes,
      params: f.net.params.reduce((a, p) => a + p.value.length, 0), configHash, fileHash: hash64Hex(bytes),
    });
    const vs = parentAccuracy !== undefined ? ` (${spec.derivedFrom}: ${(parentAccuracy * 100).toFixed(2)}%)` : '';
    log(`${spec.name}: trained in ${((performance.now() - t0) / 1000).toFixed(1)} s, held-out accuracy on ${domainName(spec.domain)} ${(testAccuracy * 100).toFixed(2)}%${vs}`);
  }
  const manifest: Manifest = {
    family: arch.family, architecture: arch.describe(size),
    models: entries, rejected, minGainPoints: MIN_GAIN_POINTS, inputName: 'input', outputName: 'logits', inputDims: arch.inputDims, size,
    hidden: [], trainSamples: b.trainSamples, testSamples: b.testSamples,
  };
  await writeAtomic(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, configHashes: Object.fromEntries(hashes) }, null, 2) + '\n');
  return manifest;
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
