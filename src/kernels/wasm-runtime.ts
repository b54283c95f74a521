/**
 * Loads a generated kernel module (src/kernels/wasm/<name>.ts, built from assembly/<name>.ts by
 * build/build.mjs) and gives typed access to its linear memory. Kernels are compiled with
 * `--runtime stub`: callers place inputs in memory they reserve once (`Arena`) and pass raw
 * pointers, so there is no copy through bindings and no GC churn per call.
 */
import { InternalError } from '../errors.ts';

export interface KernelInstance<E> {
  exports: E;
  memory: WebAssembly.Memory;
}

/** A generated module's embedded bytes (src/kernels/wasm/<name>.ts). */
export function decodeBase64(b64: string): Uint8Array {
  if (typeof Buffer !== 'undefined') return new Uint8Array(Buffer.from(b64, 'base64'));
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** What a kernel module imports (`--runtime stub`): an abort that throws, and a fixed seed. */
export function kernelImports(name: string): WebAssembly.Imports {
  return {
    env: {
      abort(_msg: number, _file: number, line: number, col: number) {
        throw new InternalError(`kernel ${name} aborted at ${line}:${col}`);
      },
      seed: () => 0x2545f491,
    },
  };
}

/** Instantiates a kernel from its embedded base64 bytes (async: browsers forbid large sync compiles). */
export async function instantiateKernel<E>(name: string, wasmBase64: string): Promise<KernelInstance<E>> {
  const bytes = decodeBase64(wasmBase64);
  const { instance } = (await WebAssembly.instantiate(bytes as BufferSource, kernelImports(name))) as WebAssembly.WebAssemblyInstantiatedSource;
  const exports = instance.exports as unknown as E & { memory: WebAssembly.Memory };
  return { exports, memory: exports.memory };
}

/**
 * A bump allocator over a kernel's linear memory, above the module's static data (`__heap_base`).
 * `reserve` grows memory once to the high-water mark; views must be re-taken after a reserve
 * because growing detaches the old ArrayBuffer.
 */
export class Arena {
  private readonly base: number;
  constructor(private readonly memory: WebAssembly.Memory, heapBase: number) {
    this.base = (heapBase + 63) & ~63;
  }
  /** Ensures `bytes` bytes are available from the arena base; returns the base pointer. */
  reserve(bytes: number): number {
    const need = this.base + bytes;
    const have = this.memory.buffer.byteLength;
    if (need > have) this.memory.grow(Math.ceil((need - have) / 65536));
    return this.base;
  }
  get buffer(): ArrayBuffer {
    return this.memory.buffer;
  }
}

/** Lays out several typed regions in one reservation, each 64-byte aligned (SIMD-friendly). */
export function layout(sizes: number[]): { offsets: number[]; total: number } {
  const offsets: number[] = [];
  let total = 0;
  for (const s of sizes) {
    offsets.push(total);
    total += (s + 63) & ~63;
  }
  return { offsets, total };
}
