/**
 * The dedup transactions, each one commit: lossy substitution of near-duplicate blocks (undoable
 * until settled) and lossless re-storing of blocks as deltas against a base. Which blocks to
 * substitute or delta-encode is the dedup planner's business (src/dedup/); these only apply it.
 */
import { InvalidArgumentError } from '../errors.ts';
import { DTYPES } from '../onnx/dtypes.ts';
import { contentLength, type BlockRecode, type NewBlock, type Substitution } from '../catalog/catalog.ts';
import { blockCodecReady, encodeBlock } from '../codecs/block-codec.ts';
import type { StoreCore } from './core.ts';

/**
 * Lossy near-duplicate dedup: slots of `name` now point at representative blocks. The original
 * blocks are kept (and the substitution recorded with its distance) until `settle`, so `undo`
 * restores the model exactly. One atomic commit.
 */
export async function substitute(core: StoreCore, name: string, subs: { tensor: number; index: number; to: number; distance: number }[]): Promise<void> {
  core.check();
  const model = core.model(name);
  const blocks = core.catalog.blocks;
  const full: Substitution[] = subs.map((s) => {
    const from = model.tensors[s.tensor]?.blocks[s.index];
    if (from === undefined) throw new InvalidArgumentError(`model "${name}" has no block slot ${s.tensor}/${s.index}`);
    const target = blocks.get(s.to);
    if (!target) throw new InvalidArgumentError(`representative block ${s.to} is not in the store`);
    if (target.length !== blocks.get(from)!.length) throw new InvalidArgumentError(`representative block ${s.to} has another shape than slot ${s.tensor}/${s.index}`);
    return { tensor: s.tensor, index: s.index, from, to: s.to, distance: s.distance };
  });
  if (full.length) await core.commit({ t: 'subst', seq: core.nextSeq, model: name, subs: full });
}

/** Puts back every original block of `name` that a substitution replaced; returns how many. */
export async function undoSubstitutions(core: StoreCore, name: string): Promise<number> {
  core.check();
  const n = core.model(name).substitutions?.length ?? 0;
  if (n) await core.commit({ t: 'undo', seq: core.nextSeq, model: name });
  return n;
}

/** Makes `name`'s substitutions final: originals no longer needed are freed (no undo after). */
export async function settle(core: StoreCore, name: string): Promise<{ freedPages: number }> {
  core.check();
  if (!core.model(name).substitutions?.length) return { freedPages: 0 };
  const freed = await core.commit({ t: 'settle', seq: core.nextSeq, model: name });
  return { freedPages: freed.length };
}

export interface DeltaOptions {
  /**
   * Smallest saving a delta must make, as a fraction of what the block costs without one (raw,
   * or coded alone when that is smaller): a delta costs its base's decoding on every read.
   */
  minSaving?: number;
  /** zstd level of the coded planes (block-codec.ts). */
  level?: number;
}

/**
 * Lossless dedup: each listed block of `name` (held by no other model) is re-stored as a coded
 * delta against `base` ('zstd-planes', block-codec.ts) when that saves at least `minSaving` of
 * what the block costs without a base. Reads stay bit-exact. One atomic commit; the replaced
 * blocks' pages are freed when empty.
 */
