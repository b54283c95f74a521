/**
 * The relaxed rule: a tensor may read a page holding blocks it does not need. Then every block is
 * stored once and ceil(distinct / blocksPerPage) pages suffice; the price is bytes read that a
 * tensor does not need (evaluateLayout(..., 'relaxed').unneededBlocksRead). Whole pages of each
 * equivalence class cost nothing extra; only the leftovers share pages, laid out in netsDB's class
 * order (classes needed by more tensors first) so that similar tensor sets sit side by side.
 */
import { computeClasses, type BlockClasses } from './classes.ts';
import { netsdbClassOrder } from './netsdb.ts';
import { layoutFrom, type Layout, type PackingProblem } from './problem.ts';

export function packRelaxed(p: PackingProblem, classes: BlockClasses = computeClasses(p)): Layout {
  const l = p.blocksPerPage;
  const pages: number[][] = [];
  const leftovers: number[] = [];
  for (const c of netsdbClassOrder(classes)) {
    const s = classes.classStart[c];
    const e = classes.classStart[c + 1];
    const whole = s + Math.floor((e - s) / l) * l;
    for (let i = s; i < whole; i += l) pages.push(Array.from(classes.classBlocks.subarray(i, i + l)));
    for (let i = whole; i < e; i++) leftovers.push(classes.classBlocks[i]);
  }
  for (let i = 0; i < leftovers.length; i += l) pages.push(leftovers.slice(i, i + l));
  // Each tensor reads every page that holds a block it needs (each block is on one page).
  const pageOf = new Int32Array(p.nBlocks);
  pages.forEach((pg, k) => { for (const b of pg) pageOf[b] = k; });
  const seen = new Int32Array(pages.length);
  const tensorPages: number[][] = [];
  for (let t = 0; t < p.nTensors; t++) {
    const mine: number[] = [];
    for (let i = p.tensorStart[t]; i < p.tensorStart[t + 1]; i++) {
      const k = pageOf[p.tensorBlocks[i]];
      if (seen[k] !== t + 1) { seen[k] = t + 1; mine.push(k); }
    }
    tensorPages.push(mine);
  }
  return layoutFrom(pages, tensorPages);
}
