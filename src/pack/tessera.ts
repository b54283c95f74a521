/**
 * tessera's packing under netsDB's rule (a tensor reads only pages all of whose blocks it needs).
 *
 * Model. Give every page a *type*: the set W of tensors that read it. A page of type W may hold
 * block b only if every tensor in W needs b (W ⊆ S(b), S(b) = tensors needing b). Every tensor in
 * S(b) must find b on one of its pages, so each block picks a *cover*: a partition of S(b) into
 * types, one copy of b per part. Blocks of one equivalence class are interchangeable, so a solution
 * is just, per class, how many of its blocks use each candidate partition; the copies landing on
 * type W are M_W, and type W needs ceil(M_W / blocksPerPage) pages. Every layout netsDB's
 * algorithms produce is such a solution (each tensor reads each block from one page), so the best
 * solution of this model is never worse than theirs; with all partitions enumerated (classes needed
 * by ≤ 6 tensors) the model is exact for partition layouts.
 *
 * Search. Start from Greedy-1 (every class whole on its own type). Repeatedly empty the last page
 * of a type (nearly empty ones first) by moving its copies to other partitions of their classes
 * whose parts have room on pages that already exist; when that stalls, grant one type a trial
 * extra page and keep it if it lets two or more last pages be emptied. Stop at the chain lower
 * bound (bounds.ts), where the result is provably optimal. Cost is independent of the number of
 * blocks: only classes, their candidate partitions and the types they touch are involved.
 */
import { computeClasses, classSize, type BlockClasses } from './classes.ts';
import { lowerBounds } from './bounds.ts';
import { packBaseline, packGreedy2, packTwoStage } from './netsdb.ts';
import { layoutFrom, type Layout, type PackingProblem } from './problem.ts';

export interface TesseraOptions {
  /** Most rounds of "open one page to empty several" (default 64). */
  rounds?: number;
  /**
   * Work budget in candidate moves examined, shared by all starts (deterministic, unlike a time limit); default 1e6,
   * roughly a few hundred ms. The real cases need far less; large stores stop early with a good,
   * not necessarily optimal, plan.
   */
  maxWork?: number;
  /** Stop as soon as this many pages is reached (a lower bound: nothing better exists). */
  stopAt?: number;
  /** Other layouts (e.g. netsDB's) to start from when the first search stops above stopAt. */
  startLayouts?: () => Layout[];
  /** Largest tensor set whose partitions are all enumerated (Bell numbers: 6 -> 203). */
  enumerateUpTo?: number;
}

/** The solved model: types and, per class, the blocks assigned to each partition. */
export interface CoverPlan {
  pages: number;
  /** typeTensors[w] = tensors reading pages of type w. */
  typeTensors: Int32Array[];
  /** Per class, the partitions used: parts are type ids, count = blocks of the class using it. */
  classCovers: { parts: number[]; count: number }[][];
}

/** All set partitions of {0..n-1} (restricted growth strings), the whole set first; memoized. */
const partitionMemo = new Map<number, number[][][]>();
function setPartitions(n: number): number[][][] {
  const known = partitionMemo.get(n);
  if (known) return known;
  const out: number[][][] = [];
  const a = new Array<number>(n).fill(0);
  const rec = (i: number, max: number) => {
    if (i === n) {
      const parts: number[][] = Array.from({ length: max + 1 }, () => []);
      for (let k = 0; k < n; k++) parts[a[k]].push(k);
      out.push(parts);
      return;
    }
    for (let v = 0; v <= max + 1; v++) { a[i] = v; rec(i + 1, Math.max(max, v)); }
  };
  if (n > 0) rec(1, 0);
  partitionMemo.set(n, out);
  return out;
}

class TypeRegistry {
  readonly ids = new Map<string, number>();
  private readonly byMask = new Map<number, number>();
  readonly tensors: Int32Array[] = [];
  id(set: ArrayLike<number>): number {
    // Small tensor ids: key by bitmask (no string building); else by the joined sorted list.
    let mask = 0;
    for (let i = 0; i < set.length && mask >= 0; i++) mask = set[i] < 31 ? mask | (1 << set[i]) : -1;
    if (mask >= 0) {
      const known = this.byMask.get(mask);
      if (known !== undefined) return known;
    }
    const sorted = Int32Array.from(set).sort();
    const key = sorted.join(',');
    let id = this.ids.get(key);
    if (id === undefined) { id = this.tensors.length; this.ids.set(key, id); this.tensors.push(sorted); }
    if (mask >= 0) this.byMask.set(mask, id);
    return id;
  }
}

