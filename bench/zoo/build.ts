/**
 * The model zoo: families of models trained here on MNIST, related the way real model families
 * are (a base, frozen-backbone heads for other tasks, fine-tunes for other input domains, a next
 * version) plus unrelated scratch-trained controls. Deduplication is only interesting on such
 * families. Three architectures: the MLP family (this file, at the folder's root), a CNN and a
 * ViT (family.ts, cnn.ts, vit.ts, in subfolders). `npm run zoo` builds the standard zoo into
 * bench/zoo/models/ (`--tiny` for the test size into bench/zoo/tiny-models/, `--out DIR`
 * elsewhere, `--families mlp,cnn`, `--workers N` threads, default 2 for the standard zoo); models already built with the same config are reused.
 * Deterministic: the same config gives bit-identical ONNX files.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createGemm, type Gemm } from '../../src/kernels/gemm.ts';
import { hash64Hex } from '../../src/hash.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { IMAGE_SIZE, loadMnist, type MnistSplit, type Task, taskClasses, taskLabels } from './mnist.ts';
import { exportMlpOnnx, INPUT_NAME, OUTPUT_NAME, readMlpOnnx } from './onnx-export.ts';
import { accuracyOfLogits, cloneMlp, forward, forwardLayers, initMlp, paramCount, trainMlp, type Mlp, type Rng } from './train.ts';
import { applyTransform, domainIndices, domainName, evaluationFileOf, evaluationSplit, recipeOf, type Domain, type EvaluationRecipe, type EvaluationSplit, type Transform } from './tasks.ts';

export { evaluateMlp, evaluateOnnx, onnxLogits } from './evaluate.ts';
import { buildFamily, MIN_GAIN_POINTS } from './family.ts';
import { cnnArchitecture } from './cnn.ts';
import { vitArchitecture } from './vit.ts';
export { MIN_GAIN_POINTS };
export { loadMnist, taskClasses, taskLabel, taskLabels } from './mnist.ts';
export { evaluationSplit, domainName, type Domain, type EvaluationRecipe, type EvaluationSplit } from './tasks.ts';

export type ZooSize = 'standard' | 'tiny';

/** How a model relates to its parent; `lora`: a LoRA-merged fine-tune. */
export type ModelKind = 'scratch' | 'head' | 'finetune' | 'lora' | 'version';

export interface ZooModel {
  name: string;
  /** File name inside the zoo folder. */
  file: string;
  /** The labelling task (the domain's task). */
  task: Task;
  /** What the model is for: its task and inputs (digits kept, noise, shift). */
  domain: Domain;
  /** How its evaluation data is regenerated, and the file holding its held-out split. */
  evaluation: EvaluationRecipe;
  /** Accuracy on its own held-out split (its domain), as trained. */
  testAccuracy: number;
  /** Fine-tunes and versions: the parent's accuracy on this model's held-out split. */
  parentAccuracy?: number;
  derivedFrom: string | null;
  kind: ModelKind;
  how: string;
  classes: number;
  params: number;
  /** Hash of everything that determines this model (its spec, the size, its parent's configHash). */
  configHash: string;
  /** xxHash64 of the file bytes: a changed file is rebuilt, not trusted. */
  fileHash: string;
}

/** A fine-tune trained but not kept: it did not beat its parent on its own task by enough. */
export interface RejectedModel {
  name: string;
  derivedFrom: string;
  domain: Domain;
  testAccuracy: number;
  parentAccuracy: number;
  gainPoints: number;
}

export interface Manifest {
  /** The architecture family: mlp (this file), cnn, vit (family.ts). */
  family?: string;
  /** What the architecture is (layer sizes). */
  architecture?: object;
  models: ZooModel[];
  /** Fine-tunes that missed `minGainPoints` on their own task (not written, not in `models`). */
  rejected: RejectedModel[];
  /** A fine-tune must beat its parent on its own held-out split by this many points to be kept. */
  minGainPoints: number;
  inputName: string;
  outputName: string;
  /** Input shape of one sample (the evaluation files' dims after n). */
  inputDims: number[];
  size: ZooSize;
  /** Layer widths, input to the widest head (784, hidden..., classes vary per model). */
  hidden: number[];
  trainSamples: number;
  testSamples: number;
}

