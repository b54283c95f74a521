/**
 * Everything the runtime reads from the store, in one place, through the store's read-only
 * CatalogView and BlockSource: model entries, the pages a model (or one tensor) needs, and page
 * bytes (read uncached, into the caller's frames: the server's pools are the cache).
 */
import type { ModelEntry, TensorEntry, StoreConfig } from '../catalog/catalog.ts';
import type { TesseraStore } from '../store/store.ts';
import type { CatalogView } from '../store/catalog-view.ts';
import { BlockSource } from '../store/block-source.ts';

export class StoreReader {
  private readonly pageSource: BlockSource;
  constructor(private readonly store: TesseraStore) {
    this.pageSource = store.blockSource({ maxCachedPages: 0, baseCache: false });
  }

  get config(): StoreConfig {
    return this.store.config;
  }
  get catalog(): CatalogView {
    return this.store.catalog;
  }
  models(): string[] {
    return this.store.listModels();
  }
  has(model: string): boolean {
    return this.store.has(model);
  }
  model(name: string): ModelEntry {
    return this.store.model(name);
  }
  /** Distinct pages a model reads (delta bases included), ascending. */
  pagesOfModel(m: ModelEntry): number[] {
    return this.store.catalog.pagesRead(m);
  }
  /** Distinct pages one tensor reads (delta bases included), ascending. */
  pagesOfTensor(t: TensorEntry): number[] {
    return this.store.catalog.pagesRead({ tensors: [t] } as ModelEntry);
  }
  readPage(id: number): Promise<Uint8Array> {
    return this.pageSource.page(id);
  }
  /** A page read into `target` (PAGE_HEADER_BYTES + pageSize bytes); the payload is returned as a view of it. */
  readPageInto(id: number, target: Uint8Array): Promise<Uint8Array> {
    return this.store.readPageInto(id, target);
  }
  /**
   * A BlockSource over pages already resident elsewhere (the server's frames). It has no decoded
   * base cache: the server's memory is on its ledger, and such a cache's bytes would not be.
   */
  sourceOver(page: (id: number) => Uint8Array): BlockSource {
    return new BlockSource(this.store.catalog, this.store.config.tile, async (id) => page(id), { maxCachedPages: 0 });
  }
}
