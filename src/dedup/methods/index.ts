/**
 * The dedup methods by name. Names say what a method is; the literature's names are aliases
 * (`netsdb` is pstable-stepwise, `mistique` is minhash-stepwise; `ours` was simhash-l2-bisect).
 */
import { InvalidArgumentError } from '../../errors.ts';
import { exactOnly } from './exact.ts';
import { minhashStepwise, pstableStepwise } from './magnitude-stepwise.ts';
import { simhashL2Bisect } from './simhash-l2-bisect.ts';
import type { DedupMethod } from './method.ts';

export type { DedupMethod, MethodOptions, LoopResult, Score } from './method.ts';
export { NETSDB_PLANNER, MISTIQUE_JACCARD } from './magnitude-stepwise.ts';
export { stepwiseLoop, bisectLoop } from './accept.ts';

export const DEDUP_METHODS: Readonly<Record<string, DedupMethod>> = Object.freeze(
  Object.fromEntries([simhashL2Bisect, pstableStepwise, minhashStepwise, exactOnly].map((m) => [m.name, m])),
);

export const DEFAULT_DEDUP_METHOD = simhashL2Bisect.name;

const ALIASES: Readonly<Record<string, string>> = { ours: simhashL2Bisect.name, netsdb: pstableStepwise.name, mistique: minhashStepwise.name };

/** The method registered under `name` (or an alias); INVALID_ARGUMENT otherwise. */
export function dedupMethod(name: string): DedupMethod {
  const m = DEDUP_METHODS[name] ?? DEDUP_METHODS[ALIASES[name] ?? ''];
  if (!m) throw new InvalidArgumentError(`unknown dedup method "${name}": use one of ${Object.keys(DEDUP_METHODS).join(', ')} (aliases: ${Object.entries(ALIASES).map(([a, n]) => `${a} = ${n}`).join(', ')}).`);
  return m;
}
