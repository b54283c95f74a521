/**
 * Ingest: ONNX bytes → tensors → blocks → exact dedup (xxHash64 + byte comparison) → new blocks
 * onto pages (the page writer writes each page as it fills) → one 'add' record (the commit).
 */
import { InvalidArgumentError, InvalidNameError, ModelExistsError } from '../errors.ts';
import { hash64Hex } from '../hash.ts';
import { parseModel } from '../onnx/model.ts';
import { claimDeferred, fillDeferred, type ReadAt, type SparseFile } from '../onnx/sparse-read.ts';
import { DTYPES } from '../onnx/dtypes.ts';
import { cutBlock, gridOf, tileExtent } from '../blocks/tiling.ts';
import { Catalog, contentLength, type ModelEntry, type NewBlock, type TensorEntry } from '../catalog/catalog.ts';
import type { BlockSource } from './block-source.ts';
import type { StoreCore, Progress } from './core.ts';
import type { PageWriter } from './page-writer.ts';

export interface AddOptions {
  /** Reads an external-data file named by the model (relative location). */
  readExternal?: (location: string) => Promise<Uint8Array>;
  /**
   * `onnx` is `sparse.file.bytes`, read by readSkippingWeights: each weight left unread is read
   * through `sparse.read` when its turn comes, into one buffer reused across tensors.
   */
  sparse?: { file: SparseFile; read: ReadAt };
  onProgress?: (p: Progress) => void;
}

export interface AddReport {
  name: string;
  tensors: number;
  blocks: number;
  newBlocks: number;
  logicalBytes: number;
  newBytes: number;
  newPages: number;
}

/**
 * A block to add: its bytes (valid until the next block is asked for), or its hash and length with
 * a way to load the bytes if needed. New blocks are matched against their copy on the page, so an
 * add keeps no block bytes of its own.
 */
export type BlockInput =
  /**
   * `stored`: how the block is kept when new, if not as `data` (an import keeps a published delta
   * block as the delta it arrived as); `data` is still its content, which exact dedup matches on.
   */
  | { data: Uint8Array; hash?: string; stored?: StoredBlock }
  | { data?: undefined; hash: string; length: number; load: () => Promise<Uint8Array> }
  /** A tile still to be copied out of its tensor: straight onto the open page when it fits there (one copy instead of two). */
  | { data?: undefined; hash?: undefined; length: number; cutInto: (out: Uint8Array) => void }
  /** A block this store already holds, by id (the caller has checked its content: imports compare SHA-256). */
  | { local: number };

/** A new block's stored bytes when not its content (a delta, a coded block): as its codec wrote them. */
export interface StoredBlock {
  bytes: Uint8Array;
  /** A delta's base (its content is what `bytes` decode against): a block of this store, or one this add stores as well. */
  base?: BlockInput;
  /** The other catalog fields that say how `bytes` are coded, copied into the block's entry as they are. */
  coding?: BlockCoding;
}

/** The fields of a block's entry beyond where it lies, its hash and its base: how its stored bytes are coded. */
export type BlockCoding = Omit<NewBlock, 'id' | 'page' | 'offset' | 'length' | 'hash' | 'base'>;

/**
 * A block this add placed. A later duplicate is matched against its copy on the page, except for
 * a block stored as a delta, whose page copy is the delta: its content is kept for that.
 */
type PlacedBlock = NewBlock & { content?: Uint8Array };

/** A tensor to add: its catalog entry, with the blocks still to be matched or stored. */
export interface NewTensor extends Omit<TensorEntry, 'blocks'> {
  /**
   * Blocks in tile-grid order, or a function that cuts them when the tensor's turn comes (so an
   * add holds one tensor's bytes at a time, not the whole model's).
   */
  blocks: BlockInput[] | (() => BlockInput[] | Promise<BlockInput[]>);
}


const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

/** Model names become file names on export and keys everywhere: keep them plain. */
export function validateModelName(name: string): void {
  if (!NAME_RE.test(name) || name.includes('..')) {
    throw new InvalidNameError(`invalid model name "${name}": use 1-128 letters, digits, '.', '_', '+' or '-', starting with a letter or digit (no paths).`);
  }
}

