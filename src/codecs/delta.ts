/**
 * Lossless near-duplicate blocks: a block stored as the XOR of its bits with a representative's,
 * byte planes split (byte k of every element together: sign/exponent bytes of close floats XOR to
 * long zero runs), then deflated with fflate. Decoding gives the original bytes exactly.
 */
import { deflateSync, Inflate } from 'fflate';
import { CorruptionError, InvalidArgumentError } from '../errors.ts';

/** The delta of `block` against `base` (same length), for elements of `elemBytes` bytes. */
export function encodeDelta(block: Uint8Array, base: Uint8Array, elemBytes: number): Uint8Array {
  if (block.length !== base.length) throw new InvalidArgumentError(`a delta needs equal lengths, got ${block.length} and ${base.length}`);
  const n = block.length / elemBytes;
  const planes = new Uint8Array(block.length);
  for (let k = 0; k < elemBytes; k++) {
    const off = k * n;
    for (let i = 0, j = k; i < n; i++, j += elemBytes) planes[off + i] = block[j] ^ base[j];
  }
  const packed = deflateSync(planes, { level: 6 });
  const out = new Uint8Array(packed.length + 1);
  out[0] = elemBytes;
  out.set(packed, 1);
  return out;
}

/** Reconstructs the block a delta was made from, given the same base. */
export function decodeDelta(delta: Uint8Array, base: Uint8Array): Uint8Array {
  const elemBytes = delta[0];
  const planes = inflateExactly(delta.subarray(1), base.length);
  if (!elemBytes || base.length % elemBytes) throw new CorruptionError('PAGE_CORRUPT', `a delta block does not match its base (${planes.length} vs ${base.length} bytes).`);
  const n = base.length / elemBytes;
  const out = new Uint8Array(base.length);
  for (let k = 0; k < elemBytes; k++) {
    const off = k * n;
    for (let i = 0, j = k; i < n; i++, j += elemBytes) out[j] = planes[off + i] ^ base[j];
  }
  return out;
}

/** Input fed to the inflater at a time: bounds the work a hostile stream costs before it is refused (deflate expands at most ~1032x). */
const INFLATE_STEP = 4096;

/**
 * Inflates a stream that must produce exactly `expected` bytes. fflate's one-shot inflate into a
 * fixed buffer silently drops what does not fit and keeps decoding it (a "deflate bomb" costs
 * seconds of CPU per block); here the stream is fed in steps and refused as soon as it overflows.
 */
function inflateExactly(data: Uint8Array, expected: number): Uint8Array {
  const out = new Uint8Array(expected);
  let n = 0;
  let over = false;
  let ended = false;
  const inflater = new Inflate((chunk, final) => {
    if (n + chunk.length > expected) over = true;
    else out.set(chunk, n);
    n += chunk.length;
    if (final) ended = true;
  });
  try {
    for (let at = 0; at < data.length && !over; at += INFLATE_STEP) inflater.push(data.subarray(at, at + INFLATE_STEP), at + INFLATE_STEP >= data.length);
  } catch (e) {
    throw new CorruptionError('PAGE_CORRUPT', `a delta block cannot be decompressed (${(e as Error).message}).`);
  }
  if (over) throw new CorruptionError('PAGE_CORRUPT', `a delta block inflates to more than the ${expected} bytes of its base: it is damaged or hostile.`);
  if (!ended || n !== expected) throw new CorruptionError('PAGE_CORRUPT', `a delta block inflates to ${n} bytes, its base has ${expected}${ended ? '' : ' (the stream is cut short)'}.`);
  return out;
}
