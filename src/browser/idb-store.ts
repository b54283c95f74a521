/**
 * The IndexedDB PageStore: one database per store, through the `idb` wrapper.
 *   meta   'config' → { format, version, pageSize } (written once, at creation); 'snapshot' → bytes
 *   pages  page id → sealed page (header + payload, see page-format.ts)
 *   log    auto-increment key → catalog record, in append order
 * A snapshot or record of CATALOG_DEFLATE_BYTES or more is kept raw-deflated, as
 * { deflated, size } (skeletons and block tables shrink several times; a model's import record
 * is most of a catalog); smaller ones, and everything stores wrote before, are plain bytes.
 * Atomicity comes from IndexedDB transactions: a page batch, a record append and a checkpoint
 * (snapshot put + log clear) each commit whole or not at all. Writes use `durability: 'strict'`
 * (flushed before the transaction completes), and transactions with overlapping scopes run in
 * creation order, so pages are durable before the record that references them.
 * Written pages are held (up to BATCH_BYTES) and go to IndexedDB in one transaction per batch;
 * the last batch goes in the same transaction as the catalog record that references it. Each
 * transaction costs a few milliseconds however little it holds (an fsync and IPC in Chromium),
 * so a model's pages and its commit cost one or two instead of one per page (issue 12). Pages
 * held and never committed are dropped at close, as a crash before the commit would leave them.
 * Pages an import keeps as published (PageAdopter, src/store/published.ts) are not in `pages`:
 * they live in the Cache API (cache `tessera-pages:<name>`, one entry per page, keyed
 * ADOPTED_URL/<id>/<epoch>/<sealed id>/<sealed epoch>), where the fetched response is streamed to
 * disk without the page reading it: IndexedDB's `put` copies and serialises every value in the
 * page (~130 ms per 26 MB measured), Cache API's `put` of a fetched response does not (bench
 * browser). Such a page keeps the published seal (its id and epoch there), which is verified on
 * every read, and is returned as local page <id> written at <epoch>. The catalog (the commit
 * point) stays in IndexedDB. Stores written before adoption existed (every page in `pages`) read
 * as before; both kinds coexist, and a page id is in one or the other (a later write of the id
 * drops its adopted entry).
 * Cache Storage is not flushed to disk before a commit the way a 'strict' IndexedDB transaction
 * is (a power cut right after an import may lose adopted pages of a committed model), and a
 * browser may drop or damage its entries. So each adopted page is also recorded in IndexedDB
 * (object store `adopted`, schema version 2: local id → its seal and where it was fetched from,
 * the published store's location, file and sealed size), in the transaction of the commit that
 * references it. A read that finds an adopted page missing or failing its seal fetches it again
 * from there (once however many readers wait for it), verifies the fetched bytes against the
 * same seal, puts them back in the Cache API (a writer; a reader only returns them) and returns
 * them; only when the source is unreachable or sends other bytes is the read PAGE_CORRUPT
 * (`heal: false` turns this off). Adopted pages of schema 1 stores have no record and do not heal.
 * The backend moves bytes only; CheckedPageStore seals, verifies and checks (page-store.ts).
 * One writer per store: in browsers a Web Lock held while the store is open refuses a second tab
 * (it would pick the same free page ids and overwrite the first tab's pages).
 */
import { deleteDB, openDB, type IDBPDatabase, type IDBPTransaction } from 'idb';
import { CapacityError, CorruptionError, InvalidArgumentError, StoreError, TesseraError } from '../errors.ts';
import type { PageBackend, PageStoreSupports, SealedPage } from '../store/page-store.ts';
import { deflateRaw, inflateRaw, type PageAdopter, type PublishedPageOrigin } from '../store/published.ts';
import { CheckedPageStore } from '../store/checked-store.ts';
import { PAGE_HEADER_BYTES, openPage } from '../store/page-format.ts';
import { httpSource, type HttpSource, type HttpSourceOptions } from './http-source.ts';

const FORMAT = 'tessera-store';
const FORMAT_VERSION = 1;
/** 2: the `adopted` object store (where each adopted page came from); a schema 1 database is upgraded on open. */
const SCHEMA_VERSION = 2;
const DEFAULT_PAGE_SIZE = 1 << 20;
const STRICT = { durability: 'strict' } as const;
/** Written pages held before they go to IndexedDB in one transaction (the memory an add may hold beyond its page). */
const BATCH_BYTES = 8 << 20;
/** Catalog values this large are stored deflated (see the file header). */
const CATALOG_DEFLATE_BYTES = 4096;

