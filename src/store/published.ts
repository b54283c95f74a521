/**
 * A store published as static files (any HTTP server, a CDN, a folder), and importing from it.
 *
 *   tessera-index.json          format, version, page size, tile, the catalog and block-hash files
 *                               with their SHA-256 (and, when small, their bytes: INLINE_BYTES),
 *                               and a summary of each model (for listing)
 *   catalog.<xxh64>.msgpack.deflate  the catalog snapshot (Catalog.snapshot()), named by its hash,
 *                               deflated (raw deflate: skeletons and block tables shrink 8-16x;
 *                               static hosts rarely compress binary files); version 2 stores
 *                               kept it plain (catalog.<xxh64>.msgpack) and are still read
 *   blocks.<sha256>.bin         every block's SHA-256 (of its content, deltas decoded): u32 id + 32 bytes each
 *   pages/<id>.<epoch>.page     one sealed page each (page-format.ts: checksummed header + payload)
 * Every file but the index is immutable under its name (a page slot rewritten by a later commit
 * gets a new epoch, hence a new name), so caches never serve a stale page for a fresh catalog.
 *
 * Import: for a model, the blocks the local store already holds are not fetched; only the pages
 * holding the other blocks are. A model's pages are fetched and its blocks verified before any
 * of it is written, and models are committed through an add batch (AddBatch), several in one
 * catalog record: a failure at any point leaves every stored model intact.
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
import { hash64Hex, loadSha256, sha256, sha256Async, sha256Hex } from '../hash.ts';
import { Catalog, contentLength as blockContentLength, type BlockEntry, type ModelEntry, type NewBlock } from '../catalog/catalog.ts';
import { gridOf, tileExtent, validateTile, type TileShape } from '../blocks/tiling.ts';
import { assembleModel, parseModel } from '../onnx/model.ts';
import { BlockSource } from './block-source.ts';
import { catalogView, weightBytes, type CatalogView } from './catalog-view.ts';
import { DTYPES } from '../onnx/dtypes.ts';
import { PAGE_HEADER_BYTES, openPage } from './page-format.ts';
import type { AddBatch, BlockInput, NewTensor, TesseraStore } from './store.ts';
import { bytesEqual, validateModelName } from './ingest.ts';

export const PUBLISHED_FORMAT = 'tessera-published';
export const PUBLISHED_VERSION = 3;
/** Earlier versions this tessera still imports from (2: the catalog file not deflated). */
const READABLE_VERSIONS = [2, PUBLISHED_VERSION];

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
/** Pages fetched at once when they are kept as fetched (see ImportOptions.concurrency). */
const ADOPT_CONCURRENCY = 12;

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
  /**
   * The catalog file: `bytes` and `sha256` are the file's; `xxh64` is the snapshot's; with
   * `encoding` 'deflate-raw', `size` is the snapshot's length (else the file is the snapshot).
   */
  catalog: { file: string; bytes: number; xxh64: string; sha256: string; encoding?: 'deflate-raw'; size?: number; inline?: string };
  /** The block-hash table (see the file header). */
  blocks: { file: string; bytes: number; sha256: string; inline?: string };
  /** Page files and their sealed sizes: [id, epoch, bytes]. */
  pages: [number, number, number][];
  models: PublishedModelSummary[];
}

export function pageFile(id: number, epoch: number): string {
  return `pages/${id}.${epoch}.page`;
}

export function catalogFile(xxh64: string, encoding?: 'deflate-raw'): string {
  return `catalog.${xxh64}.msgpack${encoding ? '.deflate' : ''}`;
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
  /**
   * Optional: hands the file at `path`, stated to be exactly `bytes` long, to `sink` as a Response
   * whose body is unread, so that a browser can stream it into storage without the page touching
   * its bytes (PageAdopter). The source checks the status and length first and retries when the
   * transfer breaks off; `sink` consumes the body. Throws StoreError on failure.
   */
  pipe?(path: string, bytes: number, sink: (body: Response) => Promise<void>): Promise<void>;
}

/**
 * A page store that can keep a published page as it was fetched (the IndexedDB store in a browser,
 * src/browser/idb-store.ts, keeps such pages in the Cache API): the body is streamed to storage
 * unread, and its seal (checksum, published id and epoch) is verified whenever the page is read,
 * so a damaged page is PAGE_CORRUPT on first read instead of at import (the IndexedDB store first
 * fetches it again from its origin and keeps that copy if its seal holds). The page is stored as
 * page `id` of the commit with sequence number `epoch`, and referenced only once that commit's
 * record lists it; until then it is an unreferenced slot like any page written ahead of a commit.
 */
export interface PageAdopter {
  /** Whether this store can adopt pages here (false where the platform lacks the storage). */
  readonly canAdopt: boolean;
  /** `origin`: where the page was fetched from, so that a store can fetch it again if its copy is lost. */
  adoptPage(id: number, epoch: number, sealedAs: { id: number; epoch: number }, body: Response, origin?: PublishedPageOrigin): Promise<void>;
}

/** Where an adopted page came from: file `path` (sealed, `bytes` long) under published store `source` (its location). */
export interface PublishedPageOrigin {
  source: string;
  path: string;
  bytes: number;
}

