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
 * after it (the one that broke the bound) and search the rest again, up to `rounds` times.
 * Later rounds, when the rest fails, gallop from its front (1, 2, 4, ... proposals, then bisect
 * the last gap): what is left after a break is ordered by rising impact and has less of the bound
 * left, so its passing prefix is short and galloping finds it in ~2 log2(prefix) evaluations
 * instead of log2(rest).
 * O(log n + rounds x log prefix) evaluations; a failing evaluation is cheap with the planner's
 * floor (the evaluator stops once the bound is out of reach).
 */
export async function bisectLoop(props: Proposal[], score: Score, before: number, maxDrop: number, rounds: number): Promise<LoopResult> {
  const passes = (s: number) => before - s <= maxDrop + 1e-12;
  let accepted: Proposal[] = [];
  let acceptedScore = before;
  let rest = props;
  for (let round = 0; round < rounds && rest.length; round++) {
    // The search keeps lo passing and hi failing (or past the end).
    let lo = 0;
    let loScore = acceptedScore;
    let hi = rest.length;
    const all = await score([...accepted, ...rest]);
    if (passes(all)) return { accepted: [...accepted, ...rest], score: all };
    if (round > 0) {
      for (let k = 1; k < hi; k *= 2) {
        const s = await score([...accepted, ...rest.slice(0, k)]);
        if (!passes(s)) {
          hi = k;
          break;
        }
        lo = k;
        loScore = s;
      }
    }
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
