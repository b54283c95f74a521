/**
 * Block-native executor: a dense MLP chain (src/runtime/dense-plan.ts) runs on the WASM kernels
 * reading weight tiles in place from the pooled page frames. Shared pages are held once and
 * nothing is copied per run; the executor keeps no memory of its own (its plan is a few numbers).
 */
import type * as OrtCommon from 'onnxruntime-common';
import type { DenseKernel } from '../../kernels/dense.ts';
import type { BufferPool } from '../../pool/buffer-pool.ts';
import type { OrtModule } from '../ort.ts';
import type { PageFrames } from '../page-frames.ts';
import type { Feed } from '../session.ts';
import type { StoreReader } from '../store-reader.ts';
import { biasSegments, denseFeed, tileAddresses, type DensePlan } from '../dense-plan.ts';
import type { ModelEntry } from '../../catalog/catalog.ts';
import type { Executor } from './executor.ts';

/** The kernel's scratch inside its memory: input and two activation buffers, a tile-pointer table. */
export interface KernelScratch {
  x: number;
  a: number;
  b: number;
  table: number;
  rows: number;
  width: number;
  tableLen: number;
}

export class KernelExecutor implements Executor {
  readonly kind = 'kernel' as const;
  readonly keptBytes = 0;
  constructor(
    private readonly entry: ModelEntry,
    private readonly plan: DensePlan,
    private readonly pages: readonly number[],
    private readonly deps: { kernel: DenseKernel; scratch: KernelScratch; frames: PageFrames; pagePool: BufferPool; reader: StoreReader; ort: OrtModule },
  ) {}

  check(feeds: Record<string, Feed>): { data: Float32Array; batch: number } {
    return denseFeed(this.entry.name, this.plan, feeds as Record<string, unknown>);
  }

  run(checked: unknown, admitted?: () => void): Promise<Record<string, OrtCommon.Tensor>> {
    const input = checked as { data: Float32Array; batch: number };
    return this.deps.pagePool.withPages(this.pages, () => (admitted?.(), this.compute(input)), { model: this.entry.name });
  }

  async release(): Promise<void> {}

  private compute(input: { data: Float32Array; batch: number }): Record<string, OrtCommon.Tensor> {
    const { plan } = this;
    const { kernel, scratch: s, frames, reader, ort } = this.deps;
    const cat = reader.catalog;
    const { tile } = reader.config;
    const k = kernel.exports;
    const buf = kernel.memory.buffer;
    const table = new Int32Array(buf, s.table, s.tableLen);
    const frameOf = (p: number) => frames.of(p);
    const out = new Float32Array(input.batch * plan.outFeatures);
    for (let r0 = 0; r0 < input.batch; r0 += s.rows) {
      const m = Math.min(s.rows, input.batch - r0);
      new Float32Array(buf, s.x, m * plan.inFeatures).set(input.data.subarray(r0 * plan.inFeatures, (r0 + m) * plan.inFeatures));
      let cur = s.x;
      let width = plan.inFeatures;
      for (const step of plan.steps) {
        if (step.op === 'dense') {
          tileAddresses(this.entry.tensors[step.tensor], cat, frameOf, table);
          const next = cur === s.a ? s.b : s.a;
          k.denseTiled(cur, m, step.k, step.n, s.table, tile.rows, tile.cols, step.transB ? 1 : 0, next);
          cur = next;
          width = step.n;
        } else if (step.op === 'bias') {
          const n = biasSegments(this.entry.tensors[step.tensor], cat, tile, frameOf, table);
          k.addBias(cur, m, width, s.table, n);
        } else if (step.op === 'relu') {
          k.relu(cur, m * width);
        } else {
          k.softmaxRows(cur, m, width);
        }
      }
      out.set(new Float32Array(buf, cur, m * width), r0 * plan.outFeatures);
    }
    return { [plan.output]: new ort.Tensor('float32', out, [input.batch, plan.outFeatures]) as OrtCommon.Tensor };
  }
}
