// Ingest's hot loops over one linear memory (src/store/ingest-kernel.ts): cutting a tile out of a
// row-major tensor onto a page, and xxHash64 of bytes where they lie. The tensor (read from the
// file straight into this memory), the page frames and the tiles cut onto them share the memory,
// so nothing is copied in or out to hash it, and a tile row is one `memory.copy` rather than one
// call from JS into the engine (`copyWithin`, ~145 ns per 256-byte row: 29 ms of a 103 ms zoo
// ingest; `node --cpu-prof`, bench store --part=ingest). xxHash64 is the reference algorithm
// (Collet, XXH64): the same values as xxhash-wasm, which src/hash.ts uses for everything else.
// Raw-pointer interface (runtime stub); the caller lays out memory.

const P1: u64 = 0x9E3779B185EBCA87;
const P2: u64 = 0xC2B2AE3D27D4EB4F;
const P3: u64 = 0x165667B19E3779F9;
const P4: u64 = 0x85EBCA77C2B2AE63;
const P5: u64 = 0x27D4EB2F165667C5;

export function heapBase(): usize {
  return __heap_base;
}

@inline function round(acc: u64, input: u64): u64 {
  return rotl<u64>(acc + input * P2, 31) * P1;
}

@inline function merge(acc: u64, v: u64): u64 {
  return (acc ^ round(0, v)) * P1 + P4;
}

/** xxHash64 of `len` bytes at `ptr` with `seed`. */
export function xxh64(ptr: usize, len: usize, seed: u64): u64 {
  const end = ptr + len;
  let p = ptr;
  let h: u64;
  if (len >= 32) {
    let v1 = seed + P1 + P2;
    let v2 = seed + P2;
    let v3 = seed;
    let v4 = seed - P1;
    const limit = end - 32;
    do {
      v1 = round(v1, load<u64>(p));
      v2 = round(v2, load<u64>(p, 8));
      v3 = round(v3, load<u64>(p, 16));
      v4 = round(v4, load<u64>(p, 24));
      p += 32;
    } while (p <= limit);
    h = rotl<u64>(v1, 1) + rotl<u64>(v2, 7) + rotl<u64>(v3, 12) + rotl<u64>(v4, 18);
    h = merge(h, v1);
    h = merge(h, v2);
    h = merge(h, v3);
    h = merge(h, v4);
  } else {
    h = seed + P5;
  }
  h += <u64>len;
  while (p + 8 <= end) {
    h ^= round(0, load<u64>(p));
    h = rotl<u64>(h, 27) * P1 + P4;
    p += 8;
  }
  if (p + 4 <= end) {
    h ^= <u64>load<u32>(p) * P1;
    h = rotl<u64>(h, 23) * P2 + P3;
    p += 4;
  }
  while (p < end) {
    h ^= <u64>load<u8>(p) * P5;
    h = rotl<u64>(h, 11) * P1;
    p++;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

/** `rows` rows of `rowLen` bytes, `stride` bytes apart from `src`, packed into `dst` (a tile cut). */
export function cut(src: usize, stride: usize, rowLen: usize, rows: usize, dst: usize): void {
  if ((rowLen & 63) == 0) {
    // Whole 64-byte steps (a 64-wide float32 tile row is 256 bytes): vector moves, no call per row.
    for (let r: usize = 0, s = src, d = dst; r < rows; r++, s += stride) {
      for (let i: usize = 0; i < rowLen; i += 64, d += 64) {
        const a = v128.load(s + i), b = v128.load(s + i, 16), c = v128.load(s + i, 32), e = v128.load(s + i, 48);
        v128.store(d, a); v128.store(d, b, 16); v128.store(d, c, 32); v128.store(d, e, 48);
      }
    }
    return;
  }
  for (let r: usize = 0, s = src, d = dst; r < rows; r++, s += stride, d += rowLen) memory.copy(d, s, rowLen);
}
