// Byte planes of a block for the lossless block codec (src/codecs/block-codec.ts): `split` XORs a
// block with its base (optional), rotates each 32-bit word left by one (float32: sign to bit 0, so
// byte 3 is the whole exponent, as ZipNN groups it) and writes byte k of every element to plane k;
// `merge` is its exact inverse. Or, for 4-byte elements, the integer difference from the base,
// zigzag-coded, in place of the XOR. Twin: src/kernels/planes.ts (same bytes out).
// Raw-pointer interface (runtime stub); every region is laid out by the caller. Planes are one
// region of n * elemBytes bytes, plane k at k * n.

// 4x4 byte transpose inside one vector: word j's byte k <-> group k's byte j (its own inverse).
@inline function transposeBytes(v: v128): v128 {
  return i8x16.shuffle(v, v, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
}

@inline function rotl1(v: v128): v128 { return v128.or(i32x4.shl(v, 1), i32x4.shr_u(v, 31)); }
// The difference of two words as a zigzag integer (sign to bit 0: small differences of either sign
// have zero high bytes), and its inverse.
@inline function zigzagSub(a: v128, b: v128): v128 {
  const d = i32x4.sub(a, b);
  return v128.xor(i32x4.shl(d, 1), i32x4.shr_s(d, 31));
}
@inline function unzigzagAdd(z: v128, b: v128): v128 {
  return i32x4.add(v128.xor(i32x4.shr_u(z, 1), i32x4.neg(v128.and(z, i32x4.splat(1)))), b);
}
@inline function rotr1(v: v128): v128 { return v128.or(i32x4.shr_u(v, 1), i32x4.shl(v, 31)); }

/**
 * block (n * elemBytes bytes), base (same size, or 0 for none) -> planes (n * elemBytes bytes).
 * rotate: 1 to rotate 4-byte elements left by one bit first (elemBytes must be 4).
 * subtract: 1 to take each 4-byte element's integer difference from its base, zigzag-coded,
 * instead of the XOR (elemBytes 4, a base, no rotate).
 */
export function split(block: usize, base: usize, n: i32, elemBytes: i32, rotate: i32, planes: usize, subtract: i32): void {
  const nn = <usize>n;
  let i: usize = 0;
  if (elemBytes == 4) {
    // 16 elements (64 bytes) per step: four words-vectors become four plane-vectors of 16 bytes.
    for (; i + 16 <= nn; i += 16) {
      const at = block + (i << 2);
      const bt = base + (i << 2);
      let a = v128.load(at), b = v128.load(at, 16), c = v128.load(at, 32), d = v128.load(at, 48);
      if (subtract) {
        a = zigzagSub(a, v128.load(bt)); b = zigzagSub(b, v128.load(bt, 16));
        c = zigzagSub(c, v128.load(bt, 32)); d = zigzagSub(d, v128.load(bt, 48));
      } else if (base) {
        a = v128.xor(a, v128.load(bt)); b = v128.xor(b, v128.load(bt, 16));
        c = v128.xor(c, v128.load(bt, 32)); d = v128.xor(d, v128.load(bt, 48));
      }
      if (rotate) { a = rotl1(a); b = rotl1(b); c = rotl1(c); d = rotl1(d); }
      a = transposeBytes(a); b = transposeBytes(b); c = transposeBytes(c); d = transposeBytes(d);
      // Lane k of each vector holds plane k's four bytes: transpose the 4x4 matrix of 32-bit lanes.
      const t0 = v128.shuffle<i32>(a, b, 0, 4, 1, 5), t1 = v128.shuffle<i32>(a, b, 2, 6, 3, 7);
      const t2 = v128.shuffle<i32>(c, d, 0, 4, 1, 5), t3 = v128.shuffle<i32>(c, d, 2, 6, 3, 7);
      v128.store(planes + i, v128.shuffle<i64>(t0, t2, 0, 2));
      v128.store(planes + nn + i, v128.shuffle<i64>(t0, t2, 1, 3));
      v128.store(planes + 2 * nn + i, v128.shuffle<i64>(t1, t3, 0, 2));
      v128.store(planes + 3 * nn + i, v128.shuffle<i64>(t1, t3, 1, 3));
    }
    for (; i < nn; i++) {
      let x = load<u32>(block + (i << 2));
      if (subtract) {
        const d = x - load<u32>(base + (i << 2));
        x = (d << 1) ^ <u32>(<i32>d >> 31);
      } else if (base) x ^= load<u32>(base + (i << 2));
      if (rotate) x = rotl<u32>(x, 1);
      store<u8>(planes + i, <u8>x);
      store<u8>(planes + nn + i, <u8>(x >>> 8));
      store<u8>(planes + 2 * nn + i, <u8>(x >>> 16));
      store<u8>(planes + 3 * nn + i, <u8>(x >>> 24));
    }
    return;
  }
  const es = <usize>elemBytes;
  for (; i < nn; i++) {
    for (let k: usize = 0; k < es; k++) {
      let x = load<u8>(block + i * es + k);
      if (base) x ^= load<u8>(base + i * es + k);
      store<u8>(planes + k * nn + i, x);
    }
  }
}

/** The inverse of `split`: planes, base (or 0) -> block. */
export function merge(planes: usize, base: usize, n: i32, elemBytes: i32, rotate: i32, block: usize, subtract: i32): void {
  const nn = <usize>n;
  let i: usize = 0;
  if (elemBytes == 4) {
    for (; i + 16 <= nn; i += 16) {
      const p0 = v128.load(planes + i), p1 = v128.load(planes + nn + i);
      const p2 = v128.load(planes + 2 * nn + i), p3 = v128.load(planes + 3 * nn + i);
      const t0 = v128.shuffle<i32>(p0, p1, 0, 4, 1, 5), t1 = v128.shuffle<i32>(p0, p1, 2, 6, 3, 7);
      const t2 = v128.shuffle<i32>(p2, p3, 0, 4, 1, 5), t3 = v128.shuffle<i32>(p2, p3, 2, 6, 3, 7);
      let a = transposeBytes(v128.shuffle<i64>(t0, t2, 0, 2));
      let b = transposeBytes(v128.shuffle<i64>(t0, t2, 1, 3));
      let c = transposeBytes(v128.shuffle<i64>(t1, t3, 0, 2));
      let d = transposeBytes(v128.shuffle<i64>(t1, t3, 1, 3));
      if (rotate) { a = rotr1(a); b = rotr1(b); c = rotr1(c); d = rotr1(d); }
      const at = block + (i << 2);
      const bt = base + (i << 2);
      if (subtract) {
        a = unzigzagAdd(a, v128.load(bt)); b = unzigzagAdd(b, v128.load(bt, 16));
        c = unzigzagAdd(c, v128.load(bt, 32)); d = unzigzagAdd(d, v128.load(bt, 48));
      } else if (base) {
        a = v128.xor(a, v128.load(bt)); b = v128.xor(b, v128.load(bt, 16));
        c = v128.xor(c, v128.load(bt, 32)); d = v128.xor(d, v128.load(bt, 48));
      }
      v128.store(at, a); v128.store(at, b, 16); v128.store(at, c, 32); v128.store(at, d, 48);
    }
    for (; i < nn; i++) {
      let x = <u32>load<u8>(planes + i) | (<u32>load<u8>(planes + nn + i) << 8) |
        (<u32>load<u8>(planes + 2 * nn + i) << 16) | (<u32>load<u8>(planes + 3 * nn + i) << 24);
      if (rotate) x = rotr<u32>(x, 1);
      if (subtract) x = ((x >>> 1) ^ (0 - (x & 1))) + load<u32>(base + (i << 2));
      else if (base) x ^= load<u32>(base + (i << 2));
      store<u32>(block + (i << 2), x);
    }
    return;
  }
  const es = <usize>elemBytes;
  for (; i < nn; i++) {
    for (let k: usize = 0; k < es; k++) {
      let x = load<u8>(planes + k * nn + i);
      if (base) x ^= load<u8>(base + i * es + k);
      store<u8>(block + i * es + k, x);
    }
  }
}

/** First free byte above static data: where the caller's Arena starts. */
export function heapBase(): usize {
  return __heap_base;
}
