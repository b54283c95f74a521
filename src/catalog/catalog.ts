/**
 * The catalog: models → tensors → block ids → (page, offset, length), with reference counts.
 *
 * It lives as a journal of records on the PageStore (see page-store.ts for why that is atomic):
 * 'init' fixes the store's tile shape; 'add' carries one model with only the blocks and pages it
 * created, so adding a model writes O(that model), not O(store); 'rm' names a model. Reference
 * counts and free pages are derived by replaying records, never written. A periodic checkpoint
 * folds the journal into a snapshot; records carry a sequence number so a checkpoint cut short
 * by a crash (snapshot renamed, log not yet emptied) does not apply a record twice.
 */
import { decode, encode } from '@msgpack/msgpack';
import { CorruptionError, TesseraError } from '../errors.ts';
import type { TileShape } from '../blocks/tiling.ts';
import { gridOf } from '../blocks/tiling.ts';
import { DTYPES, type DType } from '../onnx/dtypes.ts';
import { TENSOR_ENCODINGS, type TensorEncoding } from '../onnx/model.ts';
import { BLOCK_CODECS, type BlockCodec } from '../codecs/block-codec.ts';

export const CATALOG_FORMAT = 1;

export interface StoreConfig {
  tile: TileShape;
  pageSize: number;
}

export interface TensorIOInfo {
  name: string;
  dtype: string;
  shape: (number | string | null)[];
}

export interface BlockEntry {
  page: number;
  offset: number;
  length: number;
  /** Hash of the block's content (for a delta block: of the reconstructed bytes). */
  hash: string;
  /** Tensor slots, retained substitutions and delta blocks that reference it. */
  refs: number;
  /**
   * A delta block: stored as a difference against block `base` (deflated byte planes,
   * src/codecs/delta.ts, or as `codec` says).
   */
  base?: number;
  /** How the stored bytes are coded (src/codecs/block-codec.ts); absent: raw, or a deflate delta. */
  codec?: BlockCodec;
  /** The content's length when `codec` is set (`length` is then the stored length). */
  size?: number;
}

/** A block slot of a model replaced by a near-duplicate representative, kept until settled. */
export interface Substitution {
  tensor: number;
  index: number;
  /** The original block (kept, so the substitution can be undone). */
  from: number;
  /** The representative now in the slot. */
  to: number;
  /** Distance between the two (the planner's measure, recorded for audit). */
  distance: number;
}

export interface TensorEntry {
  name: string;
  dtype: DType;
  dims: number[];
  location: string;
  /** Block ids in tile-grid order (row-major). */
  blocks: Uint32Array;
  /**
   * The TensorProto field the elements arrived in, when not raw_data (typed fields, or 'none' for
   * an empty tensor without data): export writes them back there, byte-identical to the input.
   * Absent in catalogs written before it existed; those export as raw_data.
   */
  encoding?: TensorEncoding;
}

export interface ModelEntry {
  name: string;
  addedAt: string;
  /** The model with its weight data removed (graph, opsets, metadata...). */
  skeleton: Uint8Array;
  tensors: TensorEntry[];
  inputs: TensorIOInfo[];
  outputs: TensorIOInfo[];
  /** Size of the ONNX bytes given to `add`. */
  sourceBytes: number;
  /** Lossy near-duplicate substitutions not yet settled (undoable). */
  substitutions?: Substitution[];
}

export interface PageEntry {
  /** Sequence number of the commit that wrote it: read back to detect stale slots. */
  epoch: number;
  /** Payload bytes used. */
  used: number;
  /** Live blocks on the page. */
  live: number;
}

export interface NewBlock {
  id: number;
  page: number;
  offset: number;
  length: number;
  hash: string;
  base?: number;
  codec?: BlockCodec;
  size?: number;
}

/** A block re-stored in a new coding, in a new place (its id, content and references unchanged). */
export interface BlockRecode {
  id: number;
  page: number;
  offset: number;
  length: number;
  codec: BlockCodec;
  size: number;
}

/** A stored block moved to another place (copied there before the commit that records it). */
export interface BlockMove {
  id: number;
  page: number;
  offset: number;
}