type CatalogValue = Uint8Array | { deflated: Uint8Array; size: number };

async function packCatalog(bytes: Uint8Array): Promise<CatalogValue> {
  if (bytes.length < CATALOG_DEFLATE_BYTES) return bytes.slice();
  const deflated = await deflateRaw(bytes);
  return deflated.length < bytes.length ? { deflated, size: bytes.length } : bytes.slice();
}

async function unpackCatalog(v: unknown, what: string): Promise<Uint8Array> {
  const packed = v as { deflated?: unknown; size?: unknown } | null;
  if (packed && typeof packed === 'object' && packed.deflated instanceof Uint8Array && typeof packed.size === 'number') {
    return inflateRaw(packed.deflated, packed.size, what, 'The store cannot be opened; its models must be imported again.');
  }
  return asBytes(v);
}

/** Bytes a stored catalog value takes (deflated where it is). */
function catalogValueBytes(v: unknown): number {
  const packed = v as { deflated?: Uint8Array } | null;
  return packed && typeof packed === 'object' && packed.deflated instanceof Uint8Array ? packed.deflated.length : asBytes(v).length;
}

/** Keys of adopted pages in their cache (any http(s) URL serves as a Cache API key). */
const ADOPTED_URL = 'https://pages.tessera.invalid/';

/** A page kept in the Cache API as published: local id and epoch, the seal its bytes carry, and (recorded) where it came from. */
interface AdoptedPage {
  id: number;
  epoch: number;
  sealedId: number;
  sealedEpoch: number;
  url: string;
  origin?: PublishedPageOrigin;
}

/** An adopted page's record in the `adopted` object store (keyed by `id`). */
interface AdoptedRecord extends PublishedPageOrigin {
  id: number;
  epoch: number;
  sealedId: number;
  sealedEpoch: number;
}

function parseAdoptedRecord(v: unknown): AdoptedPage | undefined {
  const r = v as Partial<AdoptedRecord> | null;
  const count = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0;
  if (!r || !count(r.id) || !count(r.epoch) || !count(r.sealedId) || !count(r.sealedEpoch) || typeof r.source !== 'string' || typeof r.path !== 'string' || !count(r.bytes)) return undefined;
  const page = { id: r.id, epoch: r.epoch, sealedId: r.sealedId, sealedEpoch: r.sealedEpoch };
  return { ...page, url: adoptedUrl(page), origin: { source: r.source, path: r.path, bytes: r.bytes } };
}

function adoptedRecord(p: AdoptedPage & { origin: PublishedPageOrigin }): AdoptedRecord {
  return { id: p.id, epoch: p.epoch, sealedId: p.sealedId, sealedEpoch: p.sealedEpoch, ...p.origin };
}

const adoptedCacheName = (name: string) => `tessera-pages:${name}`;

function adoptedUrl(p: Omit<AdoptedPage, 'url'>): string {
  return `${ADOPTED_URL}${p.id}/${p.epoch}/${p.sealedId}/${p.sealedEpoch}`;
}

function parseAdoptedUrl(url: string): AdoptedPage | undefined {
  if (!url.startsWith(ADOPTED_URL)) return undefined;
  const parts = url.slice(ADOPTED_URL.length).split('/').map(Number);
  if (parts.length !== 4 || !parts.every((x) => Number.isInteger(x) && x >= 0)) return undefined;
  const [id, epoch, sealedId, sealedEpoch] = parts;
  return { id, epoch, sealedId, sealedEpoch, url };
}

/** The Cache API, where the platform has it (not in Node with fake-indexeddb, nor on insecure origins). */
function cacheStorage(): CacheStorage | undefined {
  return (globalThis as { caches?: CacheStorage }).caches;
}

/**
 * The store's cache of adopted pages; undefined where the Cache API is missing or refuses (some
 * private modes throw SecurityError): imports then re-pack pages into IndexedDB.
 */
async function openAdoptedCache(name: string): Promise<Cache | undefined> {
  try {
    return await cacheStorage()?.open(adoptedCacheName(name));
  } catch {
    return undefined;
  }
}

