/**
 * A store published as static files (any HTTP server, a CDN, a folder), and importing from it.
 *
 *   tessera-index.json          format, version, page size, tile, the catalog and block-hash files
 *                               with their SHA-256, and a summary of each model (for listing)
 *   catalog.<xxh64>.msgpack     the catalog snapshot (Catalog.snapshot()), named by its hash
 *   blocks.<sha256>.bin         every block's SHA-256 (of its content, deltas decoded): u32 id + 32 bytes each
 *   pages/<id>.<epoch>.page     one sealed page each (page-format.ts: checksummed header + payload)
 * Every file but the index is immutable under its name (a page slot rewritten by a later commit
 * gets a new epoch, hence a new name), so caches never serve a stale page for a fresh catalog.
 *
 * Import: for a model, the blocks the local store already holds are not fetched; only the pages
 * holding the other blocks are. Every page is fetched and verified before anything is written,
 * and the model is then committed by `addBlocks` in one catalog record: a failure at any point
 * leaves every stored model intact.
 *
 * An import trusts nothing the server sends (issue 13). The index, catalog, block table and pages
 * are fetched with stated size limits (IMPORT_LIMITS) and, over HTTP, timeouts; files resolve only
 * under the store's own location; the index and catalog are validated before use (shapes, dtypes,
 * every block the length of its tile, delta chains acyclic and at most MAX_DELTA_CHAIN long);
 * every fetched block's content must match its published SHA-256; a local block is reused only
 * when its content's SHA-256 matches the published one (and addBlocks then compares bytes); and
 * the model is assembled and parsed (exportable) before it is committed.
 */
import { CorruptionError, InvalidArgumentError, ModelNotFoundError, StoreError, TesseraError } from '../errors.ts';
import { hash64Hex, loadSha256, sha256, sha256Hex } from '../hash.ts';
import { Catalog, type ModelEntry } from '../catalog/catalog.ts';
import { gridOf, tileExtent, validateTile, type TileShape } from '../blocks/tiling.ts';
import { assembleModel, parseModel } from '../onnx/model.ts';
import { BlockSource } from './block-source.ts';
import { catalogView, weightBytes, type CatalogView } from './catalog-view.ts';
import { DTYPES } from '../onnx/dtypes.ts';
import { PAGE_HEADER_BYTES, openPage } from './page-format.ts';
import type { BlockInput, NewTensor, TesseraStore } from './store.ts';
import { bytesEqual } from './ingest.ts';

export const PUBLISHED_FORMAT = 'tessera-published';
export const PUBLISHED_VERSION = 2;

/** What an import accepts from a published store; anything larger is refused with a typed error. */
export const IMPORT_LIMITS = {
  indexBytes: 16 << 20,
  catalogBytes: 256 << 20,
  /** Largest published page size (payload): a page is fetched whole, so this bounds memory per page. */
  pageSize: 64 << 20,
  /** Longest chain of delta blocks (the store writes one level). */
  deltaChain: 4,
};
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
  catalog: { file: string; bytes: number; xxh64: string; sha256: string };
  /** The block-hash table (see the file header). */
  blocks: { file: string; bytes: number; sha256: string };
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
  /**
   * The bytes of the file at `path` (relative to the published root; a source refuses any path
   * that would resolve outside it). More than `maxBytes` is refused, not truncated. Throws
   * StoreError on failure.
   */
  get(path: string, opts?: { maxBytes?: number }): Promise<Uint8Array>;
}

/** The block-hash table: u32 id (little-endian) + SHA-256 of the block's content, ascending ids. */
export function encodeBlockHashes(hashes: ReadonlyMap<number, Uint8Array>): Uint8Array {
  const ids = [...hashes.keys()].sort((a, b) => a - b);
  const out = new Uint8Array(ids.length * 36);
  const view = new DataView(out.buffer);
  ids.forEach((id, i) => {
    view.setUint32(i * 36, id, true);
    out.set(hashes.get(id)!, i * 36 + 4);
  });
  return out;
}

function decodeBlockHashes(bytes: Uint8Array, location: string): Map<number, Uint8Array> {
  if (bytes.length % 36) throw new CorruptionError('CATALOG_CORRUPT', `${location}: the block-hash table is ${bytes.length} bytes, not a multiple of 36.`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Map<number, Uint8Array>();
  for (let at = 0; at < bytes.length; at += 36) out.set(view.getUint32(at, true), bytes.subarray(at + 4, at + 36));
  return out;
}

export function blocksFile(table: Uint8Array): string {
  return `blocks.${sha256Hex(table)}.bin`;
}

/** Builds the index for a catalog whose pages are published with the given sealed sizes, and its block-hash table. */
export function buildIndex(catalog: CatalogView, snapshot: Uint8Array, blockTable: Uint8Array): PublishedIndex {
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
    catalog: { file: catalogFile(xxh64), bytes: snapshot.length, xxh64, sha256: sha256Hex(snapshot) },
    blocks: { file: blocksFile(blockTable), bytes: blockTable.length, sha256: sha256Hex(blockTable) },
    pages,
    models,
  };
}

