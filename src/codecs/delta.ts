/**
 * Lossless near-duplicate blocks: a block stored as the XOR of its bits with a representative's,
 * byte planes split (byte k of every element together: sign/exponent bytes of close floats XOR to
 * long zero runs), then deflated with fflate. Decoding gives the original bytes exactly.
 */
import { deflateSync, inflateSync } from 'fflate';
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
  let planes: Uint8Array;
  try {
    planes = inflateSync(delta.subarray(1), { out: new Uint8Array(base.length) });
  } catch (e) {
    throw new CorruptionError('PAGE_CORRUPT', `a delta block cannot be decompressed (${(e as Error).message}).`);
  }
  if (!elemBytes || planes.length !== base.length || base.length % elemBytes) throw new CorruptionError('PAGE_CORRUPT', `a delta block does not match its base (${planes.length} vs ${base.length} bytes).`);
  const n = base.length / elemBytes;
  const out = new Uint8Array(base.length);
  for (let k = 0; k < elemBytes; k++) {
    const off = k * n;
    for (let i = 0, j = k; i < n; i++, j += elemBytes) out[j] = planes[off + i] ^ base[j];
  }
  return out;
}
