/**
 * The lossless block codec 'zstd-planes': a block (as a delta against its base, when it has one:
 * for 4-byte elements the integer difference of the bit patterns, zigzag-coded, else the XOR) is
 * cut into byte planes (byte k of every element together; 4-byte elements are first rotated left
 * by one bit, so float32's sign leaves the exponent byte, ZipNN's grouping), and each plane is
 * stored the cheapest way: as one repeated byte, zstd-compressed, or as it is. Exponent planes of
 * trained weights (and every plane of a close delta) shrink; mantissa planes are near-random and
 * stay raw, so decoding them costs a copy. The split and merge run in a WASM SIMD kernel
 * (assembly/planes.ts), zstd in zstd's own wasm (./zstd.ts).
 *
 * Stored layout (little-endian): [format = 1 or 2][elemBytes][flags: 1 rotated, 2 a delta
 * against a base (XOR), 4 the delta is the zigzag integer difference instead (4-byte elements)][0][content length u32], then per plane [mode u8: 0 raw, 1 zstd, 2 one repeated byte,
 * 3 in the joint frame][length u32], then the planes' bytes. Format 2 has a joint frame: the
 * planes of mode 3, back to back, in one zstd frame stored at the first of them (the others
 * store 0 bytes). One zstd call costs a fixed ~10-25 us here, so a delta whose four planes all
 * compress decodes in one call instead of four. The header makes a block self-checking: a decode that does not add up
 * is a CorruptionError, never wrong bytes. The catalog records which codec a block uses
 * (BlockEntry.codec), so stores written before it (raw blocks, deflate deltas) read as before.
 */
import { CorruptionError, InternalError, InvalidArgumentError } from '../errors.ts';
import { createPlaneKernel, type PlaneKernel } from '../kernels/planes.ts';
import { zstdCompress, zstdDecompressExactly, zstdReady } from './zstd.ts';

/** Codecs a block may be stored with (absent: raw, or a deflate delta, src/codecs/delta.ts). */
export const BLOCK_CODECS = ['zstd-planes'] as const;
export type BlockCodec = (typeof BLOCK_CODECS)[number];

/** zstd level of the planes: on the zoo's blocks level 1 was as small as 3 and 9, and faster. */
export const DEFAULT_ZSTD_LEVEL = 1;

/**
 * A plane is zstd-coded only when that saves at least this fraction of it; else it stays raw,
 * which costs one copy to decode (a zstd call costs a fixed ~10-25 us here on top of its bytes).
 * Re-coding the zoo MLP family's coded blocks (64x64 tiles) ad hoc: 1/32 stored 22.65 MiB and
 * decoded at ~205 MB/s per CPU second, 1/8 23.20 MiB at ~357 MB/s.
 */
export const MIN_PLANE_SAVING = 1 / 8;

const FORMAT = 1;
const FORMAT_JOINT = 2;
const FLAG_ROTATED = 1;
const FLAG_DELTA = 2;
const FLAG_SUBTRACT = 4;
const MODE_RAW = 0;
const MODE_ZSTD = 1;
const MODE_CONSTANT = 2;
const MODE_JOINT = 3;

/**
 * When two or more planes are zstd-coded, one joint frame of them replaces their frames if it is
 * at most this much larger (the zoo's CNN deltas: +1.7% on those planes, +0.4% of the family's
 * coded bytes, for ~half as many zstd calls).
 */
export const MAX_JOINT_GROWTH = 1 / 32;
const HEADER = 8;
const PLANE_HEADER = 5;

let kernel: PlaneKernel | undefined;
let readyPromise: Promise<void> | undefined;

/** Loads zstd and the plane kernel once; `encodeBlock` / `decodeBlock` need it resolved. */
export function blockCodecReady(): Promise<void> {
  readyPromise ??= Promise.all([
    zstdReady(),
    createPlaneKernel().then((k) => {
      kernel = k;
    }),
  ]).then(() => undefined);
  return readyPromise;
}

