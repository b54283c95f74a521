/**
 * Page frames: fixed pageSize slots inside the dense kernel's WebAssembly memory, so the
 * block-native kernels read weight tiles in place and tensors are assembled from the same bytes.
 * The memory is grown once and never again (views stay valid); a frame is taken when the page
 * pool reads a page and given back when the pool drops it. Frames are reused last-in first-out,
 * so the memory touched (RSS) stays at the most pages ever resident at once.
 *
 * Each frame has `headerBytes` of room in front of its payload, so a sealed page (header, then
 * payload) is read straight into it (`take`, then the store's readPageInto) and verified there: a
 * page read allocates nothing. Reading into a fresh 256 KiB buffer and copying it into the frame
 * made ~148 MB of garbage per 64 requests on the PP-OCRv4 rec family at a 25% budget.
 */
import { CapacityError, InternalError } from '../errors.ts';

export class PageFrames {
  private readonly free: number[] = [];
  private readonly byPage = new Map<number, number>();
  /** The most frames ever in use at once: the memory they touched stays resident (wasm memory never shrinks). */
  highWater = 0;
  constructor(private readonly memory: WebAssembly.Memory, readonly base: number, readonly frameBytes: number, readonly count: number, readonly headerBytes = 0) {
    // A frame's payload starts headerBytes into its slot.
    for (let i = count - 1; i >= 0; i--) this.free.push(base + i * (headerBytes + frameBytes) + headerBytes);
  }
  /** Memory the frames span from `base`. */
  static bytesFor(count: number, frameBytes: number, headerBytes = 0): number {
    return count * (headerBytes + frameBytes);
  }
  /** Copies `data` into a free frame for `page`; returns the frame's view. */
  place(page: number, data: Uint8Array): Uint8Array {
    if (data.length > this.frameBytes) throw new CapacityError('BUDGET_EXCEEDED', `page ${page} holds ${data.length} bytes, more than a ${this.frameBytes}-byte frame`);
    const frame = new Uint8Array(this.memory.buffer, this.claim(page), this.frameBytes);
    frame.set(data);
    return frame;
  }
  /**
   * Takes a free frame for `page` and returns its whole slot (header room + payload) to read a
   * sealed page into; the payload then lies at headerBytes. `release(page)` gives it back if the
   * read fails.
   */
  take(page: number): Uint8Array {
    const ptr = this.claim(page);
    return new Uint8Array(this.memory.buffer, ptr - this.headerBytes, this.headerBytes + this.frameBytes);
  }
  private claim(page: number): number {
    const ptr = this.free.pop();
    // The ledger reserved frameBytes for this page before it was read, so a frame is free.
    if (ptr === undefined) throw new CapacityError('BUDGET_EXCEEDED', `no page frame free for page ${page}: the ledger and the frames disagree`);
    this.byPage.set(page, ptr);
    if (this.byPage.size > this.highWater) this.highWater = this.byPage.size;
    return ptr;
  }
  release(page: number): void {
    const ptr = this.byPage.get(page);
    if (ptr === undefined) return;
    this.byPage.delete(page);
    this.free.push(ptr);
  }
  /** The byte address of a resident page's frame. */
  of(page: number): number {
    const ptr = this.byPage.get(page);
    if (ptr === undefined) throw new InternalError(`page ${page} is used but not resident (pin it first)`);
    return ptr;
  }
  bytes(page: number, offset: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, this.of(page) + offset, length);
  }
  get used(): number {
    return this.byPage.size;
  }
}