export type CatalogRecord =
  | { t: 'init'; seq: number; format: number; config: StoreConfig }
  /**
   * `moved`: blocks of a partly filled page copied onto one of the new pages (it then frees). On
   * the wire such a record is tagged 'add-shared', so a tessera that predates it refuses the
   * catalog ("written by a newer tessera?") instead of misreading where those blocks are.
   */
  | { t: 'add'; seq: number; model: ModelEntry; blocks: NewBlock[]; pages: { id: number; used: number }[]; moved?: BlockMove[] }
  /**
   * Several models added in one commit (a batch: `tessera add a.onnx b.onnx ...`): their new
   * blocks and pages, then each model's references. Tagged 'add-many' on the wire, so a tessera
   * that predates it refuses the catalog instead of skipping the models.
   */
  | { t: 'add-many'; seq: number; models: ModelEntry[]; blocks: NewBlock[]; pages: { id: number; used: number }[]; moved?: BlockMove[] }
  | { t: 'rm'; seq: number; name: string }
  /** Lossy dedup: slots of `model` now point at representatives; the originals are retained. */
  | { t: 'subst'; seq: number; model: string; subs: Substitution[] }
  /** Puts every retained original of `model` back in its slot. */
  | { t: 'undo'; seq: number; model: string }
  /** Drops the retained originals of `model` (its substitutions can no longer be undone). */
  | { t: 'settle'; seq: number; model: string }
  /** Lossless dedup: slots of `model` now point at new delta blocks (bit-exact); originals released. */
  | { t: 'delta'; seq: number; model: string; blocks: NewBlock[]; pages: { id: number; used: number }[]; slots: { tensor: number; index: number; to: number }[] }
  /** Lossless coding of stored blocks in place: each listed block now lies, coded, on a new page. */
  | { t: 'recode'; seq: number; blocks: BlockRecode[]; pages: { id: number; used: number }[] }
  /**
   * Compaction of some pages: the listed blocks moved onto new pages; pages left empty free.
   * `settle`: models whose substitutions are settled first, in the same commit (so compaction is
   * one atomic step). On the wire such a record is tagged 'repack-settle', so a tessera that
   * predates it refuses the catalog instead of replaying the moves without the settles.
   */
  | { t: 'repack'; seq: number; blocks: BlockMove[]; pages: { id: number; used: number }[]; settle?: string[] }
  /** Compaction of earlier versions (still replayed): every live block moved onto a new set of pages. */
  | { t: 'relayout'; seq: number; blocks: { id: number; page: number; offset: number }[]; pages: { id: number; used: number }[] };

// ---- wire encoding: msgpack, with block tables as little-endian typed-array bytes ----

const NO_BASE = 0xffffffff;