/** Bump when training or export code changes results, so existing zoos rebuild. */
const GENERATOR_VERSION = 2;

interface SizeConfig {
  hidden: number[];
  trainSamples: number;
  testSamples: number;
  batch: number;
}

const SIZES: Record<ZooSize, SizeConfig> = {
  standard: { hidden: [1024, 256], trainSamples: 60000, testSamples: 10000, batch: 128 },
  tiny: { hidden: [64, 32], trainSamples: 3000, testSamples: 1000, batch: 64 },
};

interface ModelSpec {
  name: string;
  domain: Domain;
  derivedFrom: string | null;
  /**
   * scratch: all layers from He init; head: parent's backbone frozen, last layer new; finetune:
   * all layers from the parent, trained on a new domain; version: the parent trained longer on
   * its own domain.
   */
  kind: ModelKind;
  how: string;
  seed: number;
  /** Passes over the training pool. */
  epochs: number;
  lr: number;
  /** Train only on the first this many images of the domain. */
  poolLimit?: number;
}

const NOISE: Transform = { kind: 'noise', std: 0.6 };
const SHIFT: Transform = { kind: 'shift', max: 2 };

function zooSpecs(size: ZooSize): ModelSpec[] {
  const std = size === 'standard';
  // Standard: few epochs so the zoo builds in minutes; tiny: more passes over far fewer samples.
  const baseEpochs = std ? 2 : 6;
  const ftEpochs = std ? 0.5 : 2;
  const headEpochs = std ? 3 : 6;
  const ftLr = std ? 1e-4 : 3e-4;
  const head = (name: string, task: Task, seed: number): ModelSpec => ({
    name, domain: { task }, derivedFrom: 'base-digit', kind: 'head', seed, epochs: headEpochs, lr: 3e-3,
    how: `fc1 and fc2 copied from base-digit and frozen; a new last layer trained for the ${task} task.`,
  });
  const all: ModelSpec[] = [
    { name: 'base-digit', domain: { task: 'digit' }, derivedFrom: null, kind: 'scratch', seed: 1, epochs: baseEpochs, lr: 1e-3,
      how: `Trained from scratch (He init, seed 1) on the digit task, Adam, ${baseEpochs} epochs.` },
    head('head-parity', 'parity', 11),
    head('head-gt4', 'gt4', 12),
    head('head-onevsrest-3', 'onevsrest-3', 13),
    head('head-onevsrest-7', 'onevsrest-7', 14),
    head('head-mod3', 'mod3', 15),
    { name: 'ft-noisy', domain: { task: 'digit', transform: NOISE }, derivedFrom: 'base-digit', kind: 'finetune', seed: 21, epochs: ftEpochs, lr: ftLr,
      how: `All layers of base-digit fine-tuned at a small learning rate on images with Gaussian noise (std 0.6), ${ftEpochs} epoch.` },
    { name: 'ft-shifted', domain: { task: 'digit', transform: SHIFT }, derivedFrom: 'base-digit', kind: 'finetune', seed: 22, epochs: ftEpochs, lr: ftLr,
      how: `All layers of base-digit fine-tuned at a small learning rate on images shifted by 1-2 pixels, ${ftEpochs} epoch.` },
    { name: 'ft-parity-shifted', domain: { task: 'parity', transform: SHIFT }, derivedFrom: 'head-parity', kind: 'finetune', seed: 23, epochs: ftEpochs, lr: ftLr,
      how: `All layers of head-parity (backbone included) fine-tuned at a small learning rate on the parity of shifted digits, ${ftEpochs} epoch.` },
    { name: 'ft-subset', domain: { task: 'digit', digits: [0, 1, 2, 3, 4] }, derivedFrom: 'base-digit', kind: 'finetune', seed: 24, epochs: 1, lr: ftLr,
      poolLimit: std ? 6000 : 600,
      how: `All layers of base-digit fine-tuned at a small learning rate on ${std ? 6000 : 600} images of digits 0-4 only (one pass).` },
    { name: 'ft-v2', domain: { task: 'digit' }, derivedFrom: 'base-digit', kind: 'version', seed: 25, epochs: std ? 1 : 3, lr: 3e-4,
      how: `A next version: base-digit trained ${std ? 1 : 3} more epoch(s) on the digit task (fresh Adam, lower learning rate).` },
    { name: 'scratch-seed2', domain: { task: 'digit' }, derivedFrom: null, kind: 'scratch', seed: 2, epochs: std ? 0.5 : baseEpochs, lr: 1e-3,
      how: 'Negative control: same architecture and task, trained from scratch with seed 2 (unrelated weights).' },
    { name: 'scratch-seed3', domain: { task: 'digit' }, derivedFrom: null, kind: 'scratch', seed: 3, epochs: std ? 0.5 : baseEpochs, lr: 1e-3,
      how: 'Negative control: same architecture and task, trained from scratch with seed 3 (unrelated weights).' },
  ];
  if (std) return all;
  const tiny = new Set(['base-digit', 'head-parity', 'head-gt4', 'ft-noisy', 'ft-v2', 'ft-parity-shifted', 'scratch-seed2']);
  return all.filter((s) => tiny.has(s.name));
}

