/**
 * A model served from the store: weights assembled from pages, handed to ONNX Runtime.
 *
 * How weights reach the runtime is a measured choice (`npm run bench -- store`, docs/benchmarks.md):
 * - 'external': the skeleton marks every weight as external data in one buffer, passed through
 *   the `externalData` session option. No protobuf encoding of weights; runs as fast as inline.
 * - 'inline': the skeleton re-encoded with weights as raw_data (a full ONNX file in memory).
 */
import type * as OrtCommon from 'onnxruntime-common';
import { InferenceError, TesseraError } from '../errors.ts';
import { assembleModel, assembleModelExternal } from '../onnx/model.ts';
import type { TensorIOInfo } from '../catalog/catalog.ts';
import { tensorData } from '../onnx/tensor-values.ts';
import { defaultOrt, type OrtModule } from './ort.ts';

export type WeightMode = 'external' | 'inline';

export interface SessionOptions {
  ort?: OrtModule;
  mode?: WeightMode;
  /** Passed to onnxruntime's InferenceSession.create. */
  sessionOptions?: OrtCommon.InferenceSession.SessionOptions;
}

/** A feed as plain data (what the CLI reads from JSON) or a runtime tensor. */
export type Feed = OrtCommon.Tensor | { data: ArrayLike<number | bigint | string | boolean> | ArrayBufferView; dims: number[]; dtype?: string };

export class ModelSession {
  private constructor(
    readonly name: string,
    private readonly ort: OrtModule,
    private readonly session: OrtCommon.InferenceSession,
    readonly inputs: TensorIOInfo[],
    readonly outputs: TensorIOInfo[],
    /** Bytes of weights handed to the runtime. */
    readonly weightBytes: number,
  ) {}

  static async create(
    name: string,
    skeleton: Uint8Array,
    weights: Uint8Array[],
    io: { inputs: TensorIOInfo[]; outputs: TensorIOInfo[] },
    opts: SessionOptions = {},
  ): Promise<ModelSession> {
    const ort = opts.ort ?? (await defaultOrt());
    const mode = opts.mode ?? 'external';
    let session: OrtCommon.InferenceSession;
    try {
      const so = opts.sessionOptions ?? {};
      if (mode === 'inline') {
        session = await ort.InferenceSession.create(weights.length ? assembleModel(skeleton, weights) : skeleton, so);
      } else {
        const { model, externalData, location } = assembleModelExternal(skeleton, weights);
        // onnxruntime-node refuses an empty external buffer ("contains null pointers").
        const options = externalData.length ? { ...so, externalData: [{ path: location, data: externalData }] } : so;
        session = await ort.InferenceSession.create(model, options as OrtCommon.InferenceSession.SessionOptions);
      }
    } catch (e) {
      throw new InferenceError('INFERENCE_FAILED', `onnxruntime cannot load model "${name}": ${(e as Error).message}`, { cause: e });
    }
    const weightBytes = weights.reduce((n, w) => n + w.length, 0);
    return new ModelSession(name, ort, session, io.inputs, io.outputs, weightBytes);
  }

  /** Converts plain feeds to runtime tensors, checking names, dtypes and static dims. */
  toTensors(feeds: Record<string, Feed>): Record<string, OrtCommon.Tensor> {
    const out: Record<string, OrtCommon.Tensor> = {};
    const expected = new Map(this.inputs.map((i) => [i.name, i]));
    for (const name of Object.keys(feeds)) {
      if (!expected.has(name)) throw new InferenceError('INVALID_FEEDS', `model "${this.name}" has no input "${name}"; its inputs are: ${this.inputs.map((i) => i.name).join(', ')}.`);
    }
    for (const info of this.inputs) {
      const feed = feeds[info.name];
      if (feed === undefined) throw new InferenceError('INVALID_FEEDS', `model "${this.name}" needs input "${info.name}" (${info.dtype} [${info.shape.map((d) => d ?? '?').join(', ')}]).`);
      let tensor: OrtCommon.Tensor;
      if (feed instanceof this.ort.Tensor) tensor = feed as OrtCommon.Tensor;
      else {
        const f = feed as Exclude<Feed, OrtCommon.Tensor>;
        const dtype = f.dtype ?? info.dtype;
        if (!Array.isArray(f.dims) || f.dims.some((d) => !Number.isInteger(d) || d < 0)) throw new InferenceError('INVALID_FEEDS', `input "${info.name}": dims must be a list of non-negative integers.`);
        const n = f.dims.reduce((a, d) => a * d, 1);
        // Values checked and converted for every dtype (float16 as numbers, int64 as strings...).
        const data = tensorData(dtype, f.data, `input "${info.name}"`);
        if (data.length !== n) throw new InferenceError('INVALID_FEEDS', `input "${info.name}": ${data.length} values given, dims [${f.dims.join(', ')}] need ${n}.`);
        tensor = new this.ort.Tensor(dtype as any, data, f.dims);
      }
      if (tensor.type !== info.dtype) throw new InferenceError('INVALID_FEEDS', `input "${info.name}" must be ${info.dtype}, got ${tensor.type}.`);
      // An empty shape means rank unknown (or scalar): nothing to check against.
      if (info.shape.length && info.shape.length !== tensor.dims.length) throw new InferenceError('INVALID_FEEDS', `input "${info.name}" must have rank ${info.shape.length} ([${info.shape.map((d) => d ?? '?').join(', ')}]), got [${tensor.dims.join(', ')}].`);
      info.shape.forEach((d, i) => {
        if (typeof d === 'number' && d >= 0 && tensor.dims[i] !== d) throw new InferenceError('INVALID_FEEDS', `input "${info.name}" dim ${i} must be ${d}, got ${tensor.dims[i]} (shape [${tensor.dims.join(', ')}]).`);
      });
      out[info.name] = tensor;
    }
    return out;
  }

  async run(feeds: Record<string, Feed>): Promise<Record<string, OrtCommon.Tensor>> {
    const tensors = this.toTensors(feeds);
    try {
      return (await this.session.run(tensors)) as Record<string, OrtCommon.Tensor>;
    } catch (e) {
      if (e instanceof TesseraError) throw e;
      throw new InferenceError('INFERENCE_FAILED', `model "${this.name}" failed to run: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Runs tensors already checked by toTensors, plus extra inputs such as weights fed per run. */
  async runTensors(tensors: Record<string, OrtCommon.Tensor>): Promise<Record<string, OrtCommon.Tensor>> {
    try {
      return (await this.session.run(tensors)) as Record<string, OrtCommon.Tensor>;
    } catch (e) {
      throw new InferenceError('INFERENCE_FAILED', `model "${this.name}" failed to run: ${(e as Error).message}`, { cause: e });
    }
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