function u32Bytes(a: Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
function bytesU32(b: Uint8Array): Uint32Array {
  return new Uint32Array(b.slice().buffer);
}

function modelToWire(m: ModelEntry): unknown {
  return {
    name: m.name,
    addedAt: m.addedAt,
    skeleton: m.skeleton,
    inputs: m.inputs,
    outputs: m.outputs,
    sourceBytes: m.sourceBytes,
    // The encoding is a sixth element only when not raw_data: most tensors pay nothing for it.
    tensors: m.tensors.map((t) => {
      const wire: unknown[] = [t.name, t.dtype, t.dims, t.location, u32Bytes(t.blocks)];
      if (t.encoding !== undefined && t.encoding !== 'raw') wire.push(t.encoding);
      return wire;
    }),
    ...(m.substitutions?.length ? { substitutions: m.substitutions } : {}),
  };
}
function modelFromWire(w: any): ModelEntry {
  return {
    name: w.name,
    addedAt: w.addedAt,
    skeleton: w.skeleton,
    inputs: w.inputs,
    outputs: w.outputs,
    sourceBytes: w.sourceBytes,
    tensors: w.tensors.map((t: any[]) => {
      const entry: TensorEntry = { name: t[0], dtype: t[1], dims: t[2], location: t[3], blocks: bytesU32(t[4]) };
      if (t.length > 5) {
        if (!TENSOR_ENCODINGS.includes(t[5])) throw new CorruptionError('CATALOG_CORRUPT', `tensor "${t[0]}" of model "${w.name}" has an unknown encoding ${JSON.stringify(t[5])}: the catalog is damaged or newer than this tessera.`);
        entry.encoding = t[5];
      }
      return entry;
    }),
    ...(w.substitutions ? { substitutions: w.substitutions } : {}),
  };
}
/**
 * Coded blocks add two columns: the codec (a byte, 0 = none, else 1 + its index in BLOCK_CODECS)
 * and the content size. A record holding any is wrapped as 'coded' (see encodeRecord), so a
 * tessera that predates codecs refuses the catalog instead of reading coded bytes as raw.
 */
function codecColumns(blocks: readonly { codec?: BlockCodec; size?: number }[]): { codecs: Uint8Array; sizes: Uint8Array } | undefined {
  if (!blocks.some((b) => b.codec !== undefined)) return undefined;
  const codecs = new Uint8Array(blocks.length);
  const sizes = new Uint32Array(blocks.length);
  blocks.forEach((b, i) => {
    if (b.codec === undefined) return;
    codecs[i] = BLOCK_CODECS.indexOf(b.codec) + 1;
    sizes[i] = b.size!;
  });
  return { codecs, sizes: u32Bytes(sizes) };
}
function codecOf(w: any, i: number): { codec?: BlockCodec; size?: number } {
  if (!w.codecs) return {};
  const c = (w.codecs as Uint8Array)[i];
  if (c === 0) return {};
  const codec = BLOCK_CODECS[c - 1];
  if (!codec) throw new CorruptionError('CATALOG_CORRUPT', `a catalog record names block codec ${c}, which this tessera does not know: written by a newer tessera?`);
  const sizes = (w.sizesU32 ??= bytesU32(w.sizes)) as Uint32Array;
  return { codec, size: sizes[i] };
}
function blocksToWire(blocks: NewBlock[]): unknown {
  const n = blocks.length;
  const cols = [new Uint32Array(n), new Uint32Array(n), new Uint32Array(n), new Uint32Array(n), new Uint32Array(n)];
  const hashes: string[] = new Array(n);
  blocks.forEach((b, i) => {
    cols[0][i] = b.id;
    cols[1][i] = b.page;
    cols[2][i] = b.offset;
    cols[3][i] = b.length;
    cols[4][i] = b.base ?? NO_BASE;
    hashes[i] = b.hash;
  });
  return { cols: cols.map(u32Bytes), hashes: hashes.join(''), ...codecColumns(blocks) };
}
function blocksFromWire(w: any): NewBlock[] {
  const [ids, pages, offsets, lengths, bases] = (w.cols as Uint8Array[]).map(bytesU32);
  const out: NewBlock[] = new Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    out[i] = { id: ids[i], page: pages[i], offset: offsets[i], length: lengths[i], hash: (w.hashes as string).slice(i * 16, i * 16 + 16), ...codecOf(w, i) };
    if (bases[i] !== NO_BASE) out[i].base = bases[i];
  }
  return out;
}
function recodesToWire(blocks: BlockRecode[]): unknown {
  const n = blocks.length;
  const cols = [new Uint32Array(n), new Uint32Array(n), new Uint32Array(n), new Uint32Array(n)];
  blocks.forEach((b, i) => {
    cols[0][i] = b.id;
    cols[1][i] = b.page;
    cols[2][i] = b.offset;
    cols[3][i] = b.length;
  });
  return { cols: cols.map(u32Bytes), ...codecColumns(blocks) };
}
function recodesFromWire(w: any): BlockRecode[] {
  const [ids, pages, offsets, lengths] = (w.cols as Uint8Array[]).map(bytesU32);
  return Array.from(ids, (id, i) => {
    const { codec, size } = codecOf(w, i);
    if (!codec) throw new CorruptionError('CATALOG_CORRUPT', `a recode record leaves block ${id} without a codec: the catalog is damaged.`);
    return { id, page: pages[i], offset: offsets[i], length: lengths[i], codec, size: size! };
  });
}

function movesToWire(moves: BlockMove[]): Uint8Array[] {
  const n = moves.length;
  const cols = [new Uint32Array(n), new Uint32Array(n), new Uint32Array(n)];
  moves.forEach((b, i) => {
    cols[0][i] = b.id;
    cols[1][i] = b.page;
    cols[2][i] = b.offset;
  });
  return cols.map(u32Bytes);
}
function movesFromWire(w: Uint8Array[]): BlockMove[] {
  const [ids, pages, offsets] = w.map(bytesU32);
  return Array.from(ids, (id, i) => ({ id, page: pages[i], offset: offsets[i] }));
}