/** Seed of a model's evaluation data: fixed per name, so every build regenerates the same images. */
function evaluationSeed(name: string): number {
  return Number.parseInt(hash64Hex(new TextEncoder().encode(`eval:${name}`)).slice(0, 8), 16);
}

function configHashOf(spec: ModelSpec, size: SizeConfig, parentHash: string | null): string {
  const text = JSON.stringify({ GENERATOR_VERSION, MIN_GAIN_POINTS, size, spec, parentHash });
  return hash64Hex(new TextEncoder().encode(text));
}

async function readManifest(dir: string): Promise<Manifest | null> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    return Array.isArray(m.models) && Array.isArray(m.rejected) ? m : null;
  } catch {
    return null; // missing or unreadable: rebuild everything
  }
}

async function writeAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}

export interface BuildZooOptions {
  size: ZooSize;
  dir: string;
  onProgress?: (msg: string) => void;
}

/** Accuracy of an MLP on a domain's evaluation split. */
function accuracyOn(gemm: Gemm, mlp: Mlp, split: EvaluationSplit): number {
  const logits = forward(gemm, mlp, split.images, split.n);
  return accuracyOfLogits(logits, split.taskLabels, split.n, mlp.layers[mlp.layers.length - 1].outDim);
}

/** Builds (or completes) the zoo in `dir`, reusing every model whose config and files are unchanged. */
export async function buildZoo(opts: BuildZooOptions): Promise<Manifest> {
  const { size, dir } = opts;
  const cfg = SIZES[size];
  if (!cfg) throw new InvalidArgumentError(`zoo size must be 'standard' or 'tiny', got "${size}"`);
  const log = opts.onProgress ?? (() => {});
  await mkdir(dir, { recursive: true });
  const previous = await readManifest(dir);
  const specs = zooSpecs(size);

  let gemm: Gemm | undefined;
  let data: { train: MnistSplit; test: MnistSplit } | undefined;
  const needData = () => {
    if (!data) {
      data = loadMnist({ train: cfg.trainSamples, test: cfg.testSamples });
    }
    return data;
  };
  const models = new Map<string, Mlp>();
  const hashes = new Map<string, string>();
  const features = new Map<string, Float32Array>(); // backbone outputs on the train split, per parent
  const entries: ZooModel[] = [];
  const rejected: RejectedModel[] = [];
  const skipped = new Set<string>();

  const modelOf = async (name: string): Promise<Mlp> => {
    let m = models.get(name);
    if (!m) {
      m = readMlpOnnx(new Uint8Array(await readFile(join(dir, `${name}.onnx`))));
      models.set(name, m);
    }
    return m;
  };

  for (const spec of specs) {
    if (spec.derivedFrom && skipped.has(spec.derivedFrom)) {
      skipped.add(spec.name);
      log(`${spec.name}: skipped (its parent ${spec.derivedFrom} was not kept)`);
      continue;
    }
    const parentHash = spec.derivedFrom ? hashes.get(spec.derivedFrom)! : null;
    const configHash = configHashOf(spec, cfg, parentHash);
    hashes.set(spec.name, configHash);
    const file = `${spec.name}.onnx`;
    const path = join(dir, file);
    const evaluation = recipeOf(spec.domain, cfg.testSamples, evaluationSeed(spec.name), `${spec.name}.eval.json`);
    const same = previous?.size === size;
    const prevRejected = same ? previous.rejected.find((e) => e.name === spec.name) : undefined;
    const prevHash = same ? (previous as Manifest & { configHashes?: Record<string, string> }).configHashes?.[spec.name] : undefined;
    if (prevRejected && prevHash === configHash) {
      rejected.push(prevRejected);
      skipped.add(spec.name);
      log(`${spec.name}: not kept (cached: +${prevRejected.gainPoints.toFixed(2)} points over ${spec.derivedFrom} on its own task)`);
      continue;
    }
    const prev = same ? previous.models.find((e) => e.name === spec.name) : undefined;
    if (prev && prev.configHash === configHash && existsSync(path) && existsSync(join(dir, evaluation.file))) {
      const bytes = new Uint8Array(await readFile(path));
      if (hash64Hex(bytes) === prev.fileHash) {
        entries.push(prev);
        log(`${spec.name}: reused (config unchanged)`);
        continue;
      }
    }

    const t0 = performance.now();
    gemm ??= await createGemm();
    const { train } = needData();
    const classes = taskClasses(spec.domain.task);
    const labels = taskLabels(spec.domain.task, train.labels);
    const dims = [IMAGE_SIZE, ...cfg.hidden, classes];
    let mlp: Mlp;
    let steps: number;
    const progress = (step: number, loss: number) => {
      if (step % 100 === 0 || step === steps) log(`${spec.name}: step ${step}/${steps} loss ${loss.toFixed(4)}`);
    };
    const transform = spec.domain.transform;
    const augment = transform ? (x: Float32Array, rows: number, rng: Rng) => applyTransform(transform, x, rows, rng) : undefined;
    if (spec.kind === 'head') {
      const parent = await modelOf(spec.derivedFrom!);
      const backbone = parent.layers.slice(0, -1);
      let f = features.get(spec.derivedFrom!);
      if (!f) {
        log(`${spec.name}: computing ${spec.derivedFrom} backbone features once`);
        f = forwardLayers(gemm, backbone, train.images, train.n, true);
        features.set(spec.derivedFrom!, f);
      }
      const featureDim = backbone[backbone.length - 1].outDim;
      const head = initMlp([featureDim, classes], spec.seed, backbone.length + 1);
      steps = Math.max(1, Math.round((spec.epochs * train.n) / cfg.batch));
      trainMlp(gemm, head, f, labels, { steps, batch: cfg.batch, lr: spec.lr, seed: spec.seed, onStep: progress });
      // The backbone is shared bit-exactly: copies of the parent's arrays, never retrained.
      mlp = { layers: [...cloneMlp({ layers: backbone }).layers, ...head.layers] };
    } else {
      if (spec.kind === 'scratch') mlp = initMlp(dims, spec.seed);
      else mlp = cloneMlp(await modelOf(spec.derivedFrom!));
      const pool = domainIndices(spec.domain, train.labels, 0, train.n, spec.poolLimit);
      steps = Math.max(1, Math.round((spec.epochs * pool.length) / cfg.batch));
      trainMlp(gemm, mlp, train.images, labels, { indices: pool, steps, batch: cfg.batch, lr: spec.lr, seed: spec.seed, augment, onStep: progress });
    }
    const heldOut = evaluationSplit(evaluation, 'heldOut');
    const testAccuracy = accuracyOn(gemm, mlp, heldOut);
    let parentAccuracy: number | undefined;
    if (spec.kind === 'finetune' || spec.kind === 'version') {
      parentAccuracy = accuracyOn(gemm, await modelOf(spec.derivedFrom!), heldOut);
      const gainPoints = (testAccuracy - parentAccuracy) * 100;
      if (spec.kind === 'finetune' && gainPoints < MIN_GAIN_POINTS) {
        rejected.push({ name: spec.name, derivedFrom: spec.derivedFrom!, domain: spec.domain, testAccuracy, parentAccuracy, gainPoints });
        skipped.add(spec.name);
        log(`${spec.name}: NOT KEPT: ${(testAccuracy * 100).toFixed(2)}% vs ${spec.derivedFrom} ${(parentAccuracy * 100).toFixed(2)}% on ${domainName(spec.domain)} (+${gainPoints.toFixed(2)} < ${MIN_GAIN_POINTS} points)`);
        continue;
      }
    }
    const bytes = exportMlpOnnx(mlp, { graphName: spec.name, docString: spec.how });
    await writeAtomic(join(dir, evaluation.file), evaluationFileOf(heldOut, INPUT_NAME, [IMAGE_SIZE], OUTPUT_NAME));
    await writeAtomic(path, bytes);
    models.set(spec.name, mlp);
    entries.push({
      name: spec.name, file, task: spec.domain.task, domain: spec.domain, evaluation, testAccuracy, ...(parentAccuracy !== undefined ? { parentAccuracy } : {}),
      derivedFrom: spec.derivedFrom, kind: spec.kind, how: spec.how, classes,
      params: paramCount(mlp), configHash, fileHash: hash64Hex(bytes),
    });
    const vs = parentAccuracy !== undefined ? ` (${spec.derivedFrom}: ${(parentAccuracy * 100).toFixed(2)}%)` : '';
    log(`${spec.name}: trained in ${((performance.now() - t0) / 1000).toFixed(1)} s, held-out accuracy on ${domainName(spec.domain)} ${(testAccuracy * 100).toFixed(2)}%${vs}`);
  }

  const manifest: Manifest = {
    models: entries, rejected, minGainPoints: MIN_GAIN_POINTS, inputName: INPUT_NAME, outputName: OUTPUT_NAME, inputDims: [IMAGE_SIZE], size,
    hidden: cfg.hidden, trainSamples: cfg.trainSamples, testSamples: cfg.testSamples,
  };
  const configHashes = Object.fromEntries(hashes);
  await writeAtomic(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, configHashes }, null, 2) + '\n');
  return manifest;
}

