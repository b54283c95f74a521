/**
 * Packing blocks of mixed sizes by bytes, one copy each (the relaxed rule): what the store's
 * compaction uses. Real stores mix 16 KiB float32 tiles with small biases, int64 constants, uint8
 * tiles and compressed deltas; giving every block a slot the size of the largest (the slot model
 * of `planPages`) made compaction of real stores grow them up to 8x (issue 12). Here a page holds
 * any blocks whose bytes fit.
 *
 * Two stages, for locality then density:
 * 1. Each equivalence class (blocks needed by the same models), in netsDB's class order, is packed
 *    first-fit-decreasing into pages of its own; those filled to at least `closeFill` are final,
 *    so a model reads whole pages of blocks it needs.
 * 2. The blocks of the other pages (each class's remainder) are packed first-fit-decreasing
 *    together. First-fit opens a page only for a block no open page can take, so every page but
 *    the last is filled past pageBytes minus the largest block: with blocks at most 1/32 of a
 *    page (a 64x64 tile of 8-byte elements on a 1 MiB page) that is within ~3% of
 *    ceil(bytes / pageBytes), the lower bound.
 */
import { computeClasses } from './classes.ts';
import { netsdbClassOrder } from './netsdb.ts';
import { makeProblem, PackingInputError } from './problem.ts';

export interface BytePacking {
  /** Block indices on each page, in page order. */
  pages: number[][];
  /** Bytes used on each page. */
  used: number[];
}

/** Pages filled at least this much in stage 1 are kept as they are. */
const CLOSE_FILL = 0.97;

/**
 * Packs blocks `0 .. sizes.length-1` (each needed by some model of `models`, or listed in no
 * model: those are packed too, as a class of their own) onto pages of `pageBytes`.
 */
export function packBytes(models: ArrayLike<number>[], sizes: ArrayLike<number>, pageBytes: number): BytePacking {
  if (!Number.isInteger(pageBytes) || pageBytes <= 0) throw new PackingInputError(`packBytes: page size must be a positive integer of bytes, got ${pageBytes}.`);
  for (let b = 0; b < sizes.length; b++) {
    if (!Number.isInteger(sizes[b]) || sizes[b] <= 0) throw new PackingInputError(`packBytes: block ${b} has size ${sizes[b]}; sizes must be positive integers.`);
    if (sizes[b] > pageBytes) throw new PackingInputError(`packBytes: block ${b} is ${sizes[b]} bytes, larger than a ${pageBytes}-byte page.`);
  }
  if (!sizes.length) return { pages: [], used: [] };
  const needed = new Uint8Array(sizes.length);
  const tensors = models.filter((m) => m.length > 0);
  for (const m of tensors) for (let i = 0; i < m.length; i++) needed[m[i]] = 1;
  const unneeded: number[] = [];
  for (let b = 0; b < sizes.length; b++) if (!needed[b]) unneeded.push(b);
  if (unneeded.length) tensors.push(unneeded);
  const classes = computeClasses(makeProblem({ tensors, blocksPerPage: 1 }));
  const bySizeDesc = (a: number, b: number) => sizes[b] - sizes[a] || a - b;

  const pages: number[][] = [];
  const used: number[] = [];
  const leftovers: number[] = [];
  for (const c of netsdbClassOrder(classes)) {
    const blocks = Array.from(classes.classBlocks.subarray(classes.classStart[c], classes.classStart[c + 1])).sort(bySizeDesc);
    const own = firstFit(blocks, sizes, pageBytes);
    own.pages.forEach((pg, k) => {
      if (own.used[k] >= CLOSE_FILL * pageBytes) {
        pages.push(pg);
        used.push(own.used[k]);
      } else leftovers.push(...pg);
    });
  }
  const rest = firstFit(leftovers.sort(bySizeDesc), sizes, pageBytes);
  pages.push(...rest.pages);
  used.push(...rest.used);
  return { pages, used };
}

/** First-fit in the given order (decreasing sizes make it first-fit-decreasing). */
function firstFit(blocks: number[], sizes: ArrayLike<number>, pageBytes: number): BytePacking {
  const pages: number[][] = [];
  const used: number[] = [];
  const free = new MaxTree();
  for (const b of blocks) {
    const s = sizes[b];
    let k = free.leftmostAtLeast(s);
    if (k < 0) {
      k = pages.length;
      pages.push([]);
      used.push(0);
    }
    pages[k].push(b);
    used[k] += s;
    free.set(k, pageBytes - used[k]);
  }
  return { pages, used };
}

/** Free bytes per page in a max segment tree: the leftmost page with room for a block in O(log pages). */
class MaxTree {
  private size = 1;
  private tree = new Float64Array(2).fill(-1);

  set(i: number, value: number): void {
    while (i >= this.size) this.grow();
    let n = this.size + i;
    this.tree[n] = value;
    for (n >>= 1; n >= 1; n >>= 1) this.tree[n] = Math.max(this.tree[2 * n], this.tree[2 * n + 1]);
  }

  leftmostAtLeast(value: number): number {
    if (this.tree[1] < value) return -1;
    let n = 1;
    while (n < this.size) n = this.tree[2 * n] >= value ? 2 * n : 2 * n + 1;
    return n - this.size;
  }

  private grow(): void {
    const old = this.tree;
    const oldSize = this.size;
    this.size *= 2;
    this.tree = new Float64Array(2 * this.size).fill(-1);
    this.tree.set(old.subarray(oldSize, 2 * oldSize), this.size);
    for (let n = this.size - 1; n >= 1; n--) this.tree[n] = Math.max(this.tree[2 * n], this.tree[2 * n + 1]);
  }
}