export interface IdbStoreOptions {
  /** Create the store if the database has none (default true: browsers have no other setup step). */
  create?: boolean;
  /** Page size for a new store (default 1 MiB). */
  pageSize?: number;
  /** Open without the writer lock; writes are refused. */
  readOnly?: boolean;
  /**
   * Fetch an adopted page found missing or damaged again from the published store it was imported
   * from (default true), with these fetch settings when an object; false: such a read is PAGE_CORRUPT.
   */
  heal?: boolean | HttpSourceOptions;
}

interface StoreConfigRecord {
  format: string;
  version: number;
  pageSize: number;
}

/** Maps what IndexedDB throws to tessera errors: a full quota becomes CapacityError('QUOTA_EXCEEDED'). */
function idbError(what: string, err: unknown): TesseraError {
  if (err instanceof TesseraError) return err;
  const e = err as { name?: string; message?: string } | null;
  if (e?.name === 'QuotaExceededError') {
    return new CapacityError(
      'QUOTA_EXCEEDED',
      `${what}: the browser's storage quota for this site is full. Nothing was changed and every stored model is intact; remove models (store.remove) or free site storage, then retry.`,
      { cause: err },
    );
  }
  return new StoreError('IO_ERROR', `${what}: IndexedDB failed (${e?.name ?? 'Error'}: ${e?.message ?? String(err)})`, { cause: err });
}

function asBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return new Uint8Array(0);
}

type Release = () => void;
type WriteTx = IDBPTransaction<unknown, string[], 'readwrite'>;

/** Takes the store's Web Lock if the platform has one; null when another holder has it. */
async function takeWriterLock(name: string): Promise<Release | null> {
  const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
  if (!locks) return () => {};
  return new Promise<Release | null>((resolve, reject) => {
    locks
      .request(`tessera-store:${name}`, { mode: 'exclusive', ifAvailable: true }, (lock) => {
        if (!lock) {
          resolve(null);
          return;
        }
        // Held until the returned promise settles, i.e. until close().
        return new Promise<void>((release) => resolve(() => release()));
      })
      .catch(reject);
  });
}

/** The bytes: IndexedDB object stores and transactions. */
class IdbBackend implements PageBackend {
  readonly kind = 'indexeddb';
  /** The writer lock is a Web Lock: where the platform has none (Node with fake-indexeddb), there is none. */
  readonly supports: PageStoreSupports = { persistent: true, concurrentReaders: true, writerLock: !!(globalThis as { navigator?: { locks?: unknown } }).navigator?.locks };

  constructor(
    readonly name: string,
    readonly pageSize: number,
    private readonly db: IDBPDatabase,
    readonly readOnly: boolean,
    private readonly releaseLock: Release,
    /** Where adopted pages live (undefined: this platform cannot adopt). */
    private readonly cache: Cache | undefined,
    /** Fetch settings for re-fetching adopted pages (false: they are not re-fetched). */
    private readonly heal: false | HttpSourceOptions,
  ) {}

  /** Adopted pages by local id (see the file header). */
  private readonly adopted = new Map<number, AdoptedPage>();
  /** Changes to `adopted` records not yet in IndexedDB (null: delete), written with the next page or catalog write. */
  private readonly recordChanges = new Map<number, AdoptedRecord | null>();

  /**
   * Lists the adopted pages: the Cache API's entries (a page adopted and not yet committed has
   * only its entry) and the `adopted` records (a committed page whose entry is lost has only its
   * record); of one id, the later epoch. A writer drops entries a later adoption superseded.
   */
  async loadAdopted(): Promise<void> {
    this.adopted.clear();
    const stale: string[] = [];
    for (const req of this.cache ? await this.cache.keys() : []) {
      const p = parseAdoptedUrl(req.url);
      if (!p) continue;
      const held = this.adopted.get(p.id);
      if (held && held.epoch > p.epoch) stale.push(p.url);
      else {
        if (held) stale.push(held.url);
        this.adopted.set(p.id, p);
      }
    }
    let records: unknown[];
    try {
      records = await this.db.getAll('adopted');
    } catch (e) {
      throw idbError('cannot list the adopted pages', e);
    }
    for (const r of records) {
      const p = parseAdoptedRecord(r);
      const held = p && this.adopted.get(p.id);
      if (!p || (held && held.epoch > p.epoch)) continue;
      if (held && held.url !== p.url) stale.push(held.url);
      this.adopted.set(p.id, p);
    }
    if (!this.readOnly && this.cache) await Promise.all(stale.map((url) => this.cache!.delete(url)));
  }

