/**
 * Checks a layout and measures it: page count, and per tensor the pages it reads and its read
 * amplification (blocks read / blocks needed). Under netsDB's rule ('strict') every page a tensor
 * reads must hold only blocks it needs; under the relaxed rule a tensor may read blocks it does not
 * need, which shows up as amplification > 1.
 */
import type { Layout, PackingProblem } from './problem.ts';

export type PackingRule = 'strict' | 'relaxed';

export interface TensorReads {
  pagesRead: number;
  blocksNeeded: number;
  /** Blocks on the pages read (a block read from two pages counts twice). */
  blocksRead: number;
  /** blocksRead / blocksNeeded: 1 means the tensor reads nothing it does not need. */
  amplification: number;
}

export interface LayoutReport {
  pages: number;
  /** Block copies stored (slots used); copies - distinct blocks = duplicated blocks. */
  copies: number;
  /** What breaks the rule or the page format; empty when the layout is valid. */
  violations: string[];
  tensors: TensorReads[];
  /** Sum over tensors of blocks read that the tensor does not need. */
  unneededBlocksRead: number;
}

export function evaluateLayout(p: PackingProblem, layout: Layout, rule: PackingRule = 'strict'): LayoutReport {
  const l = p.blocksPerPage;
  const nPages = layout.pageStart.length - 1;
  const violations: string[] = [];
  const note = (msg: string) => { if (violations.length < 20) violations.push(msg); };
  const stamp = new Int32Array(Math.max(p.nBlocks, 1) + 1);
  let copies = 0;
  for (let pg = 0; pg < nPages; pg++) {
    const s = layout.pageStart[pg];
    const e = layout.pageStart[pg + 1];
    if (e - s > l) note(`page ${pg} holds ${e - s} blocks, more than ${l}`);
    if (e === s) note(`page ${pg} is empty`);
    for (let i = s; i < e; i++) {
      const b = layout.pageBlocks[i];
      if (b < 0 || b >= p.nBlocks) { note(`page ${pg} holds unknown block ${b}`); continue; }
      if (stamp[b] === pg + 1) note(`page ${pg} holds block ${b} twice`);
      stamp[b] = pg + 1;
    }
    copies += e - s;
  }
  const needs = new Int32Array(p.nBlocks);
  const got = new Int32Array(p.nBlocks);
  const tensors: TensorReads[] = [];
  let unneeded = 0;
  for (let t = 0; t < p.nTensors; t++) {
    const mark = t + 1;
    for (let i = p.tensorStart[t]; i < p.tensorStart[t + 1]; i++) needs[p.tensorBlocks[i]] = mark;
    let blocksRead = 0;
    const pagesList = layout.tensorPages[t] ?? new Int32Array(0);
    for (const pg of pagesList) {
      if (pg < 0 || pg >= nPages) { note(`tensor ${t} reads page ${pg}, which does not exist`); continue; }
      for (let i = layout.pageStart[pg]; i < layout.pageStart[pg + 1]; i++) {
        const b = layout.pageBlocks[i];
        if (b < 0 || b >= p.nBlocks) continue;
        blocksRead++;
        if (needs[b] === mark) got[b] = mark;
        else {
          unneeded++;
          if (rule === 'strict') note(`tensor ${t} reads page ${pg}, which holds block ${b} it does not need`);
        }
      }
    }
    const blocksNeeded = p.tensorStart[t + 1] - p.tensorStart[t];
    for (let i = p.tensorStart[t]; i < p.tensorStart[t + 1]; i++) {
      const b = p.tensorBlocks[i];
      if (got[b] !== mark) { note(`tensor ${t} needs block ${b} but none of its pages holds it`); break; }
    }
    tensors.push({ pagesRead: pagesList.length, blocksNeeded, blocksRead, amplification: blocksRead / blocksNeeded });
  }
  return { pages: nPages, copies, violations, tensors, unneededBlocksRead: unneeded };
}
