/**
 * The store core: open, commit, read, remove. Everything else the store does (ingest, compaction,
 * verify, stats, the dedup transactions) is a module of functions over this core that reads
 * through `catalog` / `blocks()`, writes new pages through a `PageWriter`, and changes the
 * catalog only through `commit(record)`, in the manner of bbolt's `Compact(dst, src)`.
 *
 * commit(record) is the one narrow door: the record's pages were written first (into slots the
 * committed catalog does not use), the record is appended (atomic), applied, and then the slots
 * it left unreferenced are released. A failure before the append leaves the committed catalog
 * untouched; pages written into free slots are simply unreferenced and get reused.
 */
import { CorruptionError, InvalidArgumentError, ModelNotFoundError, StoreError, TesseraError } from '../errors.ts';
import { validateTile, type TileShape } from '../blocks/tiling.ts';
import { Catalog, encodeRecord, CATALOG_FORMAT, type CatalogRecord, type ModelEntry, type StoreConfig } from '../catalog/catalog.ts';
import type { PageStore } from './page-store.ts';
import { BlockSource, DecodedBaseCache } from './block-source.ts';
import { catalogView, type CatalogView } from './catalog-view.ts';
import { PageWriter } from './page-writer.ts';

/** Default tile: 64 x 64 elements (16 KiB of float32). See docs/design.md. */
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

export class StoreCore {
  private closed = false;
  /** The committed catalog, read-only (follows `refresh`). */
  readonly catalog: CatalogView = catalogView(() => this.live);
  /**
   * Decoded delta bases shared by this store's block sources (bounded; keyed by content hash, so
   * commits, recodes and compaction never make an entry wrong).
   */
  readonly baseCache = new DecodedBaseCache();

  private constructor(
    readonly backend: PageStore,
    private live: Catalog,
  ) {}

  /** Opens the store on `backend`, initialising an empty one (with `tile`) if it has no catalog. */
  static async open(backend: PageStore, opts: { tile?: TileShape } = {}): Promise<StoreCore> {
    const { snapshot, records } = await backend.readCatalog();
    const core = new StoreCore(backend, Catalog.load(snapshot, records));
    // Crash recovery (PageStore contract): a writer reclaims slots no committed record references.
    if (!backend.readOnly) await backend.recover(new Set(core.live.pages.keys()));
    if (!core.live.config) {
      const tile = opts.tile ?? DEFAULT_TILE;
      validateTile(tile);
      if (tile.rows * tile.cols * MAX_ELEMENT_BYTES > backend.pageSize) {
        throw new InvalidArgumentError(`a ${tile.rows}x${tile.cols} tile of 8-byte elements (${tile.rows * tile.cols * 8} bytes) does not fit a ${backend.pageSize}-byte page: use a smaller tile or larger pages.`);
      }
      const config: StoreConfig = { tile, pageSize: backend.pageSize };
      await core.commit({ t: 'init', seq: core.live.seq + 1, format: CATALOG_FORMAT, config });
    }
    return core;
  }

  get config(): StoreConfig {
    return this.live.config!;
  }

  /** The sequence number the next commit takes (the epoch its new pages are written with). */
  get nextSeq(): number {
    return this.live.seq + 1;
  }

  /** Block ids the next commit may give new blocks (ids the committed catalog does not use). */
  get nextBlockId(): number {
    return this.live.nextBlockId;
  }

  check(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the store is closed: open it again');
  }

  /**
   * Appends `record` (its pages already written), applies it, and releases the page slots it
   * left unreferenced. Returns those slots. The operation is done once the commit is durable: a
   * release cut short (full disk, I/O error) only leaks slots, which the next writer open
   * reclaims (PageStore.recover), so it is not reported as the operation failing.
   */
  async commit(record: CatalogRecord): Promise<number[]> {
    const before = [...this.live.pages.keys()];
    await this.backend.appendCatalog(encodeRecord(record));
    this.live.apply(record);
    this.live.recordsSinceSnapshot++;
    if (this.live.recordsSinceSnapshot >= CHECKPOINT_EVERY) await this.checkpoint();
    const freed = before.filter((p) => !this.live.pages.has(p));
    if (freed.length) {
      try {
        await this.backend.releasePages(freed);
      } catch (e) {
        if (!(e instanceof TesseraError)) throw e;
      }
    }
    return freed;
  }

  /** A writer of new pages for the next commit (page ids the committed catalog does not use). */
  pageWriter(onPage?: (pagesWritten: number) => void): PageWriter {
    return new PageWriter(this.catalog, this.backend, this.nextSeq, () => this.blocks({ maxCachedPages: 8 }), onPage);
  }

  /**
   * Runs a read. A read-only store shares its pages with a writer in another process: a page that
   * fails its checks may have been released or reused by a commit made after this store read its
   * catalog. It then re-reads the catalog and retries; corruption is reported only when nothing was
   * committed since, i.e. the committed state it holds is really damaged.
   */
  async readRetrying<T>(read: () => Promise<T>): Promise<T> {
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

  /**
   * A reader of the store's blocks with its own page cache: make one per operation
   * (`maxCachedPages` bounds the cache for whole-store scans; 0 caches nothing). Deltas' bases go
   * through the store's `baseCache` unless `baseCache` is false (a reader under a memory budget).
   */
  blocks(opts: { maxCachedPages?: number; baseCache?: boolean } = {}): BlockSource {
    return new BlockSource(this.catalog, this.config.tile, (id) => this.backend.readPage(id, this.live.pages.get(id)?.epoch), {
      maxCachedPages: opts.maxCachedPages,
      baseCache: opts.baseCache === false ? undefined : this.baseCache,
    });
  }

  /** A page's verified payload read into `target` (header + page size bytes), as a view of it. */
  readPageInto(id: number, target: Uint8Array): Promise<Uint8Array> {
    return this.backend.readPageInto(id, target, this.live.pages.get(id)?.epoch);
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

  /** Removes a model; pages no other model uses are freed. */
  async remove(name: string): Promise<{ freedPages: number }> {
    this.check();
    this.model(name);
    const freed = await this.commit({ t: 'rm', seq: this.nextSeq, name });
    return { freedPages: freed.length };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.backend.close();
  }
}
