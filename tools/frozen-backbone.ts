/**
 * Frozen-backbone variants of a real ONNX model, as a family of fine-tunes looks: every variant
 * keeps the first two thirds of the weight bytes (in graph order: the backbone) bit-identical and
 * has the rest (the last layers and the head) perturbed deterministically, as fine-tuning the top
 * of a frozen network would. Used by the serving benchmark (PP-OCRv4 rec, bench/serving.ts) and the
 * real-graph server tests (PP-OCR cls, test/server-real.test.ts).
 */
import { parseModel, assembleModel } from '../src/onnx/model.ts';
import { mulberry32 } from '../src/random.ts';

export interface Variant {
  name: string;
  bytes: Uint8Array;
}

export interface FrozenBackboneOptions {
  /** Share of weight bytes kept frozen, from the first tensor on (default 2/3). */
  frozen?: number;
  /** Relative size of the perturbation (default 0.02: outputs change, the model stays sane). */
  scale?: number;
  seed?: number;
  /** Index of the first variant made (default 0): a large family is made a few variants at a time. */
  first?: number;
}

/** Variants `first` .. `first + count - 1` of `source`; variant 0 is the unchanged model. Variant v is the same whatever `first`. */
export async function frozenBackboneVariants(source: Uint8Array, count: number, prefix: string, opts: FrozenBackboneOptions = {}): Promise<Variant[]> {
  const { skeleton, tensors } = await parseModel(source);
  const total = tensors.reduce((n, t) => n + t.data.length, 0);
  const frozenBytes = (opts.frozen ?? 2 / 3) * total;
  const scale = opts.scale ?? 0.02;
  let seen = 0;
  const tuned = tensors.map((t) => {
    const frozen = seen + t.data.length <= frozenBytes;
    seen += t.data.length;
    // Trained parameters only: constants such as GELU's 0.5 (fewer than 16 elements) stay.
    return !frozen && t.dtype === 'float32' && t.data.length >= 64;
  });
  const out: Variant[] = [];
  const first = opts.first ?? 0;
  for (let v = first; v < first + count; v++) {
    const rand = mulberry32((opts.seed ?? 1) * 1000 + v);
    const data = tensors.map((t, i) => {
      if (v === 0 || !tuned[i]) return t.data;
      const w = new Float32Array(t.data.slice().buffer);
      for (let j = 0; j < w.length; j++) w[j] *= 1 + scale * (rand() * 2 - 1);
      return new Uint8Array(w.buffer);
    });
    out.push({ name: `${prefix}-${String(v).padStart(2, '0')}`, bytes: assembleModel(skeleton, data) });
  }
  return out;
}