function adopterOf(store: TesseraStore): PageAdopter | undefined {
  const backend = store.backend as Partial<PageAdopter>;
  return backend.canAdopt && typeof backend.adoptPage === 'function' ? (backend as PageAdopter) : undefined;
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
/**
 * A catalog file or block table this small is also carried in the index (`inline`, base64), so an
 * import opens the store in one round trip instead of two; the files are written all the same.
 */
export const INLINE_BYTES = 48 << 10;

function inline(bytes: Uint8Array): { inline?: string } {
  if (bytes.length > INLINE_BYTES) return {};
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return { inline: btoa(text) };
}

function fromBase64(text: string): Uint8Array {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

export function buildIndex(catalog: CatalogView, snapshot: Uint8Array, blockTable: Uint8Array, deflated?: Uint8Array): PublishedIndex {
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
    catalog: deflated
      ? { file: catalogFile(xxh64, 'deflate-raw'), bytes: deflated.length, xxh64, sha256: sha256Hex(deflated), encoding: 'deflate-raw', size: snapshot.length, ...inline(deflated) }
      : { file: catalogFile(xxh64), bytes: snapshot.length, xxh64, sha256: sha256Hex(snapshot) },
    blocks: { file: blocksFile(blockTable), bytes: blockTable.length, sha256: sha256Hex(blockTable), ...(deflated ? inline(blockTable) : {}) },
    pages,
    models,
  };
}

const bad = (location: string, why: string) => new StoreError('NOT_A_STORE', `${location}/${INDEX_FILE} is not a valid published tessera index: ${why}.`);
const isCount = (x: unknown, max = Number.MAX_SAFE_INTEGER): x is number => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= max;

/** Checks the index's shape and limits before anything it names is fetched. */
function validateIndex(index: PublishedIndex, location: string): void {
  if (index?.format !== PUBLISHED_FORMAT) throw new StoreError('NOT_A_STORE', `${location} is not a published tessera store (${INDEX_FILE} has format "${(index as { format?: unknown })?.format}").`);
  if (!READABLE_VERSIONS.includes(index.version)) throw new StoreError('NOT_A_STORE', `${location} is published in format version ${index.version}; this tessera reads version ${PUBLISHED_VERSION}: publish it again with this tessera.`);
  if (!isCount(index.pageSize, IMPORT_LIMITS.pageSize) || index.pageSize < 1) throw bad(location, `page size ${index.pageSize} is not an integer in [1, ${IMPORT_LIMITS.pageSize}]`);
  try {
    validateTile(index.tile);
  } catch (e) {
    throw bad(location, `tile ${JSON.stringify(index.tile)}: ${(e as Error).message}`);
  }
  const c = index.catalog;
  if (!c || typeof c !== 'object') throw bad(location, 'it names no catalog');
  if (c.encoding !== undefined && (c.encoding !== 'deflate-raw' || index.version < 3)) throw bad(location, `catalog encoding ${JSON.stringify(c.encoding)} is not one this tessera reads`);
  if (typeof c.file !== 'string' || c.file !== catalogFile(String(c.xxh64), c.encoding) || !/^catalog\.[0-9a-f]{16}\.msgpack(\.deflate)?$/.test(c.file)) throw bad(location, `catalog file ${JSON.stringify(c.file)} is not a catalog.<hash>.msgpack name beside the index`);
  if (!isCount(c.bytes, IMPORT_LIMITS.catalogBytes)) throw bad(location, `catalog size ${c.bytes} exceeds the limit of ${IMPORT_LIMITS.catalogBytes} bytes`);
  if (c.encoding && !isCount(c.size, IMPORT_LIMITS.catalogBytes)) throw bad(location, `catalog size ${c.size} exceeds the limit of ${IMPORT_LIMITS.catalogBytes} bytes`);
  if (typeof c.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(c.sha256)) throw bad(location, 'the catalog has no SHA-256');
  const b = index.blocks;
  for (const [what, x] of [['catalog', c], ['block table', b]] as const) {
    if (x?.inline !== undefined && (index.version < 3 || typeof x.inline !== 'string' || x.inline.length > Math.ceil(x.bytes / 3) * 4)) throw bad(location, `the ${what} carried inline is not base64 of its stated ${x.bytes} bytes`);
  }
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
    if (b.codec !== undefined && (!isCount(b.size) || b.length > b.size! + 64)) fail(`coded block ${id} stores ${b.length} bytes for ${b.size} bytes of content`);
    while (x.codec === undefined && x.base !== undefined) {
      if (++depth > IMPORT_LIMITS.deltaChain) fail(`block ${id} is a chain of more than ${IMPORT_LIMITS.deltaChain} deltas (or a cycle)`);
      const next = catalog.blocks.get(x.base);
      if (!next) fail(`delta block ${id} names base ${x.base}, which the catalog does not hold`);
      x = next!;
    }
    // A coded block may be a delta too: its chain is followed to its end as well (the walk above
    // stops at the first coded block), or a cycle through coded blocks would pass and every later
    // walk down the chain (the import's plan, BlockSource) would follow it for ever.
    for (let y = x, coded = depth; y.base !== undefined; ) {
      if (++coded > IMPORT_LIMITS.deltaChain) fail(`block ${id} is a chain of more than ${IMPORT_LIMITS.deltaChain} deltas (or a cycle)`);
      const next = catalog.blocks.get(y.base);
      if (!next) fail(`delta block ${id} names base ${y.base}, which the catalog does not hold`);
      y = next!;
    }
    contentLength.set(id, blockContentLength(x));
    if (b.base !== undefined && b.codec === undefined && b.length > x.length + 64) fail(`delta block ${id} stores ${b.length} bytes for ${x.length} bytes of content`);
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
  /**
   * Pages fetched at once (default 6, a browser's per-host connection count; 12 where pages are
   * kept as fetched (PageAdopter): their bytes do not pass through the page, so more in flight
   * holds no memory, and storage writes overlap the next downloads; bench browser measured 12
   * faster than 6 and 24).
   */
  concurrency?: number;
  /**
   * Bytes of fetched pages held for models after the one being stored (default 64 MiB): fetching
   * runs ahead of storing by at most this much. The pages of the model being stored are always fetched.
   */
  prefetchBytes?: number;
  /**
   * Models are committed together, one catalog record per chunk of about this many stored bytes
   * (default 64 MiB): a family of small models costs one durable write, not one per model.
   */
  commitBytes?: number;
  onProgress?: (p: ImportProgress) => void;
  /**
   * Re-pack fetched blocks onto the store's own pages, checking every block's SHA-256 and that
   * each model exports before it is committed, instead of keeping published pages as fetched
   * (the default where the store can adopt pages and the source can stream them: PageAdopter).
   */
  repack?: boolean;
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
    await loadSha256();
    const raw = await source.get(INDEX_FILE, { maxBytes: IMPORT_LIMITS.indexBytes });
    let index: PublishedIndex;
    try {
      index = JSON.parse(new TextDecoder().decode(raw)) as PublishedIndex;
    } catch (e) {
      throw new StoreError('NOT_A_STORE', `${source.location}/${INDEX_FILE} is not JSON (${(e as Error).message}): is this a published tessera store?`);
    }
    validateIndex(index, source.location);
    // The catalog and the block table: carried in the index when small, else fetched together.
    const carried = (x: { file: string; bytes: number; inline?: string }): Promise<Uint8Array> => {
      if (x.inline === undefined) return source.get(x.file, { maxBytes: x.bytes });
      try {
        return Promise.resolve(fromBase64(x.inline));
      } catch {
        throw bad(source.location, `the copy of ${x.file} it carries is not base64`);
      }
    };
    // A block table not carried in the index is fetched when first needed (PublishedStore.hashes):
    // an import into a store holding none of the published blocks, keeping pages as fetched,
    // never reads it (the ViT family's: 99 kB, a third of what opening fetched).
    const [file, table] = await Promise.all([carried(index.catalog), index.blocks.inline === undefined ? undefined : carried(index.blocks)]);
    if (file.length !== index.catalog.bytes || sha256Hex(file) !== index.catalog.sha256) {
      throw new CorruptionError('CATALOG_CORRUPT', `${source.location}/${index.catalog.file} does not match its SHA-256 in ${INDEX_FILE}: the download was damaged or the store is being republished; retry.`);
    }
    const snapshot = index.catalog.encoding ? await inflateRaw(file, index.catalog.size!, `${source.location}/${index.catalog.file}`) : file;
    if (index.catalog.encoding && hash64Hex(snapshot) !== index.catalog.xxh64) {
      throw new CorruptionError('CATALOG_CORRUPT', `${source.location}/${index.catalog.file} does not inflate to the catalog its name says: the published store is damaged; publish it again.`);
    }
    const catalog = Catalog.load(snapshot, []);
    validateCatalog(catalog, index, source.location);
    const store = new PublishedStore(source, index, catalogView(() => catalog));
    if (table) store.sha = Promise.resolve(store.blockHashes(table));
    store.bytesFetched = raw.length + (index.catalog.inline === undefined ? file.length : 0);
    return store;
  }

  /** The SHA-256 of each published block's content (the identity an import trusts), fetched once when first needed. */
  private hashes(): Promise<ReadonlyMap<number, Uint8Array>> {
    if (!this.sha) {
      const { file, bytes } = this.index.blocks;
      this.sha = this.source.get(file, { maxBytes: bytes }).then((table) => {
        this.bytesFetched += table.length;
        return this.blockHashes(table);
      });
      this.sha.catch(() => (this.sha = undefined)); // a failed fetch is retried by the next import
    }
    return this.sha;
  }
  private sha: Promise<ReadonlyMap<number, Uint8Array>> | undefined;

  /** The block table checked against the index and the catalog. */
  private blockHashes(table: Uint8Array): Map<number, Uint8Array> {
    const { location } = this.source;
    if (table.length !== this.index.blocks.bytes || sha256Hex(table) !== this.index.blocks.sha256) {
      throw new CorruptionError('CATALOG_CORRUPT', `${location}/${this.index.blocks.file} does not match its SHA-256 in ${INDEX_FILE}: the download was damaged or the store is being republished; retry.`);
    }
    const hashes = decodeBlockHashes(table, location);
    for (const id of this.catalog.blocks.keys()) if (!hashes.has(id)) throw new CorruptionError('CATALOG_CORRUPT', `the published catalog of ${location} has block ${id} without a SHA-256: nothing was imported.`);
    return hashes;
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
    return (await this.importModels(store, [name], opts))[0];
  }

  /**
   * Adds published models to `store`, in order, committed in chunks of about `commitBytes` (one
   * catalog record, one durable write each): the first failure stops the import with the chunks
   * before it committed and nothing of its chunk or later ones stored.
   * The pages of all of them are fetched together, `concurrency` at a time and in the order the
   * models need them, while earlier models are stored (so a family costs its bytes, not a round
   * trip per page); a page is fetched once for the whole batch. A block a model shares with one
   * stored before it (in the store or earlier in the batch) is not fetched, and published delta
   * blocks are stored as the deltas they arrived as, decoded on read like every stored block.
   */
  async importModels(store: TesseraStore, names: readonly string[], opts: ImportOptions = {}): Promise<ImportReport[]> {
    const { tile } = this.index;
    const localTile = store.config.tile;
    if (localTile.rows !== tile.rows || localTile.cols !== tile.cols) {
      throw new InvalidArgumentError(`${this.source.location} is published with ${tile.rows}x${tile.cols} tiles, the local store uses ${localTile.rows}x${localTile.cols}: blocks cannot be shared. Create the local store with the published tile (openBrowserStore does so from the URL).`);
    }
    const models = names.map((name) => this.remoteModel(name));
    const reports: (ImportReport | undefined)[] = models.map((m) => (store.has(m.name) ? { ...this.emptyReport(m), status: 'present', ms: 0 } : undefined));
    const todo = models.map((m, i) => ({ m, i })).filter(({ i }) => !reports[i]);
    const unique = todo.filter(({ m }, k) => todo.findIndex((x) => x.m.name === m.name) === k);

    const adopter = opts.repack ? undefined : adopterOf(store);
    const adopting = !!adopter && !!this.source.pipe && this.index.pageSize <= store.config.pageSize;
    // Re-packing checks every fetched block against the block table: fetched meanwhile.
    if (!adopting && unique.length) this.hashes().catch(() => {});
    const plan = await this.verifiedPlan(store, unique.map(({ m }) => m));
    if (adopting) {
      await this.importAdopting(store, adopter!, unique.map(({ m }) => m), plan, opts, (k, report) => (reports[unique[k].i] = report));
      return models.map((m, i) => reports[i] ?? reports[names.indexOf(m.name)]!);
    }
    const fetcher = new PageFetcher(this, plan.pages, opts);
    const batch: Batch = { local: plan.local, stored: new Map(), verified: new Set() };
    // Model k+1 is verified and checked (hashing, decoding, assembling: CPU) while model k is
    // placed; its blocks are matched to local ids only when its turn comes.
    const prepare = async (k: number) => {
      const t0 = performance.now();
      const { m } = unique[k];
      const pages = await fetcher.modelPages(k, (done, total) => opts.onProgress?.({ model: m.name, phase: 'fetch', done, total }));
      return { t0, pages, place: await this.prepareModel(store, m, pages, batch, opts) };
    };
    // Models are committed in chunks, one catalog record (one durable write) per chunk.
    const chunkBytes = opts.commitBytes ?? 64 << 20;
    let chunk: { add: AddBatch; bytes: number; done: { k: number; m: ModelEntry; report: Omit<ImportReport, 'ms'>; t0: number }[] } | undefined;
    const commit = async () => {
      if (!chunk) return;
      const { add, done } = chunk;
      chunk = undefined;
      await add.commit();
      for (const { k, m, report, t0 } of done) {
        // Later models take these blocks by id instead of matching them again.
        const committed = store.model(m.name);
        m.tensors.forEach((t, ti) => t.blocks.forEach((id, j) => batch.stored.set(id, committed.tensors[ti].blocks[j])));
        reports[unique[k].i] = { ...report, ms: performance.now() - t0 };
      }
    };
    let next: ReturnType<typeof prepare> | undefined;
    try {
      for (let k = 0; k < unique.length; k++) {
        const { t0, pages, place } = await (next ?? prepare(k));
        next = k + 1 < unique.length ? prepare(k + 1) : undefined;
        next?.catch(() => {}); // surfaces when awaited, after this model is placed
        chunk ??= { add: store.addBatch(), bytes: 0, done: [] };
        const report = await place(chunk.add);
        fetcher.modelStored(k);
        const mine = fetcher.firstFetchedBy(k);
        chunk.done.push({ k, m: unique[k].m, t0, report: { ...report, pagesFetched: mine.length, bytesFetched: mine.reduce((n, id) => n + pages.get(id)!.sealedBytes, 0) } });
        chunk.bytes += report.bytesStored;
        if (chunk.bytes >= chunkBytes) await commit();
      }
      await commit();
    } finally {
      fetcher.stop();
    }
    // A name listed twice reports like its first listing.
    return models.map((m, i) => reports[i] ?? reports[names.indexOf(m.name)]!);
  }

  /**
   * Imports models `ms` keeping the published pages they need as fetched (PageAdopter): each page
   * is streamed to `adopter` unread, `concurrency` at a time in the order the models need them,
   * and the models are committed in chunks of about `commitBytes` of pages, each chunk once its
   * pages are stored. Its blocks keep their published places (offsets on the page, deltas and
   * codings as they are); blocks the store held before (`plan.local`) are used from there. Nothing
   * is decoded, hashed or copied by the page here: each page's seal is verified when it is read,
   * so a damaged page is PAGE_CORRUPT then. On failure the chunks before it stay committed and
   * every page adopted for a later chunk is released (a crash leaves them for recovery to reclaim).
   */
  private async importAdopting(
    store: TesseraStore,
    adopter: PageAdopter,
    ms: ModelEntry[],
    plan: { pages: number[][]; local: Map<number, { id: number; content: Uint8Array }> },
    opts: ImportOptions,
    done: (k: number, report: ImportReport) => void,
  ): Promise<void> {
    const t0 = performance.now();
    for (const m of ms) validateModelName(m.name);
    // Which model first needs each page, and the chunks of models committed together.
    const firstBy = new Map<number, number>();
    plan.pages.forEach((ids, k) => ids.forEach((id) => firstBy.has(id) || firstBy.set(id, k)));
    const chunkOf: number[] = [];
    const chunkBytes = opts.commitBytes ?? 64 << 20;
    let chunk = 0;
    let bytes = 0;
    ms.forEach((_, k) => {
      chunkOf.push(chunk);
      for (const id of plan.pages[k]) if (firstBy.get(id) === k) bytes += this.pageBytes(id);
      if (bytes >= chunkBytes) ((chunk += 1), (bytes = 0));
    });
    // Local ids the catalog does not use, in the order the pages are first needed.
    const order = [...firstBy.keys()];
    const localPage = new Map<number, number>();
    for (let id = 0, i = 0; i < order.length; id++) if (!store.catalog.pages.has(id)) localPage.set(order[i++], id);
    const seq0 = store.nextSeq;
    const epochOf = (pubPage: number) => seq0 + chunkOf[firstBy.get(pubPage)!];

    // The downloads: every page once, in order, `concurrency` at a time.
    const stored = new Map<number, Promise<void>>();
    let next = 0;
    let stopped = false;
    const pageDone: ((pubPage: number) => void) = (pubPage) => {
      const k = firstBy.get(pubPage)!;
      opts.onProgress?.({ model: ms[k].name, phase: 'fetch', done: ++fetched[k], total: plan.pages[k].filter((id) => firstBy.get(id) === k).length });
    };
    const fetched = ms.map(() => 0);
    const slots = order.map(() => {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((ok, fail) => ((resolve = ok), (reject = fail)));
      promise.catch(() => {}); // awaited by its chunk; a failure stops the rest first
      return { promise, resolve, reject };
    });
    order.forEach((id, i) => stored.set(id, slots[i].promise));
    const pipe = this.source.pipe!.bind(this.source);
    const worker = async () => {
      while (!stopped && next < order.length) {
        const i = next++;
        const id = order[i];
        const [epoch, size] = this.pageEntries.get(id)!;
        try {
          const path = pageFile(id, epoch);
          await pipe(path, size, (body) => adopter.adoptPage(localPage.get(id)!, epochOf(id), { id, epoch }, body, { source: this.source.location, path, bytes: size }));
          this.bytesFetched += size;
          pageDone(id);
          slots[i].resolve();
        } catch (e) {
          const err = e instanceof TesseraError ? e : new StoreError('IO_ERROR', `fetching page ${id} from ${this.source.location} failed: ${(e as Error)?.message ?? String(e)}. Nothing was stored from it; retry.`, { cause: e });
          stopped = true;
          slots[i].reject(err);
          for (let j = next; j < order.length; j++) slots[j].reject(err);
          next = order.length;
        }
      }
    };
    const workers = Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? ADOPT_CONCURRENCY, order.length)) }, worker);

    // Published block id -> local id: blocks held before, then those each chunk places.
    const localOf = new Map<number, number>();
    for (const [id, l] of plan.local) localOf.set(id, l.id);
    let nextBlock = store.nextBlockId;
    let committedChunks = 0;
    try {
      for (let c = 0, k = 0; k < ms.length; c++) {
        const members: number[] = [];
        while (k < ms.length && chunkOf[k] === c) members.push(k++);
        if (store.nextSeq !== seq0 + c) throw new StoreError('IO_ERROR', `the store was changed during the import (commit ${store.nextSeq}, the import expected ${seq0 + c}): nothing of this chunk was stored; retry.`);
        const pubPages = members.flatMap((k) => plan.pages[k].filter((id) => firstBy.get(id) === k));
        await Promise.all(pubPages.map((id) => stored.get(id)!));
        const blocks: NewBlock[] = [];
        const place = (id: number, chain = 0): number => {
          const mine = localOf.get(id);
          if (mine !== undefined) return mine;
          const b = this.catalog.blocks.get(id)!;
          const page = localPage.get(b.page);
          if (page === undefined || chain > IMPORT_LIMITS.deltaChain) throw new CorruptionError('CATALOG_CORRUPT', `published block ${id} is on page ${b.page}, which the import did not fetch: the published catalog is inconsistent. Nothing of this chunk was stored.`);
          const base = b.base === undefined ? undefined : place(b.base, chain + 1);
          const local = nextBlock++;
          blocks.push({ id: local, page, offset: b.offset, length: b.length, hash: b.hash, ...(base !== undefined ? { base } : {}), ...(b.codec !== undefined ? { codec: b.codec, size: b.size } : {}) });
          localOf.set(id, local);
          return local;
        };
        const entries: ModelEntry[] = [];
        const counts: { blocks: number; newBlocks: number }[] = [];
        for (const k of members) {
          const m = ms[k];
          const before = blocks.length;
          const tensors = m.tensors.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.dims, location: t.location, blocks: Uint32Array.from(t.blocks, (id) => place(id)), ...(t.encoding ? { encoding: t.encoding } : {}) }));
          entries.push({ name: m.name, addedAt: new Date().toISOString(), skeleton: m.skeleton, tensors, inputs: m.inputs, outputs: m.outputs, sourceBytes: m.sourceBytes });
          counts.push({ blocks: tensors.reduce((n, t) => n + t.blocks.length, 0), newBlocks: blocks.length - before });
        }
        await store.addPlaced(entries, blocks, pubPages.map((id) => ({ id: localPage.get(id)!, used: this.pageBytes(id) - PAGE_HEADER_BYTES })));
        committedChunks = c + 1;
        members.forEach((k, j) => {
          const mine = plan.pages[k].filter((id) => firstBy.get(id) === k);
          const sealed = mine.reduce((n, id) => n + this.pageBytes(id), 0);
          done(k, { ...this.emptyReport(ms[k]), status: 'imported', pagesRead: this.catalog.pagesRead(ms[k]).length, pagesFetched: mine.length, bytesFetched: sealed, bytesStored: sealed, ...counts[j], ms: performance.now() - t0 });
        });
      }
    } catch (e) {
      stopped = true;
      next = order.length;
      await Promise.allSettled(workers);
      // Pages adopted for chunks that did not commit: released now (recovery would, at next open).
      const orphans = order.filter((id) => chunkOf[firstBy.get(id)!] >= committedChunks).map((id) => localPage.get(id)!).filter((id) => !store.catalog.pages.has(id));
      await store.backend.releasePages(orphans).catch(() => {});
      throw e;
    }
  }

  private emptyReport(m: ModelEntry): Omit<ImportReport, 'status' | 'ms'> {
    return { name: m.name, pagesRead: 0, pagesFetched: 0, bytesFetched: 0, bytesStored: 0, wholeFileBytes: m.sourceBytes, blocks: 0, newBlocks: 0 };
  }

  /**
   * Verifies model `m`'s blocks from the fetched pages and checks that it exports; returns its
   * commit to `store` (one record), to be called once the models before it are committed.
   */
  private async prepareModel(store: TesseraStore, m: ModelEntry, pages: ReadonlyMap<number, FetchedPage>, batch: Batch, opts: ImportOptions): Promise<(add: AddBatch) => Promise<Omit<ImportReport, 'ms'>>> {
    const { tile } = this.index;
    const content = new Map<number, Uint8Array>();
    // Blocks come from the fetched pages, or from the local store where a local block's content
    // has the published SHA-256 (batch.local).
    const remote = new BlockSource(
      this.catalog,
      tile,
      async (page) => {
        const fetched = pages.get(page);
        if (!fetched) throw new CorruptionError('CATALOG_CORRUPT', `a block of the published catalog is on page ${page}, which was not fetched: the published catalog is inconsistent.`);
        return fetched.payload;
      },
      { elsewhere: (id) => { const c = content.get(id) ?? batch.local.get(id)?.content; return c ? Promise.resolve(c) : undefined; } },
    );
    const verified = async (id: number): Promise<Uint8Array> => {
      const hit = content.get(id);
      if (hit) return hit;
      const bytes = await remote.block(id);
      const b = this.catalog.blocks.get(id)!;
      if (!batch.verified.has(id)) {
        if (hash64Hex(bytes) !== b.hash || !bytesEqual(await sha256Async(bytes), (await this.hashes()).get(id)!)) {
          throw new CorruptionError('PAGE_CORRUPT', `published block ${id} on page ${b.page} of ${this.source.location} does not match its SHA-256: the published store is damaged or hostile. Nothing was stored.`, { pageId: b.page });
        }
        batch.verified.add(id);
      }
      content.set(id, bytes);
      return bytes;
    };
    const localId = (id: number): number | undefined => batch.local.get(id)?.id ?? batch.stored.get(id);
    // Every block not held locally before the batch, and the bases of its deltas, verified now.
    const needed = async (id: number): Promise<void> => {
      if (batch.local.has(id)) return;
      await verified(id);
      const base = this.catalog.blocks.get(id)!.base;
      if (base !== undefined) await needed(base);
    };
    const tensorBytes: Uint8Array[] = [];
    for (const t of m.tensors) {
      await Promise.all(Array.from(t.blocks, needed));
      tensorBytes.push(await remote.tensor(t));
    }
    // Exportable before it is committed: the skeleton and tensors assemble into ONNX that parses.
    try {
      await parseModel(assembleModel(m.skeleton, tensorBytes, m.tensors.map((t) => t.encoding)));
    } catch (e) {
      throw new CorruptionError('CATALOG_CORRUPT', `published model "${m.name}" from ${this.source.location} cannot be exported (${(e as Error)?.message ?? e}): nothing was stored.`);
    }
    tensorBytes.length = 0;

    // A published delta stays a delta when its base is a raw block (one level, as the store writes
    // them): a local one, or one stored with it; otherwise the block is stored as its content.
    const deltaBase = async (base: number): Promise<BlockInput | undefined> => {
      const mine = localId(base);
      if (mine !== undefined) return store.catalog.blocks.get(mine)?.base === undefined ? { local: mine } : undefined;
      const b = this.catalog.blocks.get(base)!;
      return b.base === undefined ? { data: await verified(base), hash: b.hash } : undefined;
    };
    const input = async (id: number): Promise<BlockInput> => {
      const mine = localId(id);
      if (mine !== undefined) return { local: mine };
      const b = this.catalog.blocks.get(id)!;
      const data = await verified(id);
      // Whatever else the entry says of how its bytes are coded travels with them.
      const { page: _page, offset: _offset, length: _length, hash: _hash, refs: _refs, base: _base, ...coding } = b;
      const coded = Object.keys(coding).length > 0;
      if (b.base === undefined) return coded ? { data, hash: b.hash, stored: { bytes: await remote.stored(id), coding } } : { data, hash: b.hash };
      const base = await deltaBase(b.base);
      return base ? { data, hash: b.hash, stored: { bytes: await remote.stored(id), base, coding } } : { data, hash: b.hash };
    };
    return async (add: AddBatch) => {
      // Matched to local ids now: blocks committed before are held by id; those placed earlier in
      // this batch are matched by content (the batch dedups across its models).
      const tensors: NewTensor[] = m.tensors.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.dims, location: t.location, ...(t.encoding ? { encoding: t.encoding } : {}), blocks: () => Promise.all(Array.from(t.blocks, input)) }));
      const report = await add.addBlocks(
        { name: m.name, skeleton: m.skeleton, inputs: m.inputs, outputs: m.outputs, sourceBytes: m.sourceBytes },
        tensors,
        { onProgress: (p) => opts.onProgress?.({ model: m.name, phase: 'store', done: p.done, total: p.total }) },
      );
      return {
        ...this.emptyReport(m),
        status: 'imported',
        pagesRead: this.catalog.pagesRead(m).length,
        bytesStored: report.newBytes + report.newPages * PAGE_HEADER_BYTES,
        blocks: report.blocks,
        newBlocks: report.newBlocks,
      };
    };
  }

  /**
   * The pages to fetch for models `ms`, after confirming local matches: a local block stands for a
   * published one only when its content's SHA-256 is the published block's (a block planted by a
   * hostile store with a forged xxHash64 is not). `local`: published block id -> the local block
   * and its content; `pages`: for each model in turn, the published pages it reads that hold
   * blocks not held locally (a page already listed for an earlier model is listed again).
   */
  private async verifiedPlan(store: TesseraStore, ms: ModelEntry[]): Promise<{ pages: number[][]; local: Map<number, { id: number; content: Uint8Array }> }> {
    const mine = store.blockSource();
    const local = new Map<number, { id: number; content: Uint8Array }>();
    const checked = new Set<number>();
    const genuine = async (id: number): Promise<boolean> => {
      if (checked.has(id)) return local.has(id);
      checked.add(id);
      const b = this.catalog.blocks.get(id)!;
      const length = this.contentLength(b);
      for (const candidate of store.catalog.withHash(b.hash)) {
        const entry = store.catalog.blocks.get(candidate)!;
        if (entry.base === undefined && blockContentLength(entry) !== length) continue;
        const bytes = await mine.block(candidate);
        if (bytes.length === length && bytesEqual(sha256(bytes), (await this.hashes()).get(id)!)) {
          local.set(id, { id: candidate, content: bytes });
          return true;
        }
      }
      return false;
    };
    const pages: number[][] = [];
    for (const m of ms) {
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
      pages.push([...missing].sort((a, b) => a - b));
    }
    return { pages, local };
  }

  /** Bytes of a published block's content (a deflate delta's: its base's, as deltas keep lengths). */
  private contentLength(b: Readonly<BlockEntry>): number {
    for (let x = b; ; ) {
      if (x.base === undefined || x.codec !== undefined) return blockContentLength(x);
      const base = this.catalog.blocks.get(x.base);
      if (!base) throw new CorruptionError('CATALOG_CORRUPT', `a published delta block names base ${x.base}, which the published catalog does not hold.`);
      x = base;
    }
  }

  /** Fetches published page `id` and verifies its seal (size, checksum, id, epoch). */
  async fetchPage(id: number): Promise<FetchedPage> {
    const entry = this.pageEntries.get(id);
    if (!entry) throw new CorruptionError('CATALOG_CORRUPT', `page ${id} is referenced by the published catalog but not listed in ${INDEX_FILE}.`);
    const [epoch, size] = entry;
    const sealed = await this.source.get(pageFile(id, epoch), { maxBytes: size });
    if (sealed.length !== size) throw new CorruptionError('PAGE_CORRUPT', `published page ${id} from ${this.source.location} is ${sealed.length} bytes, the index says ${size}; nothing was stored, retry the import.`, { pageId: id });
    this.bytesFetched += sealed.length;
    try {
      return { payload: openPage(id, sealed, this.index.pageSize, epoch), sealedBytes: sealed.length };
    } catch (e) {
      throw new CorruptionError('PAGE_CORRUPT', `published page ${id} from ${this.source.location} is damaged (${(e as Error).message}); nothing was stored, retry the import.`, { pageId: id });
    }
  }

  /** Sealed size of each published page, as the index lists it. */
  pageBytes(id: number): number {
    return this.pageEntries.get(id)?.[1] ?? 0;
  }

  private get pageEntries(): Map<number, [number, number]> {
    return (this.entries ??= new Map(this.index.pages.map(([id, epoch, bytes]) => [id, [epoch, bytes]])));
  }
  private entries: Map<number, [number, number]> | undefined;
}

