/**
 * TesseraStore: the deduplicated model store over any PageStore backend — the public face of
 * the store core (core.ts: open, commit, read, remove) and the modules of functions over it:
 * ingest.ts (add, exact dedup), page-writer.ts (packing new blocks), compact.ts, verify.ts,
 * stats.ts and dedup-tx.ts (substitute, undo, settle, deltas, recode). Each method here delegates.
 *
 * add:    ONNX bytes → tensors → blocks → exact dedup → new blocks onto pages → one catalog record.
 * read:   model → tensors → blocks → pages (checksummed) → tensor bytes → ONNX (or a session:
 *         openSession in src/runtime/store-session.ts).
 */
import { CorruptionError, InvalidArgumentError } from '../errors.ts';
import { assembleModel } from '../onnx/model.ts';
import type { TileShape } from '../blocks/tiling.ts';
import type { ModelEntry, NewBlock, StoreConfig } from '../catalog/catalog.ts';
import type { PageStore } from './page-store.ts';
import type { BlockSource, DecodedBaseCache } from './block-source.ts';
import type { CatalogView } from './catalog-view.ts';
import { StoreCore, type Progress } from './core.ts';
import { AddBatch, addBlocks, addModel, validateModelName, type AddOptions, type AddReport, type NewTensor } from './ingest.ts';
import { compactStore, type CompactReport } from './compact.ts';
import { collectGarbage, verifyStore, type VerifyReport } from './verify.ts';
import { storeStats, type StoreStats } from './stats.ts';
import { recodeBlocks, settle, storeDeltas, substitute, undoSubstitutions, type DeltaOptions, type RecodeOptions } from './dedup-tx.ts';

export { DEFAULT_TILE, type Progress } from './core.ts';
export { AddBatch, validateModelName, type AddOptions, type AddReport, type BlockInput, type NewTensor } from './ingest.ts';
export type { CompactReport } from './compact.ts';
export type { VerifyReport } from './verify.ts';
export type { ModelStats, StoreStats } from './stats.ts';

export class TesseraStore {
  private constructor(private readonly core: StoreCore) {}

  /** Opens the store on `backend`, initialising an empty one (with `tile`) if it has no catalog. */
  static async open(backend: PageStore, opts: { tile?: TileShape } = {}): Promise<TesseraStore> {
    return new TesseraStore(await StoreCore.open(backend, opts));
  }

  /** The raw page store: for reopening a store and for tests; readers use `catalog` and `blockSource()`. */
  get backend(): PageStore {
    return this.core.backend;
  }

  /** The backend's kind: 'memory' | 'file' | 'indexeddb' | 'postgres' | ... */
  get kind(): string {
    return this.core.backend.kind;
  }

  /**
   * A token, cheap to read, that changes whenever the committed catalog does (commits by other
   * processes included): poll it, then `refresh()`. 'static' when the backend cannot tell.
   */
  commitStamp(): Promise<string> {
    return this.core.backend.commitStamp();
  }

  get config(): StoreConfig {
    return this.core.config;
  }

  /** The committed catalog, read-only. */
  get catalog(): CatalogView {
    return this.core.catalog;
  }

  /** Decoded delta bases kept between reads (bounded: `maxBytes`; `bytes` held now). */
  get baseCache(): DecodedBaseCache {
    return this.core.baseCache;
  }

  /**
   * A reader of this store's blocks with its own page cache: make one per operation
   * (`maxCachedPages` bounds the cache for whole-store scans; 0 caches nothing). Deltas' bases are
   * decoded through the store's bounded cache (`baseCache`) unless `baseCache` is false: a reader
   * under a memory budget passes false, as that cache's bytes are not on its ledger.
   */
  blockSource(opts: { maxCachedPages?: number; baseCache?: boolean } = {}): BlockSource {
    return this.core.blocks(opts);
  }

  /**
   * One page's payload, verified, read into `target` (PAGE_HEADER_BYTES + pageSize bytes; the
   * payload is returned as a view of it at PAGE_HEADER_BYTES): for a reader that keeps pages in
   * buffers of its own and reuses them (the server's page frames) rather than one per read.
   */
  readPageInto(id: number, target: Uint8Array): Promise<Uint8Array> {
    return this.core.readPageInto(id, target);
  }

