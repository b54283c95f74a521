/**
 * Page packing (docs/PAPER.md#2-page-packing): which blocks go on which page so that models read few pages
 * and the store holds few. Entry points: packBytes (the store's compaction: mixed block sizes),
 * planPages (the paper's slot model), the algorithms by name (packers),
 * evaluateLayout (page counts and read amplification), lowerBounds (optimality gap).
 */
export { PackingInputError, makeProblem, trivialLowerBound, layoutFrom, pageCount } from './problem.ts';
export type { PackingInput, PackingProblem, Layout } from './problem.ts';
export { computeClasses, classSize } from './classes.ts';
export type { BlockClasses } from './classes.ts';
export { packBaseline, packGreedy1, packGreedy2, packTwoStage } from './netsdb.ts';
export { packTessera, solveCovers, materializeCovers } from './tessera.ts';
export type { TesseraOptions, CoverPlan } from './tessera.ts';
export { packRelaxed } from './relaxed.ts';
export { evaluateLayout } from './evaluate.ts';
export type { LayoutReport, TensorReads, PackingRule } from './evaluate.ts';
export { lowerBounds } from './bounds.ts';
export type { LowerBounds } from './bounds.ts';
export { packers, PACKING_ALGORITHMS } from './algorithms.ts';
export type { PackingAlgorithm } from './algorithms.ts';
export { planPages } from './plan.ts';
export { packBytes } from './bytes.ts';
export type { BytePacking } from './bytes.ts';
export type { PagePlan } from './plan.ts';