export function encodeRecord(rec: CatalogRecord): Uint8Array {
  const inner = encodeInner(rec);
  const coded = (rec.t === 'add' || rec.t === 'add-many' || rec.t === 'delta') && rec.blocks.some((b) => b.codec !== undefined);
  return coded ? encode({ t: 'coded', seq: rec.seq, record: inner }) : inner;
}

function encodeInner(rec: CatalogRecord): Uint8Array {
  const pages = (p: { id: number; used: number }[]) => p.map((x) => [x.id, x.used]);
  const moved = (m: BlockMove[] | undefined) => (m?.length ? { moved: movesToWire(m) } : {});
  if (rec.t === 'add') return encode({ t: rec.moved?.length ? 'add-shared' : 'add', seq: rec.seq, model: modelToWire(rec.model), blocks: blocksToWire(rec.blocks), pages: pages(rec.pages), ...moved(rec.moved) });
  if (rec.t === 'add-many') return encode({ t: 'add-many', seq: rec.seq, models: rec.models.map(modelToWire), blocks: blocksToWire(rec.blocks), pages: pages(rec.pages), ...moved(rec.moved) });
  if (rec.t === 'delta') return encode({ ...rec, blocks: blocksToWire(rec.blocks), pages: pages(rec.pages) });
  if (rec.t === 'recode') return encode({ t: 'recode', seq: rec.seq, blocks: recodesToWire(rec.blocks), pages: pages(rec.pages) });
  if (rec.t === 'repack' && rec.settle?.length) return encode({ t: 'repack-settle', seq: rec.seq, settle: rec.settle, blocks: movesToWire(rec.blocks), pages: pages(rec.pages) });
  if (rec.t === 'relayout' || rec.t === 'repack') return encode({ t: rec.t, seq: rec.seq, blocks: movesToWire(rec.blocks), pages: pages(rec.pages) });
  return encode(rec);
}

export function decodeRecord(bytes: Uint8Array): CatalogRecord {
  try {
    return decodeWire(bytes);
  } catch (e) {
    if (e instanceof TesseraError) throw e;
    throw new CorruptionError('CATALOG_CORRUPT', `a catalog record is malformed (${(e as Error)?.message ?? e}): the catalog is damaged.`);
  }
}

function decodeWire(bytes: Uint8Array): CatalogRecord {
  let w: any;
  try {
    w = decode(bytes);
  } catch (e) {
    throw new CorruptionError('CATALOG_CORRUPT', `a catalog record cannot be decoded (${(e as Error).message}): the catalog is damaged.`);
  }
  if (!w || typeof w !== 'object' || typeof w.seq !== 'number') throw new CorruptionError('CATALOG_CORRUPT', 'a catalog record has no sequence number: the catalog is damaged.');
  if (w.t === 'coded') {
    if (!(w.record instanceof Uint8Array)) throw new CorruptionError('CATALOG_CORRUPT', 'a coded catalog record holds no record: the catalog is damaged.');
    const inner = decodeWire(w.record);
    if ((inner.t !== 'add' && inner.t !== 'add-many' && inner.t !== 'delta') || inner.seq !== w.seq) throw new CorruptionError('CATALOG_CORRUPT', 'a coded catalog record wraps an unexpected record: the catalog is damaged.');
    return inner;
  }
  const pages = () => (w.pages as number[][]).map(([id, used]) => ({ id, used }));
  const moved = () => (w.moved ? { moved: movesFromWire(w.moved) } : {});
  if (w.t === 'add' || w.t === 'add-shared') return { t: 'add', seq: w.seq, model: modelFromWire(w.model), blocks: blocksFromWire(w.blocks), pages: pages(), ...moved() };
  if (w.t === 'add-many') {
    if (!Array.isArray(w.models)) throw new CorruptionError('CATALOG_CORRUPT', "a batch record's list of models is malformed: the catalog is damaged.");
    return { t: 'add-many', seq: w.seq, models: w.models.map(modelFromWire), blocks: blocksFromWire(w.blocks), pages: pages(), ...moved() };
  }
  if (w.t === 'repack-settle') {
    if (!Array.isArray(w.settle) || !w.settle.every((n: unknown) => typeof n === 'string')) throw new CorruptionError('CATALOG_CORRUPT', "a compaction record's list of models to settle is malformed: the catalog is damaged.");
    return { t: 'repack', seq: w.seq, blocks: movesFromWire(w.blocks), pages: pages(), settle: w.settle };
  }
  if (w.t === 'relayout' || w.t === 'repack') return { t: w.t, seq: w.seq, blocks: movesFromWire(w.blocks), pages: pages() };
  if (w.t === 'delta') return { ...w, blocks: blocksFromWire(w.blocks), pages: pages() };
  if (w.t === 'recode') return { t: 'recode', seq: w.seq, blocks: recodesFromWire(w.blocks), pages: pages() };
  if (w.t === 'init' || w.t === 'rm' || w.t === 'subst' || w.t === 'undo' || w.t === 'settle') return w as CatalogRecord;
  throw new CorruptionError('CATALOG_CORRUPT', `unknown catalog record type "${w.t}": written by a newer tessera?`);
}