  /** Folds the journal into a snapshot (also done automatically every few commits). */
  checkpoint(): Promise<void> {
    return this.core.checkpoint();
  }

  /** Re-reads the committed catalog (another process may have committed since). */
  refresh(): Promise<void> {
    return this.core.refresh();
  }

  listModels(): string[] {
    return this.core.listModels();
  }

  model(name: string): ModelEntry {
    return this.core.model(name);
  }

  has(name: string): boolean {
    return this.core.has(name);
  }

  /**
   * Adds a model. `code`: then codes its new raw blocks in place (recodeBlocks, a second commit),
   * off by default: coding runs at ~30-40 MB/s of weights here (zstd level 1 per plane), far below
   * ingest's speed; `dedup --lossless` codes every block later anyway.
   */
  async add(name: string, onnx: Uint8Array, opts: AddOptions & { code?: boolean } = {}): Promise<AddReport> {
    const held = opts.code ? new Set(this.core.catalog.blocks.keys()) : undefined;
    const report = await addModel(this.core, name, onnx, opts);
    if (held) {
      const fresh = new Set<number>();
      for (const t of this.core.model(name).tensors) for (const id of t.blocks) if (!held.has(id)) fresh.add(id);
      await recodeBlocks(this.core, fresh);
    }
    return report;
  }

  /**
   * Several adds in one commit, all of them or none: `batch.add(...)` each model, then
   * `batch.commit()`. One durable commit for the batch instead of one per model; see ingest.ts.
   */
  addBatch(): AddBatch {
    return new AddBatch(this.core);
  }

  /** The sequence number the next commit takes: the epoch pages written for it carry. */
  get nextSeq(): number {
    return this.core.nextSeq;
  }

  /** The first block id the next commit may give a new block. */
  get nextBlockId(): number {
    return this.core.nextBlockId;
  }

  /**
   * Commits models whose new blocks already lie on `pages`, written to the backend for this commit
   * (epoch `nextSeq`) into ids the catalog does not use: an import that kept published pages as
   * fetched (PageAdopter in published.ts). One record; checked before it is appended, so a wrong
   * argument leaves the store as it was.
   */
  async addPlaced(models: ModelEntry[], blocks: NewBlock[], pages: { id: number; used: number }[]): Promise<void> {
    this.core.check();
    const cat = this.core.catalog;
    const bad = (why: string): never => {
      throw new InvalidArgumentError(`cannot add placed blocks: ${why}; nothing was stored.`);
    };
    const newPages = new Set<number>();
    for (const p of pages) {
      if (cat.pages.has(p.id) || newPages.has(p.id)) bad(`page ${p.id} is already in use`);
      if (!Number.isInteger(p.used) || p.used < 0 || p.used > this.core.config.pageSize) bad(`page ${p.id} claims ${p.used} bytes`);
      newPages.add(p.id);
    }
    const ids = new Set<number>();
    const onPages = new Set<number>();
    for (const b of blocks) {
      if (!Number.isInteger(b.id) || b.id < this.core.nextBlockId || ids.has(b.id)) bad(`block id ${b.id} is not a fresh id`);
      if (!newPages.has(b.page) && !cat.pages.has(b.page)) bad(`block ${b.id} is on page ${b.page}, which is neither new nor stored`);
      if (b.base !== undefined && !ids.has(b.base) && !cat.blocks.has(b.base)) bad(`delta block ${b.id} names base ${b.base}, which is not stored before it`);
      ids.add(b.id);
      onPages.add(b.page);
    }
    for (const id of newPages) if (!onPages.has(id)) bad(`page ${id} would hold no block`);
    const names = new Set<string>();
    for (const m of models) {
      validateModelName(m.name);
      if (cat.models.has(m.name) || names.has(m.name)) bad(`model "${m.name}" is already stored`);
      names.add(m.name);
      for (const t of m.tensors) for (const id of t.blocks) if (!ids.has(id) && !cat.blocks.has(id)) bad(`model "${m.name}" names block ${id}, which is not stored`);
    }
    await this.core.commit({ t: 'add-many', seq: this.core.nextSeq, models, blocks, pages });
  }

