/**
 * LSH hashing of blocks (flat f32 vectors of the tile length, zero padding included): the wasm
 * SIMD kernels of assembly/lsh.ts behind `WasmLshHasher`, and `ReferenceLshHasher`, their plain-TS
 * twin, which performs the same f32 operations in the same order, so both give bit-identical
 * band hashes. All randomness (projections, sign flips, offsets) is drawn here in TS from one
 * seeded generator and copied into wasm memory once, so both backends see the same numbers.
 *
 * Families:
 * - `pstable`: netsDB's p-stable L2 LSH, h(v) = floor((a.v + b) / r), a ~ N(0, I), b ~ U[0, r);
 *   dense projections, O(dim) per hash. netsDB: r = 0.09, 1 hash per band, 90 bands.
 * - `pstable-fht`: the same quantisation over structured projections y = H D_R ... H D_1 v
 *   (fast Walsh-Hadamard transform, random sign diagonals), scaled so each coordinate is
 *   distributed like a.v: one O(n log n) rotation yields n projections.
 * - `simhash`: sign random projections over the same rotation, `hashesPerBand` bits per band.
 */
import { InvalidArgumentError } from '../errors.ts';
import { Arena, instantiateKernel, layout } from './wasm-runtime.ts';
import { wasmBase64 } from './wasm/lsh.ts';

export type LshFamily = 'pstable' | 'pstable-fht' | 'simhash';
export const LSH_FAMILIES: readonly LshFamily[] = ['pstable', 'pstable-fht', 'simhash'];

export interface LshParams {
  family: LshFamily;
  /** Floats per block (the tile length, padding included). */
  dim: number;
  /** Number of bands (hash tables); two blocks are candidates when they agree in one band. */
  bands: number;
  seed: number;
  /** p-stable families: projections combined into one band hash (netsDB: 1). simhash: bits per band (1..32). */
  hashesPerBand?: number;
  /** p-stable families: bucket width r (netsDB: 0.09). */
  bucketWidth?: number;
  /** FHT families: H D rounds per rotation (default: simhash 2, pstable-fht 3). */
  rounds?: number;
}

/** netsDB's LSH settings (docs/PAPER.md#1-duplicate-detection). */
export const NETSDB_LSH = { family: 'pstable', bands: 90, hashesPerBand: 1, bucketWidth: 0.09 } as const;

export interface ResolvedLshParams extends Required<LshParams> {
  /** dim rounded up to a multiple of 4 (SIMD width). */
  dimPadded: number;
  /** FHT length: the power of two >= dimPadded (and >= 4). */
  fhtLength: number;
  /** Projections used per block: bands * hashesPerBand. */
  projections: number;
  /** FHT families: rotations needed to produce `projections` coordinates. */
  rotations: number;
  /** pstable-fht: factor making a rotated coordinate distributed like a.v with a ~ N(0, I). */
  scale: number;
}

function positiveInt(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 1 || v > max) throw new InvalidArgumentError(`LSH ${name} must be an integer in [1, ${max}], got ${v}.`);
}

export function resolveLshParams(p: LshParams): ResolvedLshParams {
  if (!LSH_FAMILIES.includes(p.family)) throw new InvalidArgumentError(`unknown LSH family "${p.family}": use one of ${LSH_FAMILIES.join(', ')}.`);
  positiveInt('dim', p.dim, 1 << 24);
  positiveInt('bands', p.bands, 4096);
  if (!Number.isInteger(p.seed)) throw new InvalidArgumentError(`LSH seed must be an integer, got ${p.seed}.`);
  const simhash = p.family === 'simhash';
  // SimHash: 24 bits per band keeps unrelated blocks apart (2^-24 per band) in stores of 10^5+
  // blocks; 16 bits made candidates per block grow linearly from 10^4 blocks on (bench/kernels.ts).
  const hashesPerBand = p.hashesPerBand ?? (simhash ? 24 : 1);
  positiveInt('hashesPerBand', hashesPerBand, simhash ? 32 : 64);
  const bucketWidth = p.bucketWidth ?? NETSDB_LSH.bucketWidth;
  if (!(bucketWidth > 0) || !Number.isFinite(bucketWidth)) throw new InvalidArgumentError(`LSH bucketWidth must be a positive number, got ${bucketWidth}.`);
  // SimHash only needs well-spread directions: 2 rounds (measured: same recall, 1.4x faster);
  // pstable-fht needs its coordinates close to Gaussian: 3.
  const rounds = p.rounds ?? (simhash ? 2 : 3);
  positiveInt('rounds', rounds, 8);
  const dimPadded = (p.dim + 3) & ~3;
  let fhtLength = 4;
  while (fhtLength < dimPadded) fhtLength *= 2;
  const projections = p.bands * hashesPerBand;
  const rotations = p.family === 'pstable' ? 0 : Math.ceil(projections / fhtLength);
  return {
    family: p.family, dim: p.dim, bands: p.bands, seed: p.seed | 0, hashesPerBand, bucketWidth: Math.fround(bucketWidth), rounds,
    dimPadded, fhtLength, projections, rotations,
    scale: p.family === 'pstable-fht' ? Math.fround(Math.pow(fhtLength, -(rounds - 1) / 2)) : 1,
  };
}

