/** The accuracy loops methods share. */
import type { Proposal } from '../block-view.ts';
import type { LoopResult, Score } from './method.ts';

/** netsDB: evaluate after every `every` substitutions; at the first failure keep the last passing state. O(n / every) evaluations. */
export async function stepwiseLoop(props: Proposal[], score: Score, before: number, maxDrop: number, every: number): Promise<LoopResult> {
  let passing = 0;
  let passingScore = before;
  for (let n = Math.min(every, props.length); n > passing; n = Math.min(n + every, props.length)) {
    const s = await score(props.slice(0, n));
    if (before - s > maxDrop + 1e-12) break;
    passing = n;
    passingScore = s;
  }
  return { accepted: props.slice(0, passing), score: passingScore };
}

/**
 * Evaluate everything; if that fails, binary-search the longest passing prefix, skip the proposal
 * after it (the one that broke the bound) and search the rest again, up to `rounds` times:
 * O(rounds x log n) evaluations.
 */
export async function bisectLoop(props: Proposal[], score: Score, before: number, maxDrop: number, rounds: number): Promise<LoopResult> {
  const passes = (s: number) => before - s <= maxDrop + 1e-12;
  let accepted: Proposal[] = [];
  let acceptedScore = before;
  let rest = props;
  for (let round = 0; round < rounds && rest.length; round++) {
    const all = await score([...accepted, ...rest]);
    if (passes(all)) return { accepted: [...accepted, ...rest], score: all };
    let lo = 0;
    let loScore = acceptedScore;
    let hi = rest.length;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      const s = await score([...accepted, ...rest.slice(0, mid)]);
      if (passes(s)) {
        lo = mid;
        loScore = s;
      } else hi = mid;
    }
    accepted = [...accepted, ...rest.slice(0, lo)];
    acceptedScore = loScore;
    rest = rest.slice(lo + 1);
  }
  return { accepted, score: acceptedScore };
}
