/**
 * `exact`: exact-only dedup, what ingest already does (byte-identical blocks stored once). It
 * proposes nothing, so running it costs no evaluation and changes no model: the baseline every
 * other method is measured against.
 */
import type { DedupMethod } from './method.ts';

export const exactOnly: DedupMethod = {
  name: 'exact',
  summary: 'exact-only: byte-identical blocks shared at ingest, no near-duplicate substitution',
  index: 'none',
  propose: () => [],
  accept: async (_props, _score, before) => ({ accepted: [], score: before }),
};
