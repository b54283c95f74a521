import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPlaneKernel, createPlaneKernelRef } from '../src/kernels/planes.ts';
import { blockCodecReady, codedContentLength, decodeBlock, encodeBlock } from '../src/codecs/block-codec.ts';
import { zstdCompress, zstdDecompressExactly, zstdFrameContentSize, zstdReady } from '../src/codecs/zstd.ts';
import { mulberry32 } from '../src/random.ts';
import { codeOf } from './helpers.ts';

/** float32 weights of a trained-looking block (normal, small) and a close variant of it. */
function weights(n: number, seed: number, scale = 0.05): Float32Array {
  const rand = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  return out;
}
const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

test('WASM plane kernel equals its TS twin (split and merge, every element size, with and without a base)', async () => {
  const wasm = await createPlaneKernel();
  const ref = createPlaneKernelRef();
  const rand = mulberry32(3);
  for (const elemBytes of [1, 2, 4, 8]) {
    for (const n of [0, 1, 15, 16, 17, 64, 1000, 4096]) {
      const block = Uint8Array.from({ length: n * elemBytes }, () => Math.floor(rand() * 256));
      const base = Uint8Array.from({ length: n * elemBytes }, () => Math.floor(rand() * 256));
      for (const b of [undefined, base]) {
        for (const rotate of elemBytes === 4 ? [false, true] : [false]) {
          if (b && elemBytes === 4 && !rotate) {
            // The subtracted delta: same bytes from both kernels, and exact round trips.
            const s1 = wasm.split(block, b, 4, false, true);
            assert.equal(Array.from(s1), Array.from(ref.split(block, b, 4, false, true)), `subtract split x${n}`);
            for (const kernel of [wasm, ref]) assert.equal(Array.from(kernel.merge(s1, b, 4, false, new Uint8Array(block.length), true)), Array.from(block), `${kernel.kind} subtract x${n}`);
          }
          const p1 = wasm.split(block, b, elemBytes, rotate);
          const p2 = ref.split(block, b, elemBytes, rotate);
          assert.equal(Array.from(p1), Array.from(p2), `split ${elemBytes}x${n} base=${!!b} rotate=${rotate}`);
          const m1 = wasm.merge(p1, b, elemBytes, rotate, new Uint8Array(block.length));
          assert.equal(Array.from(m1), Array.from(ref.merge(p2, b, elemBytes, rotate, new Uint8Array(block.length))));
          assert.equal(Array.from(m1), Array.from(block), `round trip ${elemBytes}x${n}`);
          // One array per plane (a decoder's parts), a constant plane as its byte.
          const parts: (Uint8Array | number)[] = Array.from({ length: elemBytes }, (_, k) => p1.slice(k * n, (k + 1) * n));
          for (const kernel of [wasm, ref]) {
            assert.equal(Array.from(kernel.merge(parts, b, elemBytes, rotate, new Uint8Array(block.length))), Array.from(block), `${kernel.kind} parts ${elemBytes}x${n}`);
          }
          if (n > 0) {
            const filled = parts.slice();
            filled[0] = 7;
            const want = p1.slice();
            want.fill(7, 0, n);
            assert.equal(Array.from(wasm.merge(filled, b, elemBytes, rotate, new Uint8Array(block.length))), Array.from(ref.merge(want, b, elemBytes, rotate, new Uint8Array(block.length))));
          }
        }
      }
    }
  }
  // The rotated float32 split puts the whole exponent in plane 3: 1.0f (0x3f800000) -> 0x7f.
  const one = bytes(new Float32Array([1, -1, 2, 0.5]));
  const p = ref.split(one, undefined, 4, true);
  assert.equal(Array.from(p.subarray(12, 16)), [0x7f, 0x7f, 0x80, 0x7e]);
  assert.equal(Array.from(p.subarray(0, 4)), [0, 1, 0, 0]); // the sign in bit 0 of plane 0
});

