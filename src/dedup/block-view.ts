/**
 * What a dedup run sees of the store's blocks: contents and shapes of float blocks (read through
 * the store's read-only catalog and block reader), the candidate index over representatives
 * (SimHash or p-stable LSH, or MinHash), and the distance kernel. Methods (methods/*.ts) propose
 * substitutions from it; the planner commits them.
 */
import type { ModelEntry } from '../catalog/catalog.ts';
import { gridOf, paddedTile, placeBlock, tileExtent } from '../blocks/tiling.ts';
import { WasmBlockDistance, type BlockDistance } from '../kernels/distance.ts';
import { NETSDB_LSH } from '../kernels/lsh.ts';
import { LshIndex } from './lsh-index.ts';
import { MinHashIndex, minhashSignature, MISTIQUE_MINHASH } from './minhash.ts';
import type { TesseraStore } from '../store/store.ts';

/** SimHash index for the SimHash methods and lossless mode: 32 bands of 24 bits (bench/kernels.ts: recall 1 to 20% noise). */
export const SIMHASH_LSH = { family: 'simhash', bands: 32 } as const;

/** The candidate index a method uses. */
export type CandidateIndex = 'simhash' | 'pstable' | 'minhash' | 'none';

/** A proposed substitution: slot (tensor, index) holding `from` gets `to`. */
export interface Proposal {
  tensor: number;
  index: number;
  from: number;
  to: number;
  distance: number;
  /** Sort key: smaller goes first. */
  order: number;
}

export interface BlockShape {
  h: number;
  w: number;
}

/** A float32 slot of a model that can be substituted. */
export interface Slot {
  tensor: number;
  index: number;
  id: number;
  h: number;
  w: number;
}

/**
 * Shared state of one dedup run: block contents and shapes, the candidate index over
 * representatives, the distance kernel.
 */
export class BlockCatalogView {
  private readonly values = new Map<number, Float32Array>();
  private readonly tiles = new Map<number, Float32Array>();
  private readonly shapes = new Map<number, BlockShape>();
  private readonly indexed = new Set<number>();
  readonly tileLength: number;

  private constructor(
    readonly store: TesseraStore,
    readonly distance: BlockDistance,
    private readonly lsh: LshIndex | null,
    private readonly minhash: MinHashIndex | null,
  ) {
    this.tileLength = store.config.tile.rows * store.config.tile.cols;
  }

  static async create(store: TesseraStore, index: CandidateIndex, seed = 1): Promise<BlockCatalogView> {
    const dim = store.config.tile.rows * store.config.tile.cols;
    const lsh = index === 'simhash' ? await LshIndex.create({ ...SIMHASH_LSH, dim, seed }) : index === 'pstable' ? await LshIndex.create({ ...NETSDB_LSH, dim, seed }) : null;
    const minhash = index === 'minhash' ? new MinHashIndex({ ...MISTIQUE_MINHASH, seed }) : null;
    return new BlockCatalogView(store, await WasmBlockDistance.create(), lsh, minhash);
  }

  /** Float32 slots of a model whose block is raw (not a delta) and not already substituted. */
  slotsOf(model: ModelEntry): Slot[] {
    const { tile } = this.store.config;
    const substituted = new Set((model.substitutions ?? []).map((s) => `${s.tensor}/${s.index}`));
    const out: Slot[] = [];
    model.tensors.forEach((t, ti) => {
      if (t.dtype !== 'float32') return;
      const grid = gridOf(t.dims, tile);
      for (let i = 0; i < t.blocks.length; i++) {
        const id = t.blocks[i];
        if (substituted.has(`${ti}/${i}`) || this.store.catalog.blocks.get(id)?.base !== undefined) continue;
        const { h, w } = tileExtent(grid, tile, i);
        out.push({ tensor: ti, index: i, id, h, w });
      }
    });
    return out;
  }

