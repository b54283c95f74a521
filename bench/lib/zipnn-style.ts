/**
 * A ZipNN-style lossless coder for float32 weights (the baseline of `npm run bench -- dedup`):
 * each value's 8 exponent bits go to one stream and its sign + 23 mantissa bits to three more
 * (ZipNN's byte grouping, with the sign moved so the exponent is byte-aligned), and every stream
 * is entropy-coded on its own (deflate from fflate; ZipNN uses Huffman). Exponents of trained
 * weights cluster in a few values, so their stream shrinks a lot; mantissas barely.
 */
import { deflateSync, inflateSync } from 'fflate';

/** Encodes little-endian float32 bytes; the result holds the four stream lengths, then the streams. */
export function zipnnEncode(bytes: Uint8Array): Uint8Array {
  const n = bytes.length >> 2;
  const streams = [new Uint8Array(n), new Uint8Array(n), new Uint8Array(n), new Uint8Array(n)];
  const [exp, hi, mid, lo] = streams;
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    const b3 = bytes[j + 3], b2 = bytes[j + 2];
    exp[i] = ((b3 & 0x7f) << 1) | (b2 >> 7);
    hi[i] = (b3 & 0x80) | (b2 & 0x7f);
    mid[i] = bytes[j + 1];
    lo[i] = bytes[j];
  }
  const packed = streams.map((s) => deflateSync(s, { level: 6 }));
  const out = new Uint8Array(16 + packed.reduce((a, p) => a + p.length, 0));
  const view = new DataView(out.buffer);
  let o = 16;
  packed.forEach((p, k) => {
    view.setUint32(4 * k, p.length, true);
    out.set(p, o);
    o += p.length;
  });
  return out;
}

/** Decodes what `zipnnEncode` wrote back to the float32 bytes (`length` bytes). */
export function zipnnDecode(enc: Uint8Array, length: number): Uint8Array {
  const n = length >> 2;
  const view = new DataView(enc.buffer, enc.byteOffset, enc.byteLength);
  let o = 16;
  const [exp, hi, mid, lo] = [0, 1, 2, 3].map((k) => {
    const len = view.getUint32(4 * k, true);
    const s = inflateSync(enc.subarray(o, o + len), { out: new Uint8Array(n) });
    o += len;
    return s;
  });
  const out = new Uint8Array(length);
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    out[j + 3] = (hi[i] & 0x80) | (exp[i] >> 1);
    out[j + 2] = ((exp[i] & 1) << 7) | (hi[i] & 0x7f);
    out[j + 1] = mid[i];
    out[j] = lo[i];
  }
  return out;
}