  /** Opens (by default creating) the store kept in IndexedDB database `name`. */
  static async open(name: string, opts: IdbStoreOptions = {}): Promise<IdbBackend> {
    if (typeof indexedDB === 'undefined') throw new StoreError('NOT_A_STORE', 'IndexedDB is not available here: open the store in a browser (or load fake-indexeddb in Node).');
    if (!name) throw new InvalidArgumentError('an IndexedDB store needs a database name');
    const readOnly = !!opts.readOnly;
    let release: Release | null = () => {};
    if (!readOnly) {
      release = await takeWriterLock(name);
      if (!release) throw new StoreError('STORE_LOCKED', `store "${name}" is open for writing in another tab or worker: close it there, or open read-only.`);
    }
    let db: IDBPDatabase | undefined;
    try {
      db = await openDB(name, SCHEMA_VERSION, {
        upgrade(d) {
          for (const s of ['meta', 'pages', 'adopted']) if (!d.objectStoreNames.contains(s)) d.createObjectStore(s);
          if (!d.objectStoreNames.contains('log')) d.createObjectStore('log', { autoIncrement: true });
        },
        // Another tab wants a newer schema or to delete the store: let it.
        blocking() {
          db?.close();
        },
      });
      let config = (await db.get('meta', 'config')) as StoreConfigRecord | undefined;
      if (!config) {
        if (opts.create === false) throw new StoreError('NOT_A_STORE', `IndexedDB database "${name}" holds no tessera store. Open it with create: true to make one.`);
        if (readOnly) throw new StoreError('NOT_A_STORE', `IndexedDB database "${name}" holds no tessera store, and a read-only open cannot create one.`);
        const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
        if (!Number.isInteger(pageSize) || pageSize < 4096 || pageSize > 1 << 30) throw new InvalidArgumentError(`page size must be an integer between 4096 and 2^30 bytes, got ${pageSize}`);
        config = { format: FORMAT, version: FORMAT_VERSION, pageSize };
        const tx = db.transaction('meta', 'readwrite', STRICT);
        // add (not put): two racing creators cannot both win.
        await Promise.all([tx.store.add(config, 'config'), tx.done]);
      }
      if (config.format !== FORMAT || typeof config.pageSize !== 'number') throw new StoreError('NOT_A_STORE', `IndexedDB database "${name}" does not hold a tessera store.`);
      if (config.version !== FORMAT_VERSION) throw new StoreError('NOT_A_STORE', `store "${name}" uses store format ${config.version}; this tessera reads format ${FORMAT_VERSION}.`);
      const heal = opts.heal === false ? false : opts.heal === true || opts.heal === undefined ? {} : opts.heal;
      const backend = new IdbBackend(name, config.pageSize, db, readOnly, release, await openAdoptedCache(name), heal);
      await backend.loadAdopted();
      return backend;
    } catch (e) {
      db?.close();
      release();
      throw idbError(`cannot open store "${name}"`, e);
    }
  }

  /** Pages written and not yet in IndexedDB (see the file header), and their bytes. */
  private readonly held = new Map<number, Uint8Array>();
  private heldBytes = 0;

  async readSealed(id: number): Promise<Uint8Array> {
    const held = this.held.get(id);
    if (held) return held.slice();
    try {
      return asBytes(await this.db.get('pages', id));
    } catch (e) {
      throw idbError(`cannot read page ${id}`, e);
    }
  }

  get canAdopt(): boolean {
    return !!this.cache && !this.readOnly;
  }