  /** Loads block contents (in-bounds floats) and padded tiles for slots not loaded yet. */
  async load(slots: Slot[]): Promise<void> {
    const missing: Slot[] = [];
    const seen = new Set<number>();
    for (const s of slots) {
      if (!this.shapes.has(s.id)) this.shapes.set(s.id, { h: s.h, w: s.w });
      if (!this.values.has(s.id) && !seen.has(s.id)) {
        seen.add(s.id);
        missing.push(s);
      }
    }
    const bytes = await this.store.readBlocks(missing.map((s) => s.id));
    missing.forEach((s, k) => {
      const b = bytes[k];
      this.values.set(s.id, new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
      this.tiles.set(s.id, paddedTile(b, s.h, s.w, this.store.config.tile));
    });
  }

  valuesOf(id: number): Float32Array {
    return this.values.get(id)!;
  }
  tileOf(id: number): Float32Array {
    return this.tiles.get(id)!;
  }
  shapeOf(id: number): BlockShape | undefined {
    return this.shapes.get(id);
  }
  isIndexed(id: number): boolean {
    return this.indexed.has(id);
  }

  /** Adds a model's raw float blocks to the index (blocks already there are skipped). */
  async addModel(model: ModelEntry): Promise<void> {
    const slots = this.slotsOf(model).filter((s) => !this.indexed.has(s.id));
    await this.load(slots);
    const ids: number[] = [];
    for (const s of slots) {
      if (this.indexed.has(s.id)) continue;
      this.indexed.add(s.id);
      ids.push(s.id);
    }
    if (!ids.length) return;
    if (this.lsh) {
      const flat = new Float32Array(ids.length * this.tileLength);
      ids.forEach((id, k) => flat.set(this.tiles.get(id)!, k * this.tileLength));
      this.lsh.add(Uint32Array.from(ids), flat);
    }
    if (this.minhash) for (const id of ids) this.minhash.add(id, minhashSignature(this.values.get(id)!, this.minhash.params));
  }

  /**
   * Candidate representatives for each slot: indexed blocks of the same shape, not in `exclude`.
   * `limit` keeps the most colliding ones (LSH indexes only).
   */
  candidates(slots: Slot[], exclude: Set<number>, limit = Infinity): number[][] {
    const ok = (slot: Slot, id: number) => {
      if (exclude.has(id)) return false;
      const sh = this.shapes.get(id);
      return !!sh && sh.h === slot.h && sh.w === slot.w;
    };
    if (this.minhash) {
      return slots.map((s) => this.minhash!.candidates(this.minhashOf(s.id)).filter((id) => ok(s, id)));
    }
    if (!this.lsh) return slots.map(() => []);
    const out: number[][] = [];
    const chunk = 256;
    for (let c0 = 0; c0 < slots.length; c0 += chunk) {
      const part = slots.slice(c0, c0 + chunk);
      const flat = new Float32Array(part.length * this.tileLength);
      part.forEach((s, k) => flat.set(this.tiles.get(s.id)!, k * this.tileLength));
      const sets = this.lsh!.candidatesMany(flat);
      part.forEach((s, k) => {
        const list: number[] = [];
        for (let j = sets.offsets[k]; j < sets.offsets[k + 1] && list.length < limit; j++) if (ok(s, sets.ids[j])) list.push(sets.ids[j]);
        out.push(list);
      });
    }
    return out;
  }

  private readonly signatures = new Map<number, Uint32Array>();
  minhashOf(id: number): Uint32Array {
    const indexed = this.minhash!.signatures.get(id);
    if (indexed) return indexed;
    let sig = this.signatures.get(id);
    if (!sig) {
      sig = minhashSignature(this.values.get(id)!, this.minhash!.params);
      this.signatures.set(id, sig);
    }
    return sig;
  }
}

/** The model's weights with the proposals' representatives placed in their slots (copies only where changed). */
export function weightsWith(view: BlockCatalogView, model: ModelEntry, original: Uint8Array[], subs: readonly Proposal[]): Uint8Array[] {
  const { tile } = view.store.config;
  const out = original.slice();
  const copied = new Set<number>();
  for (const s of subs) {
    if (!copied.has(s.tensor)) {
      out[s.tensor] = original[s.tensor].slice();
      copied.add(s.tensor);
    }
    const v = view.valuesOf(s.to);
    placeBlock(out[s.tensor], gridOf(model.tensors[s.tensor].dims, tile), 4, tile, s.index, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
  return out;
}

