/**
 * The page writer of one commit: new blocks are placed on pages in the order they come and each
 * page is written as soon as the next block does not fit (so an add never holds more than one
 * page of new bytes), into slots the committed catalog does not use (copy-on-write).
 *
 * Small adds share pages: the last, partly filled page is not written alone but together with the
 * live blocks of the committed page it fits best, into a fresh slot; the commit records those
 * blocks as moved, and the old slot, left empty, is released after the commit. A crash before the
 * commit leaves the old page as it was. So 82 tiny models make one page, not 82 (issue 12).
 * Sharing stops once the page would hold SHARE_LIMIT of a page: a model then reads at most that
 * many bytes of its neighbours' blocks (what an import fetches, or the server pins, beyond its
 * own), and a larger model keeps pages of its own, as models sharing blocks expect.
 */
import { CapacityError, InvalidArgumentError } from '../errors.ts';
import type { BlockMove } from '../catalog/catalog.ts';
import type { PageStore } from './page-store.ts';
import { PAGE_HEADER_BYTES } from './page-format.ts';
import type { BlockSource } from './block-source.ts';
import type { CatalogView } from './catalog-view.ts';
import { IngestMemory } from './ingest-kernel.ts';

/** A shared page holds at most this fraction of a page. */
const SHARE_LIMIT = 1 / 8;
/** Written pages `placedBytes` keeps after reading them back. */
const READ_BACK_PAGES = 8;

interface OpenPage {
  id: number;
  /** Header room, then the payload: the page is sealed in place (PageStore.writeFrame). */
  frame: Uint8Array;
  used: number;
}

export class PageWriter {
  private readonly taken = new Set<number>();
  private nextId = 0;
  private cur: OpenPage | null = null;
  /**
   * One memory for every page this writer writes (the backend is done with a frame once
   * `writeFrame` resolves; a fresh 1 MiB buffer per page, and a sealed copy of each, left ~100 MB
   * of garbage for the collector on a 100 MB add): two page frames, followed by the room `beside`
   * lends. It is ingest's wasm memory (IngestMemory), so weights read there are cut onto the page
   * by the kernel and blocks and pages are hashed where they lie.
   */
  readonly memory = IngestMemory.take();
  private framesReserved = false;
  /** The room `beside` lends when the wasm memory cannot hold it (ordinary memory, cut and hashed the slower way). */
  private spill = new Uint8Array(0);
  /**
   * The two page frames: a full page is written from one while the next page fills the other, so
   * cutting and hashing overlap the write instead of waiting for it (one write in flight at a
   * time; its frame is reused only once it has resolved).
   */
  private slot = 0;
  private inflight: { id: number; frame: Uint8Array; done: Promise<void> } | null = null;
  /** The error of a page write that failed (sticky: every later write and `finish` throw it). */
  failed: unknown = null;
  private readonly written: { id: number; used: number }[] = [];
  /**
   * Written pages read back by `placedBytes`, least recently used first (at most READ_BACK_PAGES):
   * in a batch, each fine-tune compares its blocks with its base's pages in order, so a few pages
   * held spare reading each base page once per fine-tune (bench store --part=ingest).
   */
  private readonly readBack = new Map<number, { frame: Uint8Array; payload: Uint8Array }>();
  /** Bytes of blocks placed so far. */
  bytesPlaced = 0;

  constructor(
    private readonly catalog: CatalogView,
    private readonly backend: Pick<PageStore, 'writeFrame' | 'readPageInto' | 'pageSize'>,
    /** The sequence number of the commit that will reference these pages. */
    readonly epoch: number,
    private readonly blocks: () => BlockSource,
    private readonly onPage?: (pagesWritten: number) => void,
  ) {}

  private get pageSize(): number {
    return this.backend.pageSize;
  }

  private get frameBytes(): number {
    return PAGE_HEADER_BYTES + this.pageSize;
  }

  private frame(): Uint8Array {
    const frameBytes = this.frameBytes;
    if (!this.framesReserved) {
      if (!this.memory.reserve(2 * frameBytes)) throw new CapacityError('BUDGET_EXCEEDED', `two ${this.pageSize}-byte page frames could not be allocated in a wasm memory: use a store with a smaller page size, or free memory.`);
      this.framesReserved = true;
    }
    return new Uint8Array(this.memory.buffer, this.memory.base + this.slot * frameBytes, frameBytes);
  }

