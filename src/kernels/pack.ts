/**
 * Equivalence classes for page packing: blocks needed by exactly the same set of tensors. Two
 * implementations with one signature: `classifyRef` (plain TS, the reference twin) and the WASM
 * kernel from assembly/pack.ts (`createClassifier`). Both give bit-identical output: each block's
 * tensor set is hashed into two 32-bit lanes, then grouped in an open-addressing table.
 * Output classes may (with ~2^-64 odds) merge two tensor sets on a hash collision: the caller
 * (src/pack/classes.ts) verifies and falls back to exact grouping.
 */
import { Arena, instantiateKernel, layout } from './wasm-runtime.ts';
import { wasmBase64 } from './wasm/pack.ts';

export interface ClassifyResult {
  /** classOf[b] = class id of block b, or -1 when no tensor needs it. Ids follow smallest block id. */
  classOf: Int32Array;
  nClasses: number;
}

/** (tensorStart[nTensors+1], tensorBlocks, nBlocks) -> classes. tensorBlocks must be < nBlocks, distinct per tensor. */
export type ClassifyFn = (tensorStart: Int32Array, tensorBlocks: Int32Array, nBlocks: number) => ClassifyResult;

export interface Classifier {
  readonly kind: 'wasm' | 'ts';
  readonly classify: ClassifyFn;
}

const rotl = (x: number, r: number): number => (x << r) | (x >>> (32 - r));
function fmix(h: number): number {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function tableBitsFor(nBlocks: number): number {
  let bits = 4;
  while (1 << bits < 2 * nBlocks) bits++;
  return bits;
}

export const classifyRef: ClassifyFn = (tensorStart, tensorBlocks, nBlocks) => {
  const nTensors = tensorStart.length - 1;
  const h1 = new Uint32Array(nBlocks);
  const h2 = new Uint32Array(nBlocks);
  const count = new Uint32Array(nBlocks);
  for (let t = 0; t < nTensors; t++) {
    const k1 = fmix(t * 2 + 1);
    const k2 = fmix(t * 2 + 2);
    for (let i = tensorStart[t]; i < tensorStart[t + 1]; i++) {
      const b = tensorBlocks[i];
      h1[b] = Math.imul(rotl(h1[b], 13) ^ k1, 0x9e3779b1);
      h2[b] = Math.imul(rotl(h2[b], 17) ^ k2, 0x85ebca77);
      count[b]++;
    }
  }
  const bits = tableBitsFor(nBlocks);
  const mask = (1 << bits) - 1;
  const table = new Int32Array(1 << bits).fill(-1);
  const cH1 = new Uint32Array(nBlocks);
  const cH2 = new Uint32Array(nBlocks);
  const cCount = new Uint32Array(nBlocks);
  const classOf = new Int32Array(nBlocks);
  let nc = 0;
  for (let b = 0; b < nBlocks; b++) {
    const c = count[b];
    if (c === 0) { classOf[b] = -1; continue; }
    const a1 = h1[b];
    const a2 = h2[b];
    let slot = fmix(a1 ^ Math.imul(c, 0x27d4eb2f)) & mask;
    for (;;) {
      const id = table[slot];
      if (id < 0) {
        table[slot] = nc;
        cH1[nc] = a1; cH2[nc] = a2; cCount[nc] = c;
        classOf[b] = nc++;
        break;
      }
      if (cH1[id] === a1 && cH2[id] === a2 && cCount[id] === c) { classOf[b] = id; break; }
      slot = (slot + 1) & mask;
    }
  }
  return { classOf, nClasses: nc };
};

export function createClassifierRef(): Classifier {
  return { kind: 'ts', classify: classifyRef };
}

interface PackExports {
  heapBase(): number;
  classify(
    tensorStart: number, nTensors: number, tensorBlocks: number, nBlocks: number,
    h1: number, h2: number, count: number, table: number, tableBits: number,
    classH1: number, classH2: number, classCount: number, classOf: number,
  ): number;
}

/** The WASM kernel. One instance owns its memory: not re-entrant, fine for the single-threaded callers. */
export async function createClassifier(): Promise<Classifier> {
  const { exports, memory } = await instantiateKernel<PackExports>('pack', wasmBase64);
  const arena = new Arena(memory, exports.heapBase());
  const classify: ClassifyFn = (tensorStart, tensorBlocks, nBlocks) => {
    const nTensors = tensorStart.length - 1;
    const bits = tableBitsFor(nBlocks);
    const nb4 = nBlocks * 4;
    const { offsets, total } = layout([
      tensorStart.byteLength, tensorBlocks.byteLength, nb4, nb4, nb4, (1 << bits) * 4, nb4, nb4, nb4, nb4,
    ]);
    const base = arena.reserve(total);
    const at = offsets.map((o) => base + o);
    const buf = arena.buffer;
    new Int32Array(buf, at[0], tensorStart.length).set(tensorStart);
    new Int32Array(buf, at[1], tensorBlocks.length).set(tensorBlocks);
    const nClasses = exports.classify(
      at[0], nTensors, at[1], nBlocks, at[2], at[3], at[4], at[5], bits, at[6], at[7], at[8], at[9],
    );
    const classOf = new Int32Array(nBlocks);
    classOf.set(new Int32Array(arena.buffer, at[9], nBlocks));
    return { classOf, nClasses };
  };
  return { kind: 'wasm', classify };
}
