/**
 * A read-only view of a committed catalog: what every reader outside the store (server, dedup
 * planner, publisher, importer, CLI) may know about models, blocks and pages, and the lookups
 * they share. It has no way to change the catalog; only the store's commit does that.
 *
 * The view follows the catalog its owner holds now (`TesseraStore.refresh` swaps the catalog, and
 * a view taken before stays current), so holding one is safe for as long as its store is open.
 */
import { Catalog, contentLength, modelRefs, type BlockEntry, type ModelEntry, type PageEntry, type StoreConfig, type TensorEntry } from '../catalog/catalog.ts';
import { DTYPES } from '../onnx/dtypes.ts';

export interface CatalogView {
  /** Sequence number of the last commit. */
  readonly seq: number;
  readonly config: StoreConfig;
  readonly models: ReadonlyMap<string, ModelEntry>;
  readonly blocks: ReadonlyMap<number, Readonly<BlockEntry>>;
  readonly pages: ReadonlyMap<number, Readonly<PageEntry>>;
  /** A stored block with this content hash and length (the exact-dedup match on hash), if any. */
  findBlock(hash: string, length: number): number | undefined;
  /** Block ids with this content hash (several only on a hash collision). */
  withHash(hash: string): readonly number[];
  /** Distinct blocks a model reads to load its tensors: its slots and their delta bases. */
  blocksRead(model: ModelEntry): Set<number>;
  /** Distinct pages a model reads to load its tensors (delta bases included), ascending. */
  pagesRead(model: ModelEntry): number[];
  /** Models that need a block on `page`: in a slot, as a retained original, or as a delta's base. */
  modelsOnPage(page: number): string[];
  /** One past the highest page id in use. */
  pageLimit(): number;
  /** Bytes of stored blocks (what pages must hold at least). */
  storedBytes(): number;
  /** The whole catalog as one snapshot record (for publishing). */
  snapshot(): Uint8Array;
}

/** Bytes of a tensor's elements. */
export function tensorBytes(t: Pick<TensorEntry, 'dims' | 'dtype'>): number {
  return t.dims.reduce((a, d) => a * d, 1) * DTYPES[t.dtype].bytes;
}

/** Bytes of a model's weight tensors, uncompressed (what it would take stored alone). */
export function weightBytes(model: ModelEntry): number {
  return Catalog.logicalBytes(model);
}

/** A view over whatever catalog `current` returns (the store's, or a published one). */
export function catalogView(current: () => Catalog): CatalogView {
  return new LiveCatalogView(current);
}

class LiveCatalogView implements CatalogView {
  constructor(private readonly current: () => Catalog) {}

  get seq(): number {
    return this.current().seq;
  }
  get config(): StoreConfig {
    return this.current().config!;
  }
  get models(): ReadonlyMap<string, ModelEntry> {
    return this.current().models;
  }
  get blocks(): ReadonlyMap<number, Readonly<BlockEntry>> {
    return this.current().blocks;
  }
  get pages(): ReadonlyMap<number, Readonly<PageEntry>> {
    return this.current().pages;
  }

  findBlock(hash: string, length: number): number | undefined {
    const cat = this.current();
    for (const id of cat.byHash.get(hash) ?? []) if (contentLength(cat.blocks.get(id)!) === length) return id;
    return undefined;
  }

  withHash(hash: string): readonly number[] {
    return this.current().byHash.get(hash) ?? [];
  }

  blocksRead(model: ModelEntry): Set<number> {
    const cat = this.current();
    const need = new Set<number>();
    for (const t of model.tensors) {
      for (const slot of t.blocks) {
        for (let id: number | undefined = slot; id !== undefined && !need.has(id); id = cat.blocks.get(id)?.base) need.add(id);
      }
    }
    return need;
  }

  pagesRead(model: ModelEntry): number[] {
    const cat = this.current();
    const pages = new Set<number>();
    for (const id of this.blocksRead(model)) {
      const b = cat.blocks.get(id);
      if (b) pages.add(b.page);
    }
    return [...pages].sort((a, b) => a - b);
  }

  modelsOnPage(pageId: number): string[] {
    const cat = this.current();
    const out: string[] = [];
    for (const m of cat.models.values()) {
      // Walked with a seen-set: verify calls this on catalogs that may not add up (cycles, gaps).
      const seen = new Set<number>();
      const onPage = (id: number): boolean => {
        if (seen.has(id)) return false;
        seen.add(id);
        const b = cat.blocks.get(id);
        return !!b && (b.page === pageId || (b.base !== undefined && onPage(b.base)));
      };
      if (modelRefs(m).some(onPage)) out.push(m.name);
    }
    return out;
  }

  pageLimit(): number {
    return this.current().pageLimit();
  }

  storedBytes(): number {
    let n = 0;
    for (const b of this.current().blocks.values()) n += b.length;
    return n;
  }

  snapshot(): Uint8Array {
    return this.current().snapshot();
  }
}
