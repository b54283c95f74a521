/**
 * The IndexedDB PageStore: one database per store, through the `idb` wrapper.
 *   meta   'config' → { format, version, pageSize } (written once, at creation); 'snapshot' → bytes
 *   pages  page id → sealed page (header + payload, see page-format.ts)
 *   log    auto-increment key → catalog record, in append order
 * Atomicity comes from IndexedDB transactions: a page batch, a record append and a checkpoint
 * (snapshot put + log clear) each commit whole or not at all. Writes use `durability: 'strict'`
 * (flushed before the transaction completes), and transactions with overlapping scopes run in
 * creation order, so pages are durable before the record that references them.
 * Written pages are held (up to BATCH_BYTES) and go to IndexedDB in one transaction per batch;
 * the last batch goes in the same transaction as the catalog record that references it. Each
 * transaction costs a few milliseconds however little it holds (an fsync and IPC in Chromium),
 * so a model's pages and its commit cost one or two instead of one per page (issue 12). Pages
 * held and never committed are dropped at close, as a crash before the commit would leave them.
 * The backend moves bytes only; CheckedPageStore seals, verifies and checks (page-store.ts).
 * One writer per store: in browsers a Web Lock held while the store is open refuses a second tab
 * (it would pick the same free page ids and overwrite the first tab's pages).
 */
import { deleteDB, openDB, type IDBPDatabase, type IDBPTransaction } from 'idb';
import { CapacityError, InvalidArgumentError, StoreError, TesseraError } from '../errors.ts';
import type { PageBackend, PageStoreSupports, SealedPage } from '../store/page-store.ts';
import { CheckedPageStore } from '../store/checked-store.ts';

const FORMAT = 'tessera-store';
const FORMAT_VERSION = 1;
const SCHEMA_VERSION = 1;
const DEFAULT_PAGE_SIZE = 1 << 20;
const STRICT = { durability: 'strict' } as const;
/** Written pages held before they go to IndexedDB in one transaction (the memory an add may hold beyond its page). */
const BATCH_BYTES = 8 << 20;

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
  ) {}

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
      return new IdbBackend(name, config.pageSize, db, readOnly, release);
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

  async writeSealed(pages: ReadonlyArray<SealedPage>): Promise<void> {
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
    const copy = record.slice();
    const pages = this.takeHeld();
    // The pages and the record that references them: one transaction, durable together.
    await this.write('cannot commit to the catalog', pages.length ? ['pages', 'log'] : ['log'], (tx) => [...pages.map(([id, sealed]) => tx.objectStore('pages').put(sealed, id)), tx.objectStore('log').add(copy)]);
  }

  async readCatalog(): Promise<{ snapshot: Uint8Array | null; records: Uint8Array[] }> {
    try {
      // One transaction: a checkpoint in another connection cannot land between the two reads.
      const tx = this.db.transaction(['meta', 'log'], 'readonly');
      const [snap, records] = await Promise.all([tx.objectStore('meta').get('snapshot'), tx.objectStore('log').getAll(), tx.done]);
      return { snapshot: snap === undefined ? null : asBytes(snap), records: records.map(asBytes) };
    } catch (e) {
      throw idbError('cannot read the catalog', e);
    }
  }

  async checkpointCatalog(snapshot: Uint8Array): Promise<void> {
    const copy = snapshot.slice();
    await this.flush();
    await this.write('cannot checkpoint the catalog', ['meta', 'log'], (tx) => [tx.objectStore('meta').put(copy, 'snapshot'), tx.objectStore('log').clear()]);
  }

  async releasePages(ids: readonly number[]): Promise<void> {
    for (const id of ids) {
      this.heldBytes -= this.held.get(id)?.length ?? 0;
      this.held.delete(id);
    }
    await this.write('cannot release pages', ['pages'], (tx) => ids.map((id) => tx.objectStore('pages').delete(id)));
  }

  async listPages(): Promise<number[]> {
    try {
      const keys = new Set((await this.db.getAllKeys('pages')) as number[]);
      for (const id of this.held.keys()) keys.add(id);
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

export class IdbPageStore extends CheckedPageStore {
  private constructor(raw: IdbBackend) {
    super(raw);
  }

  /** The IndexedDB database the store lives in. */
  get name(): string {
    return (this.raw as IdbBackend).name;
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
    } catch (e) {
      throw idbError(`cannot delete store "${name}"`, e);
    }
  }
}
