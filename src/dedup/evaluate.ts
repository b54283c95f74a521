/**
 * Scoring a candidate dedup state without committing it: the model's weights (skeleton order) go
 * to a fresh session from the session factory the caller gives (dedup sits beside the runtime and
 * never imports it; the entry points pass `weightsSessionFactory()` from src/runtime) and are
 * scored on an evaluation set.
 *
 * - labelled: accuracy (argmax of the output's last axis vs the set's labels);
 * - agreement (label-free): the fraction of samples whose prediction is the one the original model
 *   makes. Accuracy can only change on samples whose prediction changed, so
 *   |accuracy drop| <= 1 - agreement: bounding the disagreement bounds any labelled drop.
 * Without an evaluation set, agreement is measured on seeded synthetic inputs in [0, 1) (a weaker
 * guarantee than the user's own inputs; the CLI says so).
 */
import { InferenceError, InvalidArgumentError } from '../errors.ts';
import type { ModelEntry } from '../catalog/catalog.ts';
import { mulberry32 } from '../random.ts';

/** An output tensor as sessions return it. */
export interface SessionOutput {
  data: unknown;
  dims: readonly number[];
}

/** What the evaluator needs of an inference session. */
export interface EvalSession {
  readonly name: string;
  run(feeds: Record<string, { data: Float32Array; dims: number[] }>): Promise<Record<string, SessionOutput>>;
  release(): Promise<void>;
}

/** Makes a session running `model` with these weights (skeleton order). */
export type SessionFactory = (model: ModelEntry, weights: Uint8Array[]) => Promise<EvalSession>;

/**
 * An evaluation set, as given in an `--eval` JSON file (one object):
 *
 * | field | meaning |
 * | --- | --- |
 * | `input` | name of the model input the samples feed |
 * | `dims` | `[n, ...]`: the input shape of all samples together; samples are rows along dim 0 |
 * | `data` | the n x ... input values: a JSON list of numbers, or a base64 string (see `dataType`) |
 * | `dataType` | with base64 `data`: `"float32"` (little-endian) or `"uint8"` (each byte times `scale`) |
 * | `scale` | with `"uint8"`: the multiplier (default 1; the zoo writes 1/255 for pixels) |
 * | `labels` | optional: one class index per sample; without labels scoring is label-free agreement |
 * | `output` | optional: the output scored (default: the model's first output) |
 *
 * `--eval` may also name a folder: each model is then scored on `<folder>/<model>.eval.json`
 * (what `npm run zoo` writes beside its models: each model's own held-out split).
 */
export interface EvalSet {
  input: string;
  dims: number[];
  data: Float32Array;
  labels?: Int32Array;
  /** The output scored (default: the model's first output). */
  output?: string;
}

export interface ScoreOptions {
  /** The least score that passes: below it the exact value is not needed. */
  floor?: number;
}

export interface Evaluator {
  readonly kind: 'labelled' | 'agreement';
  /**
   * Score in [0, 1] of the model with these weights (skeleton order). With `floor`, the pass may
   * stop as soon as the score cannot reach `floor` any more, and then returns a value below
   * `floor` (an upper bound on the score): a state that fails the bound is known to fail after
   * part of the set, while every score at or above `floor` is exact.
   */
  score(weights: Uint8Array[], opts?: ScoreOptions): Promise<number>;
  /** Number of `score` calls so far (each one a full pass over the evaluation set). */
  readonly evaluations: number;
}

