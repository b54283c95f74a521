/**
 * The one storage abstraction under tessera: fixed-size pages plus a catalog journal, in two layers.
 *
 *   PageBackend  what a backend implements (memory, file in src/node/, IndexedDB in src/browser/,
 *                PostgreSQL, ...): it moves sealed bytes and catalog records, nothing more.
 *   PageStore    what the store uses: a backend behind `CheckedPageStore` (checked-store.ts), which
 *                owns every check a backend used to repeat: closed, read-only, payload size,
 *                sealing and verifying pages (page-format.ts), and crash recovery.
 * A new backend implements PageBackend and is used as `new CheckedPageStore(backend)`; it runs the
 * conformance suite (test/store-conformance.ts) and the store-level suite through a factory in
 * test/store-backends.test.ts. The suite asks each backend's `supports` which traits to test; a
 * trait a backend lacks is reported as a skip, never passed silently.
 *
 * Crash safety comes from the contract, not from each caller:
 * - pages are written only into ids the committed catalog does not reference (copy-on-write),
 * - the catalog changes only by appending one record (atomic: all or nothing) or by replacing
 *   the snapshot (atomic), and `appendCatalog` makes previously written pages durable first,
 * - a write either stores every byte or fails, and a failed `appendCatalog` or `checkpointCatalog`
 *   leaves the committed catalog as it was (a backend that cannot undo a partial append refuses
 *   every later write until reopened), so nothing is reported committed that is not,
 * - pages are released only after the record that stops referencing them is durable.
 * So a crash, a full disk or an I/O error at any point leaves either the old or the new committed
 * state. Recovery is part of the contract: opening a writer cuts a torn catalog tail (backend),
 * and `recover` (called by the store at every writer open) releases every slot the committed
 * catalog does not reference, so slots leaked by a killed writer are reclaimed.
 *
 * Contract changes (for backend authors): 2026-12 — backends implement PageBackend (sealed bytes)
 * instead of PageStore; `readOnly` and `supports` added; `recover` added to PageStore;
 * `commitStamp` added (optional for a backend); `readPageInto` added, with `readSealedInto`
 * optional for a backend.
 */

/** Traits a backend has; the conformance suite tests those it declares and reports the rest as skips. */
export interface PageStoreSupports {
  /** Pages and catalog survive close and reopen (memory: false). */
  persistent: boolean;
  /** Other processes or connections can read the store while one writer writes. */
  concurrentReaders: boolean;
  /** A second writer is refused while one holds the store (file LOCK, Web Lock, advisory lock). */
  writerLock: boolean;
}

/** A stored page's bytes as the backend keeps them: sealed (header + payload, page-format.ts). */
export interface SealedPage {
  id: number;
  sealed: Uint8Array;
}

/** What a backend implements: bytes in, bytes out. Checks and sealing live in CheckedPageStore. */
export interface PageBackend {
  /** 'memory' | 'file' | 'indexeddb' | 'postgres' | ... */
  readonly kind: string;
  /** Bytes of payload a page can hold. */
  readonly pageSize: number;
  /** Opened without the writer lock: CheckedPageStore refuses every write. */
  readonly readOnly: boolean;
  readonly supports: PageStoreSupports;
  /** The sealed bytes last written to `id` (may be followed by slack, e.g. a fixed-size slot); empty when none. */
  readSealed(id: number): Promise<Uint8Array>;
  /**
   * Optional: reads the sealed bytes of `id` into `target` (PAGE_HEADER_BYTES + pageSize bytes)
   * instead of a buffer of its own; returns how many bytes it wrote (0 when none). Without it,
   * CheckedPageStore copies what readSealed returns.
   */
  readSealedInto?(id: number, target: Uint8Array): Promise<number>;
  /**
   * Stores sealed pages (each at most header + pageSize bytes). Every byte or a thrown error. The
   * caller may reuse the `sealed` buffers once this resolves: a backend that keeps them copies them.
   */
  writeSealed(pages: ReadonlyArray<SealedPage>): Promise<void>;
  /** Durably appends one record after making all written pages durable. All or nothing: on failure the catalog is as before. */
  appendCatalog(record: Uint8Array): Promise<void>;
  /** The committed catalog: the last snapshot (if any) and the records appended after it, in order. */
  readCatalog(): Promise<{ snapshot: Uint8Array | null; records: Uint8Array[] }>;
  /** Atomically replaces the snapshot and drops all records (they must be folded into it). */
  checkpointCatalog(snapshot: Uint8Array): Promise<void>;
  /** Forgets pages the committed catalog no longer references (space may be reclaimed). */
  releasePages(ids: readonly number[]): Promise<void>;
  /** Ids of every page slot that holds data (referenced or not): for verify, leak checks and recovery. */
  listPages(): Promise<number[]>;
  /**
   * Optional: a token, cheap to read, that changes whenever the committed catalog does (commits by
   * other processes included), for readers that poll for commits. Without it the stamp is 'static'.
   */
  commitStamp?(): Promise<string>;
  /** Releases resources (handles, connections, the writer lock). Called once. */
  close(): Promise<void>;
}