// ---- in-memory state ----

export class Catalog {
  seq = 0;
  config: StoreConfig | null = null;
  readonly models = new Map<string, ModelEntry>();
  readonly blocks = new Map<number, BlockEntry>();
  readonly pages = new Map<number, PageEntry>();
  /** hash → block ids with that hash (several only on a hash collision). */
  readonly byHash = new Map<string, number[]>();
  nextBlockId = 0;
  /** Records applied since the last snapshot. */
  recordsSinceSnapshot = 0;

  static load(snapshot: Uint8Array | null, records: Uint8Array[]): Catalog {
    try {
      return Catalog.replay(snapshot, records);
    } catch (e) {
      // Records pass a checksum first, so only a crafted or incompatible catalog gets here: one
      // whose msgpack decodes but whose fields have the wrong types (TypeError while replaying).
      if (e instanceof TesseraError) throw e;
      throw new CorruptionError('CATALOG_CORRUPT', `the catalog holds a malformed record (${(e as Error)?.message ?? e}): it is damaged or was written by an incompatible tessera.`);
    }
  }

  private static replay(snapshot: Uint8Array | null, records: Uint8Array[]): Catalog {
    const cat = new Catalog();
    if (snapshot) {
      let snap: { t: string; seq: number; records: Uint8Array[]; epochs: number[][] };
      try {
        snap = decode(snapshot) as typeof snap;
      } catch (e) {
        throw new CorruptionError('CATALOG_CORRUPT', `the catalog snapshot cannot be decoded (${(e as Error).message}).`);
      }
      if (snap?.t !== 'snapshot') throw new CorruptionError('CATALOG_CORRUPT', 'the catalog snapshot is not a snapshot record.');
      for (const r of snap.records) cat.apply(decodeRecord(r));
      // Records inside a snapshot carry seq 0; the pages' real epochs are kept beside them.
      for (const [id, epoch] of snap.epochs) cat.pages.get(id)!.epoch = epoch;
      cat.seq = snap.seq;
    }
    for (const bytes of records) {
      const rec = decodeRecord(bytes);
      if (rec.seq <= cat.seq) continue; // already folded into the snapshot
      if (rec.seq !== cat.seq + 1) throw new CorruptionError('CATALOG_CORRUPT', `catalog record ${rec.seq} follows ${cat.seq}: records are missing.`);
      cat.apply(rec);
      cat.recordsSinceSnapshot++;
    }
    return cat;
  }