test('zstd-planes round-trips blocks exactly and shrinks weights and close deltas', async () => {
  await blockCodecReady();
  const w = weights(4096, 11);
  const near = Float32Array.from(w, (x, i) => x + (i % 7 === 0 ? 1e-4 : 0));
  const alone = encodeBlock(bytes(w), undefined, 4);
  assert.ok(alone.length < w.byteLength * 0.9, `weights coded to ${alone.length} of ${w.byteLength}`);
  assert.equal(Array.from(decodeBlock(alone, undefined)), Array.from(bytes(w)));
  assert.is(codedContentLength(alone), w.byteLength);
  const delta = encodeBlock(bytes(near), bytes(w), 4);
  assert.ok(delta.length < w.byteLength * 0.3, `close delta coded to ${delta.length}`);
  assert.is(delta[2], 2 | 4, 'a float32 delta is the integer difference');
  // A fine-tune at a small step: every weight nudged by a few ulps either way; the integer
  // difference keeps the high planes zero where the XOR of a carry flips a run of bits.
  const nudged = new Float32Array(w.length);
  new Int32Array(nudged.buffer).set(Int32Array.from(new Int32Array(w.buffer), (x, i) => x + ((i * 7919) % 9) - 4));
  const sub = encodeBlock(bytes(nudged), bytes(w), 4);
  assert.equal(Array.from(decodeBlock(sub, bytes(w))), Array.from(bytes(nudged)));
  assert.ok(sub.length < w.byteLength * 0.2, `nudged delta coded to ${sub.length}`);
  // Sign flips, infinities and NaNs across the base: exact (the difference wraps mod 2^32).
  const odd32 = Float32Array.from([1, -1, Infinity, -Infinity, NaN, 0, -0, 3.4e38, -3.4e38, 1e-45, -1e-45, 0.5]);
  const odd32Base = Float32Array.from([-1, 1, -Infinity, NaN, 0, -0, Infinity, -3.4e38, 3.4e38, -1e-45, 1e-45, 0.5]);
  assert.equal(Array.from(decodeBlock(encodeBlock(bytes(odd32), bytes(odd32Base), 4), bytes(odd32Base))), Array.from(bytes(odd32)));
  assert.equal(Array.from(decodeBlock(delta, bytes(w))), Array.from(bytes(near)));
  // Constant planes (a zero block), odd element sizes, an empty block, NaN payloads kept as bits.
  const zeros = new Uint8Array(4096);
  assert.ok(encodeBlock(zeros, undefined, 4).length < 40);
  assert.equal(Array.from(decodeBlock(encodeBlock(zeros, undefined, 4), undefined)), Array.from(zeros));
  const odd = Uint8Array.from({ length: 999 }, (_, i) => (i * 37) & 0xff);
  assert.equal(Array.from(decodeBlock(encodeBlock(odd, undefined, 1), undefined)), Array.from(odd));
  assert.equal(Array.from(decodeBlock(encodeBlock(new Uint8Array(0), undefined, 4), undefined)), []);
  const nan = new Uint8Array([1, 0, 0xc0, 0x7f, 0xff, 0xff, 0xff, 0xff]);
  assert.equal(Array.from(decodeBlock(encodeBlock(nan, undefined, 4), undefined)), Array.from(nan));
  // Random bytes do not compress: every plane stays raw, so the coded block is raw + its header.
  const rand = mulberry32(5);
  const noise = Uint8Array.from({ length: 4096 }, () => Math.floor(rand() * 256));
  assert.is(encodeBlock(noise, undefined, 4).length, 4096 + 8 + 20);
});

