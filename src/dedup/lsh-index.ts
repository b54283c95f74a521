/**
 * An LSH index over block vectors: one bucket table per band, updated incrementally as models'
 * blocks are added. A query returns the blocks that share its hash in at least `minCollisions`
 * bands, most collisions first. Work per query is O(bands + colliding entries), so finding
 * candidates for N blocks is sub-quadratic as long as buckets stay small (they do for
 * unrelated blocks when a band is selective enough; see bench/kernels.ts for the figures).
 */
import { InvalidArgumentError } from '../errors.ts';
import { createLshHasher, type BlockHasher, type KernelBackend, type LshParams, type ResolvedLshParams } from '../kernels/lsh.ts';

export interface LshIndexOptions extends LshParams {
  /** Hash with the wasm kernels (default) or the plain-TS twin. */
  backend?: KernelBackend;
}

export interface CandidateQuery {
  /** Keep only blocks colliding in at least this many bands (default 1). */
  minCollisions?: number;
  /** Keep at most this many, the most colliding first. */
  limit?: number;
  /** Leave this block id out (a block already in the index is its own best candidate). */
  exclude?: number;
}

/** Candidates of one query: ids sorted by collisions (descending), then id (ascending). */
export interface Candidates {
  ids: Uint32Array;
  collisions: Uint16Array;
}

/** Candidates of many queries, CSR-style: query q owns [offsets[q], offsets[q + 1]). */
export interface CandidateSets {
  offsets: Uint32Array;
  ids: Uint32Array;
  collisions: Uint16Array;
}

/** A bucket holds one slot (the common case) or several. */
type Bucket = number | number[];

export class LshIndex {
  readonly params: ResolvedLshParams;
  private readonly tables: Map<number, Bucket>[];
  /** slot -> block id; tables hold slots so per-query counting can use a flat array. */
  private readonly slotIds: number[] = [];
  private readonly slotOf = new Map<number, number>();
  private counts = new Uint16Array(1024);
  private readonly touched: number[] = [];
  private readonly hits: number[] = [];

  constructor(private readonly hasher: BlockHasher) {
    this.params = hasher.params;
    this.tables = Array.from({ length: this.params.bands }, () => new Map<number, Bucket>());
  }

  static async create(opts: LshIndexOptions): Promise<LshIndex> {
    const { backend, ...params } = opts;
    return new LshIndex(await createLshHasher(params, backend ?? 'wasm'));
  }

  /** Number of blocks in the index. */
  get size(): number {
    return this.slotIds.length;
  }

  has(id: number): boolean {
    return this.slotOf.has(id);
  }

  /** Band hashes of `vectors` (count x bands), for callers that add and query the same blocks. */
  hash(vectors: Float32Array): Int32Array {
    return this.hasher.hash(vectors);
  }

  /** Adds blocks: ids[i] owns vectors[i * dim, (i + 1) * dim). */
  add(ids: Uint32Array, vectors: Float32Array): void {
    if (vectors.length !== ids.length * this.params.dim) {
      throw new InvalidArgumentError(`LshIndex.add: ${ids.length} ids need ${ids.length * this.params.dim} floats (${this.params.dim} per block), got ${vectors.length}.`);
    }
    this.addHashes(ids, this.hasher.hash(vectors, ids.length));
  }

