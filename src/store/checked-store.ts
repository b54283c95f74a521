/**
 * CheckedPageStore: a PageBackend (bytes only) made into the PageStore the store uses. Every check
 * the backends used to repeat lives here once: the store is open, writable, payloads fit a page,
 * pages are sealed on write and verified (checksum, id, epoch) on read, and recovery releases
 * what the committed catalog does not reference. A backend cannot get these wrong by omission.
 */
import { InvalidArgumentError, StoreError } from '../errors.ts';
import type { PageBackend, PageStore, PageStoreSupports } from './page-store.ts';
import { PAGE_HEADER_BYTES, openPage, sealFrame, sealPage } from './page-format.ts';

export class CheckedPageStore implements PageStore {
  private closed = false;

  constructor(protected readonly raw: PageBackend) {}

  get kind(): string {
    return this.raw.kind;
  }
  get pageSize(): number {
    return this.raw.pageSize;
  }
  get readOnly(): boolean {
    return this.raw.readOnly;
  }
  get supports(): PageStoreSupports {
    return this.raw.supports;
  }

  protected checkOpen(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the store is closed: open it again');
  }

  protected checkWritable(): void {
    this.checkOpen();
    if (this.raw.readOnly) throw new StoreError('STORE_LOCKED', `this ${this.raw.kind} store was opened read-only: open it for writing to change it.`);
  }

  async readPage(id: number, epoch?: number): Promise<Uint8Array> {
    this.checkOpen();
    checkId(id);
    return openPage(id, await this.raw.readSealed(id), this.raw.pageSize, epoch);
  }

  async readPageInto(id: number, target: Uint8Array, epoch?: number): Promise<Uint8Array> {
    this.checkOpen();
    checkId(id);
    const room = PAGE_HEADER_BYTES + this.raw.pageSize;
    if (target.length < room) throw new InvalidArgumentError(`reading page ${id} needs a buffer of ${room} bytes (header + page size), got ${target.length}`);
    let length: number;
    if (this.raw.readSealedInto) length = await this.raw.readSealedInto(id, target.subarray(0, room));
    else {
      const sealed = await this.raw.readSealed(id);
      length = Math.min(sealed.length, room);
      target.set(sealed.subarray(0, length));
    }
    return openPage(id, target.subarray(0, length), this.raw.pageSize, epoch);
  }

  async writePages(pages: ReadonlyArray<{ id: number; epoch: number; data: Uint8Array }>): Promise<void> {
    this.checkWritable();
    for (const p of pages) {
      checkId(p.id);
      if (p.data.length > this.raw.pageSize) throw new InvalidArgumentError(`page ${p.id}: ${p.data.length} bytes exceed the page size ${this.raw.pageSize}`);
    }
    if (!pages.length) return;
    await this.raw.writeSealed(pages.map((p) => ({ id: p.id, sealed: sealPage(p.id, p.epoch, p.data) })));
  }

  async writeFrame(page: { id: number; epoch: number; frame: Uint8Array; length: number }): Promise<void> {
    this.checkWritable();
    checkId(page.id);
    const { length, frame } = page;
    if (!Number.isInteger(length) || length < 0 || length > this.raw.pageSize || PAGE_HEADER_BYTES + length > frame.length) {
      throw new InvalidArgumentError(`page ${page.id}: a ${length}-byte payload in a ${frame.length}-byte frame does not fit the page size ${this.raw.pageSize}`);
    }
    await this.raw.writeSealed([{ id: page.id, sealed: sealFrame(page.id, page.epoch, frame, length) }]);
  }

  async appendCatalog(record: Uint8Array): Promise<void> {
    this.checkWritable();
    await this.raw.appendCatalog(record);
  }

  async readCatalog(): Promise<{ snapshot: Uint8Array | null; records: Uint8Array[] }> {
    this.checkOpen();
    return this.raw.readCatalog();
  }

  async checkpointCatalog(snapshot: Uint8Array): Promise<void> {
    this.checkWritable();
    await this.raw.checkpointCatalog(snapshot);
  }

  async releasePages(ids: readonly number[]): Promise<void> {
    this.checkWritable();
    ids.forEach(checkId);
    if (ids.length) await this.raw.releasePages(ids);
  }

  async listPages(): Promise<number[]> {
    this.checkOpen();
    return this.raw.listPages();
  }

  async recover(referenced: ReadonlySet<number>): Promise<number[]> {
    this.checkOpen();
    if (this.raw.readOnly) return [];
    const leaked = (await this.raw.listPages()).filter((id) => !referenced.has(id));
    if (leaked.length) await this.raw.releasePages(leaked);
    return leaked;
  }

  async commitStamp(): Promise<string> {
    this.checkOpen();
    return this.raw.commitStamp ? this.raw.commitStamp() : 'static';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.raw.close();
  }
}

function checkId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new InvalidArgumentError(`page id ${id} is not an integer in [0, 2^32)`);
}