  /**
   * Streams a fetched published page into the Cache API as page `id` of the commit `epoch`; where
   * it came from (`origin`) is recorded in IndexedDB with the next commit.
   */
  async adoptPage(id: number, epoch: number, sealedAs: { id: number; epoch: number }, body: Response, origin?: PublishedPageOrigin): Promise<void> {
    if (!this.cache) throw new StoreError('IO_ERROR', 'this platform has no Cache API: pages cannot be adopted here; import with repack: true.');
    await this.dropAdopted([id]);
    const page = { id, epoch, sealedId: sealedAs.id, sealedEpoch: sealedAs.epoch };
    const url = adoptedUrl(page);
    try {
      await this.cache.put(url, body);
    } catch (e) {
      // A failed put stores nothing; a quota error reads like IndexedDB's.
      throw idbError(`cannot store page ${id}`, e);
    }
    const adopted: AdoptedPage = { ...page, url, ...(origin ? { origin: { ...origin } } : {}) };
    this.adopted.set(id, adopted);
    if (adopted.origin) this.recordChanges.set(id, adoptedRecord(adopted as AdoptedPage & { origin: PublishedPageOrigin }));
  }

  /** The adopted page `id` (written at `epoch`, when given), if there is one. */
  adoptedPage(id: number, epoch?: number): AdoptedPage | undefined {
    const p = this.adopted.get(id);
    return p && (epoch === undefined || p.epoch === epoch) ? p : undefined;
  }

  /** The sealed bytes of an adopted page as published; undefined when its entry is gone. */
  async readAdopted(p: AdoptedPage): Promise<Uint8Array | undefined> {
    if (!this.cache) return undefined;
    try {
      const res = await this.cache.match(p.url);
      return res ? new Uint8Array(await res.arrayBuffer()) : undefined;
    } catch (e) {
      throw idbError(`cannot read page ${p.id}`, e);
    }
  }

  /** Whether `p` can be fetched again (a recorded origin, healing on), and from where. */
  healingFrom(p: AdoptedPage): string | undefined {
    return this.heal && p.origin ? new URL(p.origin.path, p.origin.source).href : undefined;
  }

  /** Re-fetches of adopted pages in flight, by entry: concurrent readers of one page share one. */
  private readonly refetching = new Map<string, Promise<Uint8Array>>();
  /** One source per published store pages are re-fetched from. */
  private readonly sources = new Map<string, HttpSource>();

  /**
   * Adopted page `p` fetched again from its origin (healingFrom), its seal verified (throws
   * CorruptionError if it fails) and, in a writer, put back in the Cache API; the sealed bytes,
   * shared by every caller waiting for them (copy before changing them).
   */
  refetchAdopted(p: AdoptedPage): Promise<Uint8Array> {
    let pending = this.refetching.get(p.url);
    if (!pending) {
      pending = this.fetchVerified(p).finally(() => this.refetching.delete(p.url));
      this.refetching.set(p.url, pending);
    }
    return pending;
  }

  private async fetchVerified(p: AdoptedPage): Promise<Uint8Array> {
    const origin = p.origin;
    if (!this.heal || !origin) throw new StoreError('IO_ERROR', 'the page has no recorded origin');
    let source = this.sources.get(origin.source);
    if (!source) this.sources.set(origin.source, (source = httpSource(origin.source, this.heal)));
    const sealed = await source.get(origin.path, { maxBytes: origin.bytes });
    if (sealed.length !== origin.bytes) throw new CorruptionError('PAGE_CORRUPT', `it sent ${sealed.length} bytes, ${origin.bytes} were published`, { pageId: p.id });
    // Verified before anything keeps or returns it: the seal it was published with.
    openPage(p.sealedId, sealed, this.pageSize, p.sealedEpoch);
    // A writer keeps it again, unless the slot was rewritten or released meanwhile. A failed put
    // (quota) loses nothing: the page is returned all the same and fetched again next time.
    if (this.cache && !this.readOnly && this.adopted.get(p.id) === p) await this.cache.put(p.url, new Response(sealed.slice())).catch(() => {});
    return sealed;
  }

  /** Forgets adopted entries of `ids` (their slots are being rewritten or released) and, with the next write, their records. */
  private async dropAdopted(ids: readonly number[]): Promise<void> {
    const gone = ids.map((id) => this.adopted.get(id)).filter((p): p is AdoptedPage => !!p);
    if (!gone.length) return;
    for (const p of gone) {
      this.adopted.delete(p.id);
      this.recordChanges.set(p.id, null);
    }
    if (!this.cache) return;
    try {
      await Promise.all(gone.map((p) => this.cache!.delete(p.url)));
    } catch (e) {
      throw idbError(`cannot release ${gone.length} page(s)`, e);
    }
  }

