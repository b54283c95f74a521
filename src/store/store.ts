/**
 * TesseraStore: the deduplicated model store over any PageStore backend.
 *
 * add:    ONNX bytes → tensors → blocks → exact dedup (xxHash64 + byte comparison) → new blocks
 *         packed into fresh pages → pages written → one catalog record appended (the commit).
 * read:   model → tensors → blocks → pages (checksummed) → tensor bytes → ONNX or a session.
 * Failure before the commit leaves the committed catalog untouched; pages written into free
 * slots are simply unreferenced and get reused.
 */
import { CorruptionError, InvalidArgumentError, ModelExistsError, ModelNotFoundError, StoreError, TesseraError } from '../errors.ts';
import { hash64Hex } from '../hash.ts';
import { assembleModel, parseModel, type ExtractedTensor, type TensorEncoding } from '../onnx/model.ts';
import { DTYPES, type DType } from '../onnx/dtypes.ts';
import { cutTensor, gridOf, placeBlock, validateTile, type TileShape } from '../blocks/tiling.ts';
import { Catalog, checkCatalog, modelRefs, encodeRecord, CATALOG_FORMAT, type ModelEntry, type NewBlock, type StoreConfig, type Substitution, type TensorEntry } from '../catalog/catalog.ts';
import { encodeDelta } from '../codecs/delta.ts';
import { planPages } from '../pack/plan.ts';
import type { PageStore } from './page-store.ts';
import { BlockSource } from './block-source.ts';
import { catalogView, type CatalogView } from './catalog-view.ts';

/** Default tile: 64 x 64 elements (16 KiB of float32). Chosen by `npm run bench -- blocks`; see README. */
export const DEFAULT_TILE: TileShape = { rows: 64, cols: 64 };
/** Records in the journal before it is folded into a snapshot. */
const CHECKPOINT_EVERY = 32;
/** The largest element, so a full tile of any dtype fits a page. */
const MAX_ELEMENT_BYTES = 8;

export interface Progress {
  phase: 'parse' | 'dedup' | 'write' | 'commit' | 'read';
  done: number;
  total: number;
}

export interface AddOptions {
  /** Reads an external-data file named by the model (relative location). */
  readExternal?: (location: string) => Promise<Uint8Array>;
  onProgress?: (p: Progress) => void;
}

export interface AddReport {
  name: string;
  tensors: number;
  blocks: number;
  newBlocks: number;
  logicalBytes: number;
  newBytes: number;
  newPages: number;
}

export interface ModelStats {
  name: string;
  tensors: number;
  blocks: number;
  logicalBytes: number;
  /** Bytes of blocks no other model references. */
  uniqueBytes: number;
  /** Pages the model reads to load all its tensors. */
  pages: number;
  /** Bytes of those pages / bytes of the blocks it needs (1 = reads nothing it does not need). */
  readAmplification: number;
  /** Substitutions not yet settled (undoable). */
  substitutions: number;
  addedAt: string;
}

export interface StoreStats {
  models: number;
  tensors: number;
  blocks: number;
  logicalBytes: number;
  storedBytes: number;
  pages: number;
  pageSize: number;
  pageBytes: number;
  /** No layout can hold the stored bytes in fewer pages. */
  pageLowerBound: number;
  dedupRatio: number;
  tile: TileShape;
  perModel: ModelStats[];
}

export interface VerifyReport {
  ok: boolean;
  pagesChecked: number;
  damagedPages: { page: number; error: string; models: string[] }[];
  catalogProblems: string[];
  leakedPages: number[];
}

/** A block to add: its bytes, or its hash and length with a way to load the bytes if needed. */
export type BlockInput = { data: Uint8Array; hash?: string } | { data?: undefined; hash: string; length: number; load: () => Promise<Uint8Array> };

export interface NewTensor {
  name: string;
  dtype: DType;
  dims: number[];
  location: string;
  /** Blocks in tile-grid order. */
  blocks: BlockInput[];
  /** The field the tensor arrived in when not raw_data (kept for byte-identical export). */
  encoding?: TensorEncoding;
}

/** A block on its way into fresh pages (`page` is an index into them until written). */
type PendingBlock = NewBlock & { data: Uint8Array };

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

