/**
 * What each zoo model is for, and the data it is scored on. A model's *domain* is its labelling
 * task plus the inputs it is meant for (digits 0-4 only, noisy digits, shifted digits). Every
 * model is trained on its domain and scored on its own held-out split of it, so a fine-tune for
 * noisy digits is judged on noisy digits, where it must beat its base, and never on clean ones,
 * where it and its base look alike.
 *
 * Evaluation data is regenerated from MNIST's test images and a seed, deterministically: test
 * images [0, half) are the validation split (what dedup's accuracy loop may look at), [half, n)
 * the held-out split (what the reported drop is measured on). Pixels are quantised to 1/255 after
 * the transform, so the uint8 evaluation files the zoo writes hold exactly the floats scored here.
 */
import { InvalidArgumentError } from '../../src/errors.ts';
import { IMAGE_SIDE, IMAGE_SIZE, loadMnist, type MnistSplit, type Task, taskLabels } from './mnist.ts';
import { Rng } from './train.ts';

export type Transform = { kind: 'noise'; std: number } | { kind: 'shift'; max: number };

/** A labelling task over a set of inputs. */
export interface Domain {
  task: Task;
  /** Only images of these digits (default: all ten). */
  digits?: number[];
  /** Applied to every image (training: fresh draws per batch; evaluation: seeded, fixed). */
  transform?: Transform;
}

/** How to regenerate a model's evaluation data; recorded in the manifest. */
export interface EvaluationRecipe extends Domain {
  source: 'mnist-test';
  /** MNIST test images [from, to) before the digit filter. */
  validation: { from: number; to: number; seed: number };
  heldOut: { from: number; to: number; seed: number };
  /** The held-out split as an evaluation file beside the model (`tessera dedup --eval`). */
  file: string;
}

/** Short human name of a domain, e.g. `digit on noisy (std 0.6)`. */
export function domainName(d: Domain): string {
  const parts = [d.task];
  if (d.digits) parts.push(`digits ${d.digits.join(',')}`);
  if (d.transform?.kind === 'noise') parts.push(`noise std ${d.transform.std}`);
  if (d.transform?.kind === 'shift') parts.push(`shift <= ${d.transform.max} px`);
  return parts.join(', ');
}

/** Two domains score the same data. */
export function sameDomain(a: Domain, b: Domain): boolean {
  return JSON.stringify([a.task, a.digits ?? null, a.transform ?? null]) === JSON.stringify([b.task, b.digits ?? null, b.transform ?? null]);
}