  apply(rec: CatalogRecord): void {
    switch (rec.t) {
      case 'init':
        this.config = rec.config;
        break;
      case 'add': {
        this.introduce(rec.seq, rec.blocks, rec.pages);
        if (rec.moved) this.move(rec.moved);
        for (const id of modelRefs(rec.model)) this.ref(id, +1);
        this.models.set(rec.model.name, rec.model);
        break;
      }
      case 'add-many': {
        this.introduce(rec.seq, rec.blocks, rec.pages);
        if (rec.moved) this.move(rec.moved);
        for (const model of rec.models) {
          if (this.models.has(model.name)) throw new CorruptionError('CATALOG_CORRUPT', `a batch record adds model "${model.name}", which the catalog already holds.`);
          for (const id of modelRefs(model)) this.ref(id, +1);
          this.models.set(model.name, model);
        }
        break;
      }
      case 'rm': {
        const model = this.mustModel(rec.name);
        this.models.delete(rec.name);
        for (const id of modelRefs(model)) this.ref(id, -1);
        break;
      }
      case 'subst': {
        const model = this.mustModel(rec.model);
        for (const sub of rec.subs) {
          const slots = model.tensors[sub.tensor]?.blocks;
          if (!slots || slots[sub.index] !== sub.from) throw new CorruptionError('CATALOG_CORRUPT', `a substitution in model "${rec.model}" names a slot that does not hold block ${sub.from}.`);
          slots[sub.index] = sub.to;
          this.ref(sub.to, +1); // the original stays referenced by the retained substitution
        }
        model.substitutions = [...(model.substitutions ?? []), ...rec.subs];
        break;
      }
      case 'undo': {
        const model = this.mustModel(rec.model);
        for (const sub of (model.substitutions ?? []).slice().reverse()) {
          model.tensors[sub.tensor].blocks[sub.index] = sub.from;
          this.ref(sub.to, -1);
        }
        model.substitutions = [];
        break;
      }
      case 'settle':
        this.settle(rec.model);
        break;
      case 'delta': {
        const model = this.mustModel(rec.model);
        this.introduce(rec.seq, rec.blocks, rec.pages);
        for (const slot of rec.slots) {
          const slots = model.tensors[slot.tensor].blocks;
          const from = slots[slot.index];
          slots[slot.index] = slot.to;
          this.ref(slot.to, +1);
          this.ref(from, -1);
        }
        break;
      }
      case 'recode': {
        for (const p of rec.pages) {
          if (this.pages.has(p.id)) throw new CorruptionError('CATALOG_CORRUPT', `a recode writes page ${p.id}, which the catalog already holds.`);
          this.pages.set(p.id, { epoch: rec.seq, used: p.used, live: 0 });
        }
        this.move(rec.blocks);
        for (const r of rec.blocks) {
          const b = this.blocks.get(r.id)!;
          b.length = r.length;
          b.codec = r.codec;
          b.size = r.size;
        }
        break;
      }
      case 'relayout': {
        if (rec.blocks.length !== this.blocks.size) throw new CorruptionError('CATALOG_CORRUPT', `a relayout moves ${rec.blocks.length} blocks, the catalog holds ${this.blocks.size}.`);
        this.pages.clear();
        for (const p of rec.pages) this.pages.set(p.id, { epoch: rec.seq, used: p.used, live: 0 });
        for (const m of rec.blocks) {
          const b = this.blocks.get(m.id);
          const page = this.pages.get(m.page);
          if (!b || !page) throw new CorruptionError('CATALOG_CORRUPT', `a relayout moves block ${m.id} to page ${m.page}: one of them is unknown.`);
          b.page = m.page;
          b.offset = m.offset;
          page.live++;
        }
        break;
      }
      case 'repack': {
        // Settles first: the moves were planned on the settled catalog (blocks it drops are not moved).
        for (const name of rec.settle ?? []) this.settle(name);
        for (const p of rec.pages) {
          if (this.pages.has(p.id)) throw new CorruptionError('CATALOG_CORRUPT', `a repack writes page ${p.id}, which the catalog already holds.`);
          this.pages.set(p.id, { epoch: rec.seq, used: p.used, live: 0 });
        }
        this.move(rec.blocks);
        break;
      }
    }
    this.seq = rec.seq;
  }

  /** Moves blocks onto (already registered) pages; a page left with no live block is dropped. */
  private move(moves: BlockMove[]): void {
    for (const m of moves) {
      const b = this.blocks.get(m.id);
      const to = this.pages.get(m.page);
      if (!b || !to) throw new CorruptionError('CATALOG_CORRUPT', `a record moves block ${m.id} to page ${m.page}: one of them is unknown.`);
      if (b.page === m.page) {
        b.offset = m.offset;
        continue;
      }
      const from = this.pages.get(b.page)!;
      if (--from.live === 0) this.pages.delete(b.page);
      b.page = m.page;
      b.offset = m.offset;
      to.live++;
    }
  }

