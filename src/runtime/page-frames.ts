/**
 * Page frames: fixed pageSize slots inside the dense kernel's WebAssembly memory, so the
 * block-native kernels read weight tiles in place and tensors are assembled from the same bytes.
 * The memory is grown once and never again (views stay valid); a frame is taken when the page
 * pool reads a page and given back when the pool drops it. Frames are reused last-in first-out,
 * so the memory touched (RSS) stays at the most pages ever resident at once.
 */
import { CapacityError, InternalError } from '../errors.ts';

export class PageFrames {
  private readonly free: number[] = [];
  private readonly byPage = new Map<number, number>();
  /** The most frames ever in use at once: the memory they touched stays resident (wasm memory never shrinks). */
  highWater = 0;
  constructor(private readonly memory: WebAssembly.Memory, readonly base: number, readonly frameBytes: number, readonly count: number) {
    for (let i = count - 1; i >= 0; i--) this.free.push(base + i * frameBytes);
  }
  /** Copies `data` into a free frame for `page`; returns the frame's view. */
  place(page: number, data: Uint8Array): Uint8Array {
    if (data.length > this.frameBytes) throw new CapacityError('BUDGET_EXCEEDED', `page ${page} holds ${data.length} bytes, more than a ${this.frameBytes}-byte frame`);
    const ptr = this.free.pop();
    // The ledger reserved frameBytes for this page before it was read, so a frame is free.
    if (ptr === undefined) throw new CapacityError('BUDGET_EXCEEDED', `no page frame free for page ${page}: the ledger and the frames disagree`);
    this.byPage.set(page, ptr);
    if (this.byPage.size > this.highWater) this.highWater = this.byPage.size;
    const frame = new Uint8Array(this.memory.buffer, ptr, this.frameBytes);
    frame.set(data);
    return frame;
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