/** Candidate partitions of each class's tensor set (as type-id lists); index 0 is the whole set. */
function candidateCovers(classes: BlockClasses, types: TypeRegistry, enumerateUpTo: number): number[][][] {
  const sigs = classes.classTensors;
  const out: number[][][] = [];
  // Other classes' tensor sets inside class c's, largest first; bitmasks when tensors fit 31 bits.
  const maxTensor = sigs.reduce((m, s) => Math.max(m, s.length ? s[s.length - 1] : 0), 0);
  const masks = maxTensor < 31 ? sigs.map((s) => s.reduce((m, t) => m | (1 << t), 0)) : null;
  const sets = masks ? null : sigs.map((s) => new Set(s));
  const bySizeDesc = sigs.map((_, d) => d).sort((a, b) => sigs[b].length - sigs[a].length);
  const subsetsOf = (c: number): Int32Array[] => {
    const found: Int32Array[] = [];
    for (const d of bySizeDesc) {
      if (d === c || sigs[d].length >= sigs[c].length) continue;
      const inside = masks ? (masks[d] & masks[c]) === masks[d] : sigs[d].every((t) => sets![c].has(t));
      if (inside) found.push(sigs[d]);
      if (found.length >= 48) break;
    }
    return found;
  };
  for (let c = 0; c < classes.nClasses; c++) {
    const S = Array.from(sigs[c]);
    const covers: number[][] = [[types.id(S)]];
    if (S.length > 1 && S.length <= enumerateUpTo) {
      const all = setPartitions(S.length);
      for (let k = 1; k < all.length; k++) covers.push(all[k].map((part) => types.id(part.map((i) => S[i]))));
    } else if (S.length > 1) {
      // Too many partitions: split off other classes' tensor sets (the types that already have
      // pages), largest first, and the all-singletons partition.
      const subs = subsetsOf(c).slice(0, 48);
      for (const s of subs) {
        const sub = new Set(s);
        covers.push([types.id(s), types.id(S.filter((t) => !sub.has(t)))]);
      }
      covers.push(S.map((t) => types.id([t])));
    }
    out.push(covers);
  }
  return out;
}

/**
 * Reads a layout as cover counts: each page's type is the set of tensors reading it, and a block's
 * cover is the types of the pages holding it. Null when some block's pages do not form one of the
 * candidate partitions (overlapping readers, or a partition not enumerated).
 */
function coverCountsOf(layout: Layout, classes: BlockClasses, covers: number[][][], types: TypeRegistry): Int32Array[] | null {
  const nPages = layout.pageStart.length - 1;
  const readers: number[][] = Array.from({ length: nPages }, () => []);
  layout.tensorPages.forEach((pages, t) => { for (const pg of pages) readers[pg].push(t); });
  const pageType = readers.map((r) => (r.length ? types.ids.get(r.sort((a, b) => a - b).join(',')) ?? -2 : -1));
  const partsOf = new Map<number, number[]>();
  for (let pg = 0; pg < nPages; pg++) {
    if (pageType[pg] === -1) continue;
    if (pageType[pg] === -2) return null;
    for (let i = layout.pageStart[pg]; i < layout.pageStart[pg + 1]; i++) {
      const b = layout.pageBlocks[i];
      let list = partsOf.get(b);
      if (!list) partsOf.set(b, (list = []));
      list.push(pageType[pg]);
    }
  }
  const out: Int32Array[] = [];
  for (let c = 0; c < classes.nClasses; c++) {
    const index = new Map(covers[c].map((parts, k) => [parts.slice().sort((a, b) => a - b).join(','), k]));
    const counts = new Int32Array(covers[c].length);
    for (let i = classes.classStart[c]; i < classes.classStart[c + 1]; i++) {
      const parts = partsOf.get(classes.classBlocks[i]);
      const k = parts ? index.get(parts.sort((a, b) => a - b).join(',')) : undefined;
      if (k === undefined) return null;
      counts[k]++;
    }
    out.push(counts);
  }
  return out;
}