/** Model names become file names on export and keys everywhere: keep them plain. */
export function validateModelName(name: string): void {
  if (!NAME_RE.test(name) || name.includes('..')) {
    throw new TesseraError('INVALID_NAME', `invalid model name "${name}": use 1-128 letters, digits, '.', '_', '+' or '-', starting with a letter or digit (no paths).`);
  }
}

export class TesseraStore {
  private closed = false;
  /** The committed catalog, read-only (follows `refresh`). */
  readonly catalog: CatalogView = catalogView(() => this.live);

  private constructor(
    /** The raw page store: for reopening and for the store's own modules, not for readers of blocks. */
    readonly backend: PageStore,
    private live: Catalog,
  ) {}

  /** Opens the store on `backend`, initialising an empty one (with `tile`) if it has no catalog. */
  static async open(backend: PageStore, opts: { tile?: TileShape } = {}): Promise<TesseraStore> {
    const { snapshot, records } = await backend.readCatalog();
    const catalog = Catalog.load(snapshot, records);
    const store = new TesseraStore(backend, catalog);
    // Crash recovery (PageStore contract): a writer reclaims slots no committed record references.
    if (!backend.readOnly) await backend.recover(new Set(catalog.pages.keys()));
    if (!catalog.config) {
      const tile = opts.tile ?? DEFAULT_TILE;
      validateTile(tile);
      if (tile.rows * tile.cols * MAX_ELEMENT_BYTES > backend.pageSize) {
        throw new InvalidArgumentError(`a ${tile.rows}x${tile.cols} tile of 8-byte elements (${tile.rows * tile.cols * 8} bytes) does not fit a ${backend.pageSize}-byte page: use a smaller tile or larger pages.`);
      }
      const config: StoreConfig = { tile, pageSize: backend.pageSize };
      await store.commit({ t: 'init', seq: catalog.seq + 1, format: CATALOG_FORMAT, config });
    }
    return store;
  }

  get config(): StoreConfig {
    return this.live.config!;
  }

  /**
   * A reader of this store's blocks with its own page cache: make one per operation
   * (`maxCachedPages` bounds the cache for whole-store scans; 0 caches nothing).
   */
  blockSource(opts: { maxCachedPages?: number } = {}): BlockSource {
    return new BlockSource(this.catalog, this.config.tile, (id) => this.backend.readPage(id, this.live.pages.get(id)?.epoch), opts);
  }

  private check(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the store is closed: open it again');
  }

  private async commit(rec: Parameters<typeof encodeRecord>[0]): Promise<void> {
    await this.backend.appendCatalog(encodeRecord(rec));
    this.live.apply(rec);
    this.live.recordsSinceSnapshot++;
    if (this.live.recordsSinceSnapshot >= CHECKPOINT_EVERY) await this.checkpoint();
  }

  /**
   * Releases pages a durable commit stopped referencing. The operation is done once the commit is
   * durable; a release cut short (full disk, I/O error) only leaks slots, which the next writer
   * open reclaims (PageStore.recover), so it is not reported as the operation failing.
   */
  private async releaseAfterCommit(ids: number[]): Promise<void> {
    try {
      await this.backend.releasePages(ids);
    } catch (e) {
      if (!(e instanceof TesseraError)) throw e;
    }
  }

