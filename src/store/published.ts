/**
 * A store published as static files (any HTTP server, a CDN, a folder), and importing from it.
 *
 *   tessera-index.json          format, version, page size, tile, the catalog file and its hash,
 *                               and a summary of each model (for listing without the catalog)
 *   catalog.<xxh64>.msgpack     the catalog snapshot (Catalog.snapshot()), named by its hash
 *   pages/<id>.<epoch>.page     one sealed page each (page-format.ts: checksummed header + payload)
 * Every file but the index is immutable under its name (a page slot rewritten by a later commit
 * gets a new epoch, hence a new name), so caches never serve a stale page for a fresh catalog.
 *
 * Import: for a model, the blocks the local store already holds (same hash and length, the rule
 * `addBlocks` applies) are not fetched; only the pages holding the other blocks are. Every page
 * is fetched and verified before anything is written, and the model is then committed by
 * `addBlocks` in one catalog record: a failure at any point leaves every stored model intact.
 */
import { CorruptionError, InvalidArgumentError, ModelNotFoundError, StoreError, TesseraError } from '../errors.ts';
import { hash64Hex } from '../hash.ts';
import { Catalog, type ModelEntry } from '../catalog/catalog.ts';
import { gridOf, tileExtent, type TileShape } from '../blocks/tiling.ts';
import { BlockSource } from './block-source.ts';
import { catalogView, weightBytes, type CatalogView } from './catalog-view.ts';
import { DTYPES } from '../onnx/dtypes.ts';
import { PAGE_HEADER_BYTES, openPage } from './page-format.ts';
import type { BlockInput, NewTensor, TesseraStore } from './store.ts';

export const PUBLISHED_FORMAT = 'tessera-published';
export const PUBLISHED_VERSION = 1;
export const INDEX_FILE = 'tessera-index.json';

export interface PublishedModelSummary {
  name: string;
  /** Size of the ONNX file the model was added from (what a whole-file cache would fetch). */
  sourceBytes: number;
  /** Bytes of its weight tensors. */
  logicalBytes: number;
  /** Published pages it reads, and their bytes on the wire (sealed). */
  pages: number;
  pageBytes: number;
}

export interface PublishedIndex {
  format: typeof PUBLISHED_FORMAT;
  version: number;
  pageSize: number;
  tile: TileShape;
  /** Sequence number of the catalog when published. */
  seq: number;
  catalog: { file: string; bytes: number; xxh64: string };
  /** Page files and their sealed sizes: [id, epoch, bytes]. */
  pages: [number, number, number][];
  models: PublishedModelSummary[];
}

export function pageFile(id: number, epoch: number): string {
  return `pages/${id}.${epoch}.page`;
}

export function catalogFile(xxh64: string): string {
  return `catalog.${xxh64}.msgpack`;
}

/** Where published files come from: HTTP (src/browser/http-source.ts), a folder (src/node/publish.ts), memory. */
export interface PublishedSource {
  /** Human-readable location, for messages. */
  readonly location: string;
  /** The bytes of the file at `path` (relative to the published root). Throws StoreError on failure. */
  get(path: string): Promise<Uint8Array>;
}

/** Builds the index for a catalog whose pages are published with the given sealed sizes. */
export function buildIndex(catalog: CatalogView, snapshot: Uint8Array): PublishedIndex {
  if (!catalog.config) throw new InvalidArgumentError('cannot publish a store that has no configuration (empty catalog)');
  const xxh64 = hash64Hex(snapshot);
  const pages = [...catalog.pages].sort((a, b) => a[0] - b[0]).map(([id, p]): [number, number, number] => [id, p.epoch, PAGE_HEADER_BYTES + p.used]);
  const sealedBytes = new Map(pages.map(([id, , bytes]) => [id, bytes]));
  const models = [...catalog.models.values()].map((m) => {
    const ids = catalog.pagesRead(m);
    let pageBytes = 0;
    for (const id of ids) pageBytes += sealedBytes.get(id) ?? 0;
    return { name: m.name, sourceBytes: m.sourceBytes, logicalBytes: weightBytes(m), pages: ids.length, pageBytes };
  });
  return {
    format: PUBLISHED_FORMAT,
    version: PUBLISHED_VERSION,
    pageSize: catalog.config.pageSize,
    tile: catalog.config.tile,
    seq: catalog.seq,
    catalog: { file: catalogFile(xxh64), bytes: snapshot.length, xxh64 },
    pages,
    models,
  };
}

export interface ImportProgress {
  model: string;
  phase: 'fetch' | 'store';
  done: number;
  total: number;
}

export interface ImportOptions {
  /** Pages fetched at once (default 6, a browser's per-host connection count). */
  concurrency?: number;
  onProgress?: (p: ImportProgress) => void;
}

export interface ImportReport {
  name: string;
  /** 'present': a model of that name was already stored, nothing was fetched. */
  status: 'imported' | 'present';
  /** Published pages the model reads, and how many of them had to be fetched. */
  pagesRead: number;
  pagesFetched: number;
  /** Bytes downloaded for this model (sealed pages). */
  bytesFetched: number;
  /** Bytes added to the local store (new blocks and their page headers). */
  bytesStored: number;
  /** Size of the model as a whole ONNX file. */
  wholeFileBytes: number;
  blocks: number;
  newBlocks: number;
  ms: number;
}