interface FetchedPage {
  payload: Uint8Array;
  sealedBytes: number;
}

/** What one batch import knows across its models. */
interface Batch {
  /** Published block id -> the local block (and its content) that held it before the batch. */
  local: ReadonlyMap<number, { id: number; content: Uint8Array }>;
  /** Published block id -> local id, for blocks committed by the batch so far. */
  stored: Map<number, number>;
  /** Published blocks whose content was checked against their SHA-256. */
  verified: Set<number>;
}

/**
 * The page downloads of one batch import: every page once, in the order the models need them,
 * `concurrency` at a time, running ahead of the model being stored by at most `prefetchBytes`.
 * A page is dropped once the last model that reads it is stored. A failed download fails the
 * model that needs it (and stops the rest), never one before it.
 */
class PageFetcher {
  private readonly queue: { id: number; model: number }[] = [];
  private readonly lastModel = new Map<number, number>();
  private readonly pages = new Map<number, { promise: Promise<FetchedPage>; resolve: (p: FetchedPage) => void; reject: (e: unknown) => void }>();
  private readonly held = new Map<number, FetchedPage>();
  private heldBytes = 0;
  private current = 0;
  private next = 0;
  private stopped = false;
  private wake: (() => void)[] = [];
  private readonly limit: number;

  constructor(
    private readonly published: PublishedStore,
    private readonly modelPageIds: number[][],
    opts: ImportOptions,
  ) {
    this.limit = opts.prefetchBytes ?? 64 << 20;
    modelPageIds.forEach((ids, model) => {
      for (const id of ids) {
        if (!this.pages.has(id)) {
          let resolve!: (p: FetchedPage) => void;
          let reject!: (e: unknown) => void;
          const promise = new Promise<FetchedPage>((ok, fail) => ((resolve = ok), (reject = fail)));
          promise.catch(() => {}); // awaited by the model that needs it; a later one may never ask
          this.pages.set(id, { promise, resolve, reject });
          this.queue.push({ id, model });
        }
        this.lastModel.set(id, model);
      }
    });
    const n = Math.max(1, Math.min(opts.concurrency ?? 6, this.queue.length));
    for (let w = 0; w < n; w++) void this.worker();
  }