  /** The record changes, no longer pending: written by the caller's transaction (or lost with it). */
  private takeRecordChanges(): [number, AdoptedRecord | null][] {
    const changes = [...this.recordChanges];
    this.recordChanges.clear();
    return changes;
  }

  /** Requests applying record changes in `tx` (which has the `adopted` store in scope). */
  private static putRecords(tx: WriteTx, changes: [number, AdoptedRecord | null][]): Promise<unknown>[] {
    return changes.map(([id, r]) => (r ? tx.objectStore('adopted').put(r, id) : tx.objectStore('adopted').delete(id)));
  }

  async writeSealed(pages: ReadonlyArray<SealedPage>): Promise<void> {
    // A slot being written is unreferenced (copy-on-write): an adopted page it held is dead.
    await this.dropAdopted(pages.map((p) => p.id));
    // The caller may reuse its buffers once this resolves (PageBackend contract): hold copies.
    for (const p of pages) {
      this.heldBytes += p.sealed.length - (this.held.get(p.id)?.length ?? 0);
      this.held.set(p.id, p.sealed.slice());
    }
    if (this.heldBytes >= BATCH_BYTES) await this.flush();
  }

  /** Writes the held pages (and pending adopted records) to IndexedDB now (one transaction). */
  async flush(): Promise<void> {
    const pages = this.takeHeld();
    const records = this.takeRecordChanges();
    if (pages.length || records.length) {
      await this.write(`cannot write ${pages.length} page(s)`, ['pages', 'adopted'], (tx) => [...pages.map(([id, sealed]) => tx.objectStore('pages').put(sealed, id)), ...IdbBackend.putRecords(tx, records)]);
    }
  }

  /** The held pages, no longer held: written by the caller's transaction, or lost with it. */
  private takeHeld(): [number, Uint8Array][] {
    const pages = [...this.held];
    this.held.clear();
    this.heldBytes = 0;
    return pages;
  }

  async appendCatalog(record: Uint8Array): Promise<void> {
    const copy = await packCatalog(record);
    const pages = this.takeHeld();
    const records = this.takeRecordChanges();
    // The pages, the adopted pages' records and the record that references them: one transaction, durable together.
    const stores = [...(pages.length ? ['pages'] : []), ...(records.length ? ['adopted'] : []), 'log'];
    await this.write('cannot commit to the catalog', stores, (tx) => [...pages.map(([id, sealed]) => tx.objectStore('pages').put(sealed, id)), ...IdbBackend.putRecords(tx, records), tx.objectStore('log').add(copy)]);
  }

  async readCatalog(): Promise<{ snapshot: Uint8Array | null; records: Uint8Array[] }> {
    try {
      // One transaction: a checkpoint in another connection cannot land between the two reads.
      const tx = this.db.transaction(['meta', 'log'], 'readonly');
      const [snap, records] = await Promise.all([tx.objectStore('meta').get('snapshot'), tx.objectStore('log').getAll(), tx.done]);
      return {
        snapshot: snap === undefined ? null : await unpackCatalog(snap, `the catalog snapshot of store "${this.name}"`),
        records: await Promise.all(records.map((r, i) => unpackCatalog(r, `catalog record ${i} of store "${this.name}"`))),
      };
    } catch (e) {
      throw idbError('cannot read the catalog', e);
    }
  }

  /** Bytes the catalog takes in IndexedDB: the snapshot and the records, as stored. */
  async catalogBytes(): Promise<number> {
    try {
      const tx = this.db.transaction(['meta', 'log'], 'readonly');
      const [snap, records] = await Promise.all([tx.objectStore('meta').get('snapshot'), tx.objectStore('log').getAll(), tx.done]);
      return (snap === undefined ? 0 : catalogValueBytes(snap)) + records.reduce((n: number, r) => n + catalogValueBytes(r), 0);
    } catch (e) {
      throw idbError('cannot read the catalog', e);
    }
  }

  async checkpointCatalog(snapshot: Uint8Array): Promise<void> {
    const copy = await packCatalog(snapshot);
    await this.flush();
    await this.write('cannot checkpoint the catalog', ['meta', 'log'], (tx) => [tx.objectStore('meta').put(copy, 'snapshot'), tx.objectStore('log').clear()]);
  }

