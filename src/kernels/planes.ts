/**
 * Byte planes for the lossless block codec (src/codecs/block-codec.ts). `split` XORs a block with
 * its base (when given), rotates 4-byte elements left by one bit (when asked: float32's sign moves
 * to bit 0, so byte 3 is the whole exponent, ZipNN's grouping) and writes byte k of every element
 * to plane k (planes back to back, plane k at k * n); `merge` is the exact inverse. Two
 * implementations with one interface: `createPlaneKernelRef` (plain TS, the reference twin) and
 * the WASM SIMD kernel from assembly/planes.ts (`createPlaneKernel`); both give the same bytes.
 */
import { InternalError, InvalidArgumentError } from '../errors.ts';
import { Arena, instantiateKernel, layout } from './wasm-runtime.ts';
import { wasmBase64 } from './wasm/planes.ts';

export interface PlaneKernel {
  readonly kind: 'wasm' | 'ts';
  /**
   * `block` (n * elemBytes bytes) -> its planes, XORed with `base` first when given; with
   * `subtract` (4-byte elements, a base, no rotate), each element's 32-bit integer difference
   * from the base, zigzag-coded (sign to bit 0), instead: a float32 nudged by a small step moves
   * its bit pattern by a small integer, where the XOR may flip a run of mantissa bits.
   */
  split(block: Uint8Array, base: Uint8Array | undefined, elemBytes: number, rotate: boolean, subtract?: boolean): Uint8Array;
  /**
   * `planes` -> the block `split` was given (XORed with the same `base`), written into `out`.
   * The planes come back to back, or one by one (each n bytes, or a number: n copies of that
   * byte), so a decoder hands over what it decoded without gathering it first.
   */
  merge(planes: Planes, base: Uint8Array | undefined, elemBytes: number, rotate: boolean, out: Uint8Array, subtract?: boolean): Uint8Array;
}

/** Planes back to back, or one entry per plane: its n bytes, or the one byte it repeats. */
export type Planes = Uint8Array | readonly (Uint8Array | number)[];

/** The planes back to back in one array of `n * planes.length` bytes. */
function gather(planes: Planes, n: number, elemBytes: number): Uint8Array {
  if (planes instanceof Uint8Array) return planes;
  if (planes.length !== elemBytes) throw new InvalidArgumentError(`${planes.length} planes given for ${elemBytes}-byte elements.`);
  const all = new Uint8Array(n * elemBytes);
  planes.forEach((p, k) => {
    if (typeof p === 'number') all.fill(p, k * n, (k + 1) * n);
    else if (p.length !== n) throw new InvalidArgumentError(`plane ${k} holds ${p.length} bytes, not ${n}.`);
    else all.set(p, k * n);
  });
  return all;
}

function check(data: Uint8Array, base: Uint8Array | undefined, elemBytes: number, rotate: boolean, out?: Uint8Array, subtract = false): number {
  if (subtract && (elemBytes !== 4 || !base || rotate)) throw new InvalidArgumentError('a subtracted delta needs 4-byte elements, a base and no rotation.');
  if (!Number.isInteger(elemBytes) || elemBytes < 1 || elemBytes > 8) throw new InvalidArgumentError(`elements must be 1 to 8 bytes, got ${elemBytes}.`);
  if (data.length % elemBytes) throw new InvalidArgumentError(`a block of ${data.length} bytes is not a whole number of ${elemBytes}-byte elements.`);
  if (rotate && elemBytes !== 4) throw new InvalidArgumentError(`only 4-byte elements are rotated, got ${elemBytes}-byte ones.`);
  if (base && base.length !== data.length) throw new InvalidArgumentError(`a base of ${base.length} bytes does not match a block of ${data.length}.`);
  if (out && out.length !== data.length) throw new InvalidArgumentError(`the output holds ${out.length} bytes, the block needs ${data.length}.`);
  return data.length / elemBytes;
}

const rotl1 = (x: number) => ((x << 1) | (x >>> 31)) >>> 0;
const rotr1 = (x: number) => ((x >>> 1) | (x << 31)) >>> 0;

