/**
 * netsDB's four page-packing algorithms (asu-cactus/netsdb, model-inference/deduplication/
 * page-packing/algorithms/PagePacking.py), re-implemented from their description and code as
 * baselines. Faithful points worth knowing:
 * - A later tensor reuses only *full* pages (exactly blocksPerPage blocks) all of whose blocks it
 *   still needs, scanning from the newest page back (their findMinBinsMaxCover); its other blocks
 *   go, in order of how many tensors need them, onto new pages (so blocks get duplicated).
 * - Python iterates sets in hash order; where that order mattered we use ascending block ids, so
 *   counts can differ by a page or two from the figures netsDB printed (see bench/packing.ts).
 * - Two-Stage is written in netsDB for fixed tensor counts (with a slip in one 5-tensor branch that
 *   adds the wrong class's page count); this is the general form: classes ordered by tensor-set
 *   size then lexicographically, whole pages per class, leftovers renumbered in that order and
 *   packed with Greedy-2.
 */
import { computeClasses, type BlockClasses } from './classes.ts';
import { layoutFrom, type Layout, type PackingProblem } from './problem.ts';

/** Tensors as CSR over block ids < nBlocks; tensors may be empty (Two-Stage's leftovers). */
interface Sets {
  start: Int32Array;
  blocks: Int32Array;
  nBlocks: number;
}

interface GreedyResult {
  pages: number[][];
  tensorPages: Set<number>[];
}

/** How many tensors need each block. */
function needCount(s: Sets): Int32Array {
  const f = new Int32Array(s.nBlocks);
  for (let i = 0; i < s.blocks.length; i++) f[s.blocks[i]]++;
  return f;
}

/** Stable sort of block ids by how many tensors need them, most first (counting sort). */
function byNeedDesc(ids: number[], need: Int32Array, nTensors: number): number[] {
  const buckets: number[][] = Array.from({ length: nTensors + 1 }, () => []);
  for (const b of ids) buckets[need[b]].push(b);
  const out: number[] = [];
  for (let k = nTensors; k >= 0; k--) for (const b of buckets[k]) out.push(b);
  return out;
}

/**
 * The shared core of Baseline and Greedy-2: lay the first tensor out, then for each next tensor
 * reuse full pages it wholly needs and put the rest on new pages.
 */
function greedyCore(s: Sets, order: number[], l: number, firstByNeed: boolean): GreedyResult {
  const nT = s.start.length - 1;
  const need = needCount(s);
  const pages: number[][] = [];
  const tensorPages: Set<number>[] = Array.from({ length: nT }, () => new Set<number>());
  const mark = new Int32Array(s.nBlocks);
  const place = (t: number, items: number[]) => {
    for (let i = 0; i < items.length; i += l) {
      tensorPages[t].add(pages.length);
      pages.push(items.slice(i, i + l));
    }
  };
  order.forEach((t, k) => {
    const own: number[] = [];
    for (let i = s.start[t]; i < s.start[t + 1]; i++) own.push(s.blocks[i]);
    if (k === 0) {
      place(t, firstByNeed ? byNeedDesc(own, need, nT) : own);
      return;
    }
    const stamp = k + 1;
    for (const b of own) mark[b] = stamp;
    for (let pg = pages.length - 1; pg >= 0; pg--) {
      const blocks = pages[pg];
      if (blocks.length !== l) continue;
      let all = true;
      for (const b of blocks) if (mark[b] !== stamp) { all = false; break; }
      if (!all) continue;
      for (const b of blocks) mark[b] = 0;
      tensorPages[t].add(pg);
    }
    const rest = own.filter((b) => mark[b] === stamp);
    place(t, byNeedDesc(rest, need, nT));
  });
  return { pages, tensorPages };
}

function setsOf(p: PackingProblem): Sets {
  return { start: p.tensorStart, blocks: p.tensorBlocks, nBlocks: p.nBlocks };
}