/** A published store opened for import: its index and catalog, fetched and verified. */
export class PublishedStore {
  /** Bytes fetched so far (index, catalog and pages). */
  bytesFetched = 0;

  private constructor(
    readonly source: PublishedSource,
    readonly index: PublishedIndex,
    readonly catalog: CatalogView,
  ) {}

  static async open(source: PublishedSource): Promise<PublishedStore> {
    const raw = await source.get(INDEX_FILE);
    let index: PublishedIndex;
    try {
      index = JSON.parse(new TextDecoder().decode(raw)) as PublishedIndex;
    } catch (e) {
      throw new StoreError('NOT_A_STORE', `${source.location}/${INDEX_FILE} is not JSON (${(e as Error).message}): is this a published tessera store?`);
    }
    if (index?.format !== PUBLISHED_FORMAT) throw new StoreError('NOT_A_STORE', `${source.location} is not a published tessera store (${INDEX_FILE} has format "${index?.format}").`);
    if (index.version !== PUBLISHED_VERSION) throw new StoreError('NOT_A_STORE', `${source.location} is published in format version ${index.version}; this tessera reads version ${PUBLISHED_VERSION}.`);
    const snapshot = await source.get(index.catalog.file);
    if (snapshot.length !== index.catalog.bytes || hash64Hex(snapshot) !== index.catalog.xxh64) {
      throw new CorruptionError('CATALOG_CORRUPT', `${source.location}/${index.catalog.file} does not match its checksum in ${INDEX_FILE}: the download was damaged or the store is being republished; retry.`);
    }
    const catalog = Catalog.load(snapshot, []);
    const store = new PublishedStore(source, index, catalogView(() => catalog));
    store.bytesFetched = raw.length + snapshot.length;
    return store;
  }

  listModels(): PublishedModelSummary[] {
    return this.index.models;
  }

  private remoteModel(name: string): ModelEntry {
    const m = this.catalog.models.get(name);
    if (!m) throw new ModelNotFoundError(name, [...this.catalog.models.keys()]);
    return m;
  }

  /** The published pages `store` lacks to hold model `name` (what `importModel` will fetch). */
  plan(store: TesseraStore, name: string): { pagesRead: number; missingPages: number[]; bytesToFetch: number } {
    const m = this.remoteModel(name);
    const local = store.catalog;
    const { tile } = this.index;
    const missing = new Set<number>();
    for (const t of m.tensors) {
      const grid = gridOf(t.dims, tile);
      const es = DTYPES[t.dtype].bytes;
      t.blocks.forEach((id, i) => {
        const b = this.catalog.blocks.get(id)!;
        const { h, w } = tileExtent(grid, tile, i);
        const length = h * w * es;
        if (local.findBlock(b.hash, length) !== undefined) return;
        // A delta block needs its base: from the local store when it has it, else fetched too.
        for (let x: typeof b | undefined = b; x; x = x.base === undefined ? undefined : this.catalog.blocks.get(x.base)) {
          if (x !== b && local.findBlock(x.hash, length) !== undefined) break;
          missing.add(x.page);
        }
      });
    }
    const sizes = new Map(this.index.pages.map(([id, , bytes]) => [id, bytes]));
    const missingPages = [...missing].sort((a, b) => a - b);
    return { pagesRead: this.catalog.pagesRead(m).length, missingPages, bytesToFetch: missingPages.reduce((n, id) => n + (sizes.get(id) ?? 0), 0) };
  }

