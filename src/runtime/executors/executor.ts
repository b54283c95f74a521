/**
 * The executors a model can be served by, behind one interface (one file each):
 * - kernel.ts: block-native dense kernels reading tiles in place from pooled page frames (MLPs);
 * - shared-weights.ts: a weight-less onnxruntime session fed the pooled, shared weight tensors;
 * - own-weights.ts: an onnxruntime session holding its own copy of the weights (a hot model when
 *   spare memory allows, its full cost entered in the ledger).
 * The server chooses per model by measured cost (choose.ts) and says which and why in metrics().
 */
import type * as OrtCommon from 'onnxruntime-common';
import type { Feed } from '../session.ts';

export type ExecutorKind = 'kernel' | 'shared-weights' | 'own-weights';

export interface Executor {
  readonly kind: ExecutorKind;
  /** Bytes the executor keeps in the ledger while it exists ('sessions'): its session's memory. */
  readonly keptBytes: number;
  /** Checks the feeds (typed InferenceError on a wrong name, dtype or shape), before any memory is touched. */
  check(feeds: Record<string, Feed>): unknown;
  /**
   * Runs on feeds `check` accepted; pins what the run reads and releases it however the run ends.
   * Calls `admitted` once everything is pinned, before computing (the next request may then take
   * its memory: memory-admission.ts); a CapacityError before that means the run did not fit now.
   */
  run(checked: unknown, admitted?: () => void): Promise<Record<string, OrtCommon.Tensor>>;
  /** Frees the session (if any). The ledger entry is the server's to release. */
  release(): Promise<void>;
}
