/**
 * BlockSource: the one reader of blocks. Given a block table (a store's catalog, or a published
 * one) and a way to get a page's payload, it returns a block's stored bytes, its content (a delta
 * block decoded against its base), and whole tensors assembled from their tiles.
 *
 * Every reader of blocks goes through it: the store (export, sessions, dedup, compact), the
 * server (pages pinned in its frames), the importer (fetched pages, local copies) and the
 * publisher (raw pages). Pages are read once per source (each source keeps a page cache, bounded
 * by `maxCachedPages` for whole-store scans), so make one source per operation.
 *
 * Decoded delta bases can outlive a source: a `DecodedBaseCache` (the store keeps one) holds the
 * content of blocks that deltas were decoded against, so the next delta on the same base (the
 * next fine-tune's block, read by the next source) does not decode its base again.
 */
import { CorruptionError, InvalidArgumentError } from '../errors.ts';
import type { BlockEntry, ModelEntry, TensorEntry } from '../catalog/catalog.ts';
import { gridOf, placeBlock, type TileShape } from '../blocks/tiling.ts';
import { DTYPES } from '../onnx/dtypes.ts';
import { decodeDelta } from '../codecs/delta.ts';
import { blockCodecReady, decodeBlock } from '../codecs/block-codec.ts';

/** What a BlockSource needs to know of a catalog: where each block lies. */
export interface BlockTable {
  readonly blocks: ReadonlyMap<number, Readonly<BlockEntry>>;
}

/** The default bound of a store's DecodedBaseCache: 64 MiB of decoded content. */
export const DEFAULT_BASE_CACHE_BYTES = 64 * 2 ** 20;

/**
 * Decoded contents of blocks used as delta bases, least recently used dropped first, holding at
 * most `maxBytes` bytes of content (0 holds nothing). Keyed by the block's id and content hash
 * (BlockSource.base), so an entry stays right when the block is recoded, moved by compact, or its
 * id reused after a remove.
 * Only bases that cost a decode are kept (coded or delta blocks); a raw base is a view of its
 * page, which the source's page cache already holds.
 *
 * Its bytes are RSS no memory ledger sees: a reader that runs under a budget (the server's
 * frames and tensor pools) makes its sources without one.
 */
export class DecodedBaseCache {
  private readonly entries = new Map<string, Uint8Array>();
  private readonly pending = new Map<string, Promise<Uint8Array>>();
  private held = 0;
  hits = 0;
  misses = 0;

  constructor(readonly maxBytes: number = DEFAULT_BASE_CACHE_BYTES) {
    if (!(maxBytes >= 0)) throw new InvalidArgumentError(`a base cache needs a size of 0 or more bytes, not ${maxBytes}.`);
  }

  /** Bytes of content held now (at most maxBytes). */
  get bytes(): number {
    return this.held;
  }

  /** The content for `key`, from the cache or from `decode` (one decode for concurrent callers). */
  get(key: string, decode: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      this.hits++;
      return Promise.resolve(hit);
    }
    const inFlight = this.pending.get(key);
    if (inFlight) {
      this.hits++;
      return inFlight;
    }
    this.misses++;
    const p = decode();
    this.pending.set(key, p);
    p.then(
      (content) => {
        this.pending.delete(key);
        this.put(key, content);
      },
      () => this.pending.delete(key),
    );
    return p;
  }

  private put(key: string, content: Uint8Array): void {
    if (content.length > this.maxBytes || this.entries.has(key)) return;
    this.entries.set(key, content);
    this.held += content.length;
    for (const [k, v] of this.entries) {
      if (this.held <= this.maxBytes) break;
      this.entries.delete(k);
      this.held -= v.length;
    }
  }

  /** Drops everything (the store's data was replaced under it, or memory is wanted back). */
  clear(): void {
    this.entries.clear();
    this.held = 0;
  }
}