  private async worker(): Promise<void> {
    while (!this.stopped && this.next < this.queue.length) {
      const { id, model } = this.queue[this.next];
      // Ahead of the model being stored, within the byte budget only.
      if (model > this.current && this.heldBytes + this.published.pageBytes(id) > this.limit) {
        await new Promise<void>((ok) => this.wake.push(ok));
        continue;
      }
      this.next++;
      const slot = this.pages.get(id)!;
      this.heldBytes += this.published.pageBytes(id);
      try {
        const page = await this.published.fetchPage(id);
        if (this.stopped) return;
        this.held.set(id, page);
        slot.resolve(page);
      } catch (e) {
        this.heldBytes -= this.published.pageBytes(id);
        const err = e instanceof TesseraError ? e : new StoreError('IO_ERROR', `fetching page ${id} from ${this.published.source.location} failed: ${(e as Error)?.message ?? String(e)}. Nothing was stored from it; retry.`, { cause: e });
        slot.reject(err);
        this.stop(err);
      }
    }
  }

  /** Model `k`'s pages, fetched (it becomes the model being stored). */
  async modelPages(k: number, onPage: (done: number, total: number) => void): Promise<Map<number, FetchedPage>> {
    this.current = k;
    this.signal();
    const ids = this.modelPageIds[k];
    let done = 0;
    const out = new Map<number, FetchedPage>();
    await Promise.all(ids.map(async (id) => {
      out.set(id, await this.pages.get(id)!.promise);
      onPage(++done, ids.length);
    }));
    return out;
  }

