/**
 * A dedup method: how candidates are found and verified (`propose`), and how the accuracy bound
 * is checked over the ordered proposals (`accept`). Methods are a named registry (index.ts), like
 * the pool's policies; the planner (../planner.ts) owns what they share: the block view, the
 * evaluation and the one atomic commit per model.
 */
import type { ModelEntry } from '../../catalog/catalog.ts';
import type { BlockCatalogView, CandidateIndex, Proposal, Slot } from '../block-view.ts';

export interface MethodOptions {
  /** SimHash methods: a candidate with ||x - y|| / ||x|| above this is not proposed (default 0.5). */
  maxRelativeDistance?: number;
  /** Bisecting search: rounds, each skipping the substitution that broke the bound (default 3). */
  rounds?: number;
  /** Stepwise loops: evaluate every this many substitutions (default 5). */
  every?: number;
  /** p-stable method: element similarity threshold (default 0.7). */
  similarity?: number;
}

/** The score of the model with these substitutions applied (one evaluation). */
export type Score = (subs: Proposal[]) => Promise<number>;

/** Outcome of an accuracy loop: the accepted proposals and the score of that state. */
export interface LoopResult {
  accepted: Proposal[];
  score: number;
}

export interface DedupMethod {
  /** Registry name: what the method is (index, order, accuracy loop). */
  readonly name: string;
  /** One line for help texts and reports. */
  readonly summary: string;
  readonly index: CandidateIndex;
  /** Verified proposals for a model's slots, in the order the accuracy loop tries them. */
  propose(view: BlockCatalogView, model: ModelEntry, weights: Uint8Array[], slots: Slot[], opts: MethodOptions): Proposal[];
  /** The longest set of proposals the method accepts under the bound. */
  accept(props: Proposal[], score: Score, before: number, maxDrop: number, opts: MethodOptions): Promise<LoopResult>;
}

/** Stable order: key, then slot position. */
export function byOrder(out: Proposal[]): Proposal[] {
  return out.sort((a, b) => a.order - b.order || a.tensor - b.tensor || a.index - b.index);
}