const bad = (location: string, why: string) => new StoreError('NOT_A_STORE', `${location}/${INDEX_FILE} is not a valid published tessera index: ${why}.`);
const isCount = (x: unknown, max = Number.MAX_SAFE_INTEGER): x is number => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= max;

/** Checks the index's shape and limits before anything it names is fetched. */
function validateIndex(index: PublishedIndex, location: string): void {
  if (index?.format !== PUBLISHED_FORMAT) throw new StoreError('NOT_A_STORE', `${location} is not a published tessera store (${INDEX_FILE} has format "${(index as { format?: unknown })?.format}").`);
  if (index.version !== PUBLISHED_VERSION) throw new StoreError('NOT_A_STORE', `${location} is published in format version ${index.version}; this tessera reads version ${PUBLISHED_VERSION}: publish it again with this tessera.`);
  if (!isCount(index.pageSize, IMPORT_LIMITS.pageSize) || index.pageSize < 1) throw bad(location, `page size ${index.pageSize} is not an integer in [1, ${IMPORT_LIMITS.pageSize}]`);
  try {
    validateTile(index.tile);
  } catch (e) {
    throw bad(location, `tile ${JSON.stringify(index.tile)}: ${(e as Error).message}`);
  }
  const c = index.catalog;
  if (!c || typeof c !== 'object') throw bad(location, 'it names no catalog');
  if (typeof c.file !== 'string' || !/^catalog\.[0-9a-f]{16}\.msgpack$/.test(c.file)) throw bad(location, `catalog file ${JSON.stringify(c.file)} is not a catalog.<hash>.msgpack name beside the index`);
  if (!isCount(c.bytes, IMPORT_LIMITS.catalogBytes)) throw bad(location, `catalog size ${c.bytes} exceeds the limit of ${IMPORT_LIMITS.catalogBytes} bytes`);
  if (typeof c.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(c.sha256)) throw bad(location, 'the catalog has no SHA-256');
  const b = index.blocks;
  if (!b || typeof b.file !== 'string' || !/^blocks\.[0-9a-f]{64}\.bin$/.test(b.file) || !isCount(b.bytes, IMPORT_LIMITS.catalogBytes) || !/^[0-9a-f]{64}$/.test(String(b.sha256))) throw bad(location, 'it names no valid block-hash table');
  if (!Array.isArray(index.pages) || !index.pages.every((p) => Array.isArray(p) && p.length === 3 && isCount(p[0], 0xffffffff) && isCount(p[1], 0xffffffff) && isCount(p[2], PAGE_HEADER_BYTES + index.pageSize) && p[2] >= PAGE_HEADER_BYTES)) {
    throw bad(location, `its page list is malformed or names a page larger than ${PAGE_HEADER_BYTES + index.pageSize} bytes`);
  }
  if (!Array.isArray(index.models)) throw bad(location, 'it has no model list');
}

/**
 * Checks the published catalog adds up before anything is imported from it: each tensor's dtype,
 * grid and blocks; each block on a listed page, within it, as long as its tile (a raw block) or
 * with a stored delta no longer than its content; delta chains acyclic and at most
 * IMPORT_LIMITS.deltaChain long, ending at a raw block of the same length.
 */
