/**
 * `simhash-l2-bisect` (tessera's own method): SimHash LSH candidates (sub-quadratic), the one with
 * the least L2 distance, proposals ordered by the share of the layer's weight energy the
 * substitution changes, and the bound checked by a bisecting search (accept.ts: O(rounds x log n)
 * evaluations instead of one every few substitutions).
 */
import { blockRegion } from '../../kernels/distance.ts';
import type { Proposal } from '../block-view.ts';
import { bisectLoop } from './accept.ts';
import { tensorEnergy } from './block-stats.ts';
import { byOrder, type DedupMethod } from './method.ts';

export const simhashL2Bisect: DedupMethod = {
  name: 'simhash-l2-bisect',
  summary: 'SimHash LSH, nearest candidate by L2, least weight-energy change first, bisecting accuracy search',
  index: 'simhash',
  propose(view, model, weights, slots, opts) {
    const { tile } = view.store.config;
    const own = new Set(slots.map((s) => s.id));
    for (const t of model.tensors) for (const id of t.blocks) own.add(id);
    const maxRel = opts.maxRelativeDistance ?? 0.5;
    const energy = tensorEnergy(model, weights);
    const cands = view.candidates(slots, own, 16);
    const out: Proposal[] = [];
    slots.forEach((s, k) => {
      if (!cands[k].length) return;
      const region = blockRegion(tile.rows, tile.cols, s.h, s.w);
      const d = view.distance.l2(view.tileOf(s.id), cands[k].map((id) => view.tileOf(id)), region);
      let best = 0;
      for (let j = 1; j < d.length; j++) if (d[j] < d[best]) best = j;
      const v = view.valuesOf(s.id);
      let norm = 0;
      for (let j = 0; j < v.length; j++) norm += v[j] * v[j];
      const rel = norm > 0 ? d[best] / Math.sqrt(norm) : d[best] === 0 ? 0 : Infinity;
      if (!(rel <= maxRel)) return;
      // Expected impact: the share of the layer's weight energy the substitution changes.
      out.push({ tensor: s.tensor, index: s.index, from: s.id, to: cands[k][best], distance: d[best], order: energy[s.tensor] > 0 ? (d[best] * d[best]) / energy[s.tensor] : 0 });
    });
    return byOrder(out);
  },
  accept: (props, score, before, maxDrop, opts) => bisectLoop(props, score, before, maxDrop, opts.rounds ?? 3),
};
