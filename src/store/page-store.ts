/**
 * The one storage abstraction under tessera: fixed-size pages plus a catalog journal. Backends
 * (memory, file in src/node/, IndexedDB in src/browser/) implement it and all run the same
 * conformance suite (test/store-conformance.ts).
 *
 * Crash safety comes from the contract, not from each caller:
 * - pages are written only into ids the committed catalog does not reference (copy-on-write),
 * - the catalog changes only by appending one record (atomic: all or nothing) or by replacing
 *   the snapshot (atomic), and `appendCatalog` makes previously written pages durable first.
 * So a crash at any point leaves either the old or the new committed state.
 */
export interface PageStore {
  /** 'memory' | 'file' | 'indexeddb' | ... */
  readonly kind: string;
  /** Bytes of payload a page can hold. */
  readonly pageSize: number;
  /**
   * Returns the payload last written to `id`, verifying its checksum and that it was written
   * at `epoch` (when given): a page overwritten since the caller read the catalog is detected.
   * Throws CorruptionError('PAGE_CORRUPT') on any mismatch.
   */
  readPage(id: number, epoch?: number): Promise<Uint8Array>;
  /** Writes pages (payload ≤ pageSize) tagged with the epoch of the commit that will reference them. */
  writePages(pages: ReadonlyArray<{ id: number; epoch: number; data: Uint8Array }>): Promise<void>;
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
  /** Releases resources (file handles, the writer lock). */
  close(): Promise<void>;
}

/** Options every backend understands when a store is created. */
export interface PageStoreOptions {
  pageSize: number;
}
