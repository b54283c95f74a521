/** Store statistics: sizes, dedup ratio, pages and each model's read amplification. */
import type { TileShape } from '../blocks/tiling.ts';
import { modelRefs } from '../catalog/catalog.ts';
import { weightBytes, type CatalogView } from './catalog-view.ts';

export interface ModelStats {
  name: string;
  tensors: number;
  blocks: number;
  logicalBytes: number;
  /** Bytes of blocks no other model references. */
  uniqueBytes: number;
  /**
   * Bytes of the model's weights in blocks other models reference too, counted per use as
   * `logicalBytes` is (so `sharedBytes / logicalBytes` is the share of its weights it shares).
   */
  sharedBytes: number;
  /** Pages the model reads to load all its tensors. */
  pages: number;
  /** Bytes of those pages / bytes of the blocks it needs (1 = reads nothing it does not need). */
  readAmplification: number;
  /** Substitutions not yet settled (undoable). */
  substitutions: number;
  addedAt: string;
}

export interface StoreStats {
  models: number;
  tensors: number;
  blocks: number;
  logicalBytes: number;
  storedBytes: number;
  pages: number;
  pageSize: number;
  pageBytes: number;
  /** No layout can hold the stored bytes in fewer pages. */
  pageLowerBound: number;
  dedupRatio: number;
  tile: TileShape;
  perModel: ModelStats[];
}

export function storeStats(cat: CatalogView): StoreStats {
  const storedBytes = cat.storedBytes();
  const perModel: ModelStats[] = [];
  let logicalBytes = 0;
  let tensors = 0;
  for (const m of cat.models.values()) {
    const logical = weightBytes(m);
    logicalBytes += logical;
    tensors += m.tensors.length;
    const own = new Map<number, number>();
    for (const id of modelRefs(m)) own.set(id, (own.get(id) ?? 0) + 1);
    let uniqueBytes = 0;
    for (const [id, n] of own) {
      const b = cat.blocks.get(id)!;
      if (b.refs === n) uniqueBytes += b.length;
    }
    let sharedBytes = 0;
    for (const t of m.tensors) {
      for (const id of t.blocks) {
        const b = cat.blocks.get(id)!;
        if (b.refs > own.get(id)!) sharedBytes += b.length;
      }
    }
    const pages = new Set<number>();
    let neededBytes = 0;
    for (const id of cat.blocksRead(m)) {
      const b = cat.blocks.get(id)!;
      pages.add(b.page);
      neededBytes += b.length;
    }
    let readBytes = 0;
    for (const p of pages) readBytes += cat.pages.get(p)!.used;
    perModel.push({
      name: m.name,
      tensors: m.tensors.length,
      blocks: m.tensors.reduce((n, t) => n + t.blocks.length, 0),
      logicalBytes: logical,
      uniqueBytes,
      sharedBytes,
      pages: pages.size,
      readAmplification: neededBytes ? readBytes / neededBytes : 1,
      substitutions: m.substitutions?.length ?? 0,
      addedAt: m.addedAt,
    });
  }
  const { pageSize, tile } = cat.config;
  return {
    models: cat.models.size,
    tensors,
    blocks: cat.blocks.size,
    logicalBytes,
    storedBytes,
    pages: cat.pages.size,
    pageSize,
    pageBytes: cat.pages.size * pageSize,
    pageLowerBound: Math.ceil(storedBytes / pageSize),
    dedupRatio: storedBytes ? logicalBytes / storedBytes : 1,
    tile,
    perModel,
  };
}
