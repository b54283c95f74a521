/**
 * The model zoo: a family of MLPs trained here on MNIST, related the way real model families are
 * (a base, frozen-backbone heads for other tasks, full fine-tunes at small learning rates, a next
 * version) plus unrelated scratch-trained controls. Deduplication is only interesting on such
 * families. `npm run zoo` builds the standard zoo into bench/zoo/models/ (`--tiny` for the test
 * size, `--out DIR` elsewhere); models already built with the same generator config are reused.
 * Deterministic: the same config gives bit-identical ONNX files.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createGemm, type Gemm } from '../../src/kernels/gemm.ts';
import { hash64Hex } from '../../src/hash.ts';
import { InvalidArgumentError } from '../../src/errors.ts';
import { headOf, IMAGE_SIZE, loadMnist, type MnistSplit, type Task, taskClasses, taskLabels } from './mnist.ts';
import { exportMlpOnnx, INPUT_NAME, OUTPUT_NAME, readMlpOnnx } from './onnx-export.ts';
import { cloneMlp, forwardLayers, gaussianNoise, initMlp, paramCount, randomShift, trainMlp, type Augment, type Mlp } from './train.ts';
import { evaluateMlp } from './evaluate.ts';

export { evaluateMlp, evaluateOnnx, onnxLogits } from './evaluate.ts';
export { loadMnist, taskClasses, taskLabel, taskLabels } from './mnist.ts';

export type ZooSize = 'standard' | 'tiny';

export interface ZooModel {
  name: string;
  /** File name inside the zoo folder. */
  file: string;
  task: Task;
  /** Accuracy on the zoo's test split (MNIST test, the first `testSamples` images), under `task`. */
  testAccuracy: number;
  derivedFrom: string | null;
  how: string;
  classes: number;
  params: number;
  /** Hash of everything that determines this model (its spec, the size, its parent's configHash). */
  configHash: string;
  /** xxHash64 of the file bytes: a changed file is rebuilt, not trusted. */
  fileHash: string;
}

export interface Manifest {
  models: ZooModel[];
  inputName: string;
  outputName: string;
  size: ZooSize;
  /** Layer widths, input to the widest head (784, hidden..., classes vary per model). */
  hidden: number[];
  trainSamples: number;
  testSamples: number;
}

/** Bump when training or export code changes results, so existing zoos rebuild. */
const GENERATOR_VERSION = 1;

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
  task: Task;
  derivedFrom: string | null;
  /** scratch: all layers from He init; head: parent's backbone frozen, last layer new; finetune: all layers from the parent. */
  kind: 'scratch' | 'head' | 'finetune';
  how: string;
  seed: number;
  /** Passes over the training pool. */
  epochs: number;
  lr: number;
  augment?: { kind: 'noise'; std: number } | { kind: 'shift'; max: number };
  /** Train only on images of these digits ... */
  digits?: number[];
  /** ... and only on the first this many of them. */
  poolLimit?: number;
}

