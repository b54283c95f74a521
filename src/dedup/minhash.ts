/**
 * MISTIQUE-style approximate block matching (a baseline; docs/PAPER.md#1-duplicate-detection): a block's values
 * are bucketed, the block becomes the set of (position, bucket) pairs, and MinHash with 48
 * permutations estimates the Jaccard similarity of two such sets; banded LSH over the signature
 * finds candidates. Position-tagged buckets make the Jaccard index m / (2n - m), m being the
 * number of positions whose values share a bucket.
 */
import { InvalidArgumentError } from '../errors.ts';

export interface MinHashParams {
  /** Signature length (MISTIQUE: 48 permutations). */
  permutations: number;
  /** LSH bands over the signature (permutations / bands rows each). */
  bands: number;
  /** Width of a value bucket. */
  bucketWidth: number;
  seed: number;
}

export const MISTIQUE_MINHASH: MinHashParams = { permutations: 48, bands: 24, bucketWidth: 0.01, seed: 1 };

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MinHash signature of a block's values (in-bounds elements in row-major order). */
export function minhashSignature(values: Float32Array, p: MinHashParams): Uint32Array {
  const sig = new Uint32Array(p.permutations).fill(0xffffffff);
  const salts = Array.from({ length: p.permutations }, (_, j) => fmix32(p.seed * 0x9e3779b1 + j * 0x632be5ab + 1));
  const inv = 1 / p.bucketWidth;
  for (let i = 0; i < values.length; i++) {
    const key = fmix32(Math.imul(i, 0x9e3779b1) ^ Math.floor(values[i] * inv));
    for (let j = 0; j < sig.length; j++) {
      const h = fmix32(key ^ salts[j]);
      if (h < sig[j]) sig[j] = h;
    }
  }
  return sig;
}

/** Estimated Jaccard similarity: the fraction of equal signature entries. */
export function jaccardEstimate(a: Uint32Array, b: Uint32Array): number {
  let same = 0;
  for (let j = 0; j < a.length; j++) if (a[j] === b[j]) same++;
  return same / a.length;
}

/** Banded LSH over MinHash signatures: candidates share every entry of at least one band. */
export class MinHashIndex {
  private readonly tables: Map<number, number[]>[];
  private readonly rows: number;
  readonly signatures = new Map<number, Uint32Array>();

  constructor(readonly params: MinHashParams) {
    if (!Number.isInteger(params.bands) || params.bands < 1 || params.permutations % params.bands) {
      throw new InvalidArgumentError(`MinHash: ${params.permutations} permutations do not split into ${params.bands} bands.`);
    }
    this.rows = params.permutations / params.bands;
    this.tables = Array.from({ length: params.bands }, () => new Map());
  }

  private bandKey(sig: Uint32Array, b: number): number {
    let h = b;
    for (let r = 0; r < this.rows; r++) h = fmix32(h ^ sig[b * this.rows + r]);
    return h;
  }

  add(id: number, sig: Uint32Array): void {
    if (this.signatures.has(id)) return;
    this.signatures.set(id, sig);
    for (let b = 0; b < this.params.bands; b++) {
      const key = this.bandKey(sig, b);
      const bucket = this.tables[b].get(key);
      if (bucket) bucket.push(id);
      else this.tables[b].set(key, [id]);
    }
  }

  candidates(sig: Uint32Array): number[] {
    const out = new Set<number>();
    for (let b = 0; b < this.params.bands; b++) for (const id of this.tables[b].get(this.bandKey(sig, b)) ?? []) out.add(id);
    return [...out];
  }
}