function planeKernel(): PlaneKernel {
  if (!kernel) throw new InternalError('the block codec is used before blockCodecReady() resolved (internal ordering bug).');
  return kernel;
}

function allSame(p: Uint8Array): boolean {
  const v = p[0];
  for (let i = 1; i < p.length; i++) if (p[i] !== v) return false;
  return true;
}

/**
 * `block` coded with 'zstd-planes', as a delta against `base` when given (same length).
 * `elemBytes`: the element size of the block's dtype (4 for float32; 1 leaves one plane).
 * `maxJointGrowth` < 0 never writes a joint frame.
 */
export function encodeBlock(block: Uint8Array, base: Uint8Array | undefined, elemBytes: number, level = DEFAULT_ZSTD_LEVEL, minPlaneSaving = MIN_PLANE_SAVING, maxJointGrowth = MAX_JOINT_GROWTH): Uint8Array {
  if (base && base.length !== block.length) throw new InvalidArgumentError(`a delta needs equal lengths, got ${block.length} and ${base.length}.`);
  if (block.length % elemBytes) throw new InvalidArgumentError(`a block of ${block.length} bytes is not a whole number of ${elemBytes}-byte elements.`);
  // A 4-byte delta is the zigzag integer difference from its base (the zoo's fine-tunes: 4-9%
  // smaller than the XOR on every family); other deltas are the XOR.
  const subtract = base !== undefined && elemBytes === 4;
  const rotate = elemBytes === 4 && !subtract;
  const n = block.length / elemBytes;
  const planes = planeKernel().split(block, base, elemBytes, rotate, subtract);
  const parts: { mode: number; data: Uint8Array }[] = [];
  for (let k = 0; k < elemBytes; k++) {
    const p = planes.subarray(k * n, (k + 1) * n);
    if (n > 0 && allSame(p)) {
      parts.push({ mode: MODE_CONSTANT, data: p.subarray(0, 1) });
      continue;
    }
    const z = n > 0 ? zstdCompress(p, level) : p;
    parts.push(n > 0 && z.length <= n * (1 - minPlaneSaving) ? { mode: MODE_ZSTD, data: z } : { mode: MODE_RAW, data: p });
  }
  const coded = parts.flatMap((p, k) => (p.mode === MODE_ZSTD ? [k] : []));
  let joint = false;
  if (coded.length >= 2) {
    const together = new Uint8Array(coded.length * n);
    coded.forEach((k, i) => together.set(planes.subarray(k * n, (k + 1) * n), i * n));
    const frame = zstdCompress(together, level);
    const separate = coded.reduce((a, k) => a + parts[k].data.length, 0);
    if (frame.length <= separate * (1 + maxJointGrowth)) {
      joint = true;
      coded.forEach((k, i) => (parts[k] = { mode: MODE_JOINT, data: i === 0 ? frame : new Uint8Array(0) }));
    }
  }
  const out = new Uint8Array(HEADER + PLANE_HEADER * elemBytes + parts.reduce((a, p) => a + p.data.length, 0));
  const view = new DataView(out.buffer);
  out[0] = joint ? FORMAT_JOINT : FORMAT;
  out[1] = elemBytes;
  out[2] = (rotate ? FLAG_ROTATED : 0) | (base ? FLAG_DELTA : 0) | (subtract ? FLAG_SUBTRACT : 0);
  view.setUint32(4, block.length, true);
  let at = HEADER + PLANE_HEADER * elemBytes;
  parts.forEach((p, k) => {
    out[HEADER + PLANE_HEADER * k] = p.mode;
    view.setUint32(HEADER + PLANE_HEADER * k + 1, p.data.length, true);
    out.set(p.data, at);
    at += p.data.length;
  });
  return out;
}