/** Solves the cover model (see the module comment). */
export function solveCovers(p: PackingProblem, classes: BlockClasses, opts: TesseraOptions = {}): CoverPlan {
  const l = p.blocksPerPage;
  const types = new TypeRegistry();
  // Many classes: enumerate fewer partitions (Bell(4) = 15) to keep the set-up near-linear.
  const covers = candidateCovers(classes, types, opts.enumerateUpTo ?? (classes.nClasses > 512 ? 4 : 6));
  const nC = classes.nClasses;
  const nW = types.tensors.length;
  // y[c][k]: blocks of class c using cover k; M[w]: copies on type w.
  const y = covers.map((cv) => new Int32Array(cv.length));
  const M = new Float64Array(nW);
  const startFrom = (init: Int32Array[]) => {
    M.fill(0);
    init.forEach((a, c) => { y[c].set(a); a.forEach((q, k) => { for (const w of covers[c][k]) M[w] += q; }); });
  };
  const greedy1 = covers.map((cv, c) => { const a = new Int32Array(cv.length); a[0] = classSize(classes, c); return a; });
  // Where each type occurs: (class, cover) pairs.
  const occurs: { c: number; k: number }[][] = Array.from({ length: nW }, () => []);
  covers.forEach((cv, c) => cv.forEach((parts, k) => { for (const w of parts) occurs[w].push({ c, k }); }));
  const pagesOf = (w: number) => Math.ceil(M[w] / l);
  const totalPages = () => { let s = 0; for (let w = 0; w < nW; w++) s += pagesOf(w); return s; };
  let work = 0;
  const maxWork = opts.maxWork ?? 1e6;
  let bonus = -1; // a type granted one extra (trial) page of room
  const room = (w: number) => l * (pagesOf(w) + (w === bonus ? 1 : 0)) - M[w];
  const move = (c: number, from: number, to: number, q: number) => {
    y[c][from] -= q; y[c][to] += q;
    for (const w of covers[c][from]) M[w] -= q;
    for (const w of covers[c][to]) M[w] += q;
  };

  /** Moves the copies on type w's last page elsewhere without opening pages; true when done. */
  const emptyLastPage = (w: number): boolean => {
    let need = M[w] - l * (pagesOf(w) - 1);
    const moves: [number, number, number, number][] = [];
    while (need > 0) {
      let bc = -1, bk = -1, bk2 = -1, bq = 0, bCost = Infinity;
      for (const { c, k } of occurs[w]) {
        if (y[c][k] === 0) continue;
        const cv = covers[c];
        work += cv.length;
        for (let k2 = 0; k2 < cv.length; k2++) {
          if (cv[k2].includes(w)) continue;
          let q = Math.min(need, y[c][k]);
          let cost = 0;
          for (const u of cv[k2]) {
            if (cv[k].includes(u)) continue;
            cost++;
            q = Math.min(q, room(u));
            if (q <= 0) break;
          }
          if (q <= 0) continue;
          // Fewest new copies per block moved; then the biggest batch.
          const score = cost - q / (l + 1);
          if (score < bCost) { bCost = score; bc = c; bk = k; bk2 = k2; bq = q; }
        }
      }
      if (bc < 0) {
        for (let i = moves.length - 1; i >= 0; i--) { const [c, k, k2, q] = moves[i]; move(c, k2, k, q); }
        return false;
      }
      move(bc, bk, bk2, bq);
      moves.push([bc, bk, bk2, bq]);
      need -= bq;
    }
    return true;
  };

  let coverCount = 0;
  for (const cv of covers) coverCount += cv.length;
  const snapshot = () => { work += coverCount + nW; return { y: y.map((a) => a.slice()), M: M.slice() }; };
  const restore = (s: { y: Int32Array[]; M: Float64Array }) => { s.y.forEach((a, c) => y[c].set(a)); M.set(s.M); };
  const partialTypes = () => {
    const ws: number[] = [];
    work += nW;
    for (let w = 0; w < nW; w++) if (M[w] > 0) ws.push(w);
    // Nearly empty last pages first: they are the cheapest to empty.
    return ws.sort((a, b) => (M[a] - l * (pagesOf(a) - 1)) - (M[b] - l * (pagesOf(b) - 1)));
  };
  const sweep = (): boolean => {
    let any = false;
    for (const w of partialTypes()) {
      if (work > maxWork) break;
      if (w !== bonus && M[w] > 0 && emptyLastPage(w)) any = true;
    }
    return any;
  };

  const improve = (): number => {
    let pages = totalPages();
    const maxRounds = opts.rounds ?? 64;
    const stopAt = opts.stopAt ?? 0;
    for (let round = 0; round < maxRounds; round++) {
      bonus = -1;
      while (sweep() && work <= maxWork) { /* empty what can be emptied for free */ }
      pages = totalPages();
      if (pages <= stopAt) break;
      // Open one page somewhere if that lets two or more last pages be emptied.
      let improved = false;
      for (let u = 0; u < nW && !improved && work <= maxWork; u++) {
        const before = snapshot();
        bonus = u;
        sweep();
        bonus = -1;
        const after = totalPages();
        if (after < pages) { pages = after; improved = true; } else restore(before);
      }
      if (!improved) break;
    }
    return pages;
  };

  startFrom(greedy1);
  let pages = improve();
  let best = y.map((a) => a.slice());
  // Not provably optimal yet: also improve from the given layouts (netsDB's), so the result is
  // never worse than any of them.
  if (pages > (opts.stopAt ?? 0) && opts.startLayouts) {
    for (const layout of opts.startLayouts()) {
      const init = coverCountsOf(layout, classes, covers, types);
      if (!init) continue;
      startFrom(init);
      const got = improve();
      if (got < pages) { pages = got; best = y.map((a) => a.slice()); }
    }
  }
  startFrom(best);
  const classCovers = y.map((yc, c) => {
    const used: { parts: number[]; count: number }[] = [];
    yc.forEach((count, k) => { if (count > 0) used.push({ parts: covers[c][k], count }); });
    return used;
  });
  return { pages, typeTensors: types.tensors, classCovers };
}