/**
 * The delta chain from block `id`: the block, its base, that base's base, ... down to a block with
 * none (or one the table lacks, last). A block has one base, so the chain is a path; one that comes
 * back to a block it holds (a damaged or hostile catalog) is CATALOG_CORRUPT: decoding it would
 * wait on its own decode for ever.
 */
export function deltaChain(table: BlockTable, id: number): number[] {
  const chain: number[] = [];
  for (let at: number | undefined = id; at !== undefined; at = table.blocks.get(at)?.base) {
    if (chain.includes(at)) throw new CorruptionError('CATALOG_CORRUPT', `block ${at} is a delta base of itself (delta chain ${[...chain, at].join(' -> ')}): the catalog is damaged.`);
    chain.push(at);
  }
  return chain;
}

/** Links of a delta chain `tensors()` asks pages for ahead of the reads. */
const PREFETCH_CHAIN = 8;

export interface BlockSourceOptions {
  /** Pages kept after reading (default: all of them); the oldest is dropped first. */
  maxCachedPages?: number;
  /**
   * The content of a block found without reading its page (the importer's copies already in the
   * local store), or undefined to read it from its page.
   */
  elsewhere?: (id: number, entry: Readonly<BlockEntry>) => Promise<Uint8Array> | undefined;
  /** Decoded delta bases shared with other sources (absent: each delta decodes its base). */
  baseCache?: DecodedBaseCache;
}

export class BlockSource {
  private readonly cache = new Map<number, Promise<Uint8Array>>();
  private readonly maxPages: number;

  constructor(
    private readonly table: BlockTable,
    private readonly tile: TileShape,
    private readonly readPage: (page: number) => Promise<Uint8Array>,
    private readonly opts: BlockSourceOptions = {},
  ) {
    this.maxPages = opts.maxCachedPages ?? Infinity;
  }

  private entry(id: number): Readonly<BlockEntry> {
    const b = this.table.blocks.get(id);
    if (!b) throw new CorruptionError('CATALOG_CORRUPT', `block ${id} is referenced but not in the catalog.`);
    return b;
  }

  /** A page's payload (verified by the backend), read once per source. */
  page(id: number): Promise<Uint8Array> {
    let page = this.cache.get(id);
    if (!page) {
      page = this.readPage(id);
      if (this.maxPages > 0) {
        this.cache.set(id, page);
        if (this.cache.size > this.maxPages) this.cache.delete(this.cache.keys().next().value!);
        // A failed read is not kept: the next caller tries again.
        page.catch(() => this.cache.get(id) === page && this.cache.delete(id));
      }
    }
    return page;
  }

  /** The block's bytes as stored (a delta block's compressed delta, a coded block's code). */
  async stored(id: number): Promise<Uint8Array> {
    const b = this.entry(id);
    const data = await this.page(b.page);
    if (b.offset + b.length > data.length) throw new CorruptionError('PAGE_CORRUPT', `page ${b.page} is shorter than block ${id} needs.`, { pageId: b.page });
    return data.subarray(b.offset, b.offset + b.length);
  }

  /** The block's content (a coded block decoded; a delta against its base's content). */
  async block(id: number): Promise<Uint8Array> {
    this.checkChain(id);
    return this.content(id);
  }

  /**
   * Refuses a delta chain that comes back to a block it holds (deltaChain), before anything is
   * decoded: every decode `content` starts or joins on the chain waits only on blocks further down it.
   */
  private checkChain(id: number): void {
    deltaChain(this.table, id);
  }

  private async content(id: number): Promise<Uint8Array> {
    const b = this.entry(id);
    const found = this.opts.elsewhere?.(id, b);
    if (found) return found;
    const stored = await this.stored(id);
    if (b.base === undefined && b.codec === undefined) return stored;
    const base = b.base === undefined ? undefined : await this.base(b.base);
    try {
      if (b.codec === undefined) return decodeDelta(stored, base!);
      await blockCodecReady();
      const out = decodeBlock(stored, base);
      if (out.length !== b.size) throw new CorruptionError('PAGE_CORRUPT', `block ${id} decodes to ${out.length} bytes, the catalog records ${b.size}.`);
      return out;
    } catch (e) {
      if (e instanceof CorruptionError && e.pageId === undefined) throw new CorruptionError('PAGE_CORRUPT', `page ${b.page}: ${e.message}`, { pageId: b.page });
      throw e;
    }
  }