  /** Drops the retained originals of `name`'s substitutions. */
  private settle(name: string): void {
    const model = this.mustModel(name);
    const subs = model.substitutions ?? [];
    model.substitutions = [];
    for (const sub of subs) this.ref(sub.from, -1);
  }

  private mustModel(name: string): ModelEntry {
    const model = this.models.get(name);
    if (!model) throw new CorruptionError('CATALOG_CORRUPT', `a catalog record names model "${name}", which the catalog does not hold.`);
    return model;
  }

  /** Registers new pages and blocks (no references yet, except a delta block's on its base). */
  private introduce(seq: number, blocks: NewBlock[], pages: { id: number; used: number }[]): void {
    // In a snapshot, a page shared by several models is listed by each model's record.
    for (const p of pages) if (!this.pages.has(p.id)) this.pages.set(p.id, { epoch: seq, used: p.used, live: 0 });
    for (const b of blocks) {
      this.blocks.set(b.id, { page: b.page, offset: b.offset, length: b.length, hash: b.hash, refs: 0, ...(b.base !== undefined ? { base: b.base } : {}), ...(b.codec !== undefined ? { codec: b.codec, size: b.size } : {}) });
      const same = this.byHash.get(b.hash);
      if (same) same.push(b.id);
      else this.byHash.set(b.hash, [b.id]);
      const page = this.pages.get(b.page);
      if (!page) throw new CorruptionError('CATALOG_CORRUPT', `block ${b.id} is on page ${b.page}, which the catalog does not hold.`);
      page.live++;
      if (b.id >= this.nextBlockId) this.nextBlockId = b.id + 1;
    }
    for (const b of blocks) if (b.base !== undefined) this.ref(b.base, +1);
  }

  private ref(id: number, delta: number): void {
    const b = this.blocks.get(id);
    if (!b) throw new CorruptionError('CATALOG_CORRUPT', `a reference names block ${id}, which the catalog does not hold.`);
    b.refs += delta;
    if (b.refs > 0) return;
    this.blocks.delete(id);
    const same = this.byHash.get(b.hash)!;
    same.splice(same.indexOf(id), 1);
    if (!same.length) this.byHash.delete(b.hash);
    const page = this.pages.get(b.page)!;
    if (--page.live === 0) this.pages.delete(b.page);
    if (b.base !== undefined) this.ref(b.base, -1);
  }

  /** Pages freed by removing `name` (what `rm` will give back), without changing the catalog. */
  pagesFreedBy(name: string): number[] {
    const model = this.models.get(name);
    if (!model) return [];
    // Replay the release on counters only: a block reaching zero releases its delta base too.
    const refs = new Map<number, number>();
    const live = new Map<number, number>();
    const freed: number[] = [];
    const drop = (id: number): void => {
      const b = this.blocks.get(id)!;
      const left = (refs.get(id) ?? b.refs) - 1;
      refs.set(id, left);
      if (left > 0) return;
      const pageLive = (live.get(b.page) ?? this.pages.get(b.page)!.live) - 1;
      live.set(b.page, pageLive);
      if (pageLive === 0) freed.push(b.page);
      if (b.base !== undefined) drop(b.base);
    };
    for (const id of modelRefs(model)) drop(id);
    return freed.sort((a, b) => a - b);
  }

  /** One past the highest page id in use. */
  pageLimit(): number {
    let max = -1;
    for (const id of this.pages.keys()) if (id > max) max = id;
    return max + 1;
  }

  /** The whole state as one record (every model re-expressed as an 'add'). */
  snapshot(): Uint8Array {
    const records: Uint8Array[] = [];
    if (this.config) records.push(encodeRecord({ t: 'init', seq: 0, format: CATALOG_FORMAT, config: this.config }));
    // Each block is introduced by the first model (in insertion order) that needs it; a delta
    // block's base is introduced before it.
    const introduced = new Set<number>();
    for (const model of this.models.values()) {
      const blocks: NewBlock[] = [];
      const pages = new Map<number, number>();
      const introduce = (id: number): void => {
        if (introduced.has(id)) return;
        introduced.add(id);
        const b = this.blocks.get(id)!;
        if (b.base !== undefined) introduce(b.base);
        blocks.push({ id, page: b.page, offset: b.offset, length: b.length, hash: b.hash, ...(b.base !== undefined ? { base: b.base } : {}), ...(b.codec !== undefined ? { codec: b.codec, size: b.size } : {}) });
        if (!pages.has(b.page)) pages.set(b.page, this.pages.get(b.page)!.used);
      };
      for (const id of modelRefs(model)) introduce(id);
      records.push(encodeRecord({ t: 'add', seq: 0, model, blocks, pages: [...pages].map(([id, used]) => ({ id, used })) }));
    }
    const epochs = [...this.pages].map(([id, p]) => [id, p.epoch]);
    return encode({ t: 'snapshot', seq: this.seq, records, epochs });
  }