/**
 * Turns a cover plan into pages: each type's copies, in class order, cut into pages by `cut`
 * (default: blocksPerPage blocks per page). Tensors read every page of the types they belong to.
 */
export function materializeCovers(
  p: PackingProblem,
  classes: BlockClasses,
  plan: CoverPlan,
  cut: (copies: number[]) => number[][] = (copies) => {
    const pages: number[][] = [];
    for (let i = 0; i < copies.length; i += p.blocksPerPage) pages.push(copies.slice(i, i + p.blocksPerPage));
    return pages;
  },
): Layout {
  const copiesOf: number[][] = plan.typeTensors.map(() => []);
  plan.classCovers.forEach((used, c) => {
    let i = classes.classStart[c];
    for (const { parts, count } of used) {
      for (const w of parts) for (let k = 0; k < count; k++) copiesOf[w].push(classes.classBlocks[i + k]);
      i += count;
    }
  });
  const pages: number[][] = [];
  const tensorPages: number[][] = Array.from({ length: p.nTensors }, () => []);
  copiesOf.forEach((copies, w) => {
    for (const page of cut(copies)) {
      for (const t of plan.typeTensors[w]) tensorPages[t].push(pages.length);
      pages.push(page);
    }
  });
  return layoutFrom(pages, tensorPages);
}

/** tessera's packing: fewest pages found under netsDB's rule (stops early at the chain bound). */
export function packTessera(p: PackingProblem, classes: BlockClasses = computeClasses(p), opts: TesseraOptions = {}): Layout {
  const stopAt = opts.stopAt ?? lowerBounds(p, classes).chain;
  // netsDB's layouts convert to the model only when every partition is enumerated: small tensor counts.
  const small = p.nTensors <= (opts.enumerateUpTo ?? (classes.nClasses > 512 ? 4 : 6));
  const startLayouts = opts.startLayouts ?? (small ? () => [packTwoStage(p, classes), packGreedy2(p), packBaseline(p)] : undefined);
  return materializeCovers(p, classes, solveCovers(p, classes, { ...opts, stopAt, startLayouts }));
}