  /**
   * Runs a read. A read-only store shares its pages with a writer in another process: a page that
   * fails its checks may have been released or reused by a commit made after this store read its
   * catalog. It then re-reads the catalog and retries; corruption is reported only when nothing was
   * committed since, i.e. the committed state it holds is really damaged.
   */
  private async readRetrying<T>(read: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await read();
      } catch (e) {
        if (!(e instanceof CorruptionError) || !this.backend.readOnly || attempt >= 8) throw e;
        const seq = this.live.seq;
        await this.refresh();
        if (this.live.seq === seq) throw e;
      }
    }
  }

  /** Folds the journal into a snapshot (also done automatically every few commits). */
  async checkpoint(): Promise<void> {
    await this.backend.checkpointCatalog(this.live.snapshot());
    this.live.recordsSinceSnapshot = 0;
  }

  /** Re-reads the committed catalog (another process may have committed since). */
  async refresh(): Promise<void> {
    const { snapshot, records } = await this.backend.readCatalog();
    this.live = Catalog.load(snapshot, records);
  }

  listModels(): string[] {
    return [...this.live.models.keys()];
  }

  model(name: string): ModelEntry {
    const m = this.live.models.get(name);
    if (!m) throw new ModelNotFoundError(name, this.listModels());
    return m;
  }

  has(name: string): boolean {
    return this.live.models.has(name);
  }

  async add(name: string, onnx: Uint8Array, opts: AddOptions = {}): Promise<AddReport> {
    this.check();
    this.checkNewName(name);
    opts.onProgress?.({ phase: 'parse', done: 0, total: 1 });
    const parsed = await parseModel(onnx, { readExternal: opts.readExternal });
    const { tile } = this.config;
    const tensors: NewTensor[] = parsed.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      dims: t.dims,
      location: t.location,
      blocks: cutTensor(t.data, t.dims, DTYPES[t.dtype].bytes, tile).map((data) => ({ data })),
      ...(t.encoding ? { encoding: t.encoding } : {}),
    }));
    return this.addBlocks({ name, skeleton: parsed.skeleton, inputs: parsed.inputs, outputs: parsed.outputs, sourceBytes: onnx.length }, tensors, opts);
  }

  private checkNewName(name: string): void {
    validateModelName(name);
    if (this.live.models.has(name)) throw new ModelExistsError(name);
  }

  /**
   * Adds a model given as blocks (already cut with this store's tile shape): the path shared by
   * `add` (blocks cut from ONNX) and imports (blocks fetched from another store). Exact dedup:
   * a block whose hash and bytes match a stored block is that block. A block given by `hash` +
   * `load` (no bytes at hand) is matched on hash and length alone and loaded only when new.
   */
  async addBlocks(meta: Omit<ModelEntry, 'addedAt' | 'tensors'>, tensors: NewTensor[], opts: { onProgress?: (p: Progress) => void } = {}): Promise<AddReport> {
    this.check();
    this.checkNewName(meta.name);
    const progress = opts.onProgress ?? (() => {});
    const { tile, pageSize } = this.config;
    const reader = this.blockSource();
    const pending = new Map<string, PendingBlock>();
    const fresh: PendingBlock[] = [];
    const entries: TensorEntry[] = [];
    const totalBlocks = tensors.reduce((n, t) => n + t.blocks.length, 0);
    let done = 0;
    let nextId = this.live.nextBlockId;
    for (const t of tensors) {
      const grid = gridOf(t.dims, tile);
      if (grid.count !== t.blocks.length) throw new InvalidArgumentError(`tensor ${t.name}: ${t.blocks.length} blocks given, a ${tile.rows}x${tile.cols} grid over [${t.dims.join(', ')}] has ${grid.count}`);
      const ids = new Uint32Array(t.blocks.length);
      for (let i = 0; i < t.blocks.length; i++) {
        ids[i] = await this.findOrCreate(t.blocks[i], reader, pending, fresh, () => nextId++);
        if (++done % 256 === 0) progress({ phase: 'dedup', done, total: totalBlocks });
      }
      entries.push({ name: t.name, dtype: t.dtype, dims: t.dims, location: t.location, blocks: ids, ...(t.encoding ? { encoding: t.encoding } : {}) });
    }
    progress({ phase: 'dedup', done: totalBlocks, total: totalBlocks });

    const epoch = this.live.seq + 1;
    const { pages, newBytes } = await this.writeFresh(fresh, epoch, progress);

    const model: ModelEntry = { ...meta, addedAt: new Date().toISOString(), tensors: entries };
    progress({ phase: 'commit', done: 0, total: 1 });
    await this.commit({
      t: 'add',
      seq: epoch,
      model,
      blocks: fresh.map(({ id, page, offset, length, hash }) => ({ id, page, offset, length, hash })),
      pages,
    });
    progress({ phase: 'commit', done: 1, total: 1 });
    return { name: meta.name, tensors: entries.length, blocks: totalBlocks, newBlocks: fresh.length, logicalBytes: Catalog.logicalBytes(model), newBytes, newPages: pages.length };
  }

  /**
   * Packs new blocks into fresh pages (ids the committed catalog does not use) and writes them.
   * Simple packing for now: blocks fill pages in order of first appearance.
   */
  private async writeFresh(fresh: PendingBlock[], epoch: number, progress: (p: Progress) => void): Promise<{ pages: { id: number; used: number }[]; newBytes: number }> {
    const { pageSize } = this.config;
    const pageLoads: number[] = [];
    let used = pageSize;
    for (const b of fresh) {
      if (used + b.length > pageSize) {
        pageLoads.push(0);
        used = 0;
      }
      b.offset = used;
      b.page = pageLoads.length - 1; // index into the pages allocated here
      used += b.length;
      pageLoads[pageLoads.length - 1] = used;
    }
    const pageIds = this.live.freePageIds(pageLoads.length);
    const pageData = pageLoads.map((n) => new Uint8Array(n));
    for (const b of fresh) {
      pageData[b.page].set(b.data, b.offset);
      b.page = pageIds[b.page];
    }
    for (let p = 0; p < pageData.length; p++) {
      await this.backend.writePages([{ id: pageIds[p], epoch, data: pageData[p] }]);
      progress({ phase: 'write', done: p + 1, total: pageData.length });
    }
    return { pages: pageIds.map((id, p) => ({ id, used: pageLoads[p] })), newBytes: fresh.reduce((n, b) => n + b.length, 0) };
  }

  /**
   * Repacks every live block onto a new set of pages (copy-on-write: old pages stay until the
   * commit, so a crash leaves the old layout intact) and frees pages no model uses. Settles
   * pending substitutions first (their originals are dropped). Blocks are placed with the packing
   * module, one copy per block (`relaxed` rule: fewest pages; a model may read a few blocks it
   * does not need, reported as read amplification by `stats`).
   */
  async compact(opts: { onProgress?: (p: Progress) => void } = {}): Promise<{ pagesBefore: number; pagesAfter: number; settled: number }> {
    this.check();
    const pagesBefore = this.live.pages.size;
    let settled = 0;
    for (const m of [...this.live.models.values()]) {
      if (m.substitutions?.length) {
        settled += m.substitutions.length;
        await this.settle(m.name);
      }
    }
    if (!this.live.blocks.size) return { pagesBefore, pagesAfter: 0, settled };
    const ids = [...this.live.blocks.keys()].sort((a, b) => a - b);
    const dense = new Map(ids.map((id, i) => [id, i]));
    const sizes = ids.map((id) => this.live.blocks.get(id)!.length);
    const models = [...this.live.models.values()].map((m) => ({ name: m.name, blocks: [...this.blocksNeeded(m)].map((id) => dense.get(id)!) }));
    // Blocks only retained for a delta base of another model's block still need a place.
    const placedByModels = new Set(models.flatMap((m) => m.blocks));
    const orphans = ids.map((_, i) => i).filter((i) => !placedByModels.has(i));
    if (orphans.length) models.push({ name: '(retained)', blocks: orphans });
    // The planner wants a page size that is a multiple of the largest block; edge, small-dtype and
    // delta blocks need not divide the store's page size, so plan with the largest such size that fits.
    const largest = sizes.reduce((a, b) => Math.max(a, b), 1);
    const plan = planPages(models, sizes, this.config.pageSize - (this.config.pageSize % largest), 'relaxed');
    const pageIds = this.live.freePageIds(plan.pages);
    const reader = this.blockSource({ maxCachedPages: 64 });
    const epoch = this.live.seq + 1;
    const moves: { id: number; page: number; offset: number }[] = [];
    for (let k = 0; k < plan.pages; k++) {
      const data = new Uint8Array(plan.pageUsedBytes[k]);
      for (let i = plan.pageStart[k]; i < plan.pageStart[k + 1]; i++) {
        const id = ids[plan.pageBlocks[i]];
        data.set(await reader.stored(id), plan.pageOffsets[i]);
        moves.push({ id, page: pageIds[k], offset: plan.pageOffsets[i] });
      }
      await this.backend.writePages([{ id: pageIds[k], epoch, data }]);
      opts.onProgress?.({ phase: 'write', done: k + 1, total: plan.pages });
    }
    const old = [...this.live.pages.keys()];
    await this.commit({ t: 'relayout', seq: epoch, blocks: moves, pages: pageIds.map((id, k) => ({ id, used: plan.pageUsedBytes[k] })) });
    await this.releaseAfterCommit(old.filter((p) => !this.live.pages.has(p)));
    return { pagesBefore, pagesAfter: plan.pages, settled };
  }

  /** Distinct blocks a model reads: its slots, retained originals, and the bases of its delta blocks. */
  private blocksNeeded(model: ModelEntry): Set<number> {
    const need = new Set<number>();
    const add = (id: number): void => {
      if (need.has(id)) return;
      need.add(id);
      const base = this.live.blocks.get(id)!.base;
      if (base !== undefined) add(base);
    };
    for (const id of modelRefs(model)) add(id);
    return need;
  }

  /** Stored bytes of blocks (deltas decoded), read through one page cache. */
  async readBlocks(ids: ArrayLike<number>): Promise<Uint8Array[]> {
    this.check();
    return this.blockSource().blocksOf(ids);
  }

  /**
   * Lossy near-duplicate dedup: slots of `name` now point at representative blocks. The original
   * blocks are kept (and the substitution recorded with its distance) until `settle`, so `undo`
   * restores the model exactly. One atomic commit.
   */
  async substitute(name: string, subs: { tensor: number; index: number; to: number; distance: number }[]): Promise<void> {
    this.check();
    const model = this.model(name);
    const full: Substitution[] = subs.map((s) => {
      const from = model.tensors[s.tensor]?.blocks[s.index];
      if (from === undefined) throw new InvalidArgumentError(`model "${name}" has no block slot ${s.tensor}/${s.index}`);
      const target = this.live.blocks.get(s.to);
      if (!target) throw new InvalidArgumentError(`representative block ${s.to} is not in the store`);
      if (target.length !== this.live.blocks.get(from)!.length) throw new InvalidArgumentError(`representative block ${s.to} has another shape than slot ${s.tensor}/${s.index}`);
      return { tensor: s.tensor, index: s.index, from, to: s.to, distance: s.distance };
    });
    if (full.length) await this.commit({ t: 'subst', seq: this.live.seq + 1, model: name, subs: full });
  }

  /** Puts back every original block of `name` that a substitution replaced; returns how many. */
  async undoSubstitutions(name: string): Promise<number> {
    this.check();
    const n = this.model(name).substitutions?.length ?? 0;
    if (n) await this.commit({ t: 'undo', seq: this.live.seq + 1, model: name });
    return n;
  }

  /** Makes `name`'s substitutions final: originals no longer needed are freed (no undo after). */
  async settle(name: string): Promise<{ freedPages: number }> {
    this.check();
    if (!this.model(name).substitutions?.length) return { freedPages: 0 };
    const before = new Set(this.live.pages.keys());
    await this.commit({ t: 'settle', seq: this.live.seq + 1, model: name });
    const freed = [...before].filter((p) => !this.live.pages.has(p));
    await this.releaseAfterCommit(freed);
    return { freedPages: freed.length };
  }

  /**
   * Lossless dedup: each listed block of `name` (held by no other model) is re-stored as a
   * compressed delta against `base` when that saves at least `minSaving` of its bytes. Reads stay
   * bit-exact. One atomic commit; the replaced blocks' pages are freed when empty.
   */
  async storeDeltas(name: string, pairs: { block: number; base: number }[], opts: { minSaving?: number } = {}): Promise<{ replaced: number; bytesSaved: number }> {
    this.check();
    const model = this.model(name);
    const minSaving = opts.minSaving ?? 0.2;
    const slotsOf = new Map<number, { tensor: number; index: number }[]>();
    model.tensors.forEach((t, ti) => t.blocks.forEach((id, i) => {
      const list = slotsOf.get(id);
      if (list) list.push({ tensor: ti, index: i });
      else slotsOf.set(id, [{ tensor: ti, index: i }]);
    }));
    const reader = this.blockSource();
    const fresh: PendingBlock[] = [];
    const slots: { tensor: number; index: number; to: number }[] = [];
    let nextId = this.live.nextBlockId;
    let bytesSaved = 0;
    const done = new Set<number>();
    for (const { block, base } of pairs) {
      const entry = this.live.blocks.get(block);
      const baseEntry = this.live.blocks.get(base);
      const mine = slotsOf.get(block);
      // Only blocks this model holds alone, against raw bases (one delta level bounds read cost).
      if (!entry || !baseEntry || !mine || done.has(block) || block === base || entry.base !== undefined || baseEntry.base !== undefined) continue;
      if (entry.refs !== mine.length || baseEntry.length !== entry.length) continue;
      const elemBytes = DTYPES[model.tensors[mine[0].tensor].dtype].bytes;
      const delta = encodeDelta(await reader.block(block), await reader.block(base), elemBytes);
      if (delta.length > entry.length * (1 - minSaving)) continue;
      done.add(block);
      const id = nextId++;
      fresh.push({ id, page: -1, offset: 0, length: delta.length, hash: entry.hash, base, data: delta });
      for (const slot of mine) slots.push({ ...slot, to: id });
      bytesSaved += entry.length - delta.length;
    }
    if (!fresh.length) return { replaced: 0, bytesSaved: 0 };
    const before = new Set(this.live.pages.keys());
    const epoch = this.live.seq + 1;
    const { pages } = await this.writeFresh(fresh, epoch, () => {});
    await this.commit({ t: 'delta', seq: epoch, model: name, blocks: fresh.map(({ id, page, offset, length, hash, base }) => ({ id, page, offset, length, hash, base })), pages, slots });
    await this.releaseAfterCommit([...before].filter((p) => !this.live.pages.has(p)));
    return { replaced: fresh.length, bytesSaved };
  }

  private async findOrCreate(
    input: BlockInput,
    reader: BlockSource,
    pending: Map<string, PendingBlock>,
    fresh: PendingBlock[],
    allocate: () => number,
  ): Promise<number> {
    const hash = input.hash ?? hash64Hex(input.data!);
    for (const id of this.live.byHash.get(hash) ?? []) {
      if (input.data ? bytesEqual(await reader.block(id), input.data) : this.live.blocks.get(id)!.length === input.length) return id;
    }
    const mine = pending.get(hash);
    if (mine && (input.data ? bytesEqual(mine.data, input.data) : mine.length === input.length)) return mine.id;
    const data = input.data ?? (await input.load!());
    const block: PendingBlock = { id: allocate(), page: -1, offset: 0, length: data.length, hash, data };
    if (!mine) pending.set(hash, block);
    fresh.push(block);
    return block.id;
  }

  /** Removes a model; pages no other model uses are freed. */
  async remove(name: string): Promise<{ freedPages: number }> {
    this.check();
    this.model(name);
    const freed = this.live.pagesFreedBy(name);
    await this.commit({ t: 'rm', seq: this.live.seq + 1, name });
    await this.releaseAfterCommit(freed);
    return { freedPages: freed.length };
  }

  /** The weight tensors of a model, in skeleton order, reassembled from pages. */
  async tensorData(name: string, opts: { onProgress?: (p: Progress) => void } = {}): Promise<Uint8Array[]> {
    this.check();
    const model = this.model(name);
    try {
      return await this.blockSource().tensors(model, (done, total) => opts.onProgress?.({ phase: 'read', done, total }));
    } catch (e) {
      if (e instanceof CorruptionError && e.pageId !== undefined) {
        throw new CorruptionError('PAGE_CORRUPT', `model "${name}" cannot be read: ${e.message}`, { pageId: e.pageId, models: this.catalog.modelsOnPage(e.pageId) });
      }
      throw e;
    }
  }

  /**
   * The model as a self-contained ONNX file, byte-identical to the file that was added when that
   * file was a canonical protobuf encoding without external data (see assembleModel).
   */
  async exportModel(name: string): Promise<Uint8Array> {
    return this.readRetrying(async () => {
      const model = this.model(name);
      return assembleModel(model.skeleton, await this.tensorData(name), model.tensors.map((t) => t.encoding));
    });
  }

  /** Models that need a block on `pageId`: in a slot, as a retained original, or as a delta's base. */
  modelsOnPage(pageId: number): string[] {
    return this.catalog.modelsOnPage(pageId);
  }

  /** Distinct pages a model reads (delta bases included). */
  pagesOf(name: string): number[] {
    return this.catalog.pagesRead(this.model(name));
  }

  stats(): StoreStats {
    const cat = this.live;
    let storedBytes = 0;
    for (const b of cat.blocks.values()) storedBytes += b.length;
    const perModel: ModelStats[] = [];
    let logicalBytes = 0;
    let tensors = 0;
    for (const m of cat.models.values()) {
      const logical = Catalog.logicalBytes(m);
      logicalBytes += logical;
      tensors += m.tensors.length;
      const own = new Map<number, number>();
      for (const id of modelRefs(m)) own.set(id, (own.get(id) ?? 0) + 1);
      let uniqueBytes = 0;
      for (const [id, n] of own) {
        const b = cat.blocks.get(id)!;
        if (b.refs === n) uniqueBytes += b.length;
      }
      const pages = new Set<number>();
      let neededBytes = 0;
      for (const id of this.catalog.blocksRead(m)) {
        const b = cat.blocks.get(id)!;
        pages.add(b.page);
        neededBytes += b.length;
      }
      let readBytes = 0;
      for (const p of pages) readBytes += cat.pages.get(p)!.used;
      perModel.push({
        name: m.name,
        tensors: m.tensors.length,
        blocks: m.tensors.reduce((n, t) => n + t.blocks.length, 0),
        logicalBytes: logical,
        uniqueBytes,
        pages: pages.size,
        readAmplification: neededBytes ? readBytes / neededBytes : 1,
        substitutions: m.substitutions?.length ?? 0,
        addedAt: m.addedAt,
      });
    }
    return {
      models: cat.models.size,
      tensors,
      blocks: cat.blocks.size,
      logicalBytes,
      storedBytes,
      pages: cat.pages.size,
      pageSize: this.config.pageSize,
      pageBytes: cat.pages.size * this.config.pageSize,
      pageLowerBound: Math.ceil(storedBytes / this.config.pageSize),
      dedupRatio: storedBytes ? logicalBytes / storedBytes : 1,
      tile: this.config.tile,
      perModel,
    };
  }

  /** Reads every page (checksums), checks the catalog adds up, and lists leaked page slots. */
  async verify(opts: { onProgress?: (p: Progress) => void } = {}): Promise<VerifyReport> {
    this.check();
    const catalogProblems = checkCatalog(this.live);
    const damagedPages: VerifyReport['damagedPages'] = [];
    const pageIds = [...this.live.pages.keys()].sort((a, b) => a - b);
    let done = 0;
    for (const id of pageIds) {
      const entry = this.live.pages.get(id)!;
      try {
        const data = await this.backend.readPage(id, entry.epoch);
        if (data.length !== entry.used) throw new CorruptionError('PAGE_CORRUPT', `page ${id} holds ${data.length} bytes, the catalog expects ${entry.used}`, { pageId: id });
      } catch (e) {
        if (!(e instanceof TesseraError)) throw e;
        damagedPages.push({ page: id, error: e.message, models: this.modelsOnPage(id) });
      }
      opts.onProgress?.({ phase: 'read', done: ++done, total: pageIds.length });
    }
    const stored = await this.backend.listPages();
    const leakedPages = stored.filter((id) => !this.live.pages.has(id));
    return { ok: !damagedPages.length && !catalogProblems.length, pagesChecked: pageIds.length, damagedPages, catalogProblems, leakedPages };
  }

  /** Releases page slots that hold data no committed model references (left by a crash). */
  async collectGarbage(): Promise<number[]> {
    this.check();
    const stored = await this.backend.listPages();
    const leaked = stored.filter((id) => !this.live.pages.has(id));
    await this.backend.releasePages(leaked);
    return leaked;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.backend.close();
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  // Compare 4 bytes at a time where alignment allows (blocks are views into tensors and pages).
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0 && a.length % 4 === 0) {
    const x = new Int32Array(a.buffer, a.byteOffset, a.length / 4);
    const y = new Int32Array(b.buffer, b.byteOffset, b.length / 4);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export type { ExtractedTensor };