  /**
   * `size` bytes in the same memory as the page frames, valid until the next call (views of the
   * open page taken before it are stale after it). A tensor read there is cut onto the page by
   * the kernel (IngestMemory.cut), and its whole-row blocks are hashed where they lie.
   */
  async beside(size: number): Promise<Uint8Array> {
    const frameBytes = this.frameBytes;
    const mem = this.memory;
    if (mem.buffer.byteLength < mem.base + 2 * frameBytes + size) {
      // Growing detaches the memory's buffer (a detached view's byteOffset reads 0: take it
      // first), and no write may be reading a frame meanwhile.
      await this.settle();
      const open = this.cur?.frame.byteOffset;
      if (!mem.reserve(2 * frameBytes + size)) {
        if (this.spill.length < size) this.spill = new Uint8Array(size);
        return this.spill.subarray(0, size);
      }
      this.framesReserved = true;
      if (this.cur) this.cur.frame = new Uint8Array(mem.buffer, open, frameBytes);
    }
    return new Uint8Array(mem.buffer, mem.base + 2 * frameBytes, size);
  }

  /** The lowest page id neither the committed catalog nor this writer uses. */
  private allocate(): number {
    while (this.catalog.pages.has(this.nextId) || this.taken.has(this.nextId)) this.nextId++;
    this.taken.add(this.nextId);
    return this.nextId;
  }

  /** Places a block on the current page (writing it first when the block does not fit). */
  async place(data: Uint8Array): Promise<{ page: number; offset: number }> {
    if (data.length > this.pageSize) throw new InvalidArgumentError(`a ${data.length}-byte block does not fit a ${this.pageSize}-byte page`);
    if (this.cur && this.cur.used + data.length > this.pageSize) await this.flush();
    this.cur ??= { id: this.allocate(), frame: this.frame(), used: 0 };
    this.cur.frame.set(data, PAGE_HEADER_BYTES + this.cur.used);
    return this.take(data.length);
  }

  /**
   * Room for a `length`-byte block on the open page (opened now if none is), or null when the
   * block does not fit it: a caller that can produce the block straight into this view (a cut
   * tile) saves a copy, then keeps it with `take(length)`, or leaves it to be overwritten (a
   * duplicate). A page opened for duplicates only is never written (flush).
   */
  room(length: number): Uint8Array | null {
    if (length > this.pageSize) return null;
    const cur = (this.cur ??= { id: this.allocate(), frame: this.frame(), used: 0 });
    if (cur.used + length > this.pageSize) return null;
    const at = PAGE_HEADER_BYTES + cur.used;
    return cur.frame.subarray(at, at + length);
  }

  /** Keeps the `length` bytes written into `room(length)` as a block. */
  take(length: number): { page: number; offset: number } {
    const cur = this.cur;
    if (!cur || cur.used + length > this.pageSize) throw new Error('internal: PageWriter.take without room');
    const offset = cur.used;
    cur.used += length;
    this.bytesPlaced += length;
    return { page: cur.id, offset };
  }

  /**
   * The bytes of a block this writer placed: a view of the open page, or of its written page read
   * back (a few are kept). Matching a later duplicate against this copy means an add
   * keeps no block bytes of its own once they are placed.
   */
  async placedBytes(block: { page: number; offset: number; length: number }): Promise<Uint8Array> {
    const { page, offset, length } = block;
    if (this.cur?.id === page) return this.cur.frame.subarray(PAGE_HEADER_BYTES + offset, PAGE_HEADER_BYTES + offset + length);
    // Being written: its frame is not reused before the next page is written.
    if (this.inflight?.id === page) return this.inflight.frame.subarray(PAGE_HEADER_BYTES + offset, PAGE_HEADER_BYTES + offset + length);
    let held = this.readBack.get(page);
    if (held) this.readBack.delete(page);
    else {
      // Into the frame of the page held longest once READ_BACK_PAGES are held: a fresh 1 MiB
      // buffer per page read is external memory that sets off collections (`--trace-gc`).
      let frame: Uint8Array;
      if (this.readBack.size >= READ_BACK_PAGES) {
        const [oldest, entry] = this.readBack.entries().next().value!;
        this.readBack.delete(oldest);
        frame = entry.frame;
      } else frame = new Uint8Array(PAGE_HEADER_BYTES + this.pageSize);
      held = { frame, payload: await this.backend.readPageInto(page, frame, this.epoch) };
    }
    this.readBack.set(page, held);
    return held.payload.subarray(offset, offset + length);
  }