function decodeBase64(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Reads an evaluation set from parsed JSON; structural problems are INVALID_ARGUMENT. */
export function parseEvalSet(json: unknown, source = 'evaluation set'): EvalSet {
  const bad = (what: string): never => {
    throw new InvalidArgumentError(`${source}: ${what}. Expected {"input": "<name>", "dims": [n, ...], "data": [n*... numbers] or "<base64>" with "dataType": "float32" | "uint8" (and "scale"), "labels": [n integers] (optional), "output": "<name>" (optional)}.`);
  };
  if (!json || typeof json !== 'object' || Array.isArray(json)) bad('not a JSON object');
  const o = json as Record<string, unknown>;
  if (typeof o.input !== 'string' || !o.input) bad('"input" must name the model input');
  if (!Array.isArray(o.dims) || !o.dims.length || o.dims.some((d) => !Number.isInteger(d) || (d as number) < 1)) bad('"dims" must be a non-empty list of positive integers');
  const dims = o.dims as number[];
  const n = dims.reduce((a, d) => a * d, 1);
  let data: Float32Array;
  if (typeof o.data === 'string') {
    const bytes = decodeBase64(o.data);
    if (!bytes) bad('"data" as a string must be base64');
    if (o.dataType === 'float32') {
      if (bytes!.length !== n * 4) bad(`base64 float32 "data" must hold ${n} values (${n * 4} bytes) for dims [${dims.join(', ')}], got ${bytes!.length} bytes`);
      data = new Float32Array(bytes!.buffer, 0, n).slice();
    } else if (o.dataType === 'uint8') {
      if (bytes!.length !== n) bad(`base64 uint8 "data" must hold ${n} bytes for dims [${dims.join(', ')}], got ${bytes!.length}`);
      const scale = o.scale === undefined ? 1 : o.scale;
      if (typeof scale !== 'number' || !Number.isFinite(scale)) bad('"scale" must be a finite number');
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = bytes![i] * (scale as number);
    } else {
      return bad('base64 "data" needs "dataType": "float32" or "uint8"');
    }
  } else {
    if (!Array.isArray(o.data) || o.data.length !== n) bad(`"data" must hold ${n} numbers (the product of dims [${dims.join(', ')}]), got ${Array.isArray(o.data) ? o.data.length : typeof o.data}`);
    if ((o.data as unknown[]).some((v) => typeof v !== 'number' || !Number.isFinite(v))) bad('"data" must hold finite numbers only');
    data = Float32Array.from(o.data as number[]);
  }
  let labels: Int32Array | undefined;
  if (o.labels !== undefined) {
    if (!Array.isArray(o.labels) || o.labels.length !== dims[0]) bad(`"labels" must hold one integer per sample (${dims[0]})`);
    if ((o.labels as unknown[]).some((v) => !Number.isInteger(v) || (v as number) < 0)) bad('"labels" must be non-negative integers (class indices)');
    labels = Int32Array.from(o.labels as number[]);
  }
  if (o.output !== undefined && typeof o.output !== 'string') bad('"output" must be a string');
  return { input: o.input as string, dims, data, labels, output: o.output as string | undefined };
}

/** Checks a set fits the model's inputs and outputs (INVALID_FEEDS otherwise). */
export function checkEvalSet(model: ModelEntry, set: EvalSet): void {
  const where = `evaluation set for model "${model.name}"`;
  const input = model.inputs.find((i) => i.name === set.input);
  if (!input) throw new InferenceError('INVALID_FEEDS', `${where}: the model has no input "${set.input}"; its inputs are: ${model.inputs.map((i) => i.name).join(', ')}.`);
  if (model.inputs.length !== 1) throw new InferenceError('INVALID_FEEDS', `${where}: the model takes ${model.inputs.length} inputs (${model.inputs.map((i) => i.name).join(', ')}); an evaluation set feeds one.`);
  if (input.dtype !== 'float32') throw new InferenceError('INVALID_FEEDS', `${where}: input "${input.name}" is ${input.dtype}; evaluation sets feed float32 inputs.`);
  if (input.shape.length && input.shape.length !== set.dims.length) throw new InferenceError('INVALID_FEEDS', `${where}: input "${input.name}" has rank ${input.shape.length} ([${input.shape.map((d) => d ?? '?').join(', ')}]), the set's dims are [${set.dims.join(', ')}].`);
  input.shape.forEach((d, i) => {
    if (typeof d === 'number' && d >= 0 && set.dims[i] !== d && !(i === 0 && d === 1 && set.dims[0] >= 1)) {
      throw new InferenceError('INVALID_FEEDS', `${where}: input "${input.name}" dim ${i} must be ${d}, the set's dims are [${set.dims.join(', ')}].`);
    }
  });
  if (set.output !== undefined && !model.outputs.some((o) => o.name === set.output)) {
    throw new InferenceError('INVALID_FEEDS', `${where}: the model has no output "${set.output}"; its outputs are: ${model.outputs.map((o) => o.name).join(', ')}.`);
  }
}

/** Seeded synthetic inputs in [0, 1) for label-free scoring when the user gives no set. */
export function syntheticEvalSet(model: ModelEntry, samples = 256, seed = 7): EvalSet {
  if (model.inputs.length !== 1) throw new InvalidArgumentError(`model "${model.name}" takes ${model.inputs.length} inputs: give an evaluation set (--eval) to score it.`);
  const input = model.inputs[0];
  if (input.dtype !== 'float32') throw new InvalidArgumentError(`model "${model.name}" input "${input.name}" is ${input.dtype}: give an evaluation set (--eval) to score it.`);
  const dims = input.shape.map((d, i) => {
    if (typeof d === 'number' && d >= 1) return d;
    if (i === 0) return samples;
    throw new InvalidArgumentError(`model "${model.name}" input "${input.name}" has a symbolic dim ${i} ([${input.shape.map((s) => s ?? '?').join(', ')}]): give an evaluation set (--eval) to score it.`);
  });
  if (!dims.length) throw new InvalidArgumentError(`model "${model.name}" input "${input.name}" has no known shape: give an evaluation set (--eval) to score it.`);
  const r = mulberry32(seed);
  const n = dims.reduce((a, d) => a * d, 1);
  return { input: input.name, dims, data: Float32Array.from({ length: n }, () => r()) };
}

/** Predicted class per sample: argmax over the output's last axis (rows = the rest). */
function predictions(out: SessionOutput, samples: number): Int32Array {
  const y = out.data as Float32Array;
  const perSample = y.length / samples;
  const classes = out.dims.length ? out.dims[out.dims.length - 1] : 1;
  if (!Number.isInteger(perSample) || perSample % classes) throw new InferenceError('INFERENCE_FAILED', `output "${out.dims}" does not split into ${samples} samples.`);
  const rows = y.length / classes;
  const pred = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (y[r * classes + c] > y[r * classes + best]) best = c;
    pred[r] = best;
  }
  return pred;
}