export async function storeDeltas(core: StoreCore, name: string, pairs: { block: number; base: number }[], opts: DeltaOptions = {}): Promise<{ replaced: number; bytesSaved: number }> {
  core.check();
  const model = core.model(name);
  const minSaving = opts.minSaving ?? 0.05;
  await blockCodecReady();
  const slotsOf = new Map<number, { tensor: number; index: number }[]>();
  model.tensors.forEach((t, ti) => t.blocks.forEach((id, i) => {
    const list = slotsOf.get(id);
    if (list) list.push({ tensor: ti, index: i });
    else slotsOf.set(id, [{ tensor: ti, index: i }]);
  }));
  const reader = core.blocks();
  const deltas: { block: number; base: number; hash: string; size: number; data: Uint8Array; slots: { tensor: number; index: number }[] }[] = [];
  let bytesSaved = 0;
  const done = new Set<number>();
  for (const { block, base } of pairs) {
    const entry = core.catalog.blocks.get(block);
    const baseEntry = core.catalog.blocks.get(base);
    const mine = slotsOf.get(block);
    // Only blocks this model holds alone, against raw bases (one delta level bounds read cost).
    if (!entry || !baseEntry || !mine || done.has(block) || block === base || entry.base !== undefined || baseEntry.base !== undefined) continue;
    if (entry.refs !== mine.length || contentLength(baseEntry) !== contentLength(entry)) continue;
    const elemBytes = DTYPES[model.tensors[mine[0].tensor].dtype].bytes;
    const content = await reader.block(block);
    const delta = encodeBlock(content, await reader.block(base), elemBytes, opts.level);
    const without = entry.codec !== undefined ? entry.length : Math.min(entry.length, encodeBlock(content, undefined, elemBytes, opts.level).length);
    if (delta.length > without * (1 - minSaving)) continue;
    done.add(block);
    deltas.push({ block, base, hash: entry.hash, size: content.length, data: delta, slots: mine });
    bytesSaved += entry.length - delta.length;
  }
  if (!deltas.length) return { replaced: 0, bytesSaved: 0 };
  const writer = core.pageWriter();
  const blocks: NewBlock[] = [];
  const slots: { tensor: number; index: number; to: number }[] = [];
  let nextId = core.nextBlockId;
  for (const d of deltas) {
    const id = nextId++;
    const { page, offset } = await writer.place(d.data);
    blocks.push({ id, page, offset, length: d.data.length, hash: d.hash, base: d.base, codec: 'zstd-planes', size: d.size });
    for (const slot of d.slots) slots.push({ ...slot, to: id });
  }
  // No page sharing here: the blocks this record replaces would be moved only to be dropped.
  const { pages } = await writer.finish();
  await core.commit({ t: 'delta', seq: writer.epoch, model: name, blocks, pages, slots });
  return { replaced: deltas.length, bytesSaved };
}

export interface RecodeOptions {
  /** Smallest saving coding must make, as a fraction of the raw block (else it stays raw: raw reads cost nothing). */
  minSaving?: number;
  /** zstd level of the coded planes (block-codec.ts). */
  level?: number;
}

/**
 * Lossless coding in place: each listed raw block (default: every raw block a model's tensors
 * hold) is re-stored coded ('zstd-planes', block-codec.ts) when that saves at least `minSaving` of
 * it. Block ids, contents and every reference stay as they are; only where and how the bytes lie
 * changes. One atomic commit; pages left empty are freed (partly emptied ones wait for compact).
 */
export async function recodeBlocks(core: StoreCore, ids?: Iterable<number>, opts: RecodeOptions = {}): Promise<{ recoded: number; bytesSaved: number }> {
  core.check();
  const minSaving = opts.minSaving ?? 0.02;
  await blockCodecReady();
  // A block's element size is its tensors' dtype's (tensors sharing a block share its bytes' meaning).
  const elemBytesOf = new Map<number, number>();
  for (const m of core.catalog.models.values()) {
    for (const t of m.tensors) for (const id of t.blocks) if (!elemBytesOf.has(id)) elemBytesOf.set(id, DTYPES[t.dtype].bytes);
  }
  const reader = core.blocks();
  const coded: { id: number; size: number; data: Uint8Array }[] = [];
  let bytesSaved = 0;
  for (const id of ids ?? [...elemBytesOf.keys()]) {
    const entry = core.catalog.blocks.get(id);
    const elemBytes = elemBytesOf.get(id);
    if (!entry || elemBytes === undefined || entry.base !== undefined || entry.codec !== undefined || entry.length % elemBytes) continue;
    const content = await reader.block(id);
    const data = encodeBlock(content, undefined, elemBytes, opts.level);
    if (data.length > content.length * (1 - minSaving)) continue;
    coded.push({ id, size: content.length, data });
    bytesSaved += content.length - data.length;
  }
  if (!coded.length) return { recoded: 0, bytesSaved: 0 };
  const writer = core.pageWriter();
  const blocks: BlockRecode[] = [];
  for (const c of coded) {
    const { page, offset } = await writer.place(c.data);
    blocks.push({ id: c.id, page, offset, length: c.data.length, codec: 'zstd-planes', size: c.size });
  }
  const { pages } = await writer.finish();
  await core.commit({ t: 'recode', seq: writer.epoch, blocks, pages });
  return { recoded: coded.length, bytesSaved };
}
