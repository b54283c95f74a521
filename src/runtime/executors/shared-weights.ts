/**
 * Shared-weights executor: an onnxruntime session built from the weight-less graph
 * (src/runtime/weightless-graph.ts) holds the graph and its small tensors only; every run pins
 * the model's weight tensors in the tensor pool (assembled once, shared by every model holding
 * the same blocks) and feeds them as tensors over the pooled buffers. onnxruntime-node reads
 * input tensors in place, so a run copies no weights (onnxruntime-web copies feeds into its heap,
 * 1.9x slower at 96 MiB: docs/TOOLCHAIN.md#sharing-weights-across-sessions-measured-2026-12-01-onnxruntime-130;
 * choose.ts prefers own weights there when they fit).
 */
import type * as OrtCommon from 'onnxruntime-common';
import { STORAGE_ARRAY, type DType } from '../../onnx/dtypes.ts';
import { InferenceError } from '../../errors.ts';
import type { OrtModule } from '../ort.ts';
import type { ModelSession, Feed } from '../session.ts';
import type { SerialQueue } from '../serial-queue.ts';
import type { TensorPool } from '../tensor-pool.ts';
import type { Executor } from './executor.ts';

export interface FedWeight {
  input: string;
  tensor: number;
  dtype: DType;
  dims: number[];
}

/** A runtime tensor over `bytes` without copying (the pooled buffer is the tensor's storage). */
export function tensorOver(ort: OrtModule, dtype: DType, bytes: Uint8Array, dims: readonly number[]): OrtCommon.Tensor {
  const View = STORAGE_ARRAY[dtype];
  if (!View || bytes.byteOffset % View.BYTES_PER_ELEMENT) throw new InferenceError('INFERENCE_FAILED', `a ${dtype} weight cannot be fed without a copy (unaligned or unsupported dtype)`);
  const view = new View(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / View.BYTES_PER_ELEMENT);
  return new ort.Tensor(dtype as any, view as any, dims as number[]) as OrtCommon.Tensor;
}

export class SharedWeightsExecutor implements Executor {
  readonly kind = 'shared-weights' as const;
  private readonly ids: number[];
  constructor(
    private readonly model: string,
    private readonly session: ModelSession,
    private readonly fed: readonly FedWeight[],
    readonly keptBytes: number,
    private readonly deps: { tensors: TensorPool; ortCalls: SerialQueue; ort: OrtModule },
  ) {
    this.ids = fed.map((f) => f.tensor);
  }

  check(feeds: Record<string, Feed>): Record<string, OrtCommon.Tensor> {
    return this.session.toTensors(feeds);
  }

  run(checked: unknown, admitted?: () => void): Promise<Record<string, OrtCommon.Tensor>> {
    const inputs = checked as Record<string, OrtCommon.Tensor>;
    const { tensors, ortCalls, ort } = this.deps;
    return tensors.withTensors(this.ids, this.model, (data) => {
      admitted?.();
      const feeds: Record<string, OrtCommon.Tensor> = { ...inputs };
      this.fed.forEach((f, i) => (feeds[f.input] = tensorOver(ort, f.dtype, data[i], f.dims)));
      return ortCalls.run(() => this.session.runTensors(feeds));
    });
  }

  /** The session is shared by every model with the same weight-less graph: the server releases it. */
  release(): Promise<void> {
    return Promise.resolve();
  }
}
