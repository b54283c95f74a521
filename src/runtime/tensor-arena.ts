/**
 * Tensor arena: the pooled weight tensors' buffers, carved out of one ArrayBuffer the size of the
 * budget, so a tensor's memory is given back to the arena when it is evicted and the next tensor
 * is assembled into it, instead of being left to the garbage collector. V8 frees dead
 * ArrayBuffers only after tens of MiB of them pile up, and that pile is RSS no ledger sees: on the
 * scale run (96 PP-OCRv4 rec variants at 5%, ~1,000 assemblies of ~0.5-3 MiB) the peak RSS
 * growth swung from 136 to 190 MiB between two runs of the same code, with when V8 collected. The
 * ArrayBuffer is zero-filled on demand by the system, so only the bytes ever handed out are
 * resident (`highWater`), and the ledger keeps what is live within the budget.
 *
 * Allocation is first fit over free ranges kept in address order (freed neighbours merge), each
 * range 64-byte aligned so any dtype's view lies aligned. A request that no free range fits
 * (fragmentation) is served by a buffer of its own and counted in `fallbacks`.
 */
import { InvalidArgumentError } from '../errors.ts';

const ALIGN = 64;
/** The largest arena made (an ArrayBuffer this size is accepted on every 64-bit engine). */
const MAX_ARENA_BYTES = 2 ** 31 - ALIGN;

export class TensorArena {
  private readonly memory: ArrayBuffer;
  /** Free ranges, ascending by offset, never adjacent (merged on free). */
  private readonly free: { offset: number; length: number }[];
  /** One past the furthest byte ever handed out: what of the arena is resident. */
  highWater = 0;
  /** Allocations that landed in bytes an earlier tensor had used. */
  reused = 0;
  /** Allocations no free range could fit, given a buffer of their own. */
  fallbacks = 0;

  constructor(bytes: number) {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new InvalidArgumentError(`a tensor arena needs a whole number of bytes, got ${bytes}`);
    const size = Math.min(MAX_ARENA_BYTES, Math.ceil(bytes / ALIGN) * ALIGN);
    this.memory = new ArrayBuffer(size);
    this.free = size > 0 ? [{ offset: 0, length: size }] : [];
  }

  get bytes(): number {
    return this.memory.byteLength;
  }

  /** A buffer of exactly `n` bytes (its contents are whatever was there: the caller overwrites it). */
  alloc(n: number): Uint8Array {
    const need = Math.max(ALIGN, Math.ceil(n / ALIGN) * ALIGN);
    for (let i = 0; i < this.free.length; i++) {
      const r = this.free[i];
      if (r.length < need) continue;
      const offset = r.offset;
      if (r.length === need) this.free.splice(i, 1);
      else (r.offset += need), (r.length -= need);
      if (offset < this.highWater) this.reused++;
      this.highWater = Math.max(this.highWater, offset + need);
      return new Uint8Array(this.memory, offset, n);
    }
    this.fallbacks++;
    return new Uint8Array(n);
  }

  /** Gives a buffer from alloc back (one of its own is left to the garbage collector). */
  release(buf: Uint8Array): void {
    if (buf.buffer !== this.memory) return;
    const offset = buf.byteOffset;
    const length = Math.max(ALIGN, Math.ceil(buf.byteLength / ALIGN) * ALIGN);
    // Binary search for the first free range after it, then merge with its neighbours.
    let lo = 0;
    let hi = this.free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.free[mid].offset < offset) lo = mid + 1;
      else hi = mid;
    }
    const prev = this.free[lo - 1];
    const next = this.free[lo];
    if (prev && prev.offset + prev.length > offset) throw new InvalidArgumentError(`arena bytes at ${offset} were given back twice`);
    if (next && offset + length > next.offset) throw new InvalidArgumentError(`arena bytes at ${offset} were given back twice`);
    if (prev && prev.offset + prev.length === offset) {
      prev.length += length;
      if (next && prev.offset + prev.length === next.offset) (prev.length += next.length), this.free.splice(lo, 1);
    } else if (next && offset + length === next.offset) (next.offset = offset), (next.length += length);
    else this.free.splice(lo, 0, { offset, length });
  }

  /** Bytes free in the arena (in all its ranges). */
  freeBytes(): number {
    return this.free.reduce((n, r) => n + r.length, 0);
  }
}
