/**
 * How a page is laid out wherever it is kept: a 32-byte header, then the payload.
 *   0 u32 magic 'TSPG' | 4 u32 page id | 8 u32 epoch | 12 u32 payload length | 16 u64 reserved
 *   24 u64 xxHash64 of header bytes 0..24 and the payload
 * The id and epoch inside the checksummed header catch misdirected writes and stale reads (a
 * slot reused by a later commit), not only flipped bits. Every backend stores sealed pages, so
 * the checksum travels with the bytes and is verified on every read.
 */
import { CorruptionError } from '../errors.ts';
import { hash64 } from '../hash.ts';

export const PAGE_HEADER_BYTES = 32;
const MAGIC = 0x47505354; // 'TSPG' little-endian

function checksum(sealed: Uint8Array, payloadLength: number): bigint {
  // Hash header prefix and payload as one contiguous range would need a copy; hash each and mix.
  const head = hash64(sealed.subarray(0, 24));
  const body = hash64(sealed.subarray(PAGE_HEADER_BYTES, PAGE_HEADER_BYTES + payloadLength), head);
  return body;
}

export function sealPage(id: number, epoch: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(PAGE_HEADER_BYTES + payload.length);
  frame.set(payload, PAGE_HEADER_BYTES);
  return sealFrame(id, epoch, frame, payload.length);
}

/**
 * Seals a page in place: `frame` holds the payload at PAGE_HEADER_BYTES, and the header is written
 * in front of it. Returns the sealed bytes (a view of `frame`). A writer that fills pages in such a
 * frame seals them without copying each page once more (bench store --part=large-models).
 */
export function sealFrame(id: number, epoch: number, frame: Uint8Array, payloadLength: number): Uint8Array {
  const sealed = frame.subarray(0, PAGE_HEADER_BYTES + payloadLength);
  const view = new DataView(sealed.buffer, sealed.byteOffset, PAGE_HEADER_BYTES);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, id, true);
  view.setUint32(8, epoch, true);
  view.setUint32(12, payloadLength, true);
  view.setBigUint64(16, 0n, true);
  view.setBigUint64(24, checksum(sealed, payloadLength), true);
  return sealed;
}

/** Verifies a sealed page and returns a view of its payload. */
export function openPage(id: number, sealed: Uint8Array, pageSize: number, epoch?: number): Uint8Array {
  const fail = (why: string): never => {
    throw new CorruptionError('PAGE_CORRUPT', `page ${id} is corrupt: ${why}. Run \`tessera verify\` to list the affected models.`, { pageId: id });
  };
  if (sealed.length < PAGE_HEADER_BYTES) fail(`only ${sealed.length} bytes stored, less than its header`);
  const view = new DataView(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (view.getUint32(0, true) !== MAGIC) fail('bad magic number');
  const length = view.getUint32(12, true);
  if (length > pageSize || PAGE_HEADER_BYTES + length > sealed.length) fail(`declared length ${length} exceeds what is stored`);
  if (view.getBigUint64(24, true) !== checksum(sealed, length)) fail('checksum mismatch');
  if (view.getUint32(4, true) !== id) fail(`it holds page ${view.getUint32(4, true)}`);
  if (epoch !== undefined && view.getUint32(8, true) !== epoch) fail(`written at epoch ${view.getUint32(8, true)}, catalog expects ${epoch}`);
  return sealed.subarray(PAGE_HEADER_BYTES, PAGE_HEADER_BYTES + length);
}