function zooSpecs(size: ZooSize): ModelSpec[] {
  const std = size === 'standard';
  // Standard: few epochs so the zoo builds in minutes; tiny: more passes over far fewer samples.
  const baseEpochs = std ? 2 : 6;
  const ftEpochs = std ? 0.25 : 1;
  const headEpochs = std ? 3 : 6;
  const ftLr = std ? 1e-4 : 3e-4;
  const head = (name: string, task: Task, seed: number): ModelSpec => ({
    name, task, derivedFrom: 'base-digit', kind: 'head', seed, epochs: headEpochs, lr: 3e-3,
    how: `fc1 and fc2 copied from base-digit and frozen; a new last layer trained for the ${task} task.`,
  });
  const all: ModelSpec[] = [
    { name: 'base-digit', task: 'digit', derivedFrom: null, kind: 'scratch', seed: 1, epochs: baseEpochs, lr: 1e-3,
      how: `Trained from scratch (He init, seed 1) on the digit task, Adam, ${baseEpochs} epochs.` },
    head('head-parity', 'parity', 11),
    head('head-gt4', 'gt4', 12),
    head('head-onevsrest-3', 'onevsrest-3', 13),
    head('head-onevsrest-7', 'onevsrest-7', 14),
    head('head-mod3', 'mod3', 15),
    { name: 'ft-noisy', task: 'digit', derivedFrom: 'base-digit', kind: 'finetune', seed: 21, epochs: ftEpochs, lr: ftLr,
      augment: { kind: 'noise', std: 0.3 },
      how: `All layers of base-digit fine-tuned at a small learning rate on images with Gaussian noise (std 0.3), ${ftEpochs} epoch.` },
    { name: 'ft-shifted', task: 'digit', derivedFrom: 'base-digit', kind: 'finetune', seed: 22, epochs: ftEpochs, lr: ftLr,
      augment: { kind: 'shift', max: 2 },
      how: `All layers of base-digit fine-tuned at a small learning rate on images shifted by 1-2 pixels, ${ftEpochs} epoch.` },
    { name: 'ft-parity-full', task: 'parity', derivedFrom: 'head-parity', kind: 'finetune', seed: 23, epochs: ftEpochs, lr: ftLr,
      how: `All layers of head-parity (backbone included) fine-tuned at a small learning rate on the parity task, ${ftEpochs} epoch.` },
    { name: 'ft-subset', task: 'digit', derivedFrom: 'base-digit', kind: 'finetune', seed: 24, epochs: 1, lr: ftLr,
      digits: [0, 1, 2, 3, 4], poolLimit: std ? 6000 : 600,
      how: `All layers of base-digit fine-tuned at a small learning rate on ${std ? 6000 : 600} images of digits 0-4 only (one pass).` },
    { name: 'ft-v2', task: 'digit', derivedFrom: 'base-digit', kind: 'finetune', seed: 25, epochs: std ? 1 : 3, lr: 3e-4,
      how: `A next version: base-digit trained ${std ? 1 : 3} more epoch(s) on the digit task (fresh Adam, lower learning rate).` },
    { name: 'scratch-seed2', task: 'digit', derivedFrom: null, kind: 'scratch', seed: 2, epochs: std ? 0.5 : baseEpochs, lr: 1e-3,
      how: 'Negative control: same architecture and task, trained from scratch with seed 2 (unrelated weights).' },
    { name: 'scratch-seed3', task: 'digit', derivedFrom: null, kind: 'scratch', seed: 3, epochs: std ? 0.5 : baseEpochs, lr: 1e-3,
      how: 'Negative control: same architecture and task, trained from scratch with seed 3 (unrelated weights).' },
  ];
  if (std) return all;
  const tiny = new Set(['base-digit', 'head-parity', 'head-gt4', 'ft-noisy', 'ft-v2', 'ft-parity-full', 'scratch-seed2']);
  return all.filter((s) => tiny.has(s.name));
}

function augmentOf(spec: ModelSpec): Augment | undefined {
  if (!spec.augment) return undefined;
  return spec.augment.kind === 'noise' ? gaussianNoise(spec.augment.std) : randomShift(spec.augment.max);
}

function trainingPool(spec: ModelSpec, train: MnistSplit): Int32Array {
  const keep: number[] = [];
  const digits = spec.digits ? new Set(spec.digits) : null;
  for (let i = 0; i < train.n && keep.length < (spec.poolLimit ?? Infinity); i++) {
    if (!digits || digits.has(train.labels[i])) keep.push(i);
  }
  return Int32Array.from(keep);
}

function configHashOf(spec: ModelSpec, size: SizeConfig, parentHash: string | null): string {
  const text = JSON.stringify({ GENERATOR_VERSION, size, spec, parentHash });
  return hash64Hex(new TextEncoder().encode(text));
}

async function readManifest(dir: string): Promise<Manifest | null> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    return Array.isArray(m.models) ? m : null;
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

