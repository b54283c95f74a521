/**
 * Equivalence classes: blocks needed by exactly the same set of tensors (netsDB's Greedy-1 unit,
 * and the unit our solver reasons in: blocks of one class are interchangeable).
 */
import { classifyRef, type ClassifyFn } from '../kernels/pack.ts';
import type { PackingProblem } from './problem.ts';

export interface BlockClasses {
  nClasses: number;
  /** classOf[b] = class of block b, -1 when no tensor needs b. */
  classOf: Int32Array;
  /** Blocks of class c: classBlocks[classStart[c] .. classStart[c+1]), ascending. */
  classStart: Int32Array;
  classBlocks: Int32Array;
  /** The tensors (ascending) that need every block of class c. */
  classTensors: Int32Array[];
}

export function classSize(cl: BlockClasses, c: number): number {
  return cl.classStart[c + 1] - cl.classStart[c];
}

/** Groups blocks by tensor set. `classify` is the hashing kernel (WASM or its TS twin). */
export function computeClasses(p: PackingProblem, classify: ClassifyFn = classifyRef): BlockClasses {
  let { classOf, nClasses } = classify(p.tensorStart, p.tensorBlocks, p.nBlocks);
  let classTensors = verifiedTensorSets(p, classOf, nClasses);
  if (!classTensors) {
    ({ classOf, nClasses } = classifyExact(p));
    classTensors = verifiedTensorSets(p, classOf, nClasses)!;
  }
  const classStart = new Int32Array(nClasses + 1);
  for (let b = 0; b < p.nBlocks; b++) if (classOf[b] >= 0) classStart[classOf[b] + 1]++;
  for (let c = 0; c < nClasses; c++) classStart[c + 1] += classStart[c];
  const fill = classStart.slice(0, nClasses);
  const classBlocks = new Int32Array(classStart[nClasses]);
  for (let b = 0; b < p.nBlocks; b++) if (classOf[b] >= 0) classBlocks[fill[classOf[b]]++] = b;
  return { nClasses, classOf, classStart, classBlocks, classTensors };
}

/**
 * Per class, the tensors that need it; null when some tensor needs only part of a class (a hash
 * collision merged two tensor sets), which is exactly the case a merge would show.
 */
function verifiedTensorSets(p: PackingProblem, classOf: Int32Array, nClasses: number): Int32Array[] | null {
  const size = new Int32Array(nClasses);
  for (let b = 0; b < p.nBlocks; b++) if (classOf[b] >= 0) size[classOf[b]]++;
  const inTensor = new Int32Array(nClasses);
  const stamp = new Int32Array(nClasses).fill(-1);
  const sets: number[][] = Array.from({ length: nClasses }, () => []);
  for (let t = 0; t < p.nTensors; t++) {
    const touched: number[] = [];
    for (let i = p.tensorStart[t]; i < p.tensorStart[t + 1]; i++) {
      const c = classOf[p.tensorBlocks[i]];
      if (stamp[c] !== t) { stamp[c] = t; inTensor[c] = 0; touched.push(c); }
      inTensor[c]++;
    }
    for (const c of touched) {
      if (inTensor[c] !== size[c]) return null;
      sets[c].push(t);
    }
  }
  return sets.map((s) => Int32Array.from(s));
}

/** Exact grouping by the tensor list itself (slow path, only after a hash collision). */
function classifyExact(p: PackingProblem): { classOf: Int32Array; nClasses: number } {
  const lists: number[][] = Array.from({ length: p.nBlocks }, () => []);
  for (let t = 0; t < p.nTensors; t++) {
    for (let i = p.tensorStart[t]; i < p.tensorStart[t + 1]; i++) lists[p.tensorBlocks[i]].push(t);
  }
  const ids = new Map<string, number>();
  const classOf = new Int32Array(p.nBlocks).fill(-1);
  for (let b = 0; b < p.nBlocks; b++) {
    if (lists[b].length === 0) continue;
    const key = lists[b].join(',');
    let id = ids.get(key);
    if (id === undefined) { id = ids.size; ids.set(key, id); }
    classOf[b] = id;
  }
  return { classOf, nClasses: ids.size };
}