  /** Adds blocks whose band hashes were computed already (by `hash`, same parameters). */
  addHashes(ids: Uint32Array, hashes: Int32Array): void {
    const bands = this.params.bands;
    if (hashes.length !== ids.length * bands) {
      throw new InvalidArgumentError(`LshIndex.addHashes: ${ids.length} ids need ${ids.length * bands} band hashes, got ${hashes.length}.`);
    }
    const seen = new Set<number>();
    for (const id of ids) {
      if (this.slotOf.has(id) || seen.has(id)) throw new InvalidArgumentError(`LshIndex.add: block id ${id} is already in the index; each block is added once.`);
      seen.add(id);
    }
    const first = this.slotIds.length;
    for (let i = 0; i < ids.length; i++) {
      this.slotIds.push(ids[i]);
      this.slotOf.set(ids[i], first + i);
    }
    // band by band: one table at a time stays in cache
    for (let b = 0; b < bands; b++) {
      const table = this.tables[b];
      for (let i = 0; i < ids.length; i++) {
        const slot = first + i;
        const key = hashes[i * bands + b];
        const bucket = table.get(key);
        if (bucket === undefined) table.set(key, slot);
        else if (typeof bucket === 'number') table.set(key, [bucket, slot]);
        else bucket.push(slot);
      }
    }
    if (this.counts.length < this.slotIds.length) {
      const grown = new Uint16Array(Math.max(this.slotIds.length, this.counts.length * 2));
      this.counts = grown;
    }
  }

  /** Candidates for one block vector. */
  candidates(vector: Float32Array, query: CandidateQuery = {}): Candidates {
    if (vector.length !== this.params.dim) throw new InvalidArgumentError(`LshIndex.candidates: a block has ${this.params.dim} floats, got ${vector.length}.`);
    const sets = this.candidatesForHashes(this.hasher.hash(vector, 1), query);
    return { ids: sets.ids, collisions: sets.collisions };
  }

  /** Candidates for each of several block vectors (count = vectors.length / dim). */
  candidatesMany(vectors: Float32Array, query: CandidateQuery = {}): CandidateSets {
    if (vectors.length % this.params.dim !== 0) throw new InvalidArgumentError(`LshIndex.candidatesMany: ${vectors.length} floats is not a whole number of ${this.params.dim}-float blocks.`);
    return this.candidatesForHashes(this.hasher.hash(vectors), query);
  }

  /** Candidates for blocks given by their band hashes (count x bands). */
  candidatesForHashes(hashes: Int32Array, query: CandidateQuery = {}): CandidateSets {
    const bands = this.params.bands;
    if (hashes.length % bands !== 0) throw new InvalidArgumentError(`LshIndex: ${hashes.length} hashes is not a whole number of ${bands}-band rows.`);
    const minCollisions = query.minCollisions ?? 1;
    const limit = query.limit ?? Infinity;
    if (!(minCollisions >= 1) || !(limit >= 0)) throw new InvalidArgumentError(`LshIndex: minCollisions must be >= 1 and limit >= 0, got ${minCollisions} and ${limit}.`);
    const excluded = query.exclude === undefined ? -1 : (this.slotOf.get(query.exclude) ?? -1);
    const n = hashes.length / bands;
    const offsets = new Uint32Array(n + 1);
    const ids: number[] = [];
    const collisions: number[] = [];
    const counts = this.counts;
    const touched = this.touched;
    for (let q = 0; q < n; q++) {
      for (let b = 0; b < bands; b++) {
        const bucket = this.tables[b].get(hashes[q * bands + b]);
        if (bucket === undefined) continue;
        if (typeof bucket === 'number') {
          if (counts[bucket]++ === 0) touched.push(bucket);
        } else {
          for (const s of bucket) if (counts[s]++ === 0) touched.push(s);
        }
      }
      const hits = this.hits;
      hits.length = 0;
      for (const s of touched) {
        if (counts[s] >= minCollisions && s !== excluded) hits.push(s);
      }
      if (hits.length > 1) hits.sort((x, y) => counts[y] - counts[x] || this.slotIds[x] - this.slotIds[y]);
      const keep = Math.min(hits.length, limit);
      for (let i = 0; i < keep; i++) {
        ids.push(this.slotIds[hits[i]]);
        collisions.push(counts[hits[i]]);
      }
      for (const s of touched) counts[s] = 0;
      touched.length = 0;
      offsets[q + 1] = ids.length;
    }
    return { offsets, ids: Uint32Array.from(ids), collisions: Uint16Array.from(collisions) };
  }
}
