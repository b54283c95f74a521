/**
 * One-vs-many block distances, used to verify LSH candidates: L2, max-abs, and netsDB's
 * similarity (the fraction of elements with |x - y| <= eps). Only the query's valid region counts
 * (a partial block's zero padding is excluded). `WasmBlockDistance` runs assembly/distance.ts;
 * the `*Reference` functions are its plain-TS twin, accumulating in the same order (so L2 agrees
 * bit for bit; max-abs and similarity are order-independent).
 */
import { InvalidArgumentError } from '../errors.ts';
import { Arena, instantiateKernel, layout } from './wasm-runtime.ts';
import { wasmBase64 } from './wasm/distance.ts';

/** netsDB's element tolerance for block similarity. */
export const NETSDB_SIMILARITY_EPS = 0.01;

/**
 * Where the real data of a block lies in its flat tile: `rows` rows of `rowLength` floats, row r
 * starting at r * rowStride. Build it with `blockRegion`.
 */
export interface BlockRegion {
  tileLength: number;
  rows: number;
  rowLength: number;
  rowStride: number;
}

/**
 * The region of a tile `tileRows` x `tileCols` whose top-left `validRows` x `validCols` is real
 * data (default: the whole tile). A full-width region is one contiguous run.
 */
export function blockRegion(tileRows: number, tileCols: number, validRows = tileRows, validCols = tileCols): BlockRegion {
  for (const [name, v] of [['tileRows', tileRows], ['tileCols', tileCols], ['validRows', validRows], ['validCols', validCols]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new InvalidArgumentError(`block region ${name} must be a non-negative integer, got ${v}.`);
  }
  if (validRows > tileRows || validCols > tileCols || tileRows * tileCols === 0) {
    throw new InvalidArgumentError(`block region ${validRows}x${validCols} does not fit a ${tileRows}x${tileCols} tile.`);
  }
  const tileLength = tileRows * tileCols;
  if (validCols === tileCols) return { tileLength, rows: 1, rowLength: validRows * tileCols, rowStride: tileLength };
  return { tileLength, rows: validRows, rowLength: validCols, rowStride: tileCols };
}

/** Candidates: one array of `count` tiles back to back, or one array per tile. */
export type CandidateBlocks = Float32Array | readonly Float32Array[];

function validate(query: Float32Array, candidates: CandidateBlocks, region: BlockRegion): number {
  const t = region.tileLength;
  if (region.rows * region.rowLength === 0) throw new InvalidArgumentError('block region has no valid elements: nothing to compare.');
  if ((region.rows - 1) * region.rowStride + region.rowLength > t) throw new InvalidArgumentError(`block region rows overrun the ${t}-float tile.`);
  if (query.length !== t) throw new InvalidArgumentError(`query block has ${query.length} floats, expected the tile length ${t}.`);
  if (Array.isArray(candidates)) {
    for (const c of candidates as readonly Float32Array[]) if (c.length !== t) throw new InvalidArgumentError(`candidate block has ${c.length} floats, expected the tile length ${t}.`);
    return candidates.length;
  }
  const flat = candidates as Float32Array;
  if (flat.length % t !== 0) throw new InvalidArgumentError(`candidate array holds ${flat.length} floats, not a whole number of ${t}-float tiles.`);
  return flat.length / t;
}

function tile(candidates: CandidateBlocks, i: number, t: number): Float32Array {
  return Array.isArray(candidates) ? (candidates as readonly Float32Array[])[i] : (candidates as Float32Array).subarray(i * t, (i + 1) * t);
}

const fround = Math.fround;

/** Twin of l2Many: two 4-lane accumulators over steps of 8, a step of 4 into the first, a scalar tail. */
export function l2Reference(query: Float32Array, candidates: CandidateBlocks, region: BlockRegion): Float32Array {
  const count = validate(query, candidates, region);
  const out = new Float32Array(count);
  const lanes = new Float32Array(8);
  for (let c = 0; c < count; c++) {
    const x = tile(candidates, c, region.tileLength);
    lanes.fill(0);
    let tail = 0;
    for (let r = 0; r < region.rows; r++) {
      const o = r * region.rowStride;
      let j = 0;
      for (; j + 8 <= region.rowLength; j += 8) {
        for (let l = 0; l < 8; l++) {
          const d = fround(query[o + j + l] - x[o + j + l]);
          lanes[l] = lanes[l] + fround(d * d);
        }
      }
      if (j + 4 <= region.rowLength) {
        for (let l = 0; l < 4; l++) {
          const d = fround(query[o + j + l] - x[o + j + l]);
          lanes[l] = lanes[l] + fround(d * d);
        }
        j += 4;
      }
      for (; j < region.rowLength; j++) {
        const d = fround(query[o + j] - x[o + j]);
        tail = fround(tail + fround(d * d));
      }
    }
    const m0 = fround(lanes[0] + lanes[4]), m1 = fround(lanes[1] + lanes[5]);
    const m2 = fround(lanes[2] + lanes[6]), m3 = fround(lanes[3] + lanes[7]);
    out[c] = Math.sqrt(fround(fround(fround(m0 + m1) + fround(m2 + m3)) + tail));
  }
  return out;
}

/** Twin of maxAbsMany. NaN differences are skipped (the kernel's pseudo-max); L2 and similarity expose them. */
export function maxAbsReference(query: Float32Array, candidates: CandidateBlocks, region: BlockRegion): Float32Array {
  const count = validate(query, candidates, region);
  const out = new Float32Array(count);
  for (let c = 0; c < count; c++) {
    const x = tile(candidates, c, region.tileLength);
    let m = 0;
    for (let r = 0; r < region.rows; r++) {
      const o = r * region.rowStride;
      for (let j = 0; j < region.rowLength; j++) {
        const d = Math.abs(fround(query[o + j] - x[o + j]));
        if (m < d) m = d; // the kernel's pseudo-max: a NaN difference is skipped
      }
    }
    out[c] = m;
  }
  return out;
}

export function similarityReference(query: Float32Array, candidates: CandidateBlocks, region: BlockRegion, eps = NETSDB_SIMILARITY_EPS): Float32Array {
  const count = validate(query, candidates, region);
  const e = fround(eps);
  const out = new Float32Array(count);
  const valid = region.rows * region.rowLength;
  for (let c = 0; c < count; c++) {
    const x = tile(candidates, c, region.tileLength);
    let n = 0;
    for (let r = 0; r < region.rows; r++) {
      const o = r * region.rowStride;
      for (let j = 0; j < region.rowLength; j++) if (Math.abs(fround(query[o + j] - x[o + j])) <= e) n++;
    }
    out[c] = n / valid;
  }
  return out;
}

/** The same three measures through one interface, so callers can pick the backend. */
export interface BlockDistance {
  l2(query: Float32Array, candidates: CandidateBlocks, region: BlockRegion): Float32Array;
  maxAbs(query: Float32Array, candidates: CandidateBlocks, region: BlockRegion): Float32Array;
  similarity(query: Float32Array, candidates: CandidateBlocks, region: BlockRegion, eps?: number): Float32Array;
}

export const referenceBlockDistance: BlockDistance = { l2: l2Reference, maxAbs: maxAbsReference, similarity: similarityReference };

interface DistanceExports {
  l2Many(query: number, cands: number, count: number, stride: number, rows: number, rowLen: number, rowStride: number, out: number): void;
  maxAbsMany(query: number, cands: number, count: number, stride: number, rows: number, rowLen: number, rowStride: number, out: number): void;
  similarityMany(query: number, cands: number, count: number, stride: number, rows: number, rowLen: number, rowStride: number, eps: number, out: number): void;
}

/** Bytes of candidate blocks copied into wasm memory per kernel call. */
const CHUNK_BYTES = 4 << 20;

/**
 * The wasm SIMD backend. Memory (query, a chunk of candidates, outputs) is reserved on the first
 * call for a tile length and reused; candidates are copied in chunks of at most CHUNK_BYTES.
 */
export class WasmBlockDistance implements BlockDistance {
  private tileLength = 0;
  private at = { query: 0, cands: 0, out: 0 };
  private chunkBlocks = 0;
  private constructor(private readonly k: DistanceExports, private readonly arena: Arena) {}

  static async create(): Promise<WasmBlockDistance> {
    const { exports, memory } = await instantiateKernel<DistanceExports>('distance', wasmBase64);
    return new WasmBlockDistance(exports, new Arena(memory, memory.buffer.byteLength));
  }

  l2(query: Float32Array, candidates: CandidateBlocks, region: BlockRegion): Float32Array {
    return this.run(query, candidates, region, (q, c, n, o) => this.k.l2Many(q, c, n, region.tileLength, region.rows, region.rowLength, region.rowStride, o));
  }
  maxAbs(query: Float32Array, candidates: CandidateBlocks, region: BlockRegion): Float32Array {
    return this.run(query, candidates, region, (q, c, n, o) => this.k.maxAbsMany(q, c, n, region.tileLength, region.rows, region.rowLength, region.rowStride, o));
  }
  similarity(query: Float32Array, candidates: CandidateBlocks, region: BlockRegion, eps = NETSDB_SIMILARITY_EPS): Float32Array {
    return this.run(query, candidates, region, (q, c, n, o) => this.k.similarityMany(q, c, n, region.tileLength, region.rows, region.rowLength, region.rowStride, eps, o));
  }

  private prepare(t: number): void {
    if (t === this.tileLength) return;
    this.chunkBlocks = Math.max(1, Math.floor(CHUNK_BYTES / (t * 4)));
    const { offsets, total } = layout([t * 4, this.chunkBlocks * t * 4, this.chunkBlocks * 4]);
    const base = this.arena.reserve(total);
    this.at = { query: base + offsets[0], cands: base + offsets[1], out: base + offsets[2] };
    this.tileLength = t;
  }

  private run(query: Float32Array, candidates: CandidateBlocks, region: BlockRegion, kernel: (q: number, c: number, n: number, o: number) => void): Float32Array {
    const count = validate(query, candidates, region);
    const t = region.tileLength;
    this.prepare(t);
    const buf = this.arena.buffer;
    new Float32Array(buf, this.at.query, t).set(query);
    const cands = new Float32Array(buf, this.at.cands, this.chunkBlocks * t);
    const outView = new Float32Array(buf, this.at.out, this.chunkBlocks);
    const result = new Float32Array(count);
    const list = Array.isArray(candidates) ? (candidates as readonly Float32Array[]) : null;
    for (let c0 = 0; c0 < count; c0 += this.chunkBlocks) {
      const n = Math.min(this.chunkBlocks, count - c0);
      if (list) for (let i = 0; i < n; i++) cands.set(list[c0 + i], i * t);
      else cands.set((candidates as Float32Array).subarray(c0 * t, (c0 + n) * t));
      kernel(this.at.query, this.at.cands, n, this.at.out);
      result.set(outView.subarray(0, n), c0);
    }
    return result;
  }
}

export async function createBlockDistance(backend: 'wasm' | 'ts' = 'wasm'): Promise<BlockDistance> {
  return backend === 'wasm' ? WasmBlockDistance.create() : referenceBlockDistance;
}