/** Additive Gaussian pixel noise on one image, clipped to [0, 1]. */
export function addNoise(img: Float32Array, std: number, rng: Rng): void {
  for (let i = 0; i < img.length; i++) {
    const v = img[i] + std * rng.normal();
    img[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
}

/** One image moved by dx, dy in [-max, max] (not both 0) pixels, zero-filled. */
export function shiftImage(img: Float32Array, max: number, rng: Rng, tmp = new Float32Array(IMAGE_SIZE)): void {
  let dx = 0, dy = 0;
  while (dx === 0 && dy === 0) {
    dx = rng.int(2 * max + 1) - max;
    dy = rng.int(2 * max + 1) - max;
  }
  tmp.fill(0);
  for (let y = 0; y < IMAGE_SIDE; y++) {
    const sy = y - dy;
    if (sy < 0 || sy >= IMAGE_SIDE) continue;
    for (let c = 0; c < IMAGE_SIDE; c++) {
      const sx = c - dx;
      if (sx >= 0 && sx < IMAGE_SIDE) tmp[y * IMAGE_SIDE + c] = img[sy * IMAGE_SIDE + sx];
    }
  }
  img.set(tmp);
}

/** Applies a transform to `rows` images in place (training batches). */
export function applyTransform(t: Transform | undefined, x: Float32Array, rows: number, rng: Rng): void {
  if (!t) return;
  const tmp = new Float32Array(IMAGE_SIZE);
  for (let r = 0; r < rows; r++) {
    const img = x.subarray(r * IMAGE_SIZE, (r + 1) * IMAGE_SIZE);
    if (t.kind === 'noise') addNoise(img, t.std, rng);
    else shiftImage(img, t.max, rng, tmp);
  }
}

/** Indices of a split's samples in [from, to) whose digit the domain keeps. */
export function domainIndices(d: Domain, labels: Uint8Array, from = 0, to = labels.length, limit = Infinity): Int32Array {
  const keep: number[] = [];
  const digits = d.digits ? new Set(d.digits) : null;
  for (let i = from; i < to && keep.length < limit; i++) if (!digits || digits.has(labels[i])) keep.push(i);
  return Int32Array.from(keep);
}

/** The evaluation recipe of a domain over a test split of `testSamples` images. */
export function recipeOf(d: Domain, testSamples: number, seed: number, file: string): EvaluationRecipe {
  const half = Math.floor(testSamples / 2);
  return {
    task: d.task, ...(d.digits ? { digits: d.digits } : {}), ...(d.transform ? { transform: d.transform } : {}),
    source: 'mnist-test',
    validation: { from: 0, to: half, seed },
    heldOut: { from: half, to: testSamples, seed: seed + 1 },
    file,
  };
}

/** Evaluation images of one split: uint8 pixels (the file format) and their floats, labels under the task. */
export interface EvaluationSplit extends MnistSplit {
  pixels: Uint8Array;
  /** Labels under the domain's task (not digits). */
  taskLabels: Uint8Array;
}

/** Regenerates a split of a recipe, bit-identically. */
export function evaluationSplit(r: EvaluationRecipe, which: 'validation' | 'heldOut'): EvaluationSplit {
  const { from, to, seed } = r[which];
  if (!(to > from)) throw new InvalidArgumentError(`evaluation split ${which} is empty ([${from}, ${to}))`);
  const test = loadMnist({ train: 0, test: to }).test;
  const idx = domainIndices(r, test.labels, from, to);
  const n = idx.length;
  const images = new Float32Array(n * IMAGE_SIZE);
  const pixels = new Uint8Array(n * IMAGE_SIZE);
  const digits = new Uint8Array(n);
  const rng = new Rng(seed);
  const tmp = new Float32Array(IMAGE_SIZE);
  for (let k = 0; k < n; k++) {
    const img = images.subarray(k * IMAGE_SIZE, (k + 1) * IMAGE_SIZE);
    img.set(test.images.subarray(idx[k] * IMAGE_SIZE, (idx[k] + 1) * IMAGE_SIZE));
    if (r.transform?.kind === 'noise') addNoise(img, r.transform.std, rng);
    else if (r.transform?.kind === 'shift') shiftImage(img, r.transform.max, rng, tmp);
    for (let i = 0; i < IMAGE_SIZE; i++) {
      const q = Math.round(img[i] * 255);
      pixels[k * IMAGE_SIZE + i] = q;
      img[i] = q / 255;
    }
    digits[k] = test.labels[idx[k]];
  }
  return { images, pixels, labels: digits, taskLabels: taskLabels(r.task, digits), n };
}

/**
 * The evaluation file of a split, in the format `tessera dedup --eval` reads (src/dedup/evaluate.ts):
 * uint8 pixels in base64 with scale 1/255, task labels, input dims `[n, ...inputDims]`.
 */
export function evaluationFileOf(split: EvaluationSplit, inputName: string, inputDims: number[], outputName: string): string {
  return JSON.stringify({
    input: inputName,
    output: outputName,
    dims: [split.n, ...inputDims],
    dataType: 'uint8',
    scale: 1 / 255,
    data: Buffer.from(split.pixels.buffer, split.pixels.byteOffset, split.pixels.byteLength).toString('base64'),
    labels: Array.from(split.taskLabels),
  });
}