/** A model parsed and ready to be placed: its catalog entry without tensors, and its tensors. */
interface PreparedModel {
  meta: Omit<ModelEntry, 'addedAt' | 'tensors'>;
  tensors: NewTensor[];
  /** Waits for a weight read still in flight (WeightReads.settle): called once the model is placed or has failed. */
  settle: () => Promise<void>;
}

/**
 * A model's weights left unread (readSkippingWeights), read from the file when their turn comes,
 * each into one half of the room the page writer lends: while one tensor is cut, hashed and
 * placed, the next one is read into the other half, so the file read overlaps the work on the
 * tensor before it instead of stalling it (on the zoo the reads were ~30-45 ms of a ~100-130 ms
 * batch, every one awaited; bench store --part=ingest).
 */
class WeightReads {
  /** Tensors with a weight to read, in the order they are placed, and each one's place in it. */
  private readonly order: number[] = [];
  readonly pos = new Map<number, number>();
  private readonly pending = new Map<number, Promise<Uint8Array>>();
  private readonly half: number;

  constructor(
    private readonly ranges: readonly ({ offset: number; length: number } | undefined)[],
    /** Room for two weights (PageWriter.beside), one per half. */
    private readonly room: Uint8Array,
    private readonly read: ReadAt,
  ) {
    ranges.forEach((r, k) => {
      if (!r) return;
      this.pos.set(k, this.order.length);
      this.order.push(k);
    });
    this.half = room.length >> 1;
  }

  /** The room two weights need: twice the largest. */
  static roomFor(ranges: readonly ({ length: number } | undefined)[]): number {
    return 2 * ranges.reduce((m, r) => Math.max(m, r?.length ?? 0), 0);
  }

  /** Tensor `k`'s weight (valid until the weight two after it is asked for); starts reading the next one. */
  async get(k: number): Promise<Uint8Array> {
    const at = this.pos.get(k)!;
    let reading = this.pending.get(k);
    if (!reading) {
      // Not the one read ahead (tensors taken out of order): nothing else may be writing its half.
      await this.settle();
      reading = this.start(at);
    }
    const data = await reading;
    this.pending.delete(k);
    // The other half held the tensor before this one, which is placed by now.
    if (at + 1 < this.order.length && !this.pending.has(this.order[at + 1])) this.start(at + 1);
    return data;
  }

  private start(at: number): Promise<Uint8Array> {
    const k = this.order[at];
    const { offset, length } = this.ranges[k]!;
    const into = this.room.subarray((at & 1) * this.half, (at & 1) * this.half + length);
    const reading = this.read(into, offset).then(() => into);
    // Awaited by `get` or `settle`; a model that fails first must not leave an unhandled rejection.
    reading.catch(() => {});
    this.pending.set(k, reading);
    return reading;
  }

  /** Waits for every read in flight: none may still write into memory the next model uses. */
  async settle(): Promise<void> {
    await Promise.allSettled(this.pending.values());
  }
}

/**
 * Parses `onnx` into tensors whose blocks are cut when their turn comes. Everything that can be
 * wrong with the file (malformed, unsupported, external data missing) fails here, before any
 * block is placed.
 */