/** xoshiro128** seeded through splitmix32: 32-bit integer ops only, identical everywhere. */
export class Xoshiro128 {
  private s0: number; private s1: number; private s2: number; private s3: number;
  constructor(seed: number) {
    let x = seed | 0;
    const next = () => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) | 0;
    };
    this.s0 = next(); this.s1 = next(); this.s2 = next(); this.s3 = next();
  }
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0; this.s3 ^= this.s1; this.s1 ^= this.s2; this.s0 ^= this.s3;
    this.s2 ^= t; this.s3 = rotl(this.s3, 11);
    return r;
  }
  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }
  /** Fills `out` with N(0, 1) draws (Box-Muller, rounded to f32). */
  gaussians(out: Float32Array): Float32Array {
    for (let i = 0; i < out.length; i += 2) {
      const u1 = 1 - this.uniform(); // (0, 1]: log is finite
      const u2 = this.uniform();
      const rad = Math.sqrt(-2 * Math.log(u1));
      out[i] = rad * Math.cos(2 * Math.PI * u2);
      if (i + 1 < out.length) out[i + 1] = rad * Math.sin(2 * Math.PI * u2);
    }
    return out;
  }
}
function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** The random numbers a hasher needs; drawn once per parameter set and shared. */
export interface LshRandom {
  /** pstable: projections x dimPadded Gaussian rows (padding columns zero). FHT families: rotations x rounds x fhtLength signs (+-1). */
  matrix: Float32Array;
  /** p-stable families: one offset in [0, r) per projection; empty for simhash. */
  offsets: Float32Array;
}

const randomCache = new Map<string, LshRandom>();

export function lshRandom(p: ResolvedLshParams): LshRandom {
  const key = `${p.family}/${p.dim}/${p.projections}/${p.seed}/${p.bucketWidth}/${p.rounds}`;
  const hit = randomCache.get(key);
  if (hit) return hit;
  const rng = new Xoshiro128(p.seed);
  let matrix: Float32Array;
  if (p.family === 'pstable') {
    matrix = new Float32Array(p.projections * p.dimPadded);
    const row = new Float32Array(p.dim);
    for (let r = 0; r < p.projections; r++) matrix.set(rng.gaussians(row), r * p.dimPadded);
  } else {
    matrix = new Float32Array(p.rotations * p.rounds * p.fhtLength);
    for (let i = 0; i < matrix.length; i++) matrix[i] = rng.nextU32() & 1 ? 1 : -1;
  }
  const offsets = new Float32Array(p.family === 'simhash' ? 0 : p.projections);
  for (let i = 0; i < offsets.length; i++) offsets[i] = Math.fround(rng.uniform() * p.bucketWidth);
  const random = { matrix, offsets };
  randomCache.set(key, random);
  return random;
}

/** Hashes blocks into `bands` i32 values each (simhash: the band's bits as an i32 pattern). */
export interface BlockHasher {
  readonly params: ResolvedLshParams;
  /** `vectors` holds `count` blocks of `params.dim` floats; returns count x bands hashes. */
  hash(vectors: Float32Array, count?: number): Int32Array;
}

function blockCount(p: ResolvedLshParams, vectors: Float32Array, count?: number): number {
  const n = count ?? vectors.length / p.dim;
  if (!Number.isInteger(n) || n < 0 || n * p.dim > vectors.length) {
    throw new InvalidArgumentError(`LSH input holds ${vectors.length} floats: expected a whole number of blocks of ${p.dim} floats${count !== undefined ? ` (count ${count})` : ''}.`);
  }
  return n;
}