  /** Adds a model given as blocks cut with this store's tile (imports); see ingest.ts. */
  addBlocks(meta: Omit<ModelEntry, 'addedAt' | 'tensors'>, tensors: NewTensor[], opts: { onProgress?: (p: Progress) => void } = {}): Promise<AddReport> {
    return addBlocks(this.core, meta, tensors, opts);
  }

  /** Repacks blocks onto fewer pages when that is possible (never more); see compact.ts. */
  compact(opts: { onProgress?: (p: Progress) => void } = {}): Promise<CompactReport> {
    return compactStore(this.core, opts);
  }

  /** Stored bytes of blocks (deltas decoded), read through one page cache. */
  readBlocks(ids: ArrayLike<number>): Promise<Uint8Array[]> {
    this.core.check();
    return this.core.blocks().blocksOf(ids);
  }

  /** Lossy near-duplicate dedup of slots of `name` (undoable until settled); see dedup-tx.ts. */
  substitute(name: string, subs: { tensor: number; index: number; to: number; distance: number }[]): Promise<void> {
    return substitute(this.core, name, subs);
  }

  undoSubstitutions(name: string): Promise<number> {
    return undoSubstitutions(this.core, name);
  }

  settle(name: string): Promise<{ freedPages: number }> {
    return settle(this.core, name);
  }

  /** Lossless dedup: blocks of `name` re-stored as deltas against bases; see dedup-tx.ts. */
  storeDeltas(name: string, pairs: { block: number; base: number }[], opts: DeltaOptions = {}): Promise<{ replaced: number; bytesSaved: number }> {
    return storeDeltas(this.core, name, pairs, opts);
  }

  /** Lossless coding of raw blocks in place (every block by default); see dedup-tx.ts. */
  recodeBlocks(ids?: Iterable<number>, opts: RecodeOptions = {}): Promise<{ recoded: number; bytesSaved: number }> {
    return recodeBlocks(this.core, ids, opts);
  }

  /** Removes a model; pages no other model uses are freed. */
  remove(name: string): Promise<{ freedPages: number }> {
    return this.core.remove(name);
  }

  /** The weight tensors of a model, in skeleton order, reassembled from pages. */
  async tensorData(name: string, opts: { onProgress?: (p: Progress) => void } = {}): Promise<Uint8Array[]> {
    this.core.check();
    return this.core.readRetrying(async () => {
      const model = this.model(name);
      try {
        return await this.core.blocks().tensors(model, (done, total) => opts.onProgress?.({ phase: 'read', done, total }));
      } catch (e) {
        if (e instanceof CorruptionError && e.pageId !== undefined) {
          throw new CorruptionError('PAGE_CORRUPT', `model "${name}" cannot be read: ${e.message}`, { pageId: e.pageId, models: this.catalog.modelsOnPage(e.pageId) });
        }
        throw e;
      }
    });
  }

  /**
   * The model as a self-contained ONNX file, byte-identical to the file that was added when that
   * file was a canonical protobuf encoding without external data (see assembleModel).
   */
  async exportModel(name: string): Promise<Uint8Array> {
    // tensorData retries on pages changed under a reader; the entry is read after it, matching them.
    const tensors = await this.tensorData(name);
    const model = this.model(name);
    return assembleModel(model.skeleton, tensors, model.tensors.map((t) => t.encoding));
  }

  /** Models that need a block on `pageId`: in a slot, as a retained original, or as a delta's base. */
  modelsOnPage(pageId: number): string[] {
    return this.catalog.modelsOnPage(pageId);
  }

  /** Distinct pages a model reads (delta bases included), ascending. */
  pagesOf(name: string): number[] {
    return this.catalog.pagesRead(this.model(name));
  }

  stats(): StoreStats {
    return storeStats(this.catalog);
  }

  /** Reads every page (checksums), checks the catalog adds up, and lists leaked page slots. */
  verify(opts: { onProgress?: (p: Progress) => void } = {}): Promise<VerifyReport> {
    return verifyStore(this.core, opts);
  }

  /** Releases page slots that hold data no committed model references (left by a crash). */
  collectGarbage(): Promise<number[]> {
    return collectGarbage(this.core);
  }

  close(): Promise<void> {
    return this.core.close();
  }
}
