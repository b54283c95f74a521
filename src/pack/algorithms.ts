/** The packing algorithms by name, one signature: (problem, classes) -> layout. */
import type { BlockClasses } from './classes.ts';
import { packBaseline, packGreedy1, packGreedy2, packTwoStage } from './netsdb.ts';
import type { Layout, PackingProblem } from './problem.ts';
import { packRelaxed } from './relaxed.ts';
import { packTessera } from './tessera.ts';

export const PACKING_ALGORITHMS = ['baseline', 'greedy1', 'greedy2', 'twoStage', 'tessera', 'relaxed'] as const;
export type PackingAlgorithm = (typeof PACKING_ALGORITHMS)[number];

export const packers: Record<PackingAlgorithm, (p: PackingProblem, classes: BlockClasses) => Layout> = {
  baseline: (p) => packBaseline(p),
  greedy1: packGreedy1,
  greedy2: (p) => packGreedy2(p),
  twoStage: packTwoStage,
  tessera: (p, c) => packTessera(p, c),
  relaxed: packRelaxed,
};