  async releasePages(ids: readonly number[]): Promise<void> {
    for (const id of ids) {
      this.heldBytes -= this.held.get(id)?.length ?? 0;
      this.held.delete(id);
    }
    await this.dropAdopted(ids);
    const records = this.takeRecordChanges();
    await this.write('cannot release pages', ['pages', 'adopted'], (tx) => [...IdbBackend.putRecords(tx, records), ...ids.flatMap((id) => [tx.objectStore('pages').delete(id), tx.objectStore('adopted').delete(id)])]);
  }

  async listPages(): Promise<number[]> {
    try {
      const keys = new Set((await this.db.getAllKeys('pages')) as number[]);
      for (const id of this.held.keys()) keys.add(id);
      for (const id of this.adopted.keys()) keys.add(id);
      return [...keys].sort((a, b) => a - b);
    } catch (e) {
      throw idbError('cannot list pages', e);
    }
  }

  /** Runs one read-write transaction; on any failure it is aborted, so nothing of it lands. */
  private async write(what: string, stores: string[], ops: (tx: WriteTx) => Promise<unknown>[]): Promise<void> {
    let tx: WriteTx | undefined;
    try {
      tx = this.db.transaction(stores, 'readwrite', STRICT);
      const done = tx.done;
      done.catch(() => {}); // observed below; an op throwing first must not leave it unhandled
      // Requests may fail synchronously (a bad value) or asynchronously (quota): await all.
      await Promise.all([...ops(tx), done]);
    } catch (e) {
      try {
        tx?.abort();
      } catch {
        // already finished or aborted
      }
      // The transaction's own error (QuotaExceededError on commit) is the informative one.
      throw idbError(what, tx?.error ?? e);
    }
  }

  async close(): Promise<void> {
    this.takeHeld();
    this.takeRecordChanges();
    this.db.close();
    this.releaseLock();
  }
}

/** The adopted page `id` at `epoch`, if any; a reader re-lists them once (another tab may have adopted it since). */
async function adoptedPage(backend: IdbBackend, id: number, epoch?: number): Promise<AdoptedPage | undefined> {
  const p = backend.adoptedPage(id, epoch);
  if (p || !backend.readOnly || epoch === undefined || backend.adoptedPage(id)) return p;
  await backend.loadAdopted();
  return backend.adoptedPage(id, epoch);
}

/** What a failed seal says of a page, without openPage's wrapping (the caller says which page and what to do). */
function sealComplaint(e: CorruptionError): string {
  return e.message.replace(/^page \d+ is corrupt: /, '').replace(/\. Run `tessera verify`.*$/, '');
}

/**
 * Adopted page `p`'s payload: its stored copy, else one fetched again (refetchAdopted); `place`
 * puts the sealed bytes where they are opened.
 */
async function readAdoptedPage(backend: IdbBackend, p: AdoptedPage, place: (sealed: Uint8Array) => Uint8Array, modelsOnPage?: (id: number) => string[]): Promise<Uint8Array> {
  const sealed = await backend.readAdopted(p);
  let damage = 'its Cache API entry is gone';
  if (sealed) {
    try {
      return openPage(p.sealedId, place(sealed), backend.pageSize, p.sealedEpoch);
    } catch (e) {
      if (!(e instanceof CorruptionError)) throw e;
      damage = sealComplaint(e);
    }
  }
  return openPage(p.sealedId, place(await refetchAdopted(backend, p, damage, modelsOnPage)), backend.pageSize, p.sealedEpoch);
}

/**
 * Adopted page `p`, whose stored copy is unusable (`damage`), fetched again from its origin and
 * verified: its sealed bytes (the caller's own copy). Where it cannot be (no origin recorded,
 * healing off, the source unreachable or sending other bytes): PAGE_CORRUPT naming the local
 * page, the models that read it, and what to do.
 */