  /** Bytes a model's tensors take uncompressed (what it would take stored alone). */
  static logicalBytes(model: ModelEntry): number {
    let n = 0;
    for (const t of model.tensors) n += t.dims.reduce((a, d) => a * d, 1) * DTYPES[t.dtype].bytes;
    return n;
  }
}

/**
 * The length of a block's content as the catalog knows it: a coded block's recorded size, else its
 * stored length (for a deflate delta that is the delta's; its content is its base's length).
 */
export function contentLength(b: Readonly<BlockEntry>): number {
  return b.codec !== undefined ? b.size! : b.length;
}

/** Every block reference a model holds: its tensor slots and its retained substitution originals. */
export function modelRefs(model: ModelEntry): number[] {
  const ids: number[] = [];
  for (const t of model.tensors) for (const id of t.blocks) ids.push(id);
  for (const sub of model.substitutions ?? []) ids.push(sub.from);
  return ids;
}

/** What checkCatalog reads (a Catalog, or a read-only view of one). */
export interface CatalogTables {
  readonly config: StoreConfig | null;
  readonly models: ReadonlyMap<string, ModelEntry>;
  readonly blocks: ReadonlyMap<number, Readonly<BlockEntry>>;
  readonly pages: ReadonlyMap<number, Readonly<PageEntry>>;
}

/** Checks the catalog adds up; returns one line per problem. */
export function checkCatalog(cat: CatalogTables): string[] {
  const problems: string[] = [];
  const refs = new Map<number, number>();
  const count = (id: number) => refs.set(id, (refs.get(id) ?? 0) + 1);
  for (const m of cat.models.values()) {
    for (const t of m.tensors) {
      const grid = gridOf(t.dims, cat.config!.tile);
      if (grid.count !== t.blocks.length) problems.push(`model ${m.name}, tensor ${t.name}: ${t.blocks.length} blocks, its grid has ${grid.count}`);
    }
    for (const id of modelRefs(m)) count(id);
  }
  for (const b of cat.blocks.values()) if (b.base !== undefined) count(b.base);
  for (const [id, n] of refs) {
    const b = cat.blocks.get(id);
    if (!b) problems.push(`block ${id} is referenced but missing`);
    else if (b.refs !== n) problems.push(`block ${id} counts ${b.refs} references, the catalog holds ${n}`);
  }
  const live = new Map<number, { n: number; spans: [number, number][] }>();
  for (const [id, b] of cat.blocks) {
    if (!refs.has(id)) problems.push(`block ${id} is unreferenced but kept`);
    const p = cat.pages.get(b.page);
    if (!p) {
      problems.push(`block ${id} is on page ${b.page}, which is not in the catalog`);
      continue;
    }
    if (b.offset + b.length > p.used) problems.push(`block ${id} ends at ${b.offset + b.length}, past page ${b.page}'s ${p.used} used bytes`);
    const l = live.get(b.page) ?? { n: 0, spans: [] };
    l.n++;
    l.spans.push([b.offset, b.offset + b.length]);
    live.set(b.page, l);
  }
  for (const [id, p] of cat.pages) {
    const l = live.get(id);
    if (!l) problems.push(`page ${id} holds no live block but is kept`);
    else if (l.n !== p.live) problems.push(`page ${id} counts ${p.live} live blocks, the block table has ${l.n}`);
    if (l) {
      l.spans.sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < l.spans.length; i++) if (l.spans[i][0] < l.spans[i - 1][1]) problems.push(`page ${id}: blocks overlap at byte ${l.spans[i][0]}`);
    }
    if (p.used > cat.config!.pageSize) problems.push(`page ${id} uses ${p.used} bytes, more than the page size`);
  }
  return problems;
}