/** What the store uses: a checked backend (CheckedPageStore). */
export interface PageStore {
  readonly kind: string;
  /** Bytes of payload a page can hold. */
  readonly pageSize: number;
  /** Writes are refused with STORE_LOCKED('read-only'); `recover` does nothing. */
  readonly readOnly: boolean;
  readonly supports: PageStoreSupports;
  /**
   * Returns the payload last written to `id`, verifying its checksum and that it was written
   * at `epoch` (when given): a page overwritten since the caller read the catalog is detected.
   * Throws CorruptionError('PAGE_CORRUPT') on any mismatch.
   */
  readPage(id: number, epoch?: number): Promise<Uint8Array>;
  /**
   * readPage into the caller's buffer: `target` (at least PAGE_HEADER_BYTES + pageSize bytes)
   * receives the sealed page, and the verified payload is returned as a view of it (at
   * PAGE_HEADER_BYTES). A reader that holds its pages in frames of its own (the server) reads
   * into them and allocates nothing per page.
   */
  readPageInto(id: number, target: Uint8Array, epoch?: number): Promise<Uint8Array>;
  /** Writes pages (payload ≤ pageSize) tagged with the epoch of the commit that will reference them. */
  writePages(pages: ReadonlyArray<{ id: number; epoch: number; data: Uint8Array }>): Promise<void>;
  /**
   * Writes one page whose payload (`length` bytes) sits at PAGE_HEADER_BYTES in `frame`: it is
   * sealed in place, without a copy. `frame` may be reused once this resolves.
   */
  writeFrame(page: { id: number; epoch: number; frame: Uint8Array; length: number }): Promise<void>;
  /** Durably appends one catalog record after making all written pages durable. All or nothing. */
  appendCatalog(record: Uint8Array): Promise<void>;
  /** The committed catalog: the last snapshot (if any) and the records appended after it, in order. */
  readCatalog(): Promise<{ snapshot: Uint8Array | null; records: Uint8Array[] }>;
  /** Atomically replaces the snapshot and drops all records (they must be folded into it). */
  checkpointCatalog(snapshot: Uint8Array): Promise<void>;
  /** Forgets pages the committed catalog no longer references (space may be reclaimed). */
  releasePages(ids: readonly number[]): Promise<void>;
  /** Ids of every page slot that holds data (referenced or not): for verify and leak checks. */
  listPages(): Promise<number[]>;
  /**
   * Crash recovery, called by the store at every writer open with the pages its committed catalog
   * references: releases every other slot (written by a writer that never committed, or left by a
   * release cut short). Returns the released ids. Read-only stores return [].
   */
  recover(referenced: ReadonlySet<number>): Promise<number[]>;
  /**
   * A token, cheap to read, that changes whenever the committed catalog does (commits by other
   * processes included): readers poll it to learn when to refresh. 'static' when the backend
   * cannot tell (it then never changes).
   */
  commitStamp(): Promise<string>;
  /** Releases resources (file handles, the writer lock). Idempotent. */
  close(): Promise<void>;
}

/** Options every backend understands when a store is created. */
export interface PageStoreOptions {
  pageSize: number;
}
