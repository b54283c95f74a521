/** An in-memory PageStore: for tests, for scratch work, and as the reference backend. */
import { InvalidArgumentError } from '../errors.ts';
import type { PageBackend, PageStoreOptions, PageStoreSupports, SealedPage } from './page-store.ts';
import { CheckedPageStore } from './checked-store.ts';

/** The bytes: a map of sealed pages and a list of records. */
class MemoryBackend implements PageBackend {
  readonly kind = 'memory';
  readonly readOnly = false;
  readonly supports: PageStoreSupports = { persistent: false, concurrentReaders: false, writerLock: false };
  readonly sealed = new Map<number, Uint8Array>();
  private snapshot: Uint8Array | null = null;
  private records: Uint8Array[] = [];
  /** Catalog changes so far (appends and checkpoints): the commit stamp. */
  private changes = 0;

  constructor(readonly pageSize: number) {}

  async readSealed(id: number): Promise<Uint8Array> {
    return this.sealed.get(id)?.slice() ?? new Uint8Array(0);
  }
  async readSealedInto(id: number, target: Uint8Array): Promise<number> {
    const sealed = this.sealed.get(id);
    if (!sealed) return 0;
    const n = Math.min(sealed.length, target.length);
    target.set(sealed.subarray(0, n));
    return n;
  }
  async writeSealed(pages: ReadonlyArray<SealedPage>): Promise<void> {
    // The caller may reuse its buffers (PageBackend contract): keep copies.
    for (const p of pages) this.sealed.set(p.id, p.sealed.slice());
  }
  async appendCatalog(record: Uint8Array): Promise<void> {
    this.records.push(record.slice());
    this.changes++;
  }
  async readCatalog(): Promise<{ snapshot: Uint8Array | null; records: Uint8Array[] }> {
    return { snapshot: this.snapshot, records: [...this.records] };
  }
  async checkpointCatalog(snapshot: Uint8Array): Promise<void> {
    this.snapshot = snapshot.slice();
    this.records = [];
    this.changes++;
  }
  async releasePages(ids: readonly number[]): Promise<void> {
    for (const id of ids) this.sealed.delete(id);
  }
  async listPages(): Promise<number[]> {
    return [...this.sealed.keys()].sort((a, b) => a - b);
  }
  async commitStamp(): Promise<string> {
    return `memory:${this.changes}`;
  }
  async close(): Promise<void> {}
}

export class MemoryPageStore extends CheckedPageStore {
  /** Sealed pages; exposed so tests can inject corruption. */
  readonly sealed: Map<number, Uint8Array>;

  constructor(opts: PageStoreOptions) {
    if (!Number.isInteger(opts.pageSize) || opts.pageSize <= 0) throw new InvalidArgumentError(`page size must be a positive integer, got ${opts.pageSize}`);
    const raw = new MemoryBackend(opts.pageSize);
    super(raw);
    this.sealed = raw.sealed;
  }
}