async function refetchAdopted(backend: IdbBackend, p: AdoptedPage, damage: string, modelsOnPage?: (id: number) => string[]): Promise<Uint8Array> {
  const from = backend.healingFrom(p);
  const models = modelsOnPage?.(p.id);
  const readers = models?.length ? `the models that read it (${models.join(', ')})` : 'the models that read it (store.verify() lists them)';
  const corrupt = (why: string) =>
    new CorruptionError('PAGE_CORRUPT', `page ${p.id} (kept as published page ${p.sealedId}) cannot be read: ${damage}; ${why}. Remove ${readers} and import them again.`, { pageId: p.id, ...(models ? { models } : {}) });
  if (!from) throw corrupt(p.origin ? 'it is not fetched again (heal: false)' : 'no published source is recorded for it (it was imported by an older tessera)');
  try {
    return (await backend.refetchAdopted(p)).slice();
  } catch (e) {
    if (!(e instanceof TesseraError)) throw e;
    const why = e instanceof CorruptionError ? `${from} sends other bytes (${sealComplaint(e)})` : `${from} could not be fetched (${e.message.replace(/^cannot fetch \S+: /, '').replace(/\. Nothing was stored.*$/, '')})`;
    throw corrupt(`the published store could not repair it: ${why}`);
  }
}

export class IdbPageStore extends CheckedPageStore implements PageAdopter {
  private constructor(raw: IdbBackend) {
    super(raw);
  }

  private get idb(): IdbBackend {
    return this.raw as IdbBackend;
  }

  /**
   * The models that read a page, for messages about it (openBrowserStore sets it to the store's
   * catalog; a page store alone does not know them).
   */
  modelsOnPage: ((pageId: number) => string[]) | undefined;

  /** Whether imports can keep published pages as fetched here (a writer, with the Cache API). */
  get canAdopt(): boolean {
    return this.idb.canAdopt;
  }

  /** Keeps a fetched published page, unread, as page `id` of commit `epoch` (PageAdopter). */
  async adoptPage(id: number, epoch: number, sealedAs: { id: number; epoch: number }, body: Response, origin?: PublishedPageOrigin): Promise<void> {
    this.checkWritable();
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new InvalidArgumentError(`page id ${id} is not an integer in [0, 2^32)`);
    await this.idb.adoptPage(id, epoch, sealedAs, body, origin);
  }

  /**
   * An adopted page is verified against the seal it was published with (checksum, published id
   * and epoch) and its entry's local epoch; missing or failing that, it is fetched again from its
   * origin (see the file header). Any other page is read as CheckedPageStore does.
   */
  override async readPage(id: number, epoch?: number): Promise<Uint8Array> {
    this.checkOpen();
    const p = await adoptedPage(this.idb, id, epoch);
    return p ? readAdoptedPage(this.idb, p, (sealed) => sealed, this.modelsOnPage) : super.readPage(id, epoch);
  }

  override async readPageInto(id: number, target: Uint8Array, epoch?: number): Promise<Uint8Array> {
    this.checkOpen();
    const p = await adoptedPage(this.idb, id, epoch);
    if (!p) return super.readPageInto(id, target, epoch);
    const room = PAGE_HEADER_BYTES + this.pageSize;
    if (target.length < room) throw new InvalidArgumentError(`reading page ${id} needs a buffer of ${room} bytes (header + page size), got ${target.length}`);
    const place = (sealed: Uint8Array) => {
      const length = Math.min(sealed.length, room);
      target.set(sealed.subarray(0, length));
      return target.subarray(0, length);
    };
    return readAdoptedPage(this.idb, p, place, this.modelsOnPage);
  }

  /** The IndexedDB database the store lives in. */
  get name(): string {
    return (this.raw as IdbBackend).name;
  }

  /** Bytes the catalog takes in IndexedDB (snapshot and records, deflated where stored so). */
  catalogBytes(): Promise<number> {
    this.checkOpen();
    return this.idb.catalogBytes();
  }

  /** Writes pages held for the next commit to IndexedDB now (tests that damage stored bytes need them there). */
  flush(): Promise<void> {
    this.checkOpen();
    return (this.raw as IdbBackend).flush();
  }

  /** Opens (by default creating) the store kept in IndexedDB database `name`. */
  static async open(name: string, opts: IdbStoreOptions = {}): Promise<IdbPageStore> {
    return new IdbPageStore(await IdbBackend.open(name, opts));
  }

  /** Deletes the whole store (database). Close it first. */
  static async destroy(name: string): Promise<void> {
    try {
      await deleteDB(name);
      // Where the Cache API refuses, nothing was kept there.
      await cacheStorage()?.delete(adoptedCacheName(name)).catch(() => false);
    } catch (e) {
      throw idbError(`cannot delete store "${name}"`, e);
    }
  }
}
