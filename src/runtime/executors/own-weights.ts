/**
 * Own-weights executor: an onnxruntime session made with the model's weights inside it, the
 * fastest per run (onnxruntime fuses Conv+BatchNorm and pre-packs weights it owns: 1.29x faster on
 * PP-OCRv4 rec than fed weights). It costs the weights again, and more: its ledger entry is the
 * session's measured-or-estimated memory (choose.ts), so a hot model holds one only when spare
 * memory allows it.
 */
import type * as OrtCommon from 'onnxruntime-common';
import type { ModelSession, Feed } from '../session.ts';
import type { SerialQueue } from '../serial-queue.ts';
import type { Executor } from './executor.ts';

export class OwnWeightsExecutor implements Executor {
  readonly kind = 'own-weights' as const;
  constructor(
    private readonly session: ModelSession,
    readonly keptBytes: number,
    private readonly ortCalls: SerialQueue,
  ) {}

  check(feeds: Record<string, Feed>): Record<string, OrtCommon.Tensor> {
    return this.session.toTensors(feeds);
  }

  run(checked: unknown, admitted?: () => void): Promise<Record<string, OrtCommon.Tensor>> {
    admitted?.(); // it pins nothing: its memory is its session, already held
    return this.ortCalls.run(() => this.session.runTensors(checked as Record<string, OrtCommon.Tensor>));
  }

  release(): Promise<void> {
    return this.ortCalls.run(() => this.session.release());
  }
}
