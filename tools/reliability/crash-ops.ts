/**
 * The store operations the crash harness interrupts. Adding an operation is one entry here:
 * `pick` draws its arguments from the expected state (null: does not apply now), `run` performs
 * it in the worker process, `apply` says what the committed state holds once it has completed.
 * The checker accepts the state before or after the operation, nothing else.
 */
import type { TesseraStore } from '../../src/store/store.ts';
import { modelBytes, randomSpec, type ModelSpec } from './models.ts';
import type { InjectMethod } from './crash-worker.ts';

export interface ExpectedState {
  models: Map<string, ModelSpec>;
  /** Next model name suffix (names are never reused, so a rolled-back add is told apart). */
  nextName: number;
}

export interface CrashOp<A> {
  /** Relative frequency in a random run. */
  weight: number;
  /** Backend calls the operation makes, where injected crashes land. */
  points: InjectMethod[];
  pick(state: ExpectedState, r: () => number): A | null;
  run(store: TesseraStore, args: A): Promise<unknown>;
  apply(models: Map<string, ModelSpec>, args: A): void;
}

const choose = <T>(xs: T[], r: () => number): T => xs[Math.floor(r() * xs.length)];

/** Pairs of (block of `model`, block at the same place in `other`) that differ: delta candidates. */
function deltaPairs(store: TesseraStore, model: string, other: string): { block: number; base: number }[] {
  const a = store.model(model).tensors;
  const b = store.model(other).tensors;
  const pairs: { block: number; base: number }[] = [];
  a.forEach((t, ti) => {
    const u = b[ti];
    if (!u || u.dtype !== t.dtype || u.dims.join() !== t.dims.join()) return;
    t.blocks.forEach((id, i) => {
      if (u.blocks[i] !== id) pairs.push({ block: id, base: u.blocks[i] });
    });
  });
  return pairs;
}

const op = <A>(o: CrashOp<A>) => o;

export const CRASH_OPS = {
  add: op<{ name: string; spec: ModelSpec }>({
    weight: 4,
    points: ['writePages', 'appendCatalog'],
    pick: (s, r) => ({ name: `m${s.nextName}`, spec: randomSpec(r) }),
    run: async (store, a) => store.add(a.name, await modelBytes(a.spec)),
    apply: (m, a) => void m.set(a.name, a.spec),
  }),
  rm: op<{ name: string }>({
    weight: 2,
    points: ['appendCatalog', 'releasePages'],
    pick: (s, r) => (s.models.size ? { name: choose([...s.models.keys()], r) } : null),
    run: (store, a) => store.remove(a.name),
    apply: (m, a) => void m.delete(a.name),
  }),
  /** Lossless dedup: blocks of one model re-stored as deltas against a relative's (bit-exact). */
  dedup: op<{ model: string; other: string }>({
    weight: 4,
    points: ['writePages', 'appendCatalog', 'releasePages'],
    pick: (s, r) => {
      const related = [...s.models].filter(([, x]) => x.kind === 'variant' || x.kind === 'mlp');
      if (related.length < 2) return null;
      const [model, spec] = choose(related.filter(([, x]) => x.kind === 'variant'), r) ?? [];
      if (!model || spec?.kind !== 'variant') return null;
      const others = related.filter(([n, x]) => n !== model && ((x.kind === 'variant' && x.base === spec.base) || (x.kind === 'mlp' && x.seed === spec.base)));
      return others.length ? { model, other: choose(others, r)[0] } : null;
    },
    run: (store, a) => store.storeDeltas(a.model, deltaPairs(store, a.model, a.other), { minSaving: 0 }),
    apply: () => {},
  }),
  compact: op<{}>({
    weight: 1,
    points: ['writePages', 'appendCatalog', 'releasePages'],
    pick: (s) => (s.models.size ? {} : null),
    run: (store) => store.compact(),
    apply: () => {},
  }),
  checkpoint: op<{}>({
    weight: 0.7,
    points: ['checkpointCatalog'],
    pick: () => ({}),
    run: (store) => store.checkpoint(),
    apply: () => {},
  }),
};

export type CrashOpName = keyof typeof CRASH_OPS;

/** Draws an operation and its arguments (weighted; ops that do not apply are skipped). */
export function pickOp(state: ExpectedState, r: () => number): { op: CrashOpName; args: unknown } {
  for (;;) {
    const names = Object.keys(CRASH_OPS) as CrashOpName[];
    // Keep the store from growing without bound: removals get likelier as it fills.
    const weight = (n: CrashOpName) => CRASH_OPS[n].weight * (n === 'rm' ? 1 + state.models.size / 6 : 1);
    const total = names.reduce((t, n) => t + weight(n), 0);
    let x = r() * total;
    const name = names.find((n) => (x -= weight(n)) < 0) ?? 'add';
    const args = (CRASH_OPS[name] as CrashOp<unknown>).pick(state, r);
    if (args !== null) return { op: name, args };
  }
}