export function createPlaneKernelRef(): PlaneKernel {
  return {
    kind: 'ts',
    split(block, base, elemBytes, rotate, subtract = false) {
      const n = check(block, base, elemBytes, rotate, undefined, subtract);
      const planes = new Uint8Array(block.length);
      if (elemBytes === 4) {
        for (let i = 0, j = 0; i < n; i++, j += 4) {
          let x = (block[j] | (block[j + 1] << 8) | (block[j + 2] << 16) | (block[j + 3] << 24)) >>> 0;
          if (subtract) {
            const d = (x - (base![j] | (base![j + 1] << 8) | (base![j + 2] << 16) | (base![j + 3] << 24))) | 0;
            x = ((d << 1) ^ (d >> 31)) >>> 0;
          } else if (base) x = (x ^ (base[j] | (base[j + 1] << 8) | (base[j + 2] << 16) | (base[j + 3] << 24))) >>> 0;
          if (rotate) x = rotl1(x);
          planes[i] = x & 0xff;
          planes[n + i] = (x >>> 8) & 0xff;
          planes[2 * n + i] = (x >>> 16) & 0xff;
          planes[3 * n + i] = x >>> 24;
        }
        return planes;
      }
      for (let k = 0; k < elemBytes; k++) {
        for (let i = 0, j = k; i < n; i++, j += elemBytes) planes[k * n + i] = base ? block[j] ^ base[j] : block[j];
      }
      return planes;
    },
    merge(given, base, elemBytes, rotate, out, subtract = false) {
      const planes = gather(given, out.length / elemBytes, elemBytes);
      const n = check(planes, base, elemBytes, rotate, out, subtract);
      if (elemBytes === 4) {
        for (let i = 0, j = 0; i < n; i++, j += 4) {
          let x = (planes[i] | (planes[n + i] << 8) | (planes[2 * n + i] << 16) | (planes[3 * n + i] << 24)) >>> 0;
          if (rotate) x = rotr1(x);
          if (subtract) x = (((x >>> 1) ^ -(x & 1)) + (base![j] | (base![j + 1] << 8) | (base![j + 2] << 16) | (base![j + 3] << 24))) >>> 0;
          else if (base) x = (x ^ (base[j] | (base[j + 1] << 8) | (base[j + 2] << 16) | (base[j + 3] << 24))) >>> 0;
          out[j] = x & 0xff;
          out[j + 1] = (x >>> 8) & 0xff;
          out[j + 2] = (x >>> 16) & 0xff;
          out[j + 3] = x >>> 24;
        }
        return out;
      }
      for (let k = 0; k < elemBytes; k++) {
        for (let i = 0, j = k; i < n; i++, j += elemBytes) out[j] = base ? planes[k * n + i] ^ base[j] : planes[k * n + i];
      }
      return out;
    },
  };
}

interface PlanesExports {
  heapBase(): number;
  split(block: number, base: number, n: number, elemBytes: number, rotate: number, planes: number, subtract: number): void;
  merge(planes: number, base: number, n: number, elemBytes: number, rotate: number, block: number, subtract: number): void;
}

/** The WASM SIMD kernel. One instance owns its memory: not re-entrant, fine for the single-threaded callers. */
export async function createPlaneKernel(): Promise<PlaneKernel> {
  const { exports, memory } = await instantiateKernel<PlanesExports>('planes', wasmBase64);
  // A kernel built before `subtract` existed would ignore it (JS drops extra arguments) and
  // write XOR planes under a subtract flag: refuse a stale build outright.
  if (exports.split.length !== 7 || exports.merge.length !== 7) throw new InternalError('src/kernels/wasm/planes.ts is older than src/kernels/planes.ts: run `npm run build`.');
  const arena = new Arena(memory, exports.heapBase());
  const run = (fn: 'split' | 'merge', src: Planes, base: Uint8Array | undefined, elemBytes: number, rotate: boolean, out: Uint8Array, subtract: boolean) => {
    const length = out.length;
    const { offsets, total } = layout([length, base ? base.length : 0, length]);
    const at = arena.reserve(total);
    const buf = new Uint8Array(arena.buffer);
    if (src instanceof Uint8Array) buf.set(src, at + offsets[0]);
    else {
      // Each plane straight into wasm memory: no gathering copy (gather() checked the shapes in the twin).
      const n = length / elemBytes;
      if (src.length !== elemBytes) throw new InvalidArgumentError(`${src.length} planes given for ${elemBytes}-byte elements.`);
      src.forEach((p, k) => {
        if (typeof p === 'number') buf.fill(p, at + offsets[0] + k * n, at + offsets[0] + (k + 1) * n);
        else if (p.length !== n) throw new InvalidArgumentError(`plane ${k} holds ${p.length} bytes, not ${n}.`);
        else buf.set(p, at + offsets[0] + k * n);
      });
    }
    if (base) buf.set(base, at + offsets[1]);
    exports[fn](at + offsets[0], base ? at + offsets[1] : 0, length / elemBytes, elemBytes, rotate ? 1 : 0, at + offsets[2], subtract ? 1 : 0);
    out.set(new Uint8Array(arena.buffer, at + offsets[2], length));
    return out;
  };
  return {
    kind: 'wasm',
    split(block, base, elemBytes, rotate, subtract = false) {
      check(block, base, elemBytes, rotate, undefined, subtract);
      return run('split', block, base, elemBytes, rotate, new Uint8Array(block.length), subtract);
    },
    merge(planes, base, elemBytes, rotate, out, subtract = false) {
      check(out, base, elemBytes, rotate, planes instanceof Uint8Array ? planes : undefined, subtract);
      return run('merge', planes, base, elemBytes, rotate, out, subtract);
    },
  };
}