async function prepareModel(core: StoreCore, name: string, onnx: Uint8Array, opts: AddOptions, writer: PageWriter): Promise<PreparedModel> {
  opts.onProgress?.({ phase: 'parse', done: 0, total: 1 });
  const parsed = await parseModel(onnx, { readExternal: opts.readExternal });
  const { tile } = core.config;
  const sparse = opts.sparse;
  let reads: WeightReads | null = null;
  if (sparse) {
    if (onnx !== sparse.file.bytes) throw new InvalidArgumentError('the sparse file given to add is not the ONNX bytes given');
    const claimed = claimDeferred(sparse.file, parsed.tensors.map((t) => t.data));
    // Some skipped range is not exactly one weight's bytes: read them all in after all.
    if (!claimed) await fillDeferred(sparse.file, sparse.read);
    // Weights left unread are read into room the page writer lends (PageWriter.beside), two at a time.
    else if (claimed.some((r) => r)) reads = new WeightReads(claimed, await writer.beside(WeightReads.roomFor(claimed)), sparse.read);
  }
  const tensors: NewTensor[] = parsed.tensors.map((t, k) => ({
    name: t.name,
    dtype: t.dtype,
    dims: t.dims,
    location: t.location,
    blocks: async () => {
      const data = reads?.pos.has(k) ? await reads.get(k) : t.data;
      const es = DTYPES[t.dtype].bytes;
      const grid = gridOf(t.dims, tile);
      const blocks: BlockInput[] = new Array(grid.count);
      const memory = writer.memory;
      const rowBytes = grid.cols * es;
      // Whole-row blocks are views of the tensor; other tiles are copied when placed (onto the page
      // itself when they fit): by the kernel when the tensor and the page lie in its memory.
      for (let i = 0; i < grid.count; i++) {
        const { r0, c0, h, w } = tileExtent(grid, tile, i);
        blocks[i] = w === grid.cols
          ? { data: cutBlock(data, grid, es, tile, i) }
          : {
              length: h * w * es,
              cutInto: (out) => {
                if (memory.holds(data) && memory.holds(out)) memory.cut(data, r0 * rowBytes + c0 * es, rowBytes, w * es, h, out);
                else cutBlock(data, grid, es, tile, i, out);
              },
            };
      }
      return blocks;
    },
    ...(t.encoding ? { encoding: t.encoding } : {}),
  }));
  const meta = { name, skeleton: parsed.skeleton, inputs: parsed.inputs, outputs: parsed.outputs, sourceBytes: onnx.length };
  return { meta, tensors, settle: async () => reads?.settle() };
}

export async function addModel(core: StoreCore, name: string, onnx: Uint8Array, opts: AddOptions = {}): Promise<AddReport> {
  const batch = new AddBatch(core);
  const report = await batch.add(name, onnx, opts);
  await batch.commit(opts);
  return report;
}

/**
 * Adds a model given as blocks (already cut with this store's tile shape): the path shared by
 * `add` (blocks cut from ONNX) and imports (blocks fetched from another store). Exact dedup:
 * a block whose hash and bytes match a stored block is that block. A block given by `hash` +
 * `load` (no bytes at hand) is matched on hash and length alone and loaded only when new.
 */
export async function addBlocks(core: StoreCore, meta: Omit<ModelEntry, 'addedAt' | 'tensors'>, tensors: NewTensor[], opts: { onProgress?: (p: Progress) => void } = {}): Promise<AddReport> {
  const batch = new AddBatch(core);
  const report = await batch.addBlocks(meta, tensors, opts);
  await batch.commit(opts);
  return report;
}

/**
 * Several models added in one commit: all of them or none. Their new blocks go onto pages as they
 * come (small models share pages, as far as SHARE_LIMIT allows), duplicates across the batch are
 * stored once, and one catalog record commits them all, so a batch of n files pays one durable
 * commit (one fsync of pages, one of the catalog) instead of n (the zoo of many small files paid
 * two fsyncs per file; bench store).
 *
 * A model that fails while being parsed (`add` throws before placing a block) leaves the batch as
 * it was: the caller may go on with the others (`tessera add --keep-going`). A failure after
 * blocks were placed (an I/O error) breaks the batch: `commit` then refuses. Until `commit`
 * returns nothing is committed: pages written for an abandoned batch are in slots the catalog does
 * not reference and are reused (or reclaimed by the next writer open).
 */
export class AddBatch {
  private readonly reader: BlockSource;
  private readonly writer: PageWriter;
  private readonly pending = new Map<string, PlacedBlock>();
  private readonly fresh: PlacedBlock[] = [];
  private readonly models: ModelEntry[] = [];
  private readonly scratch = { bytes: new Uint8Array(0) };
  private nextId: number;
  private progress: (p: Progress) => void = () => {};
  /** Set when an add failed after placing blocks: the batch cannot be committed. */
  broken: unknown = null;
  private done = false;

  constructor(private readonly core: StoreCore) {
    core.check();
    this.reader = core.blocks();
    this.writer = core.pageWriter((n) => this.progress({ phase: 'write', done: n, total: n }));
    this.nextId = core.nextBlockId;
  }

  /** Names of the models added to this batch so far. */
  get names(): string[] {
    return this.models.map((m) => m.name);
  }