  /**
   * Before the next model of a batch: ends the open page unless it and the next model's `bytes`
   * (at most what it places) fit in a shared page (SHARE_LIMIT), so many small models share pages
   * and a model reads at most that many bytes of its neighbours' blocks.
   */
  async endPageUnlessShared(bytes: number): Promise<void> {
    if (this.cur && this.cur.used + bytes > Math.floor(this.pageSize * SHARE_LIMIT)) await this.flush();
  }

  /** Writes the current page now (the next block starts a new one). */
  async endPage(): Promise<void> {
    await this.flush();
  }

  /**
   * Starts writing the current page (the next block starts a new one, in the other frame) once the
   * previous write has resolved. On the 105 MB model each awaited 1 MiB write left the CPU idle.
   */
  private async flush(): Promise<void> {
    const page = this.cur;
    if (!page) return;
    this.cur = null;
    if (page.used === 0) {
      // Opened by `room` for blocks that all were duplicates: nothing to write, the id is free again.
      this.taken.delete(page.id);
      this.nextId = Math.min(this.nextId, page.id);
      return;
    }
    await this.settle();
    const done = this.backend.writeFrame({ id: page.id, epoch: this.epoch, frame: page.frame, length: page.used }).then(
      () => {
        this.written.push({ id: page.id, used: page.used });
        this.onPage?.(this.written.length);
      },
      (e: unknown) => {
        this.failed ??= e;
      },
    );
    this.inflight = { id: page.id, frame: page.frame, done };
    this.slot ^= 1;
  }

  /** Waits for the write in flight; throws if any write of this writer failed. */
  private async settle(): Promise<void> {
    const pending = this.inflight;
    if (pending) {
      await pending.done;
      if (this.inflight === pending) this.inflight = null;
    }
    if (this.failed) throw this.failed;
  }

  /**
   * Writes the last page. With `share`, that page takes in the live blocks of the committed page
   * they fit best beside (returned as `moved`), so that page frees after the commit.
   */
  async finish(opts: { share?: boolean } = {}): Promise<{ pages: { id: number; used: number }[]; moved: BlockMove[] }> {
    const moved: BlockMove[] = [];
    const cur = this.cur;
    if (cur && cur.used > 0 && opts.share) {
      const partner = this.bestPartner(Math.floor(this.pageSize * SHARE_LIMIT) - cur.used);
      if (partner) {
        const source = this.blocks();
        for (const { id, offset: _ } of partner.blocks) {
          const bytes = await source.stored(id);
          moved.push({ id, page: cur.id, offset: cur.used });
          cur.frame.set(bytes, PAGE_HEADER_BYTES + cur.used);
          cur.used += bytes.length;
        }
      }
    }
    await this.flush();
    await this.settle();
    return { pages: this.written, moved };
  }

  /**
   * Hands the wasm memory back for the next writer (IngestMemory.take): called once the commit
   * that references this writer's pages is done, after which nothing of this writer is used.
   */
  release(): void {
    this.readBack.clear();
    this.memory.release();
  }

  /** The committed page whose live blocks fill the most of `room` bytes (and fit in it). */
  private bestPartner(room: number): { page: number; blocks: { id: number; offset: number }[] } | undefined {
    const live = new Map<number, { bytes: number; blocks: { id: number; offset: number }[] }>();
    for (const [id, b] of this.catalog.blocks) {
      let p = live.get(b.page);
      if (!p) live.set(b.page, (p = { bytes: 0, blocks: [] }));
      p.bytes += b.length;
      p.blocks.push({ id, offset: b.offset });
    }
    let best: { page: number; bytes: number; blocks: { id: number; offset: number }[] } | undefined;
    for (const [page, p] of live) if (p.bytes <= room && (!best || p.bytes > best.bytes)) best = { page, ...p };
    if (!best) return undefined;
    best.blocks.sort((a, b) => a.offset - b.offset);
    return best;
  }
}
