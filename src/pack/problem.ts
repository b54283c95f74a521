/**
 * The page-packing problem (docs/PAPER.md#2-page-packing) in one compact form shared by every algorithm.
 *
 * Each tensor (or model) needs a set of distinct block ids; a page holds `blocksPerPage` blocks.
 * A block may be stored on several pages (netsDB's algorithms duplicate blocks), so a solution is
 * a list of pages plus, per tensor, the pages it reads. netsDB's rule: a tensor may only read a
 * page all of whose blocks it needs.
 */
import { PackingInputError } from '../errors.ts';

export { PackingInputError };

export interface PackingInput {
  /** For each tensor, the ids (non-negative integers) of the blocks it needs; duplicates are ignored. */
  tensors: ArrayLike<number>[];
  /** How many blocks fit one page (uniform block size). */
  blocksPerPage: number;
}

/** Normalized problem: tensors as a CSR of sorted, distinct block ids. */
export interface PackingProblem {
  nTensors: number;
  /** One past the largest block id. */
  nBlocks: number;
  /** Number of distinct blocks that some tensor needs. */
  distinctBlocks: number;
  blocksPerPage: number;
  /** Tensor t needs tensorBlocks[tensorStart[t] .. tensorStart[t+1]), ascending. */
  tensorStart: Int32Array;
  tensorBlocks: Int32Array;
}

/** Validates and normalizes; throws PackingInputError with what was wrong. */
export function makeProblem(input: PackingInput): PackingProblem {
  const { tensors, blocksPerPage } = input;
  if (!Number.isInteger(blocksPerPage) || blocksPerPage < 1) {
    throw new PackingInputError(`blocksPerPage must be a positive integer, got ${blocksPerPage}: a page has to hold at least one block.`);
  }
  if (!tensors || tensors.length === 0) {
    throw new PackingInputError('no tensors to pack: pass at least one tensor with at least one block.');
  }
  const tensorStart = new Int32Array(tensors.length + 1);
  let total = 0;
  let maxId = -1;
  for (let t = 0; t < tensors.length; t++) {
    const ids = tensors[t];
    if (!ids || ids.length === 0) {
      throw new PackingInputError(`tensor ${t} needs no blocks: drop empty tensors before packing.`);
    }
    for (let i = 0; i < ids.length; i++) {
      const b = ids[i];
      if (!Number.isInteger(b) || b < 0 || b > 0x7ffffffe) {
        throw new PackingInputError(`tensor ${t} has block id ${b}: block ids must be integers in [0, 2^31-2].`);
      }
      if (b > maxId) maxId = b;
    }
    total += ids.length;
  }
  const tensorBlocks = new Int32Array(total);
  let w = 0;
  for (let t = 0; t < tensors.length; t++) {
    let sorted = Int32Array.from(tensors[t]);
    let ascending = true;
    for (let i = 1; i < sorted.length && ascending; i++) ascending = sorted[i - 1] <= sorted[i];
    if (!ascending) sorted = sorted.sort();
    tensorStart[t] = w;
    for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) tensorBlocks[w++] = sorted[i];
  }
  tensorStart[tensors.length] = w;
  const seen = new Uint8Array(maxId + 1);
  let distinct = 0;
  for (let i = 0; i < w; i++) if (!seen[tensorBlocks[i]]) { seen[tensorBlocks[i]] = 1; distinct++; }
  return {
    nTensors: tensors.length,
    nBlocks: maxId + 1,
    distinctBlocks: distinct,
    blocksPerPage,
    tensorStart,
    tensorBlocks: w === total ? tensorBlocks : tensorBlocks.slice(0, w),
  };
}

export function tensorSize(p: PackingProblem, t: number): number {
  return p.tensorStart[t + 1] - p.tensorStart[t];
}

/** ceil(distinct blocks / blocks per page): no layout can use fewer pages. */
export function trivialLowerBound(p: PackingProblem): number {
  return Math.ceil(p.distinctBlocks / p.blocksPerPage);
}

/**
 * A packing: pages as a CSR of block ids (slot = position in the page), and the pages each tensor
 * reads. A block id may appear on several pages (a copy), never twice on one page.
 */
export interface Layout {
  pageStart: Int32Array;
  pageBlocks: Int32Array;
  /** tensorPages[t] = the pages tensor t reads, ascending. */
  tensorPages: Int32Array[];
}

export function pageCount(layout: Layout): number {
  return layout.pageStart.length - 1;
}

/** Builds a Layout from page block lists and per-tensor page sets. */
export function layoutFrom(pages: ArrayLike<number>[], tensorPages: Iterable<number>[]): Layout {
  const pageStart = new Int32Array(pages.length + 1);
  let n = 0;
  for (let i = 0; i < pages.length; i++) { pageStart[i] = n; n += pages[i].length; }
  pageStart[pages.length] = n;
  const pageBlocks = new Int32Array(n);
  for (let i = 0; i < pages.length; i++) pageBlocks.set(pages[i], pageStart[i]);
  return { pageStart, pageBlocks, tensorPages: tensorPages.map((s) => Int32Array.from(s).sort()) };
}
