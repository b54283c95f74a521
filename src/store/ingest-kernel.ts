/**
 * Ingest's linear memory (assembly/ingest.ts): the page writer's two page frames and the room it
 * lends for a weight (PageWriter.beside) live in one WebAssembly memory, so a weight is read from
 * the file straight into it, its tiles are cut onto the page by the kernel (one `memory.copy` per
 * tile row), and blocks and pages are hashed where they lie (src/hash.ts `hashInPlace`: the same
 * xxHash64 values, no copy into the hasher's own memory). On the zoo (12 files, 51 MB) cutting
 * through `copyWithin` and hashing through xxhash-wasm took ~40 ms of a ~105 ms batch
 * (bench store --part=ingest).
 *
 * Views into the memory are valid until it grows (`reserve`): growing detaches the old buffer.
 */
import { decodeBase64, kernelImports } from '../kernels/wasm-runtime.ts';
import { wasmBase64 } from '../kernels/wasm/ingest.ts';
import { hashInPlace } from '../hash.ts';
import { InternalError } from '../errors.ts';

interface IngestExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  xxh64(ptr: number, len: number, seed: bigint): bigint;
  cut(src: number, stride: number, rowLen: number, rows: number, dst: number): void;
}

const module = await WebAssembly.compile(decodeBase64(wasmBase64) as BufferSource);
const imports = kernelImports('ingest');

/** A memory handed back is kept for the next writer only up to this size (a wasm memory never shrinks). */
const KEEP_MAX_BYTES = 64 << 20;

/** wasm32: at most 65536 pages of 64 KiB. */
const MAX_BYTES = 2 ** 32 - 2 ** 16;

export class IngestMemory {
  private readonly kernel: IngestExports;
  /** Where the caller's bytes start (above the module's own data), 64-byte aligned. */
  readonly base: number;
  private readonly hash = (offset: number, length: number, seed: bigint) => BigInt.asUintN(64, this.kernel.xxh64(offset, length, seed));

  constructor() {
    this.kernel = new WebAssembly.Instance(module, imports).exports as unknown as IngestExports;
    this.base = (this.kernel.heapBase() + 63) & ~63;
    hashInPlace(this.kernel.memory.buffer, this.hash);
  }

  /**
   * A memory for one page writer: the one the last writer handed back, if any, else a new one. A
   * fresh WebAssembly memory per add (and its growth) is external memory to V8, and the
   * collections it set off were a large part of a small add's time (`--trace-gc`: "external memory
   * pressure"; PP-OCRv4 rec, 6 adds in one process: 4 full collections, 2 with the memory reused).
   */
  static take(): IngestMemory {
    const kept = IngestMemory.spare;
    IngestMemory.spare = null;
    return kept ?? new IngestMemory();
  }

  /** Hands this memory back for the next writer; a large one is left to the collector instead (it cannot shrink). */
  release(): void {
    if (this.kernel.memory.buffer.byteLength <= KEEP_MAX_BYTES) IngestMemory.spare = this;
  }

  private static spare: IngestMemory | null = null;

  get buffer(): ArrayBuffer {
    return this.kernel.memory.buffer;
  }

  /**
   * Makes `bytes` bytes from `base` available; false when a wasm32 memory cannot hold them (the
   * caller then uses ordinary memory for what does not fit). Growing detaches earlier views.
   */
  reserve(bytes: number): boolean {
    const need = this.base + bytes;
    const have = this.kernel.memory.buffer.byteLength;
    if (need <= have) return true;
    if (need > MAX_BYTES) return false;
    try {
      this.kernel.memory.grow(Math.ceil((need - have) / 65536));
    } catch {
      return false;
    }
    hashInPlace(this.kernel.memory.buffer, this.hash);
    return true;
  }

  /** Whether `view` lies in this memory (as it is now). */
  holds(view: Uint8Array): boolean {
    return view.buffer === this.kernel.memory.buffer;
  }

  /**
   * `rows` rows of `rowLen` bytes, `stride` apart from `src[from]`, packed into `out`: both views
   * of this memory (see holds).
   */
  cut(src: Uint8Array, from: number, stride: number, rowLen: number, rows: number, out: Uint8Array): void {
    if (!this.holds(src) || !this.holds(out) || out.length !== rows * rowLen || from + (rows - 1) * stride + rowLen > src.length) throw new InternalError('IngestMemory.cut outside its memory');
    this.kernel.cut(src.byteOffset + from, stride, rowLen, rows, out.byteOffset);
  }
}