test('a delta whose planes all compress is one joint zstd frame (format 2), exact, and checked', async () => {
  await blockCodecReady();
  const w = weights(4096, 21);
  // A third of the elements moved a little: every XOR plane is mostly zeros and compresses.
  const near = Float32Array.from(w, (x, i) => (i % 3 === 0 ? x * (1 + 1e-3 * ((i % 13) - 6)) : x));
  const coded = encodeBlock(bytes(near), bytes(w), 4);
  assert.is(coded[0], 2, 'format 2: a joint frame');
  const modes = [0, 1, 2, 3].map((k) => coded[8 + 5 * k]);
  assert.ok(modes.filter((m) => m === 3).length >= 2, `joint planes: modes ${modes}`);
  assert.equal(Array.from(decodeBlock(coded, bytes(w))), Array.from(bytes(near)));
  const separate = encodeBlock(bytes(near), bytes(w), 4, 1, 1 / 8, -1);
  assert.is(separate[0], 1, 'no joint frame when none is allowed');
  assert.ok(coded.length <= separate.length * (1 + 1 / 32));
  assert.equal(Array.from(decodeBlock(separate, bytes(w))), Array.from(bytes(near)));
  // A joint block relabelled format 1, a joint plane turned into an ordinary zstd one, a format-2
  // header over separate frames: each is refused.
  const relabelled = coded.slice();
  relabelled[0] = 1;
  assert.is(await codeOf(() => decodeBlock(relabelled, bytes(w))), 'PAGE_CORRUPT');
  const first = modes.indexOf(3);
  const demoted = coded.slice();
  demoted[8 + 5 * first] = 1;
  assert.is(await codeOf(() => decodeBlock(demoted, bytes(w))), 'PAGE_CORRUPT');
  const promoted = separate.slice();
  promoted[0] = 2;
  assert.is(await codeOf(() => decodeBlock(promoted, bytes(w))), 'PAGE_CORRUPT');
});

test('damaged or hostile coded blocks are PAGE_CORRUPT, never wrong bytes', async () => {
  await blockCodecReady();
  const w = bytes(weights(1024, 2));
  const good = encodeBlock(w, undefined, 4);
  assert.is(await codeOf(() => decodeBlock(good.subarray(0, good.length - 1), undefined)), 'PAGE_CORRUPT');
  assert.is(await codeOf(() => decodeBlock(new Uint8Array([...good, 0]), undefined)), 'PAGE_CORRUPT');
  assert.is(await codeOf(() => decodeBlock(good, w)), 'PAGE_CORRUPT'); // a base given to a non-delta
  const delta = encodeBlock(w, w, 4);
  assert.is(await codeOf(() => decodeBlock(delta, undefined)), 'PAGE_CORRUPT');
  assert.is(await codeOf(() => decodeBlock(delta, w.subarray(4))), 'PAGE_CORRUPT');
  const badFlags = good.slice();
  badFlags[2] = 4 | 1; // a subtracted delta that is no delta, rotated
  assert.is(await codeOf(() => decodeBlock(badFlags, undefined)), 'PAGE_CORRUPT');
  const badMode = good.slice();
  badMode[8] = 9;
  assert.is(await codeOf(() => decodeBlock(badMode, undefined)), 'PAGE_CORRUPT');
  // A zstd frame declaring more than its plane holds (a "zstd bomb") is refused before it is inflated.
  await zstdReady();
  const big = zstdCompress(new Uint8Array(1 << 20), 1);
  assert.is(zstdFrameContentSize(big), 1 << 20);
  assert.is(await codeOf(() => zstdDecompressExactly(big, 4096)), 'PAGE_CORRUPT');
  assert.is(await codeOf(() => zstdDecompressExactly(new Uint8Array([1, 2, 3, 4, 5, 6]), 6)), 'PAGE_CORRUPT');
  // A coded plane's frame swapped for one of another size: refused.
  const swapped = good.slice();
  const z = zstdCompress(new Uint8Array(1023).fill(7), 1);
  const planeLen = new DataView(good.buffer).getUint32(8 + 5 * 3 + 1, true);
  if (good[8 + 5 * 3] === 1 && z.length <= planeLen) {
    const at = good.length - planeLen;
    swapped.set(z, at);
    assert.is(await codeOf(() => decodeBlock(swapped, undefined)), 'PAGE_CORRUPT');
  }
});

test.run();
