/**
 * The I/O-fault sweep (after SQLite's I/O-error tests). For each store operation (add, a batch
 * of adds in one commit, rm, compact, lossy substitute, lossless deltas, settle, undo, checkpoint) on a store holding a few
 * models, it first counts the disk-changing calls the operation makes (faulty-fs.ts), then for
 * every n and every fault (ENOSPC that persists, transient EIO, a short write followed by a full
 * disk) runs the operation on a fresh copy with the n-th call failing, and checks:
 *   - the operation fails with a TesseraError (never an untyped one), or succeeds;
 *   - reopened (no faults), the store holds exactly the state before the operation when it
 *     failed, and exactly the state after it when it succeeded: nothing is reported done that is
 *     not, nothing half-done is left;
 *   - it verifies, every model exports bit-exact, and the writer open leaves no leaked slot.
 * A fourth fault is a power cut at the n-th call: that call and every later one never happen,
 * then everything not yet durable (unsynced file data, folder entries not fsynced) is lost; the
 * store must come back old or new (a committed state), never damaged.
 */
import { cp, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { openStore } from '../../src/node/open.ts';
import type { TesseraStore } from '../../src/store/store.ts';
import { TesseraError } from '../../src/errors.ts';
import { createHash } from 'node:crypto';
import { mlp } from '../fixtures/onnx-builders.ts';
import { perturbed } from '../fixtures/family.ts';
import { faultyIO, powerCutIO, type FaultKind } from './faulty-fs.ts';

const TILE = { rows: 16, cols: 16 };
const PAGE = 4096;

/**
 * What a store holds, as compared: each model's exported bytes (hashed) and pending substitutions,
 * and how many pages hold them (so a half-done compact, settled but not repacked, is told apart).
 */
type Snapshot = Record<string, { sha256: string; substitutions: number } | number>;

async function snapshotOf(store: TesseraStore): Promise<Snapshot> {
  const out: Snapshot = { '(pages)': store.catalog.pages.size };
  for (const name of [...store.listModels()].sort()) {
    out[name] = { sha256: createHash('sha256').update(await store.exportModel(name)).digest('hex'), substitutions: store.model(name).substitutions?.length ?? 0 };
  }
  return out;
}

function deltaPairs(store: TesseraStore, model: string, other: string): { block: number; base: number }[] {
  const a = store.model(model).tensors;
  const b = store.model(other).tensors;
  const out: { block: number; base: number }[] = [];
  a.forEach((t, ti) => t.blocks.forEach((id, i) => {
    if (b[ti] && b[ti].blocks[i] !== id) out.push({ block: id, base: b[ti].blocks[i] });
  }));
  return out;
}

interface Models {
  base: Uint8Array;
  tuned: Uint8Array;
  other: Uint8Array;
  extra: Uint8Array;
  fresh: Uint8Array;
}

export const FAULT_OPS: Record<string, (s: TesseraStore, m: Models) => Promise<unknown>> = {
  add: (s, m) => s.add('new', m.extra),
  'add-unrelated': (s, m) => s.add('fresh', m.fresh),
  // Several models in one commit (tessera add a b c): blocks shared across the batch, one record.
  'add-batch': async (s, m) => {
    const batch = s.addBatch();
    await batch.add('new', m.extra);
    await batch.add('fresh', m.fresh);
    await batch.add('tuned-again', m.tuned);
    await batch.commit();
  },
  rm: (s) => s.remove('other'),
  compact: (s) => s.compact(),
  substitute: (s) => s.substitute('tuned', [0, 1, 2].map((index) => ({ tensor: 0, index, to: s.model('base').tensors[0].blocks[index], distance: 0.01 }))),
  deltas: (s) => s.storeDeltas('tuned', deltaPairs(s, 'tuned', 'base'), { minSaving: 0 }),
  settle: (s) => s.settle('other'),
  undo: (s) => s.undoSubstitutions('other'),
  checkpoint: (s) => s.checkpoint(),
};

/**
 * Operations that may fail after their one commit, leaving the complete new state. compact settles
 * and repacks in one commit, then slides the highest pages down into the freed slots (a second
 * commit that changes no model and no page count): a fault there leaves the compacted store.
 * Never the settled-but-not-repacked state, or any other half-way one.
 */
const NEW_STATE_ON_FAILURE = new Set(['compact']);

export interface FaultTrial {
  op: string;
  nth: number;
  fault: FaultKind | 'power';
  persistent: boolean;
  outcome: 'failed' | 'succeeded';
  code?: string;
  problems: string[];
}

export interface FaultSweepResult {
  ops: Record<string, number>;
  trials: number;
  faultsFired: number;
  failedTyped: number;
  succeeded: number;
  failures: FaultTrial[];
}

const MODES: { fault: FaultKind | 'power'; persistent: boolean }[] = [
  { fault: 'ENOSPC', persistent: true },
  { fault: 'EIO', persistent: false },
  { fault: 'short', persistent: true },
  { fault: 'power', persistent: true },
];

/**
 * `reduced`: each n gets one of the three faults in turn (a third of the trials), for CI.
 * `ops` limits the sweep to some operations.
 */
export async function runFaultSweep(opts: { dir: string; reduced?: boolean; ops?: string[]; onTrial?: (t: FaultTrial) => void }): Promise<FaultSweepResult> {
  const base = mlp({ inputDim: 48, hidden: 40, outputDim: 8, seed: 11 });
  const models: Models = {
    base,
    tuned: await perturbed(base, { seed: 3, scale: 1e-3 }),
    other: mlp({ inputDim: 48, hidden: 40, outputDim: 8, seed: 12 }),
    extra: await perturbed(base, { seed: 4, scale: 1e-2, tensors: [2, 3] }),
    fresh: mlp({ inputDim: 64, hidden: 48, outputDim: 8, seed: 14 }),
  };
  // The starting store: three models, a hole left by a removed one, a pending substitution.
  const template = join(opts.dir, 'template');
  {
    const s = await openStore(template, { create: true, pageSize: PAGE, tile: TILE });
    await s.add('base', models.base);
    await s.add('gone', mlp({ inputDim: 48, hidden: 40, outputDim: 8, seed: 13 }));
    await s.add('tuned', models.tuned);
    await s.add('other', models.other);
    await s.remove('gone');
    await s.substitute('other', [{ tensor: 0, index: 0, to: s.model('base').tensors[0].blocks[0], distance: 0.5 }]);
    await s.close();
  }
  const before = await withStore(template, snapshotOf);
  const result: FaultSweepResult = { ops: {}, trials: 0, faultsFired: 0, failedTyped: 0, succeeded: 0, failures: [] };
  let copy = 0;
  const fresh = async () => {
    const d = join(opts.dir, `t${copy++}`);
    await cp(template, d, { recursive: true });
    return d;
  };
  for (const [op, run] of Object.entries(FAULT_OPS)) {
    if (opts.ops && !opts.ops.includes(op)) continue;
    // The reference: the operation without faults, its call count and the state after it.
    const ref = await fresh();
    const counter = faultyIO();
    const s = await openStore(ref, { io: counter.io });
    counter.reset();
    await run(s, models);
    const calls = counter.calls.length;
    await s.close();
    const after = await withStore(ref, snapshotOf);
    await rm(ref, { recursive: true, force: true });
    const allowedOnFailure = [JSON.stringify(before)];
    if (NEW_STATE_ON_FAILURE.has(op)) allowedOnFailure.push(JSON.stringify(after));
    result.ops[op] = calls;
    // Power cuts also after the last call: what the operation reported done must be durable.
    for (let nth = 1; nth <= calls + 1; nth++) {
      const modes = nth > calls ? MODES.filter((m) => m.fault === 'power') : opts.reduced ? [MODES[nth % MODES.length]] : MODES;
      for (const mode of modes) {
        const dir = await fresh();
        const trial: FaultTrial = { op, nth, fault: mode.fault, persistent: mode.persistent, outcome: 'succeeded', problems: [] };
        const power = mode.fault === 'power' ? powerCutIO() : null;
        const f = power ? null : faultyIO();
        const store = await openStore(dir, { io: power ? power.io : f!.io });
        if (power) power.arm(nth);
        else {
          f!.reset();
          f!.arm({ nth, kind: mode.fault as FaultKind, persistent: mode.persistent });
        }
        try {
          await run(store, models);
        } catch (e) {
          trial.outcome = 'failed';
          if (e instanceof TesseraError) trial.code = e.code;
          else trial.problems.push(`untyped error: ${(e as Error)?.stack ?? e}`);
        }
        if (power ? power.fired || nth > calls : f!.fired) result.faultsFired++;
        if (power) await power.cut();
        await store.close().catch((e) => trial.problems.push(`close failed: ${e}`));
        // After a power cut any committed state is a right answer, unless the operation returned.
        const accepted = power && trial.outcome === 'failed' ? [...allowedOnFailure, JSON.stringify(after)] : null;
        try {
          const check = await openStore(dir, {});
          try {
            const state = await snapshotOf(check);
            const expected = accepted ?? (trial.outcome === 'failed' ? allowedOnFailure : [JSON.stringify(after)]);
            if (!expected.includes(JSON.stringify(state))) {
              trial.problems.push(`${trial.outcome === 'failed' ? 'failed, but the store is not as before' : 'reported done, but the store does not hold the result'}: ${JSON.stringify(state)} vs ${expected.join(' or ')}`);
            }
            const v = await check.verify();
            if (!v.ok) trial.problems.push(`verify: ${JSON.stringify(v)}`);
            if (v.leakedPages.length) trial.problems.push(`leaked pages after a writer open: ${v.leakedPages}`);
          } finally {
            await check.close();
          }
        } catch (e) {
          trial.problems.push(`reopen failed: ${(e as Error)?.stack ?? e}`);
        }
        await rm(dir, { recursive: true, force: true });
        result.trials++;
        if (trial.outcome === 'failed' && trial.code) result.failedTyped++;
        if (trial.outcome === 'succeeded') result.succeeded++;
        if (trial.problems.length) result.failures.push(trial);
        opts.onTrial?.(trial);
      }
    }
  }
  return result;
}

async function withStore<T>(dir: string, fn: (s: TesseraStore) => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true });
  const s = await openStore(dir, { readOnly: true });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}
