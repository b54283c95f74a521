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
 * drops its adopted entry). Cache Storage is not flushed to disk before a commit the way a
 * 'strict' IndexedDB transaction is: a power cut right after an import may lose adopted pages
 * of a committed model (reads then fail PAGE_CORRUPT; a browser or tab crash does not, the
 * browser process has the bytes once `put` resolves).
 * The backend moves bytes only; CheckedPageStore seals, verifies and checks (page-store.ts).
 * One writer per store: in browsers a Web Lock held while the store is open refuses a second tab
 * (it would pick the same free page ids and overwrite the first tab's pages).
 */
import { deleteDB, openDB, type IDBPDatabase, type IDBPTransaction } from 'idb';
import { CapacityError, CorruptionError, InvalidArgumentError, StoreError, TesseraError } from '../errors.ts';
import type { PageBackend, PageStoreSupports, SealedPage } from '../store/page-store.ts';
import { deflateRaw, inflateRaw, type PageAdopter } from '../store/published.ts';
import { CheckedPageStore } from '../store/checked-store.ts';
import { openPage } from '../store/page-format.ts';

const FORMAT = 'tessera-store';
const FORMAT_VERSION = 1;
const SCHEMA_VERSION = 1;
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

/** A page kept in the Cache API as published: local id and epoch, and the seal its bytes carry. */
interface AdoptedPage {
  id: number;
  epoch: number;
  sealedId: number;
  sealedEpoch: number;
  url: string;
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
  ) {}

  /** Adopted pages by local id (see the file header). */
  private readonly adopted = new Map<number, AdoptedPage>();

  /** Lists the adopted pages; a writer drops entries a later adoption of the same id superseded. */
  async loadAdopted(): Promise<void> {
    if (!this.cache) return;
    this.adopted.clear();
    const stale: string[] = [];
    for (const req of await this.cache.keys()) {
      const p = parseAdoptedUrl(req.url);
      if (!p) continue;
      const held = this.adopted.get(p.id);
      if (held && held.epoch > p.epoch) stale.push(p.url);
      else {
        if (held) stale.push(held.url);
        this.adopted.set(p.id, p);
      }
    }
    if (!this.readOnly) await Promise.all(stale.map((url) => this.cache!.delete(url)));
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
          for (const s of ['meta', 'pages']) if (!d.objectStoreNames.contains(s)) d.createObjectStore(s);
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
      const backend = new IdbBackend(name, config.pageSize, db, readOnly, release, await openAdoptedCache(name));
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

  /** Streams a fetched published page into the Cache API as page `id` of the commit `epoch`. */
  async adoptPage(id: number, epoch: number, sealedAs: { id: number; epoch: number }, body: Response): Promise<void> {
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
    this.adopted.set(id, { ...page, url });
  }

  /** The adopted page `id` (written at `epoch`, when given), if there is one. */
  adoptedPage(id: number, epoch?: number): AdoptedPage | undefined {
    const p = this.adopted.get(id);
    return p && (epoch === undefined || p.epoch === epoch) ? p : undefined;
  }

  /** The sealed bytes of an adopted page as published; empty when its entry is gone. */
  async readAdopted(p: AdoptedPage): Promise<Uint8Array> {
    try {
      const res = await this.cache!.match(p.url);
      return res ? new Uint8Array(await res.arrayBuffer()) : new Uint8Array(0);
    } catch (e) {
      throw idbError(`cannot read page ${p.id}`, e);
    }
  }

  /** Forgets adopted entries of `ids` (their slots are being rewritten or released). */
  private async dropAdopted(ids: readonly number[]): Promise<void> {
    const gone = ids.map((id) => this.adopted.get(id)).filter((p): p is AdoptedPage => !!p);
    if (!gone.length) return;
    for (const p of gone) this.adopted.delete(p.id);
    try {
      await Promise.all(gone.map((p) => this.cache!.delete(p.url)));
    } catch (e) {
      throw idbError(`cannot release ${gone.length} page(s)`, e);
    }
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

  /** Writes the held pages to IndexedDB now (one transaction). */
  async flush(): Promise<void> {
    const pages = this.takeHeld();
    if (pages.length) await this.write(`cannot write ${pages.length} page(s)`, ['pages'], (tx) => pages.map(([id, sealed]) => tx.objectStore('pages').put(sealed, id)));
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
    // The pages and the record that references them: one transaction, durable together.
    await this.write('cannot commit to the catalog', pages.length ? ['pages', 'log'] : ['log'], (tx) => [...pages.map(([id, sealed]) => tx.objectStore('pages').put(sealed, id)), tx.objectStore('log').add(copy)]);
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
    await this.write('cannot release pages', ['pages'], (tx) => ids.map((id) => tx.objectStore('pages').delete(id)));
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

/** An adopted page's payload, its published seal verified; damage is PAGE_CORRUPT naming the local page. */
function openAdopted(p: AdoptedPage, sealed: Uint8Array, pageSize: number): Uint8Array {
  try {
    return openPage(p.sealedId, sealed, pageSize, p.sealedEpoch);
  } catch (e) {
    if (!(e instanceof CorruptionError)) throw e;
    const why = e.message.replace(/^page \d+ is corrupt: /, '').replace(/\. Run `tessera verify`.*$/, '');
    throw new CorruptionError('PAGE_CORRUPT', `page ${p.id} (kept as published page ${p.sealedId}) is corrupt: ${why}. Remove the models that read it and import them again.`, { pageId: p.id });
  }
}

export class IdbPageStore extends CheckedPageStore implements PageAdopter {
  private constructor(raw: IdbBackend) {
    super(raw);
  }

  private get idb(): IdbBackend {
    return this.raw as IdbBackend;
  }

  /** Whether imports can keep published pages as fetched here (a writer, with the Cache API). */
  get canAdopt(): boolean {
    return this.idb.canAdopt;
  }

  /** Keeps a fetched published page, unread, as page `id` of commit `epoch` (PageAdopter). */
  async adoptPage(id: number, epoch: number, sealedAs: { id: number; epoch: number }, body: Response): Promise<void> {
    this.checkWritable();
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new InvalidArgumentError(`page id ${id} is not an integer in [0, 2^32)`);
    await this.idb.adoptPage(id, epoch, sealedAs, body);
  }

  /**
   * An adopted page is verified against the seal it was published with (checksum, published id
   * and epoch) and its entry's local epoch; any other page as CheckedPageStore does.
   */
  override async readPage(id: number, epoch?: number): Promise<Uint8Array> {
    this.checkOpen();
    const p = await adoptedPage(this.idb, id, epoch);
    return p ? openAdopted(p, await this.idb.readAdopted(p), this.pageSize) : super.readPage(id, epoch);
  }

  override async readPageInto(id: number, target: Uint8Array, epoch?: number): Promise<Uint8Array> {
    this.checkOpen();
    const p = await adoptedPage(this.idb, id, epoch);
    if (!p) return super.readPageInto(id, target, epoch);
    const sealed = await this.idb.readAdopted(p);
    const length = Math.min(sealed.length, target.length);
    target.set(sealed.subarray(0, length));
    return openAdopted(p, target.subarray(0, length), this.pageSize);
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