  private checkName(name: string): void {
    if (this.done) throw new InvalidArgumentError('this batch was committed already: start another');
    if (this.broken) throw new InvalidArgumentError('an earlier add in this batch failed after placing blocks: the batch cannot be committed');
    validateModelName(name);
    if (this.core.has(name) || this.models.some((m) => m.name === name)) throw new ModelExistsError(name);
  }

  /** Parses and places a model (see AddBatch for what a failure leaves). */
  async add(name: string, onnx: Uint8Array, opts: AddOptions = {}): Promise<AddReport> {
    this.core.check();
    this.checkName(name);
    const { meta, tensors, settle } = await prepareModel(this.core, name, onnx, opts, this.writer);
    try {
      return await this.addBlocks(meta, tensors, opts);
    } finally {
      await settle();
    }
  }

  /** Places a model given as blocks (see addBlocks). */
  async addBlocks(meta: Omit<ModelEntry, 'addedAt' | 'tensors'>, tensors: NewTensor[], opts: { onProgress?: (p: Progress) => void } = {}): Promise<AddReport> {
    this.core.check();
    this.checkName(meta.name);
    const progress = (this.progress = opts.onProgress ?? (() => {}));
    const { tile } = this.core.config;
    const totalBlocks = tensors.reduce((n, t) => n + gridOf(t.dims, tile).count, 0);
    const freshBefore = this.fresh.length;
    const bytesBefore = this.writer.bytesPlaced;
    const entries: TensorEntry[] = [];
    let done = 0;
    progress({ phase: 'dedup', done: 0, total: totalBlocks });
    try {
      // A model joins the page the previous one left open only while that page stays a shared page.
      if (this.models.length) await this.writer.endPageUnlessShared(tensors.reduce((n, t) => n + gridOf(t.dims, tile).rows * gridOf(t.dims, tile).cols * DTYPES[t.dtype].bytes, 0));
      for (const t of tensors) {
        const grid = gridOf(t.dims, tile);
        const blocks = typeof t.blocks === 'function' ? await t.blocks() : t.blocks;
        if (grid.count !== blocks.length) throw new InvalidArgumentError(`tensor ${t.name}: ${blocks.length} blocks given, a ${tile.rows}x${tile.cols} grid over [${t.dims.join(', ')}] has ${grid.count}`);
        const ids = new Uint32Array(blocks.length);
        for (let i = 0; i < blocks.length; i++) {
          ids[i] = await findOrCreate(this.core, blocks[i], this.reader, this.writer, this.pending, this.fresh, () => this.nextId++, this.scratch);
          if (++done % 256 === 0) progress({ phase: 'dedup', done, total: totalBlocks });
        }
        entries.push({ name: t.name, dtype: t.dtype, dims: t.dims, location: t.location, blocks: ids, ...(t.encoding ? { encoding: t.encoding } : {}) });
      }
    } catch (e) {
      // Blocks placed for this model would be committed unreferenced: the batch is done for.
      // So would a page write that failed (it may surface in a later model: writes overlap the cutting).
      if (this.fresh.length > freshBefore || this.writer.bytesPlaced > bytesBefore || this.writer.failed) this.broken = e;
      throw e;
    }
    progress({ phase: 'dedup', done: totalBlocks, total: totalBlocks });
    const model: ModelEntry = { ...meta, addedAt: new Date().toISOString(), tensors: entries };
    this.models.push(model);
    const placed = this.fresh.slice(freshBefore);
    const newPages = new Set(placed.map((b) => b.page)).size;
    return { name: meta.name, tensors: entries.length, blocks: totalBlocks, newBlocks: placed.length, logicalBytes: Catalog.logicalBytes(model), newBytes: this.writer.bytesPlaced - bytesBefore, newPages };
  }

  /** Writes the last page and commits every model of the batch in one catalog record. */
  async commit(opts: { onProgress?: (p: Progress) => void } = {}): Promise<void> {
    this.core.check();
    if (this.done) throw new InvalidArgumentError('this batch was committed already');
    if (this.broken) throw this.broken;
    if (!this.models.length) throw new InvalidArgumentError('the batch holds no model: nothing to commit');
    const progress = opts.onProgress ?? this.progress;
    const { pages, moved } = await this.writer.finish({ share: true });
    progress({ phase: 'commit', done: 0, total: 1 });
    const blocks = this.fresh.map(({ content: _, ...b }) => b);
    const common = { seq: this.writer.epoch, blocks, pages, ...(moved.length ? { moved } : {}) };
    await this.core.commit(this.models.length === 1 ? { t: 'add', model: this.models[0], ...common } : { t: 'add-many', models: this.models, ...common });
    this.done = true;
    this.writer.release();
    progress({ phase: 'commit', done: 1, total: 1 });
  }
}

