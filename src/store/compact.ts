/**
 * Compaction: pending substitutions are settled and blocks are repacked by bytes
 * (src/pack/bytes.ts) onto fresh pages, copy-on-write, in one commit: the layout is planned on the
 * catalog as it will be once settled, the new pages are written into free slots, one 'repack'
 * record carries both the settles and the moves, and only once it is durable are the old slots,
 * left empty, released. A fault or crash before the commit leaves the old state exactly (pending
 * substitutions still undoable, old layout intact).
 *
 * Two candidate layouts are planned and the one with fewer pages is kept (ties: the one that
 * writes less): repacking only the pages filled below KEEP_FILL, or repacking every block. When
 * neither beats the current layout, nothing is written: compaction never grows a store, and a
 * second run right after the first is a no-op (so disk use does not creep up run after run).
 *
 * New pages go into free slots, which (copy-on-write) lie past the end of the old layout; once the
 * old slots are released, the highest pages are copied down into them (a second 'repack') so the
 * slots in use are 0..pages-1 again and a file backend can cut its file back to the live pages.
 */
import { Catalog, modelRefs, type BlockMove, type ModelEntry } from '../catalog/catalog.ts';
import { packBytes } from '../pack/bytes.ts';
import { catalogView, type CatalogView } from './catalog-view.ts';
import type { StoreCore, Progress } from './core.ts';

export interface CompactReport {
  pagesBefore: number;
  pagesAfter: number;
  /** Substitutions settled first. */
  settled: number;
  /** Pages written (0 when the current layout was kept). */
  pagesWritten: number;
}

/** Pages at least this full are kept as they are by the partial repack. */
const KEEP_FILL = 0.95;

export async function compactStore(core: StoreCore, opts: { onProgress?: (p: Progress) => void } = {}): Promise<CompactReport> {
  core.check();
  const cat = core.catalog;
  const pagesBefore = cat.pages.size;
  const settling = [...cat.models.values()].filter((m) => m.substitutions?.length);
  const settled = settling.reduce((n, m) => n + m.substitutions!.length, 0);
  let pagesWritten = 0;
  const plan = planCompaction(settling.length ? settledView(cat, settling.map((m) => m.name)) : cat);
  pagesWritten += await repack(core, plan?.pages ?? [], settling.map((m) => m.name), opts);
  pagesWritten += await repack(core, slideDown(cat), [], opts);
  return { pagesBefore, pagesAfter: cat.pages.size, settled, pagesWritten };
}

/** The catalog as it will be once `names` are settled (a scratch copy; the store's is untouched). */
function settledView(cat: CatalogView, names: string[]): CatalogView {
  const scratch = Catalog.load(cat.snapshot(), []);
  scratch.apply({ t: 'repack', seq: scratch.seq + 1, blocks: [], pages: [], settle: names });
  return catalogView(() => scratch);
}

/**
 * Writes `layout` (block ids per new page) into free slots and commits the moves, with the
 * settles of `settle`, as one record; returns pages written.
 */
async function repack(core: StoreCore, layout: number[][], settle: string[], opts: { onProgress?: (p: Progress) => void }): Promise<number> {
  if (!layout.length && !settle.length) return 0;
  const source = core.blocks({ maxCachedPages: 64 });
  const writer = core.pageWriter((n) => opts.onProgress?.({ phase: 'write', done: n, total: layout.length }));
  const moves: BlockMove[] = [];
  for (const page of layout) {
    for (const id of page) {
      const { page: to, offset } = await writer.place(await source.stored(id));
      moves.push({ id, page: to, offset });
    }
    await writer.endPage();
  }
  const { pages } = await writer.finish();
  await core.commit({ t: 'repack', seq: writer.epoch, blocks: moves, pages, ...(settle.length ? { settle } : {}) });
  return pages.length;
}

/**
 * The highest pages that a free slot below them can take, each with its live blocks in offset
 * order: written in this order, the page writer (lowest free slot first) moves each one down.
 */
function slideDown(cat: CatalogView): number[][] {
  const used = [...cat.pages.keys()].sort((a, b) => b - a);
  const free: number[] = [];
  for (let id = 0; free.length < used.length && id < (used[0] ?? 0); id++) if (!cat.pages.has(id)) free.push(id);
  let n = 0;
  while (n < used.length && n < free.length && free[n] < used[n]) n++;
  if (!n) return [];
  const moving = new Map(used.slice(0, n).map((p) => [p, [] as { id: number; offset: number }[]]));
  for (const [id, b] of cat.blocks) moving.get(b.page)?.push({ id, offset: b.offset });
  return used.slice(0, n).map((p) => moving.get(p)!.sort((a, b) => a.offset - b.offset).map((x) => x.id));
}

/**
 * The blocks to move and their new pages (block ids per page), or null when no repack has fewer
 * pages than the current layout.
 */
export function planCompaction(cat: CatalogView): { pages: number[][] } | null {
  const { pageSize } = cat.config;
  const current = cat.pages.size;
  if (!cat.blocks.size) return null;
  const live = new Map<number, number>();
  for (const b of cat.blocks.values()) live.set(b.page, (live.get(b.page) ?? 0) + b.length);
  const sparse = new Set([...live].filter(([, bytes]) => bytes < KEEP_FILL * pageSize).map(([p]) => p));

  const all = packOnto(cat, () => true);
  const partial = sparse.size > 1 ? packOnto(cat, (page) => sparse.has(page)) : null;
  const partialTotal = partial ? current - sparse.size + partial.length : Infinity;
  if (partial && partialTotal <= all.length && partialTotal < current) return { pages: partial };
  if (all.length < current) return { pages: all };
  return null;
}

/** The blocks on pages `include` selects, packed by bytes; models' blocks kept together. */
function packOnto(cat: CatalogView, include: (page: number) => boolean): number[][] {
  const ids: number[] = [];
  for (const [id, b] of cat.blocks) if (include(b.page)) ids.push(id);
  ids.sort((a, b) => a - b);
  const dense = new Map(ids.map((id, i) => [id, i]));
  const sizes = ids.map((id) => cat.blocks.get(id)!.length);
  const models = [...cat.models.values()].map((m) => {
    const mine: number[] = [];
    for (const id of blocksHeld(cat, m)) {
      const i = dense.get(id);
      if (i !== undefined) mine.push(i);
    }
    return mine;
  });
  return packBytes(models, sizes, cat.config.pageSize).pages.map((page) => page.map((i) => ids[i]));
}

/** Distinct blocks a model holds: its slots, retained originals, and their delta bases. */
function blocksHeld(cat: CatalogView, model: ModelEntry): Set<number> {
  const held = new Set<number>();
  for (const slot of modelRefs(model)) {
    for (let id: number | undefined = slot; id !== undefined && !held.has(id); id = cat.blocks.get(id)?.base) held.add(id);
  }
  return held;
}