const fround = Math.fround;
const I32_MAX_F32 = 2147483520;
const I32_MIN_F32 = -2147483648;

/** The plain-TS twin of assembly/lsh.ts. */
export class ReferenceLshHasher implements BlockHasher {
  readonly params: ResolvedLshParams;
  private readonly random: LshRandom;
  private readonly x: Float32Array;
  private readonly y: Float32Array;
  private readonly proj: Float32Array;
  constructor(params: LshParams) {
    this.params = resolveLshParams(params);
    this.random = lshRandom(this.params);
    this.x = new Float32Array(this.params.dimPadded);
    this.y = new Float32Array(this.params.fhtLength);
    this.proj = new Float32Array(this.params.projections);
  }

  hash(vectors: Float32Array, count?: number): Int32Array {
    const p = this.params;
    const n = blockCount(p, vectors, count);
    const out = new Int32Array(n * p.bands);
    for (let b = 0; b < n; b++) {
      this.x.set(vectors.subarray(b * p.dim, (b + 1) * p.dim));
      if (p.family === 'pstable') this.projectDense();
      else this.projectFht();
      if (p.family === 'simhash') this.quantizeSign(out, b * p.bands);
      else this.quantizePStable(out, b * p.bands);
    }
    return out;
  }

  private projectDense(): void {
    const { dimPadded: d, projections } = this.params;
    const a = this.random.matrix;
    const x = this.x;
    for (let r = 0; r < projections; r++) {
      const o = r * d;
      let l0 = 0, l1 = 0, l2 = 0, l3 = 0;
      for (let j = 0; j < d; j += 4) {
        l0 = fround(l0 + fround(a[o + j] * x[j]));
        l1 = fround(l1 + fround(a[o + j + 1] * x[j + 1]));
        l2 = fround(l2 + fround(a[o + j + 2] * x[j + 2]));
        l3 = fround(l3 + fround(a[o + j + 3] * x[j + 3]));
      }
      this.proj[r] = fround(l0 + l1) + fround(l2 + l3);
    }
  }

  private projectFht(): void {
    const { dimPadded: d, fhtLength: n, rounds, rotations, projections } = this.params;
    const s = this.random.matrix;
    const y = this.y;
    let o = 0;
    for (let t = 0; t < rotations && o < projections; t++) {
      let so = t * rounds * n;
      for (let j = 0; j < n; j++) y[j] = j < d ? this.x[j] * s[so + j] : 0;
      fhtReference(y);
      for (let r = 1; r < rounds; r++) {
        so += n;
        for (let j = 0; j < n; j++) y[j] = y[j] * s[so + j];
        fhtReference(y);
      }
      const take = Math.min(n, projections - o);
      this.proj.set(y.subarray(0, take), o);
      o += take;
    }
  }

  private quantizePStable(out: Int32Array, at: number): void {
    const { bands, hashesPerBand: k, scale, bucketWidth: w } = this.params;
    const off = this.random.offsets;
    for (let band = 0; band < bands; band++) {
      let h = 0;
      for (let i = 0; i < k; i++) {
        const idx = band * k + i;
        const t = fround(this.proj[idx] * scale);
        let q = Math.floor(fround(fround(t + off[idx]) / w));
        if (q !== q) q = 0;
        q = q < I32_MIN_F32 ? I32_MIN_F32 : q > I32_MAX_F32 ? I32_MAX_F32 : q;
        h = i === 0 ? q | 0 : (Math.imul(h, -1640531535) + q) | 0;
      }
      out[at + band] = h;
    }
  }

  private quantizeSign(out: Int32Array, at: number): void {
    const { bands, hashesPerBand: k } = this.params;
    for (let band = 0; band < bands; band++) {
      let h = 0;
      for (let i = 0; i < k; i++) if (this.proj[band * k + i] > 0) h |= 1 << i;
      out[at + band] = h;
    }
  }
}

/** In-place unnormalised Walsh-Hadamard transform, stage by stage (the order the kernel keeps). */
export function fhtReference(y: Float32Array): void {
  const n = y.length;
  for (let h = 1; h < n; h <<= 1) {
    for (let i = 0; i < n; i += h << 1) {
      for (let j = i; j < i + h; j++) {
        const a = y[j];
        const b = y[j + h];
        y[j] = a + b;
        y[j + h] = a - b;
      }
    }
  }
}

