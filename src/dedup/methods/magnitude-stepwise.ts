/**
 * The two baselines from the literature, which share netsDB's order and accuracy loop
 * (docs/PAPER.md#1-duplicate-detection): blocks in ascending normalised 75th-percentile magnitude, layers that fit
 * in one block skipped, an evaluation every 5 substitutions, stop at the first failure and keep
 * the last passing state (O(n / 5) evaluations). They differ in how candidates are found:
 * - `pstable-stepwise` (netsDB-style): p-stable L2 LSH (90 bands, r = 0.09), the most similar
 *   candidate (fraction of elements within 0.01) at or above 0.7;
 * - `minhash-stepwise` (MISTIQUE-style): values bucketed, MinHash with 48 permutations, the
 *   candidate with the highest estimated Jaccard at or above 0.5.
 */
import { blockRegion, NETSDB_SIMILARITY_EPS } from '../../kernels/distance.ts';
import type { ModelEntry } from '../../catalog/catalog.ts';
import type { BlockCatalogView, Proposal, Slot } from '../block-view.ts';
import { jaccardEstimate } from '../minhash.ts';
import { stepwiseLoop } from './accept.ts';
import { quantile75, tensorRange } from './block-stats.ts';
import { byOrder, type DedupMethod, type MethodOptions } from './method.ts';

/** netsDB's planner settings (docs/PAPER.md#1-duplicate-detection). */
export const NETSDB_PLANNER = { similarity: 0.7, every: 5 } as const;
/** MISTIQUE's match threshold on estimated Jaccard similarity. */
export const MISTIQUE_JACCARD = 0.5;

type Similarity = (view: BlockCatalogView, slot: Slot, candidates: number[]) => ArrayLike<number>;

function magnitudeOrdered(similarity: Similarity, threshold: (o: MethodOptions) => number) {
  return (view: BlockCatalogView, model: ModelEntry, weights: Uint8Array[], slots: Slot[], opts: MethodOptions): Proposal[] => {
    const own = new Set(slots.map((s) => s.id));
    for (const t of model.tensors) for (const id of t.blocks) own.add(id);
    const range = tensorRange(model, weights);
    // netsDB never deduplicated a layer that fits in one block.
    const eligible = slots.filter((s) => model.tensors[s.tensor].blocks.length > 1);
    const cands = view.candidates(eligible, own);
    const min = threshold(opts);
    const out: Proposal[] = [];
    eligible.forEach((s, k) => {
      if (!cands[k].length) return;
      const sim = similarity(view, s, cands[k]);
      let best = 0;
      for (let j = 1; j < sim.length; j++) if (sim[j] > sim[best]) best = j;
      if (!(sim[best] >= min)) return;
      const { min: lo, max: hi } = range[s.tensor];
      const magnitude = hi > lo ? (quantile75(view.valuesOf(s.id)) - lo) / (hi - lo) : 0;
      out.push({ tensor: s.tensor, index: s.index, from: s.id, to: cands[k][best], distance: 1 - sim[best], order: magnitude });
    });
    return byOrder(out);
  };
}

const stepwise: DedupMethod['accept'] = (props, score, before, maxDrop, opts) => stepwiseLoop(props, score, before, maxDrop, opts.every ?? NETSDB_PLANNER.every);

export const pstableStepwise: DedupMethod = {
  name: 'pstable-stepwise',
  summary: "netsDB-style: p-stable LSH, element similarity >= 0.7, least magnitude first, an evaluation every 5",
  index: 'pstable',
  propose: magnitudeOrdered((view, s, cands) => {
    const { tile } = view.store.config;
    return view.distance.similarity(view.tileOf(s.id), cands.map((id) => view.tileOf(id)), blockRegion(tile.rows, tile.cols, s.h, s.w), NETSDB_SIMILARITY_EPS);
  }, (o) => o.similarity ?? NETSDB_PLANNER.similarity),
  accept: stepwise,
};

export const minhashStepwise: DedupMethod = {
  name: 'minhash-stepwise',
  summary: 'MISTIQUE-style: bucketed MinHash LSH, Jaccard >= 0.5, least magnitude first, an evaluation every 5',
  index: 'minhash',
  propose: magnitudeOrdered((view, s, cands) => {
    const sig = view.minhashOf(s.id);
    return cands.map((id) => jaccardEstimate(sig, view.minhashOf(id)));
  }, () => MISTIQUE_JACCARD),
  accept: stepwise,
};
