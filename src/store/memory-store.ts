/** An in-memory PageStore: for tests, for scratch work, and as the reference backend. */
import { InvalidArgumentError, StoreError } from '../errors.ts';
import type { PageStore, PageStoreOptions } from './page-store.ts';
import { openPage, sealPage } from './page-format.ts';

export class MemoryPageStore implements PageStore {
  readonly kind = 'memory';
  readonly pageSize: number;
  /** Sealed pages; exposed so tests can inject corruption. */
  readonly sealed = new Map<number, Uint8Array>();
  private snapshot: Uint8Array | null = null;
  private records: Uint8Array[] = [];
  private closed = false;

  constructor(opts: PageStoreOptions) {
    if (!Number.isInteger(opts.pageSize) || opts.pageSize <= 0) throw new InvalidArgumentError(`page size must be a positive integer, got ${opts.pageSize}`);
    this.pageSize = opts.pageSize;
  }
  private check(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the store is closed: open it again');
  }
  async readPage(id: number, epoch?: number): Promise<Uint8Array> {
    this.check();
    const sealed = this.sealed.get(id);
    if (!sealed) return openPage(id, new Uint8Array(0), this.pageSize, epoch);
    return openPage(id, sealed, this.pageSize, epoch).slice();
  }
  async writePages(pages: ReadonlyArray<{ id: number; epoch: number; data: Uint8Array }>): Promise<void> {
    this.check();
    for (const p of pages) {
      if (p.data.length > this.pageSize) throw new InvalidArgumentError(`page ${p.id}: ${p.data.length} bytes exceed the page size ${this.pageSize}`);
    }
    for (const p of pages) this.sealed.set(p.id, sealPage(p.id, p.epoch, p.data));
  }
  async appendCatalog(record: Uint8Array): Promise<void> {
    this.check();
    this.records.push(record.slice());
  }
  async readCatalog(): Promise<{ snapshot: Uint8Array | null; records: Uint8Array[] }> {
    this.check();
    return { snapshot: this.snapshot, records: [...this.records] };
  }
  async checkpointCatalog(snapshot: Uint8Array): Promise<void> {
    this.check();
    this.snapshot = snapshot.slice();
    this.records = [];
  }
  async releasePages(ids: readonly number[]): Promise<void> {
    this.check();
    for (const id of ids) this.sealed.delete(id);
  }
  async listPages(): Promise<number[]> {
    this.check();
    return [...this.sealed.keys()].sort((a, b) => a - b);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}