interface LshExports {
  projectDense(vecs: number, count: number, dPad: number, proj: number, rows: number, out: number): void;
  projectFht(vecs: number, count: number, dPad: number, n: number, rounds: number, rotations: number, signs: number, scratch: number, used: number, out: number): void;
  quantizePStable(proj: number, count: number, used: number, k: number, offsets: number, scale: number, width: number, out: number): void;
  quantizeSign(proj: number, count: number, used: number, k: number, out: number): void;
}

/** Bytes of blocks copied into wasm memory per kernel call. */
const CHUNK_BYTES = 4 << 20;

/**
 * The wasm SIMD hasher. One instance owns one kernel instance whose memory holds, laid out once
 * at creation: the random matrix and offsets, an input chunk, projections, scratch and output.
 * `hash` copies blocks in chunks of at most CHUNK_BYTES and allocates only its result.
 */
export class WasmLshHasher implements BlockHasher {
  private constructor(
    readonly params: ResolvedLshParams,
    private readonly k: LshExports,
    private readonly arena: Arena,
    private readonly at: { matrix: number; offsets: number; input: number; proj: number; scratch: number; out: number },
    readonly chunkBlocks: number,
  ) {}

  static async create(params: LshParams): Promise<WasmLshHasher> {
    const p = resolveLshParams(params);
    const random = lshRandom(p);
    const { exports, memory } = await instantiateKernel<LshExports>('lsh', wasmBase64);
    // Above the module's static data: the initial memory is reserved for it.
    const arena = new Arena(memory, memory.buffer.byteLength);
    const chunkBlocks = Math.max(1, Math.min(65536, Math.floor(CHUNK_BYTES / (p.dimPadded * 4))));
    const { offsets, total } = layout([
      random.matrix.byteLength, random.offsets.byteLength, chunkBlocks * p.dimPadded * 4,
      chunkBlocks * p.projections * 4, p.fhtLength * 4, chunkBlocks * p.bands * 4,
    ]);
    const base = arena.reserve(total);
    const at = {
      matrix: base + offsets[0], offsets: base + offsets[1], input: base + offsets[2],
      proj: base + offsets[3], scratch: base + offsets[4], out: base + offsets[5],
    };
    new Float32Array(arena.buffer, at.matrix, random.matrix.length).set(random.matrix);
    new Float32Array(arena.buffer, at.offsets, random.offsets.length).set(random.offsets);
    return new WasmLshHasher(p, exports, arena, at, chunkBlocks);
  }

  hash(vectors: Float32Array, count?: number): Int32Array {
    const p = this.params;
    const n = blockCount(p, vectors, count);
    const result = new Int32Array(n * p.bands);
    const buf = this.arena.buffer;
    const input = new Float32Array(buf, this.at.input, this.chunkBlocks * p.dimPadded);
    const hashes = new Int32Array(buf, this.at.out, this.chunkBlocks * p.bands);
    for (let b0 = 0; b0 < n; b0 += this.chunkBlocks) {
      const c = Math.min(this.chunkBlocks, n - b0);
      if (p.dim === p.dimPadded) input.set(vectors.subarray(b0 * p.dim, (b0 + c) * p.dim));
      else {
        for (let b = 0; b < c; b++) {
          input.set(vectors.subarray((b0 + b) * p.dim, (b0 + b + 1) * p.dim), b * p.dimPadded);
          input.fill(0, b * p.dimPadded + p.dim, (b + 1) * p.dimPadded);
        }
      }
      if (p.family === 'pstable') this.k.projectDense(this.at.input, c, p.dimPadded, this.at.matrix, p.projections, this.at.proj);
      else this.k.projectFht(this.at.input, c, p.dimPadded, p.fhtLength, p.rounds, p.rotations, this.at.matrix, this.at.scratch, p.projections, this.at.proj);
      if (p.family === 'simhash') this.k.quantizeSign(this.at.proj, c, p.projections, p.hashesPerBand, this.at.out);
      else this.k.quantizePStable(this.at.proj, c, p.projections, p.hashesPerBand, this.at.offsets, p.scale, p.bucketWidth, this.at.out);
      result.set(hashes.subarray(0, c * p.bands), b0 * p.bands);
    }
    return result;
  }
}

export type KernelBackend = 'wasm' | 'ts';

export async function createLshHasher(params: LshParams, backend: KernelBackend = 'wasm'): Promise<BlockHasher> {
  return backend === 'wasm' ? WasmLshHasher.create(params) : new ReferenceLshHasher(params);
}