  /**
   * A delta's base's content, through the shared cache when it costs a decode. The cache key is
   * the block's id with its content hash: a decode waits only on decodes down its own chain (see
   * checkChain), never on another block that merely has the same hash (blocks hashed wrongly).
   */
  private base(id: number): Promise<Uint8Array> {
    const b = this.entry(id);
    const cache = this.opts.baseCache;
    if (!cache || (b.base === undefined && b.codec === undefined)) return this.content(id);
    return cache.get(`${id}:${b.hash}`, () => this.content(id));
  }

  /** Several blocks' contents. */
  blocksOf(ids: ArrayLike<number>): Promise<Uint8Array[]> {
    return Promise.all(Array.from(ids, (id) => this.block(id)));
  }

  /**
   * A tensor's bytes, assembled from its tiles; into `into` when given (a buffer of exactly the
   * tensor's size, reused by the caller: every byte is overwritten, as the tiles cover the tensor).
   */
  async tensor(t: TensorEntry, into?: Uint8Array): Promise<Uint8Array> {
    const es = DTYPES[t.dtype].bytes;
    const grid = gridOf(t.dims, this.tile);
    const size = grid.rows * grid.cols * es;
    if (into && into.length !== size) throw new InvalidArgumentError(`a buffer of ${into.length} bytes cannot hold tensor "${t.name}" (${size} bytes)`);
    const buf = into ?? new Uint8Array(size);
    const blocks = await this.blocksOf(t.blocks);
    for (let b = 0; b < blocks.length; b++) placeBlock(buf, grid, es, this.tile, b, blocks[b]);
    return buf;
  }

  /**
   * Places the tiles `indices` (positions in `t.blocks`) into `into`, a buffer of the tensor's
   * size: a tensor assembled part by part, reading only the pages those tiles need (the server
   * assembles a tensor one page at a time, so it holds the tensor and one page, not all its pages).
   */
  async placeBlocks(t: TensorEntry, into: Uint8Array, indices: readonly number[]): Promise<void> {
    const es = DTYPES[t.dtype].bytes;
    const grid = gridOf(t.dims, this.tile);
    if (into.length !== grid.rows * grid.cols * es) throw new InvalidArgumentError(`a buffer of ${into.length} bytes cannot hold tensor "${t.name}" (${grid.rows * grid.cols * es} bytes)`);
    for (const b of indices) placeBlock(into, grid, es, this.tile, b, await this.block(t.blocks[b]));
  }

  /** A model's weight tensors in skeleton order. */
  async tensors(model: ModelEntry, onTensor?: (done: number, total: number) => void): Promise<Uint8Array[]> {
    // With an unbounded page cache every page read is kept anyway: ask for all of them at once, so
    // a backend whose reads wait on another process (IndexedDB, the Cache API) overlaps them
    // instead of paying one wait per tensor.
    if (this.maxPages === Infinity) {
      // Only the first PREFETCH_CHAIN links of a delta chain (the store writes one or two): a
      // cycle in a damaged catalog is then left to its real read (`content`) to refuse.
      for (const t of model.tensors) {
        for (const id of t.blocks) {
          let b: Readonly<BlockEntry> | undefined = this.table.blocks.get(id);
          for (let steps = 0; b && steps < PREFETCH_CHAIN; steps++, b = b.base === undefined ? undefined : this.table.blocks.get(b.base)) {
            if (!this.cache.has(b.page)) this.page(b.page).catch(() => {}); // a failure surfaces at its real read
          }
        }
      }
    }
    const out: Uint8Array[] = [];
    for (const t of model.tensors) {
      out.push(await this.tensor(t));
      onTensor?.(out.length, model.tensors.length);
    }
    return out;
  }
}