/** Builds (or completes) the zoo in `dir`, reusing every model whose config and file are unchanged. */
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

  const modelOf = async (name: string): Promise<Mlp> => {
    let m = models.get(name);
    if (!m) {
      m = readMlpOnnx(new Uint8Array(await readFile(join(dir, `${name}.onnx`))));
      models.set(name, m);
    }
    return m;
  };

  for (const spec of specs) {
    const parentHash = spec.derivedFrom ? hashes.get(spec.derivedFrom)! : null;
    const configHash = configHashOf(spec, cfg, parentHash);
    hashes.set(spec.name, configHash);
    const file = `${spec.name}.onnx`;
    const path = join(dir, file);
    const prev = previous?.size === size ? previous.models.find((e) => e.name === spec.name) : undefined;
    if (prev && prev.configHash === configHash && existsSync(path)) {
      const bytes = new Uint8Array(await readFile(path));
      if (hash64Hex(bytes) === prev.fileHash) {
        entries.push(prev);
        log(`${spec.name}: reused (config unchanged)`);
        continue;
      }
    }

    const t0 = performance.now();
    gemm ??= await createGemm();
    const { train, test } = needData();
    const classes = taskClasses(spec.task);
    const labels = taskLabels(spec.task, train.labels);
    const dims = [IMAGE_SIZE, ...cfg.hidden, classes];
    let mlp: Mlp;
    let steps: number;
    const progress = (step: number, loss: number) => {
      if (step % 100 === 0 || step === steps) log(`${spec.name}: step ${step}/${steps} loss ${loss.toFixed(4)}`);
    };
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
      const pool = trainingPool(spec, train);
      steps = Math.max(1, Math.round((spec.epochs * pool.length) / cfg.batch));
      trainMlp(gemm, mlp, train.images, labels, { indices: pool, steps, batch: cfg.batch, lr: spec.lr, seed: spec.seed, augment: augmentOf(spec), onStep: progress });
    }
    const testAccuracy = evaluateMlp(gemm, mlp, test, spec.task);
    const bytes = exportMlpOnnx(mlp, { graphName: spec.name, docString: spec.how });
    await writeAtomic(path, bytes);
    models.set(spec.name, mlp);
    entries.push({
      name: spec.name, file, task: spec.task, testAccuracy, derivedFrom: spec.derivedFrom, how: spec.how, classes,
      params: paramCount(mlp), configHash, fileHash: hash64Hex(bytes),
    });
    log(`${spec.name}: trained in ${((performance.now() - t0) / 1000).toFixed(1)} s, test accuracy ${(testAccuracy * 100).toFixed(2)}%`);
  }

  const manifest: Manifest = {
    models: entries, inputName: INPUT_NAME, outputName: OUTPUT_NAME, size,
    hidden: cfg.hidden, trainSamples: cfg.trainSamples, testSamples: cfg.testSamples,
  };
  await writeAtomic(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/** The zoo's test split (what `testAccuracy` was measured on). */
export function zooTestSplit(size: ZooSize): MnistSplit {
  return loadMnist({ test: SIZES[size].testSamples, train: 0 }).test;
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  const args = process.argv.slice(2);
  const size: ZooSize = args.includes('--tiny') ? 'tiny' : 'standard';
  const outAt = args.indexOf('--out');
  const here = dirname(fileURLToPath(import.meta.url));
  const dir = outAt >= 0 && args[outAt + 1] ? resolve(args[outAt + 1]) : join(here, 'models', size === 'tiny' ? 'tiny' : '');
  const t0 = performance.now();
  const manifest = await buildZoo({ size, dir, onProgress: (m) => console.error(m) });
  console.error(`zoo (${size}) ready in ${dir}: ${manifest.models.length} models, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  for (const m of manifest.models) {
    console.error(`  ${m.name.padEnd(18)} ${m.task.padEnd(12)} ${(m.testAccuracy * 100).toFixed(2).padStart(6)}%  from ${m.derivedFrom ?? '-'}`);
  }
}