/** The first images of MNIST's test split (clean digits, the zoo's test-set size): demo inputs. */
export function zooTestSplit(size: ZooSize): MnistSplit {
  return loadMnist({ test: SIZES[size].testSamples, train: 0 }).test;
}

/** A model's own evaluation split, regenerated from its manifest recipe. */
export function modelEvaluationSplit(model: ZooModel, which: 'validation' | 'heldOut'): EvaluationSplit {
  return evaluationSplit(model.evaluation, which);
}

/** The architecture families of the zoo: MLP (this file), CNN and ViT (family.ts). */
export const FAMILIES = ['mlp', 'cnn', 'vit'] as const;
export type FamilyName = (typeof FAMILIES)[number];

/** Where a family lives under a zoo folder: the MLP family at its root (as before), others in a subfolder. */
export function familyDir(dir: string, family: FamilyName): string {
  return family === 'mlp' ? dir : join(dir, family);
}

/**
 * Builds (or completes) the named families under `dir`. With `workers` > 1 (default: the
 * standard zoo on up to 2 cores), models train on that many worker threads (parallel.ts); the
 * files are the same either way.
 */
export async function buildFamilies(opts: BuildZooOptions & { families?: readonly FamilyName[]; workers?: number }): Promise<{ family: FamilyName; dir: string; manifest: Manifest }[]> {
  const families = opts.families ?? FAMILIES;
  for (const family of families) {
    if (!FAMILIES.includes(family)) throw new InvalidArgumentError(`unknown zoo family "${family}": use ${FAMILIES.join(', ')}`);
  }
  const workers = opts.workers ?? (opts.size === 'standard' ? Math.min(2, availableParallelism()) : 1);
  const log = opts.onProgress ?? (() => {});
  if (workers > 1) {
    const t0 = performance.now();
    const { buildFamiliesParallel } = await import('./parallel.ts');
    const manifests = await buildFamiliesParallel(families, opts.size, (f) => familyDir(opts.dir, f), workers, log, () => buildZoo({ ...opts, dir: familyDir(opts.dir, 'mlp') }));
    log(`${families.join(', ')} ready in ${((performance.now() - t0) / 1000).toFixed(1)} s on ${workers} workers`);
    return families.map((family) => ({ family, dir: familyDir(opts.dir, family), manifest: family === 'mlp' ? { family: 'mlp', ...manifests.get(family)! } : manifests.get(family)! }));
  }
  const out: { family: FamilyName; dir: string; manifest: Manifest }[] = [];
  for (const family of families) {
    const dir = familyDir(opts.dir, family);
    const t0 = performance.now();
    const manifest = family === 'mlp'
      ? { family: 'mlp', ...(await buildZoo({ ...opts, dir })) }
      : await buildFamily(family === 'cnn' ? cnnArchitecture : vitArchitecture, { size: opts.size, dir, onProgress: opts.onProgress });
    log(`${family} family ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    out.push({ family, dir, manifest });
  }
  return out;
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  const args = process.argv.slice(2);
  const size: ZooSize = args.includes('--tiny') ? 'tiny' : 'standard';
  const outAt = args.indexOf('--out');
  const famAt = args.indexOf('--families');
  const workersAt = args.indexOf('--workers');
  const workers = workersAt >= 0 ? Number(args[workersAt + 1]) : undefined;
  const families = famAt >= 0 && args[famAt + 1] ? (args[famAt + 1].split(',') as FamilyName[]) : FAMILIES;
  const here = dirname(fileURLToPath(import.meta.url));
  const dir = outAt >= 0 && args[outAt + 1] ? resolve(args[outAt + 1]) : join(here, size === 'tiny' ? 'tiny-models' : 'models');
  const t0 = performance.now();
  const built = await buildFamilies({ size, dir, families, workers, onProgress: (m) => { if (!/: step \d+\//.test(m)) console.error(m); } });
  console.error(`zoo (${size}) ready in ${dir}: ${built.reduce((a, b) => a + b.manifest.models.length, 0)} models, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  for (const { family, manifest } of built) {
    console.error(`${family}:`);
    for (const m of manifest.models) {
      const vs = m.parentAccuracy !== undefined ? ` (parent ${(m.parentAccuracy * 100).toFixed(2)}%)` : '';
      console.error(`  ${m.name.padEnd(20)} ${m.kind.padEnd(8)} ${domainName(m.domain).padEnd(28)} ${(m.testAccuracy * 100).toFixed(2).padStart(6)}%  from ${m.derivedFrom ?? '-'}${vs}`);
    }
    for (const r of manifest.rejected) console.error(`  not kept: ${r.name} (+${r.gainPoints.toFixed(2)} points over ${r.derivedFrom} on ${domainName(r.domain)})`);
  }
}
