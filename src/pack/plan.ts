/**
 * What the store calls at ingest and compaction.
 *
 *   planPages(models, blockBytes, pageBytes, algorithm = 'tessera', classify?) -> PagePlan
 *
 * - models: per model its name and the ids of the distinct blocks it needs (ids index blockBytes).
 * - blockBytes[id]: stored size of block id. The largest needed block is the store's standard
 *   block size; pageBytes must be a multiple of it (edge blocks may be smaller). A page then has
 *   pageBytes / standard slots; smaller blocks are packed by bytes, so a page can take more of them.
 * - algorithm: 'tessera' (default: fewest pages, a model reads only blocks it needs), a netsDB
 *   baseline ('baseline' | 'greedy1' | 'greedy2' | 'twoStage'), or 'relaxed' (one copy per block,
 *   fewest possible pages, models may read blocks they do not need).
 *
 * The plan: page k holds pageBlocks[pageStart[k] .. pageStart[k+1]), the i-th of them at byte
 * pageOffsets[i] of the page. A block may be stored on several pages (copies); model m reads
 * exactly modelPages[m], and every block it needs is on one of those pages — to find where, scan
 * them (or use blockPage/blockOffset, the first copy, when only one copy exists: copies[b] === 1).
 * Throws PackingInputError on empty input, a block larger than a page, or a page size that is not
 * a multiple of the block size.
 */
import type { ClassifyFn } from '../kernels/pack.ts';
import { packers, type PackingAlgorithm } from './algorithms.ts';
import { computeClasses } from './classes.ts';
import { lowerBounds } from './bounds.ts';
import { makeProblem, PackingInputError, type Layout } from './problem.ts';
import { materializeCovers, solveCovers } from './tessera.ts';

export interface PagePlan {
  pages: number;
  pageStart: Int32Array;
  pageBlocks: Int32Array;
  /** Byte offset in its page of each entry of pageBlocks. */
  pageOffsets: Int32Array;
  /** Bytes used in each page. */
  pageUsedBytes: Int32Array;
  /** modelPages[m]: pages model m reads, ascending. */
  modelPages: Int32Array[];
  /** First copy of each block (-1 when no model needs it) and how many copies exist. */
  blockPage: Int32Array;
  blockOffset: Int32Array;
  copies: Int32Array;
  /** Slots per page (pageBytes / standard block bytes) and the chain lower bound in pages. */
  slotsPerPage: number;
  lowerBound: number;
}

export function planPages(
  models: { name: string; blocks: ArrayLike<number> }[],
  blockBytes: ArrayLike<number>,
  pageBytes: number,
  algorithm: PackingAlgorithm = 'tessera',
  classify?: ClassifyFn,
): PagePlan {
  if (!models || models.length === 0) throw new PackingInputError('planPages: no models to pack.');
  if (!Number.isInteger(pageBytes) || pageBytes <= 0) throw new PackingInputError(`planPages: page size must be a positive integer of bytes, got ${pageBytes}.`);
  if (!(algorithm in packers)) throw new PackingInputError(`planPages: unknown algorithm "${algorithm}"; use one of ${Object.keys(packers).join(', ')}.`);
  let standard = 0;
  for (const m of models) {
    if (!m.blocks || m.blocks.length === 0) throw new PackingInputError(`planPages: model "${m.name}" needs no blocks.`);
    for (let i = 0; i < m.blocks.length; i++) {
      const b = m.blocks[i];
      if (!Number.isInteger(b) || b < 0 || b >= blockBytes.length) {
        throw new PackingInputError(`planPages: model "${m.name}" names block ${b}, but blockBytes has ${blockBytes.length} entries.`);
      }
      const size = blockBytes[b];
      if (!Number.isInteger(size) || size <= 0) throw new PackingInputError(`planPages: block ${b} has size ${size}; sizes must be positive integers.`);
      if (size > pageBytes) throw new PackingInputError(`planPages: block ${b} is ${size} bytes, larger than a ${pageBytes}-byte page: use larger pages or smaller blocks.`);
      if (size > standard) standard = size;
    }
  }
  if (pageBytes % standard !== 0) {
    throw new PackingInputError(`planPages: page size ${pageBytes} is not a multiple of the block size ${standard}: pick a page size that holds whole blocks.`);
  }
  const problem = makeProblem({ tensors: models.map((m) => m.blocks), blocksPerPage: pageBytes / standard });
  const classes = computeClasses(problem, classify);
  const bound = lowerBounds(problem, classes).chain;
  let layout: Layout;
  if (algorithm === 'tessera') {
    // Same plan as packTessera, but each type's copies are cut into pages by bytes: a run of
    // blocks of at most `standard` bytes each fills a page with at least as many blocks as slots.
    const plan = solveCovers(problem, classes, { stopAt: bound });
    layout = materializeCovers(problem, classes, plan, (copies) => {
      const pages: number[][] = [];
      let cur: number[] = [];
      let used = 0;
      for (const b of copies) {
        if (used + blockBytes[b] > pageBytes) { pages.push(cur); cur = []; used = 0; }
        cur.push(b);
        used += blockBytes[b];
      }
      if (cur.length) pages.push(cur);
      return pages;
    });
  } else {
    layout = packers[algorithm](problem, classes);
  }
  const n = layout.pageStart.length - 1;
  const pageOffsets = new Int32Array(layout.pageBlocks.length);
  const pageUsedBytes = new Int32Array(n);
  const blockPage = new Int32Array(blockBytes.length).fill(-1);
  const blockOffset = new Int32Array(blockBytes.length).fill(-1);
  const copies = new Int32Array(blockBytes.length);
  for (let k = 0; k < n; k++) {
    let off = 0;
    for (let i = layout.pageStart[k]; i < layout.pageStart[k + 1]; i++) {
      const b = layout.pageBlocks[i];
      pageOffsets[i] = off;
      if (copies[b]++ === 0) { blockPage[b] = k; blockOffset[b] = off; }
      off += blockBytes[b];
    }
    pageUsedBytes[k] = off;
  }
  return {
    pages: n, pageStart: layout.pageStart, pageBlocks: layout.pageBlocks, pageOffsets, pageUsedBytes,
    modelPages: layout.tensorPages, blockPage, blockOffset, copies,
    slotsPerPage: problem.blocksPerPage, lowerBound: bound,
  };
}