/**
 * Rows of the set's outputs, predicted in batches along dim 0. `goOn`, when given, sees each
 * batch's predictions and returns false to stop early (what was predicted so far is returned).
 */
async function predict(
  session: EvalSession,
  set: EvalSet,
  outputName: string,
  batch: number,
  goOn?: (part: { pred: Int32Array; raw: Float32Array; r0: number; rows: number; classes: number }) => boolean,
): Promise<{ pred: Int32Array; classes: number; raw: Float32Array }> {
  const n = set.dims[0];
  const per = set.data.length / n;
  const preds: Int32Array[] = [];
  const raws: Float32Array[] = [];
  let classes = 0;
  for (let r0 = 0; r0 < n; r0 += batch) {
    const rows = Math.min(batch, n - r0);
    const out = await session.run({ [set.input]: { data: set.data.subarray(r0 * per, (r0 + rows) * per), dims: [rows, ...set.dims.slice(1)] } });
    const t = out[outputName];
    if (!t) throw new InferenceError('INFERENCE_FAILED', `model "${session.name}" gave no output "${outputName}".`);
    classes = t.dims.length ? t.dims[t.dims.length - 1] : 1;
    const pred = predictions(t, rows);
    preds.push(pred);
    raws.push(t.data as Float32Array);
    if (goOn && r0 + rows < n && !goOn({ pred, raw: t.data as Float32Array, r0, rows, classes })) break;
  }
  const concat = <T extends Int32Array | Float32Array>(parts: T[], make: (n: number) => T): T => {
    const all = make(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return all;
  };
  return { pred: concat(preds, (k) => new Int32Array(k)), classes, raw: concat(raws, (k) => new Float32Array(k)) };
}

/**
 * Batches of a pass that may stop early: about a sixth of the set (at least 64 samples), so a
 * state far below the bound costs a sixth of a pass. A full pass uses `batch`.
 */
function earlyExitBatch(samples: number, batch: number): number {
  return Math.min(batch, Math.max(64, Math.ceil(samples / 6)));
}

export interface EvaluatorOptions {
  /** Samples per inference call (default 500). */
  batch?: number;
}

/**
 * An evaluator for `model`: labelled accuracy when `set` has labels, agreement with the outputs of
 * `originalWeights` otherwise (computed once, at the first score: one more evaluation).
 */
export async function createEvaluator(model: ModelEntry, originalWeights: Uint8Array[], set: EvalSet, openSession: SessionFactory, opts: EvaluatorOptions = {}): Promise<Evaluator> {
  checkEvalSet(model, set);
  const outputName = set.output ?? model.outputs[0]?.name;
  if (!outputName) throw new InferenceError('INVALID_FEEDS', `model "${model.name}" has no outputs to score.`);
  const batch = opts.batch ?? 500;
  let evaluations = 0;
  const samples = set.dims[0];
  /** One pass; `matches(part)` counts a batch's samples that score, to stop once `floor` is out of reach. */
  const run = async (weights: Uint8Array[], floor?: number, matches?: (part: { pred: Int32Array; raw: Float32Array; r0: number; rows: number; classes: number }) => number) => {
    evaluations++;
    const session = await openSession(model, weights);
    try {
      if (floor === undefined || !matches) return { ...(await predict(session, set, outputName, batch)), upperBound: undefined as number | undefined };
      let scored = 0;
      let seen = 0;
      let stopped = false;
      const out = await predict(session, set, outputName, earlyExitBatch(samples, batch), (part) => {
        // Only where a batch gives one prediction per sample is a count of samples a bound.
        if (part.pred.length !== part.rows || (part.classes <= 1 && part.raw.length !== part.rows)) return true;
        scored += matches(part);
        seen += part.rows;
        // Even if every remaining sample scored, the pass would end below the floor.
        stopped = (scored + (samples - seen)) / samples < floor - 1e-12;
        return !stopped;
      });
      return { ...out, upperBound: stopped ? (scored + (samples - seen)) / samples : undefined };
    } finally {
      await session.release();
    }
  };
  if (set.labels) {
    const labels = set.labels;
    return {
      kind: 'labelled',
      get evaluations() { return evaluations; },
      async score(weights, opts = {}) {
        const labelled = (part: { pred: Int32Array; r0: number }) => {
          let ok = 0;
          for (let i = 0; i < part.pred.length; i++) if (part.pred[i] === labels[part.r0 + i]) ok++;
          return ok;
        };
        const { pred, classes, upperBound } = await run(weights, opts.floor, labelled);
        if (upperBound !== undefined) return upperBound;
        if (pred.length !== labels.length) throw new InferenceError('INVALID_FEEDS', `evaluation set for model "${model.name}": ${labels.length} labels, the model gives ${pred.length} predictions.`);
        let ok = 0;
        for (let i = 0; i < labels.length; i++) {
          if (labels[i] >= classes) throw new InferenceError('INVALID_FEEDS', `evaluation set for model "${model.name}": label ${labels[i]} at sample ${i}, the model has ${classes} classes.`);
          if (pred[i] === labels[i]) ok++;
        }
        return ok / labels.length;
      },
    };
  }
  // The original outputs are computed on the first score, so a model with nothing to try costs no evaluation.
  let pending: ReturnType<typeof run> | undefined;
  return {
    kind: 'agreement',
    get evaluations() { return evaluations; },
    async score(weights, opts = {}) {
      const reference = await (pending ??= run(originalWeights));
      // Samples of a batch (at row r0) whose prediction agrees with the original model's.
      const agreeing = (part: { pred: Int32Array; raw: Float32Array; r0: number; classes: number }) => {
        let same = 0;
        if (part.classes > 1) {
          for (let i = 0; i < part.pred.length; i++) if (part.pred[i] === reference.pred[part.r0 + i]) same++;
          return same;
        }
        // A single output per sample (regression): agree when within 1% (plus a small absolute slack).
        for (let i = 0; i < part.raw.length; i++) {
          const want = reference.raw[part.r0 + i];
          if (Math.abs(part.raw[i] - want) <= 1e-3 + 1e-2 * Math.abs(want)) same++;
        }
        return same;
      };
      const { pred, classes, raw, upperBound } = await run(weights, opts.floor, agreeing);
      // A pass stopped early: the samples it saw plus, at best, all the others, still below the floor.
      if (upperBound !== undefined) return upperBound;
      return agreeing({ pred, raw, r0: 0, classes }) / (classes > 1 ? pred.length : raw.length);
    },
  };
}