  /**
   * Adds published model `name` to `store` (under the same name), fetching only the pages holding
   * blocks the store does not have. A model already stored under that name is left as it is.
   */
  async importModel(store: TesseraStore, name: string, opts: ImportOptions = {}): Promise<ImportReport> {
    const t0 = performance.now();
    const m = this.remoteModel(name);
    const { tile } = this.index;
    const localTile = store.config.tile;
    if (localTile.rows !== tile.rows || localTile.cols !== tile.cols) {
      throw new InvalidArgumentError(`${this.source.location} is published with ${tile.rows}x${tile.cols} tiles, the local store uses ${localTile.rows}x${localTile.cols}: blocks cannot be shared. Create the local store with the published tile (openBrowserStore does so from the URL).`);
    }
    const base = { name, pagesRead: 0, pagesFetched: 0, bytesFetched: 0, bytesStored: 0, wholeFileBytes: m.sourceBytes, blocks: 0, newBlocks: 0 };
    if (store.has(name)) return { ...base, status: 'present', ms: performance.now() - t0 };

    const plan = this.plan(store, name);
    const pages = await this.fetchPages(name, plan.missingPages, opts);
    const bytesFetched = plan.missingPages.reduce((n, id) => n + (pages.get(id)!.sealedBytes), 0);

    // Blocks come from the fetched pages, or (a delta's base the local store holds, on a page
    // not fetched) from the local store.
    const local = store.blockSource();
    const remote = new BlockSource(
      this.catalog,
      tile,
      async (page) => {
        const fetched = pages.get(page);
        if (!fetched) throw new CorruptionError('CATALOG_CORRUPT', `a block of the published catalog is on page ${page}, which was not fetched: the published catalog is inconsistent.`);
        return fetched.payload;
      },
      {
        elsewhere: (_id, b) => {
          if (pages.has(b.page)) return undefined;
          const mine = store.catalog.findBlock(b.hash, this.contentLength(b));
          return mine === undefined ? undefined : local.block(mine);
        },
      },
    );
    const blockBytes = async (id: number): Promise<Uint8Array> => {
      const bytes = await remote.block(id);
      const b = this.catalog.blocks.get(id)!;
      if (hash64Hex(bytes) !== b.hash) throw new CorruptionError('PAGE_CORRUPT', `published block ${id} on page ${b.page} does not match its hash: the published store is damaged.`, { pageId: b.page });
      return bytes;
    };

    const tensors: NewTensor[] = m.tensors.map((t) => {
      const grid = gridOf(t.dims, tile);
      const es = DTYPES[t.dtype].bytes;
      return {
        name: t.name,
        dtype: t.dtype,
        dims: t.dims,
        location: t.location,
        blocks: Array.from(t.blocks, (id, i): BlockInput => {
          const { h, w } = tileExtent(grid, tile, i);
          const hash = this.catalog.blocks.get(id)!.hash;
          return { hash, length: h * w * es, load: () => blockBytes(id) };
        }),
      };
    });
    const report = await store.addBlocks(
      { name, skeleton: m.skeleton, inputs: m.inputs, outputs: m.outputs, sourceBytes: m.sourceBytes },
      tensors,
      { onProgress: (p) => opts.onProgress?.({ model: name, phase: 'store', done: p.done, total: p.total }) },
    );
    return {
      ...base,
      status: 'imported',
      pagesRead: plan.pagesRead,
      pagesFetched: plan.missingPages.length,
      bytesFetched,
      bytesStored: report.newBytes + report.newPages * PAGE_HEADER_BYTES,
      blocks: report.blocks,
      newBlocks: report.newBlocks,
      ms: performance.now() - t0,
    };
  }

  /** Bytes of a published block's content (a delta's: its base's, as deltas keep lengths). */
  private contentLength(b: { length: number; base?: number }): number {
    for (let x = b; ; ) {
      if (x.base === undefined) return x.length;
      const base = this.catalog.blocks.get(x.base);
      if (!base) throw new CorruptionError('CATALOG_CORRUPT', `a published delta block names base ${x.base}, which the published catalog does not hold.`);
      x = base;
    }
  }

  /** Fetches and verifies pages, `concurrency` at a time. All succeed, or it throws. */
  private async fetchPages(model: string, ids: number[], opts: ImportOptions): Promise<Map<number, { payload: Uint8Array; sealedBytes: number }>> {
    const out = new Map<number, { payload: Uint8Array; sealedBytes: number }>();
    const epochs = new Map(this.index.pages.map(([id, epoch]) => [id, epoch]));
    let next = 0;
    let failed = false;
    const worker = async () => {
      while (!failed && next < ids.length) {
        const id = ids[next++];
        const epoch = epochs.get(id);
        if (epoch === undefined) throw new CorruptionError('CATALOG_CORRUPT', `page ${id} is referenced by the published catalog but not listed in ${INDEX_FILE}.`);
        const sealed = await this.source.get(pageFile(id, epoch));
        this.bytesFetched += sealed.length;
        let payload: Uint8Array;
        try {
          payload = openPage(id, sealed, this.index.pageSize, epoch);
        } catch (e) {
          throw new CorruptionError('PAGE_CORRUPT', `published page ${id} from ${this.source.location} is damaged (${(e as Error).message}); nothing was stored, retry the import.`, { pageId: id });
        }
        out.set(id, { payload, sealedBytes: sealed.length });
        opts.onProgress?.({ model, phase: 'fetch', done: out.size, total: ids.length });
      }
    };
    const n = Math.max(1, Math.min(opts.concurrency ?? 6, ids.length));
    const workers = Array.from({ length: n }, () =>
      worker().catch((e) => {
        failed = true;
        throw e;
      }),
    );
    const results = await Promise.allSettled(workers);
    const err = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (err) {
      const e = err.reason;
      if (e instanceof TesseraError) throw e;
      throw new StoreError('IO_ERROR', `importing "${model}" from ${this.source.location} failed: ${(e as Error)?.message ?? String(e)}. Nothing was stored; retry.`, { cause: e });
    }
    return out;
  }
}

/** Imports models (default: all published) into `store`, one commit per model, in order. */
export async function importModels(store: TesseraStore, source: PublishedSource | PublishedStore, names?: string[], opts: ImportOptions = {}): Promise<ImportReport[]> {
  const published = source instanceof PublishedStore ? source : await PublishedStore.open(source);
  const reports: ImportReport[] = [];
  for (const name of names ?? published.listModels().map((m) => m.name)) reports.push(await published.importModel(store, name, opts));
  return reports;
}