function validateCatalog(catalog: Catalog, index: PublishedIndex, location: string): void {
  const fail = (why: string): never => {
    throw new CorruptionError('CATALOG_CORRUPT', `the published catalog of ${location} is invalid: ${why}. Nothing was imported.`);
  };
  const cfg = catalog.config;
  if (!cfg || cfg.tile.rows !== index.tile.rows || cfg.tile.cols !== index.tile.cols || cfg.pageSize !== index.pageSize) fail('its configuration differs from the index');
  const used = new Map(index.pages.map(([id, , bytes]) => [id, bytes - PAGE_HEADER_BYTES]));
  const contentLength = new Map<number, number>();
  for (const [id, b] of catalog.blocks) {
    const pageUsed = used.get(b.page);
    if (pageUsed === undefined) fail(`block ${id} is on page ${b.page}, which the index does not list`);
    if (!isCount(b.offset) || !isCount(b.length) || b.offset + b.length > pageUsed!) fail(`block ${id} (${b.offset}+${b.length}) lies outside page ${b.page} (${pageUsed} bytes)`);
    let x = b;
    let depth = 0;
    while (x.base !== undefined) {
      if (++depth > IMPORT_LIMITS.deltaChain) fail(`block ${id} is a chain of more than ${IMPORT_LIMITS.deltaChain} deltas (or a cycle)`);
      const next = catalog.blocks.get(x.base);
      if (!next) fail(`delta block ${id} names base ${x.base}, which the catalog does not hold`);
      x = next!;
    }
    contentLength.set(id, x.length);
    if (b.base !== undefined && b.length > x.length + 64) fail(`delta block ${id} stores ${b.length} bytes for ${x.length} bytes of content`);
  }
  for (const m of catalog.models.values()) {
    for (const t of m.tensors) {
      const dt = DTYPES[t.dtype as keyof typeof DTYPES];
      if (!dt) fail(`tensor "${t.name}" of "${m.name}" has dtype ${JSON.stringify(t.dtype)}, which tessera does not know`);
      if (!Array.isArray(t.dims) || !t.dims.every((d) => isCount(d))) fail(`tensor "${t.name}" of "${m.name}" has dims ${JSON.stringify(t.dims)}`);
      const grid = gridOf(t.dims, index.tile);
      if (grid.count !== t.blocks.length) fail(`tensor "${t.name}" of "${m.name}" has ${t.blocks.length} blocks, its grid ${grid.count}`);
      t.blocks.forEach((id, i) => {
        const { h, w } = tileExtent(grid, index.tile, i);
        const want = h * w * dt.bytes;
        const got = contentLength.get(id);
        if (got === undefined) fail(`tensor "${t.name}" of "${m.name}" names block ${id}, which the catalog does not hold`);
        if (got !== want) fail(`block ${id} of tensor "${t.name}" of "${m.name}" holds ${got} bytes, its ${h}x${w} tile ${want}`);
      });
    }
  }
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
    /** SHA-256 of each published block's content: the identity an import trusts. */
    private readonly sha: ReadonlyMap<number, Uint8Array>,
  ) {}

  static async open(source: PublishedSource): Promise<PublishedStore> {
    await loadSha256();
    const raw = await source.get(INDEX_FILE, { maxBytes: IMPORT_LIMITS.indexBytes });
    let index: PublishedIndex;
    try {
      index = JSON.parse(new TextDecoder().decode(raw)) as PublishedIndex;
    } catch (e) {
      throw new StoreError('NOT_A_STORE', `${source.location}/${INDEX_FILE} is not JSON (${(e as Error).message}): is this a published tessera store?`);
    }
    validateIndex(index, source.location);
    const snapshot = await source.get(index.catalog.file, { maxBytes: index.catalog.bytes });
    if (snapshot.length !== index.catalog.bytes || sha256Hex(snapshot) !== index.catalog.sha256) {
      throw new CorruptionError('CATALOG_CORRUPT', `${source.location}/${index.catalog.file} does not match its SHA-256 in ${INDEX_FILE}: the download was damaged or the store is being republished; retry.`);
    }
    const table = await source.get(index.blocks.file, { maxBytes: index.blocks.bytes });
    if (table.length !== index.blocks.bytes || sha256Hex(table) !== index.blocks.sha256) {
      throw new CorruptionError('CATALOG_CORRUPT', `${source.location}/${index.blocks.file} does not match its SHA-256 in ${INDEX_FILE}: the download was damaged or the store is being republished; retry.`);
    }
    const catalog = Catalog.load(snapshot, []);
    validateCatalog(catalog, index, source.location);
    const hashes = decodeBlockHashes(table, source.location);
    for (const id of catalog.blocks.keys()) if (!hashes.has(id)) throw new CorruptionError('CATALOG_CORRUPT', `the published catalog of ${source.location} has block ${id} without a SHA-256: nothing was imported.`);
    const store = new PublishedStore(source, index, catalogView(() => catalog), hashes);
    store.bytesFetched = raw.length + snapshot.length + table.length;
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

  /**
   * The published pages `store` lacks to hold model `name`, judged by hash and length (no local
   * read): what `importModel` fetches when every local match is genuine. The import itself
   * confirms each local match by SHA-256 (`verifiedPlan`) and fetches more if one is not.
   */
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

    const plan = await this.verifiedPlan(store, m);
    const pages = await this.fetchPages(name, plan.missingPages, opts);
    const bytesFetched = plan.missingPages.reduce((n, id) => n + (pages.get(id)!.sealedBytes), 0);

    // Blocks come from the fetched pages, or from the local store where a local block's content
    // has the published SHA-256 (plan.local).
    const remote = new BlockSource(
      this.catalog,
      tile,
      async (page) => {
        const fetched = pages.get(page);
        if (!fetched) throw new CorruptionError('CATALOG_CORRUPT', `a block of the published catalog is on page ${page}, which was not fetched: the published catalog is inconsistent.`);
        return fetched.payload;
      },
      { elsewhere: (id) => (plan.local.has(id) ? Promise.resolve(plan.local.get(id)!) : undefined) },
    );
    const content = new Map<number, Uint8Array>();
    const blockBytes = async (id: number): Promise<Uint8Array> => {
      const hit = content.get(id);
      if (hit) return hit;
      const bytes = await remote.block(id);
      const b = this.catalog.blocks.get(id)!;
      if (!bytesEqual(sha256(bytes), this.sha.get(id)!) || hash64Hex(bytes) !== b.hash) {
        throw new CorruptionError('PAGE_CORRUPT', `published block ${id} on page ${b.page} of ${this.source.location} does not match its SHA-256: the published store is damaged or hostile. Nothing was stored.`, { pageId: b.page });
      }
      content.set(id, bytes);
      return bytes;
    };

    const tensors: NewTensor[] = [];
    const tensorBytes: Uint8Array[] = [];
    for (const t of m.tensors) {
      const data = await Promise.all(Array.from(t.blocks, (id) => blockBytes(id)));
      tensors.push({ name: t.name, dtype: t.dtype, dims: t.dims, location: t.location, ...(t.encoding ? { encoding: t.encoding } : {}), blocks: data.map((d, i): BlockInput => ({ data: d, hash: this.catalog.blocks.get(t.blocks[i])!.hash })) });
      tensorBytes.push(await remote.tensor(t));
    }
    // Exportable before it is committed: the skeleton and tensors assemble into ONNX that parses.
    try {
      await parseModel(assembleModel(m.skeleton, tensorBytes, m.tensors.map((t) => t.encoding)));
    } catch (e) {
      throw new CorruptionError('CATALOG_CORRUPT', `published model "${name}" from ${this.source.location} cannot be exported (${(e as Error)?.message ?? e}): nothing was stored.`);
    }
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

  /**
   * The pages to fetch for model `m`, after confirming local matches: a local block stands for a
   * published one only when its content's SHA-256 is the published block's (a block planted by a
   * hostile store with a forged xxHash64 is not). `local`: remote block id -> local content.
   */
  private async verifiedPlan(store: TesseraStore, m: ModelEntry): Promise<{ pagesRead: number; missingPages: number[]; local: Map<number, Uint8Array> }> {
    const mine = store.blockSource();
    const local = new Map<number, Uint8Array>();
    const checked = new Set<number>();
    const genuine = async (id: number): Promise<boolean> => {
      if (checked.has(id)) return local.has(id);
      checked.add(id);
      const b = this.catalog.blocks.get(id)!;
      const length = this.contentLength(b);
      for (const candidate of store.catalog.withHash(b.hash)) {
        const entry = store.catalog.blocks.get(candidate)!;
        if (entry.base === undefined && entry.length !== length) continue;
        const bytes = await mine.block(candidate);
        if (bytes.length === length && bytesEqual(sha256(bytes), this.sha.get(id)!)) {
          local.set(id, bytes);
          return true;
        }
      }
      return false;
    };
    const missing = new Set<number>();
    for (const t of m.tensors) {
      for (const id of t.blocks) {
        // A block not held locally needs its page, and (a delta) its base chain down to a block that is.
        for (let x: number | undefined = id; x !== undefined; x = this.catalog.blocks.get(x)!.base) {
          if (await genuine(x)) break;
          missing.add(this.catalog.blocks.get(x)!.page);
        }
      }
    }
    return { pagesRead: this.catalog.pagesRead(m).length, missingPages: [...missing].sort((a, b) => a - b), local };
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
    const sizes = new Map(this.index.pages.map(([id, , bytes]) => [id, bytes]));
    let next = 0;
    let failed = false;
    const worker = async () => {
      while (!failed && next < ids.length) {
        const id = ids[next++];
        const epoch = epochs.get(id);
        if (epoch === undefined) throw new CorruptionError('CATALOG_CORRUPT', `page ${id} is referenced by the published catalog but not listed in ${INDEX_FILE}.`);
        const sealed = await this.source.get(pageFile(id, epoch), { maxBytes: sizes.get(id) });
        if (sealed.length !== sizes.get(id)) throw new CorruptionError('PAGE_CORRUPT', `published page ${id} from ${this.source.location} is ${sealed.length} bytes, the index says ${sizes.get(id)}; nothing was stored, retry the import.`, { pageId: id });
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