  /** Pages model `k` was the first to need (what its import fetched). */
  firstFetchedBy(k: number): number[] {
    return this.queue.filter((q) => q.model === k).map((q) => q.id);
  }

  /** Model `k` is stored: pages no later model reads are dropped. */
  modelStored(k: number): void {
    for (const id of this.modelPageIds[k]) {
      if (this.lastModel.get(id) !== k || !this.held.has(id)) continue;
      this.held.delete(id);
      this.heldBytes -= this.published.pageBytes(id);
    }
    this.signal();
  }

  /** Stops fetching; pages not fetched yet fail with `reason`. */
  stop(reason: unknown = new StoreError('IO_ERROR', 'the import stopped')): void {
    if (this.stopped) return;
    this.stopped = true;
    for (let i = this.next; i < this.queue.length; i++) this.pages.get(this.queue[i].id)!.reject(reason);
    this.held.clear();
    this.signal();
  }

  private signal(): void {
    const waiting = this.wake;
    this.wake = [];
    for (const ok of waiting) ok();
  }
}

/**
 * Raw-deflated `data`, inflated to exactly `size` bytes (DecompressionStream, in browsers and Node
 * alike); a stream that inflates past `size` is cut off there and refused, so a hostile catalog
 * costs no more than its stated size.
 */