async function findOrCreate(
  core: StoreCore,
  input: BlockInput,
  reader: BlockSource,
  writer: PageWriter,
  pending: Map<string, PlacedBlock>,
  fresh: PlacedBlock[],
  allocate: () => number,
  /** Where a tile that does not fit the open page is cut (reused: tiles are at most a page). */
  scratch: { bytes: Uint8Array },
): Promise<number> {
  if ('local' in input) {
    if (!core.catalog.blocks.has(input.local)) throw new InvalidArgumentError(`block ${input.local} is not in the store`);
    return input.local;
  }
  // The block's bytes at hand: given, or cut now (onto the open page when it fits there).
  let bytes: Uint8Array | undefined;
  let onPage = false;
  if ('cutInto' in input) {
    const room = writer.room(input.length);
    onPage = room !== null;
    if (!room && scratch.bytes.length < input.length) scratch.bytes = new Uint8Array(input.length);
    bytes = room ?? scratch.bytes.subarray(0, input.length);
    input.cutInto(bytes);
  } else bytes = input.data;
  const length = bytes ? bytes.length : (input as { length: number }).length;
  const hash = input.hash ?? hash64Hex(bytes!);
  for (const id of core.catalog.withHash(hash)) {
    if (bytes ? bytesEqual(await reader.block(id), bytes) : contentLength(core.catalog.blocks.get(id)!) === length) return id;
  }
  const mine = pending.get(hash);
  if (mine && (bytes ? bytesEqual(mine.content ?? (await writer.placedBytes(mine)), bytes) : (mine.content?.length ?? mine.length) === length)) return mine.id;
  const data = bytes ?? (await (input as { load: () => Promise<Uint8Array> }).load());
  // A delta's base first: it is a block of this store, or placed by this add like any other.
  const stored = 'stored' in input ? input.stored : undefined;
  const base = stored?.base ? await findOrCreate(core, stored.base, reader, writer, pending, fresh, allocate, scratch) : undefined;
  const kept = stored ? stored.bytes : data;
  const { page, offset } = onPage ? writer.take(kept.length) : await writer.place(kept);
  const block: PlacedBlock = { ...stored?.coding, id: allocate(), page, offset, length: kept.length, hash, ...(base !== undefined ? { base } : {}), ...(stored ? { content: data } : {}) };
  if (!mine) pending.set(hash, block);
  fresh.push(block);
  return block.id;
}

/**
 * A native byte comparison where the platform has one (Node's Buffer.compare takes any Uint8Array
 * and is a memcmp): comparing the zoo's 21 MB of duplicate blocks took ~12 ms of each ingest in
 * the JS word loop below (`node --cpu-prof`, bench store --part=ingest), ~2 ms natively. Found by
 * feature detection, not imported: the core stays isomorphic, and browsers use the loop.
 */
const nativeCompare = (globalThis as { Buffer?: { compare(a: Uint8Array, b: Uint8Array): number } }).Buffer?.compare;

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  // Short arrays (hash digests) are quicker in the loop than through the native call.
  if (nativeCompare && a.length >= 256) return nativeCompare(a, b) === 0;
  // Compare 4 bytes at a time where alignment allows (blocks are views into tensors and pages).
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0 && a.length % 4 === 0) {
    const x = new Int32Array(a.buffer, a.byteOffset, a.length / 4);
    const y = new Int32Array(b.buffer, b.byteOffset, b.length / 4);
    // Four words per test: 5.6 vs 8.6 ms for the zoo's 21 MB of duplicate blocks (one at a time).
    let i = 0;
    for (; i + 4 <= x.length; i += 4) if ((x[i] ^ y[i]) | (x[i + 1] ^ y[i + 1]) | (x[i + 2] ^ y[i + 2]) | (x[i + 3] ^ y[i + 3])) return false;
    for (; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
