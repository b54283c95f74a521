/**
 * Synthetic packing inputs shaped like model families (tests and bench/packing.ts): blocks come in
 * groups of random size, each group needed by a random subset of the models (fine-tuned variants
 * share big groups; each model also has private blocks). Deterministic for a seed.
 */
import { mulberry32 } from '../src/random.ts';

export interface FamilyOptions {
  models: number;
  groups: number;
  /** Mean blocks per group. */
  meanGroup: number;
  /** Chance a model needs a given group. */
  share: number;
}


/** Returns each model's block ids (ascending, distinct, ids 0..distinct-1 all used). */
export function modelFamily(seed: number, o: FamilyOptions): Int32Array[] {
  const rand = mulberry32(seed);
  const lists: number[][] = Array.from({ length: o.models }, () => []);
  let next = 0;
  for (let g = 0; g < o.groups; g++) {
    const size = 1 + Math.floor(rand() * 2 * o.meanGroup);
    const users: number[] = [];
    for (let m = 0; m < o.models; m++) if (rand() < o.share) users.push(m);
    if (users.length === 0) users.push(Math.floor(rand() * o.models));
    for (const m of users) for (let i = 0; i < size; i++) lists[m].push(next + i);
    next += size;
  }
  return lists.map((l, m) => (l.length ? Int32Array.from(l) : Int32Array.of(next + m)));
}