/** The content length a 'zstd-planes' block records (what decoding it gives). */
export function codedContentLength(stored: Uint8Array): number {
  if (stored.length < HEADER || (stored[0] !== FORMAT && stored[0] !== FORMAT_JOINT)) throw new CorruptionError('PAGE_CORRUPT', `a coded block has no valid header (${stored.length} bytes, format ${stored[0]}).`);
  return new DataView(stored.buffer, stored.byteOffset, stored.byteLength).getUint32(4, true);
}

/** Decodes a 'zstd-planes' block (with the content of its delta base, when it has one). */
export function decodeBlock(stored: Uint8Array, base: Uint8Array | undefined): Uint8Array {
  const length = codedContentLength(stored);
  const elemBytes = stored[1];
  const flags = stored[2];
  const fail = (why: string): never => {
    throw new CorruptionError('PAGE_CORRUPT', `a coded block is damaged: ${why}.`);
  };
  if (elemBytes < 1 || elemBytes > 8 || length % elemBytes) fail(`${length} bytes of ${elemBytes}-byte elements`);
  const subtract = (flags & FLAG_SUBTRACT) !== 0;
  if ((flags & ~(FLAG_ROTATED | FLAG_DELTA | FLAG_SUBTRACT)) || ((flags & FLAG_ROTATED) && elemBytes !== 4)) fail(`unknown flags ${flags}`);
  if (subtract && (elemBytes !== 4 || !(flags & FLAG_DELTA) || (flags & FLAG_ROTATED))) fail(`flags ${flags} for ${elemBytes}-byte elements`);
  const isDelta = (flags & FLAG_DELTA) !== 0;
  if (isDelta !== (base !== undefined)) fail(isDelta ? 'it is a delta but no base was given' : 'it is no delta but a base was given');
  if (base && base.length !== length) fail(`its base holds ${base.length} bytes, the block ${length}`);
  const n = length / elemBytes;
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  let at = HEADER + PLANE_HEADER * elemBytes;
  if (at > stored.length) fail('its plane table is cut short');
  const jointPlanes = stored[0] === FORMAT_JOINT ? Array.from({ length: elemBytes }, (_, k) => stored[HEADER + PLANE_HEADER * k]).filter((m) => m === MODE_JOINT).length : 0;
  if (stored[0] === FORMAT_JOINT && jointPlanes < 2) fail(`a joint frame of ${jointPlanes} planes`);
  const planes: (Uint8Array | number)[] = [];
  let jointSeen = 0;
  let jointData: Uint8Array | undefined;
  for (let k = 0; k < elemBytes; k++) {
    const mode = stored[HEADER + PLANE_HEADER * k];
    const len = view.getUint32(HEADER + PLANE_HEADER * k + 1, true);
    if (at + len > stored.length) fail(`plane ${k} runs past the block`);
    const data = stored.subarray(at, at + len);
    at += len;
    if (mode === MODE_RAW) {
      if (len !== n) fail(`raw plane ${k} holds ${len} bytes, not ${n}`);
      planes.push(data);
    } else if (mode === MODE_CONSTANT) {
      if (len !== 1) fail(`constant plane ${k} holds ${len} bytes`);
      planes.push(data[0]);
    } else if (mode === MODE_ZSTD) {
      planes.push(zstdDecompressExactly(data, n));
    } else if (mode === MODE_JOINT && jointPlanes) {
      // The first joint plane stores the frame of them all; the others store nothing.
      if ((jointSeen === 0) !== (len > 0)) fail(`joint plane ${k} holds ${len} bytes`);
      jointData ??= zstdDecompressExactly(data, jointPlanes * n);
      planes.push(jointData.subarray(jointSeen * n, (jointSeen + 1) * n));
      jointSeen++;
    } else fail(`plane ${k} has unknown mode ${mode}`);
  }
  if (at !== stored.length) fail(`${stored.length - at} bytes follow its planes`);
  return planeKernel().merge(planes, base, elemBytes, (flags & FLAG_ROTATED) !== 0, new Uint8Array(length), subtract);
}