/** Baseline: tensors in input order, the first one's blocks in id order. */
export function packBaseline(p: PackingProblem): Layout {
  const order = Array.from({ length: p.nTensors }, (_, t) => t);
  const r = greedyCore(setsOf(p), order, p.blocksPerPage, false);
  return layoutFrom(r.pages, r.tensorPages);
}

function bySizeDesc(s: Sets): number[] {
  const nT = s.start.length - 1;
  const order = Array.from({ length: nT }, (_, t) => t);
  // Array.prototype.sort is stable: ties keep input order, as Python's sorted does.
  return order.sort((a, b) => (s.start[b + 1] - s.start[b]) - (s.start[a + 1] - s.start[a]));
}

/** Greedy-2: the baseline with the largest tensor first and blocks ordered by how many tensors need them. */
export function packGreedy2(p: PackingProblem): Layout {
  const s = setsOf(p);
  const r = greedyCore(s, bySizeDesc(s), p.blocksPerPage, true);
  return layoutFrom(r.pages, r.tensorPages);
}

/** Greedy-1: each equivalence class on its own pages. */
export function packGreedy1(p: PackingProblem, classes: BlockClasses = computeClasses(p)): Layout {
  const l = p.blocksPerPage;
  const pages: number[][] = [];
  const tensorPages: number[][] = Array.from({ length: p.nTensors }, () => []);
  for (let c = 0; c < classes.nClasses; c++) {
    for (let i = classes.classStart[c]; i < classes.classStart[c + 1]; i += l) {
      for (const t of classes.classTensors[c]) tensorPages[t].push(pages.length);
      pages.push(Array.from(classes.classBlocks.subarray(i, Math.min(i + l, classes.classStart[c + 1]))));
    }
  }
  return layoutFrom(pages, tensorPages);
}

/** netsDB's class order: more tensors first, then lexicographic tensor lists (itertools.combinations). */
export function netsdbClassOrder(classes: BlockClasses): number[] {
  const order = Array.from({ length: classes.nClasses }, (_, c) => c);
  return order.sort((a, b) => {
    const sa = classes.classTensors[a];
    const sb = classes.classTensors[b];
    if (sa.length !== sb.length) return sb.length - sa.length;
    for (let i = 0; i < sa.length; i++) if (sa[i] !== sb[i]) return sa[i] - sb[i];
    return 0;
  });
}

/** Two-Stage: whole pages from each class, then the leftovers of all classes with Greedy-2. */
export function packTwoStage(p: PackingProblem, classes: BlockClasses = computeClasses(p)): Layout {
  const l = p.blocksPerPage;
  const pages: number[][] = [];
  const tensorPages: Set<number>[] = Array.from({ length: p.nTensors }, () => new Set<number>());
  const leftover: number[] = []; // new id -> block id
  const leftoverOf: number[][] = Array.from({ length: p.nTensors }, () => []);
  for (const c of netsdbClassOrder(classes)) {
    const s = classes.classStart[c];
    const e = classes.classStart[c + 1];
    const whole = Math.floor((e - s) / l);
    for (let k = 0; k < whole; k++) {
      for (const t of classes.classTensors[c]) tensorPages[t].add(pages.length);
      pages.push(Array.from(classes.classBlocks.subarray(s + k * l, s + (k + 1) * l)));
    }
    for (let i = s + whole * l; i < e; i++) {
      for (const t of classes.classTensors[c]) leftoverOf[t].push(leftover.length);
      leftover.push(classes.classBlocks[i]);
    }
  }
  if (leftover.length > 0) {
    const start = new Int32Array(p.nTensors + 1);
    for (let t = 0; t < p.nTensors; t++) start[t + 1] = start[t] + leftoverOf[t].length;
    const sub: Sets = { start, blocks: Int32Array.from(leftoverOf.flat()), nBlocks: leftover.length };
    const r = greedyCore(sub, bySizeDesc(sub), l, true);
    const base = pages.length;
    for (const pg of r.pages) pages.push(pg.map((id) => leftover[id]));
    r.tensorPages.forEach((set, t) => { for (const pg of set) tensorPages[t].add(base + pg); });
  }
  return layoutFrom(pages, tensorPages);
}
