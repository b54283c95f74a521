// Page-packing hot loop: groups blocks into equivalence classes (blocks needed by exactly the same
// set of tensors). Twin: src/kernels/pack.ts (bit-identical: same 2x32-bit hashes, same probing).
// Raw-pointer interface (runtime stub); every region is laid out by the caller.

@inline function rotl(x: u32, r: u32): u32 { return (x << r) | (x >>> (32 - r)); }
@inline function fmix(h: u32): u32 {
  h ^= h >>> 16; h *= 0x85ebca6b; h ^= h >>> 13; h *= 0xc2b2ae35; h ^= h >>> 16;
  return h;
}

/**
 * tensorStart: i32[nTensors+1]; tensorBlocks: i32[] (ids < nBlocks, distinct per tensor).
 * Scratch: h1, h2, count: u32[nBlocks]; table: i32[1 << tableBits] (tableBits: 2^bits >= 2*nBlocks);
 * classH1, classH2, classCount: u32[nBlocks]. Output: classOf: i32[nBlocks] (-1 = needed by none).
 * Class ids are numbered by their smallest block id. Returns the number of classes.
 * A hash collision can merge two classes; the caller verifies (count per tensor is 0 or all).
 */
export function classify(
  tensorStart: usize, nTensors: i32, tensorBlocks: usize, nBlocks: i32,
  h1: usize, h2: usize, count: usize, table: usize, tableBits: i32,
  classH1: usize, classH2: usize, classCount: usize, classOf: usize,
): i32 {
  const nb = <usize>nBlocks;
  memory.fill(h1, 0, nb << 2);
  memory.fill(h2, 0, nb << 2);
  memory.fill(count, 0, nb << 2);
  for (let t: i32 = 0; t < nTensors; t++) {
    const k1 = fmix(<u32>(t * 2 + 1));
    const k2 = fmix(<u32>(t * 2 + 2));
    const s = load<i32>(tensorStart + (<usize>t << 2));
    const e = load<i32>(tensorStart + (<usize>(t + 1) << 2));
    for (let i = s; i < e; i++) {
      const off = <usize>load<i32>(tensorBlocks + (<usize>i << 2)) << 2;
      store<u32>(h1 + off, (rotl(load<u32>(h1 + off), 13) ^ k1) * 0x9e3779b1);
      store<u32>(h2 + off, (rotl(load<u32>(h2 + off), 17) ^ k2) * 0x85ebca77);
      store<u32>(count + off, load<u32>(count + off) + 1);
    }
  }
  const size = <usize>1 << <usize>tableBits;
  const mask = <u32>(size - 1);
  memory.fill(table, 0xff, size << 2);
  let nc: i32 = 0;
  for (let b: usize = 0; b < nb; b++) {
    const off = b << 2;
    const c = load<u32>(count + off);
    if (c == 0) { store<i32>(classOf + off, -1); continue; }
    const a1 = load<u32>(h1 + off);
    const a2 = load<u32>(h2 + off);
    let slot = fmix(a1 ^ (c * 0x27d4eb2f)) & mask;
    while (true) {
      const id = load<i32>(table + (<usize>slot << 2));
      if (id < 0) {
        store<i32>(table + (<usize>slot << 2), nc);
        const co = <usize>nc << 2;
        store<u32>(classH1 + co, a1);
        store<u32>(classH2 + co, a2);
        store<u32>(classCount + co, c);
        store<i32>(classOf + off, nc);
        nc++;
        break;
      }
      const co = <usize>id << 2;
      if (load<u32>(classH1 + co) == a1 && load<u32>(classH2 + co) == a2 && load<u32>(classCount + co) == c) {
        store<i32>(classOf + off, id);
        break;
      }
      slot = (slot + 1) & mask;
    }
  }
  return nc;
}

/** First free byte above static data: where the caller's Arena starts. */
export function heapBase(): usize {
  return __heap_base;
}