export async function inflateRaw(data: Uint8Array, size: number, what: string, after = 'Nothing was imported.'): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let n = 0;
  try {
    const reader = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream('deflate-raw')).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (n + value.length > size) {
        await reader.cancel().catch(() => {});
        throw new CorruptionError('CATALOG_CORRUPT', `${what} inflates to more than the ${size} bytes stated for it: it is damaged or hostile. ${after}`);
      }
      out.set(value, n);
      n += value.length;
    }
  } catch (e) {
    if (e instanceof CorruptionError) throw e;
    throw new CorruptionError('CATALOG_CORRUPT', `${what} cannot be inflated (${(e as Error)?.message ?? e}): it is damaged. ${after}`);
  }
  if (n !== size) throw new CorruptionError('CATALOG_CORRUPT', `${what} inflates to ${n} bytes, ${size} are stated for it: it is damaged. ${after}`);
  return out;
}

/** `data` raw-deflated (CompressionStream, in browsers and Node alike): what inflateRaw reads. */
export async function deflateRaw(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await new Response(new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream('deflate-raw'))).arrayBuffer());
}

/** Imports models (default: all published) into `store`, in order; see PublishedStore.importModels. */
export async function importModels(store: TesseraStore, source: PublishedSource | PublishedStore, names?: string[], opts: ImportOptions = {}): Promise<ImportReport[]> {
  const published = source instanceof PublishedStore ? source : await PublishedStore.open(source);
  return published.importModels(store, names ?? published.listModels().map((m) => m.name), opts);
}

