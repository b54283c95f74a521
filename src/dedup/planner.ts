/**
 * Near-duplicate dedup planner: for each model, candidate representatives for its float blocks
 * (from an LSH index over the store's other blocks), verified by distance, ordered by expected
 * impact, then applied under an accuracy bound. Only a state that passed its evaluation is ever
 * committed (one atomic `substitute` per model), so a dedup interrupted at any point leaves every
 * model servable and within the bound.
 *
 * Three planners share the index, the evaluation and the commit:
 * - 'ours': SimHash LSH (sub-quadratic), the candidate with the least L2 distance, ordered by the
 *   fraction of the layer's weight energy a substitution changes; the bound checked by evaluating
 *   the whole list, then binary-searching the longest passing prefix, skipping the substitution
 *   that broke it and searching the rest again (a few rounds): O(rounds x log n) evaluations.
 * - 'netsdb': netsDB exactly (PAPER.md section 1): p-stable LSH (90 bands, r = 0.09), the most
 *   similar candidate (fraction of elements within 0.01) above 0.7, ascending normalised 75th
 *   percentile magnitude, one-block layers skipped, an evaluation every 5 substitutions, stop at
 *   the first failure and roll back to the last passing state: O(n / 5) evaluations.
 * - 'mistique': MISTIQUE's approximate match (values bucketed, MinHash with 48 permutations,
 *   Jaccard >= 0.5) for detection, with netsDB's order and accuracy loop.
 * The index follows netsDB: blocks of models not being deduplicated seed it; each processed
 * model's remaining blocks are added after it (its replaced blocks never become representatives).
 */
import { InvalidArgumentError } from '../errors.ts';
import type { ModelEntry } from '../catalog/catalog.ts';
import { gridOf, paddedTile, placeBlock, tileExtent } from '../blocks/tiling.ts';
import { blockRegion, NETSDB_SIMILARITY_EPS, WasmBlockDistance, type BlockDistance } from '../kernels/distance.ts';
import { NETSDB_LSH } from '../kernels/lsh.ts';
import { LshIndex } from './lsh-index.ts';
import { jaccardEstimate, MinHashIndex, minhashSignature, MISTIQUE_MINHASH } from './minhash.ts';
import type { Evaluator } from './evaluate.ts';
import type { TesseraStore } from '../store/store.ts';

export type DedupMethod = 'ours' | 'netsdb' | 'mistique';
export const DEDUP_METHODS: readonly DedupMethod[] = ['ours', 'netsdb', 'mistique'];

/** netsDB's planner settings (PAPER.md section 1). */
export const NETSDB_PLANNER = { similarity: 0.7, every: 5 } as const;
/** SimHash index for 'ours' and lossless mode: 32 bands of 24 bits (bench/kernels.ts: recall 1 to 20% noise). */
export const OUR_LSH = { family: 'simhash', bands: 32 } as const;

export interface DedupProgress {
  model: string;
  step: 'index' | 'candidates' | 'evaluate' | 'commit';
  done: number;
  total: number;
}

export interface DedupOptions {
  /** Largest accepted drop of the score, as a fraction in [0, 1] (0.01 = one point). */
  maxDrop: number;
  method?: DedupMethod;
  /** Models to deduplicate (default: all, in store order). */
  models?: string[];
  /** The evaluator of a model, given its current weights (skeleton order). */
  evaluator: (model: ModelEntry, weights: Uint8Array[]) => Promise<Evaluator>;
  onProgress?: (p: DedupProgress) => void;
  seed?: number;
  /** ours: a candidate with ||x - y|| / ||x|| above this is not proposed (default 0.5). */
  maxRelativeDistance?: number;
  /** ours: search rounds, each skipping the substitution that broke the bound (default 3). */
  rounds?: number;
  /** netsdb / mistique: evaluate every this many substitutions (default 5). */
  every?: number;
  /** netsdb: similarity threshold (default 0.7). */
  similarity?: number;
}

export interface ModelDedupReport {
  name: string;
  method: DedupMethod;
  scoring: 'labelled' | 'agreement';
  /** Verified candidates found (before the accuracy loop). */
  proposals: number;
  blocksReplaced: number;
  /** Bytes freed once the substitutions are settled. */
  bytesSaved: number;
  accuracyBefore: number;
  accuracyAfter: number;
  evaluations: number;
}

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

interface BlockShape {
  h: number;
  w: number;
}

/** A float32 slot of a model that can be substituted. */
interface Slot {
  tensor: number;
  index: number;
  id: number;
  h: number;
  w: number;
}

export function validateMaxDrop(maxDrop: number): void {
  if (typeof maxDrop !== 'number' || !Number.isFinite(maxDrop) || maxDrop < 0 || maxDrop > 1) {
    throw new InvalidArgumentError(`max-drop must be a fraction in [0, 1] (0.01 = one accuracy point), got ${maxDrop}.`);
  }
}

/** Models to process, in store order; unknown names are MODEL_NOT_FOUND. */
function targetsOf(store: TesseraStore, models?: string[]): string[] {
  if (!models) return store.listModels();
  for (const m of models) store.model(m);
  const want = new Set(models);
  return store.listModels().filter((m) => want.has(m));
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

  static async create(store: TesseraStore, index: 'simhash' | 'pstable' | 'minhash', seed = 1): Promise<BlockCatalogView> {
    const dim = store.config.tile.rows * store.config.tile.cols;
    const lsh = index === 'simhash' ? await LshIndex.create({ ...OUR_LSH, dim, seed }) : index === 'pstable' ? await LshIndex.create({ ...NETSDB_LSH, dim, seed }) : null;
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

/** The 75th percentile of a block's values. */
function quantile75(v: Float32Array): number {
  const s = Float32Array.from(v).sort();
  return s[Math.min(s.length - 1, Math.floor(0.75 * (s.length - 1)))];
}

/** Squared L2 norm of each tensor (float32 tensors; 0 for others). */
function tensorEnergy(model: ModelEntry, weights: Uint8Array[]): number[] {
  return model.tensors.map((t, i) => {
    if (t.dtype !== 'float32') return 0;
    const b = weights[i];
    const f = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    let e = 0;
    for (let k = 0; k < f.length; k++) e += f[k] * f[k];
    return e;
  });
}

/** Min and max value of each float32 tensor (netsDB's per-layer normalisation). */
function tensorRange(model: ModelEntry, weights: Uint8Array[]): { min: number; max: number }[] {
  return model.tensors.map((t, i) => {
    if (t.dtype !== 'float32') return { min: 0, max: 0 };
    const b = weights[i];
    const f = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    let min = Infinity;
    let max = -Infinity;
    for (let k = 0; k < f.length; k++) {
      if (f[k] < min) min = f[k];
      if (f[k] > max) max = f[k];
    }
    return { min, max };
  });
}

/** Verified, ordered proposals for a model's slots under a method. */
export function propose(view: BlockCatalogView, model: ModelEntry, weights: Uint8Array[], slots: Slot[], method: DedupMethod, opts: { maxRelativeDistance?: number; similarity?: number } = {}): Proposal[] {
  const { tile } = view.store.config;
  const own = new Set(slots.map((s) => s.id));
  for (const t of model.tensors) for (const id of t.blocks) own.add(id);
  const out: Proposal[] = [];
  if (method === 'ours') {
    const maxRel = opts.maxRelativeDistance ?? 0.5;
    const energy = tensorEnergy(model, weights);
    const cands = view.candidates(slots, own, 16);
    slots.forEach((s, k) => {
      if (!cands[k].length) return;
      const region = blockRegion(tile.rows, tile.cols, s.h, s.w);
      const d = view.distance.l2(view.tileOf(s.id), cands[k].map((id) => view.tileOf(id)), region);
      let best = 0;
      for (let j = 1; j < d.length; j++) if (d[j] < d[best]) best = j;
      const v = view.valuesOf(s.id);
      let norm = 0;
      for (let j = 0; j < v.length; j++) norm += v[j] * v[j];
      const rel = norm > 0 ? d[best] / Math.sqrt(norm) : d[best] === 0 ? 0 : Infinity;
      if (!(rel <= maxRel)) return;
      // Expected impact: the share of the layer's weight energy the substitution changes.
      out.push({ tensor: s.tensor, index: s.index, from: s.id, to: cands[k][best], distance: d[best], order: energy[s.tensor] > 0 ? (d[best] * d[best]) / energy[s.tensor] : 0 });
    });
  } else {
    const threshold = method === 'netsdb' ? (opts.similarity ?? NETSDB_PLANNER.similarity) : 0.5;
    const range = tensorRange(model, weights);
    // netsDB never deduplicated a layer that fits in one block.
    const eligible = slots.filter((s) => model.tensors[s.tensor].blocks.length > 1);
    const cands = view.candidates(eligible, own);
    eligible.forEach((s, k) => {
      if (!cands[k].length) return;
      let sim: ArrayLike<number>;
      if (method === 'netsdb') {
        sim = view.distance.similarity(view.tileOf(s.id), cands[k].map((id) => view.tileOf(id)), blockRegion(tile.rows, tile.cols, s.h, s.w), NETSDB_SIMILARITY_EPS);
      } else {
        const sig = view.minhashOf(s.id);
        sim = cands[k].map((id) => jaccardEstimate(sig, view.minhashOf(id)));
      }
      let best = 0;
      for (let j = 1; j < sim.length; j++) if (sim[j] > sim[best]) best = j;
      if (!(sim[best] >= threshold)) return;
      const { min, max } = range[s.tensor];
      const magnitude = max > min ? (quantile75(view.valuesOf(s.id)) - min) / (max - min) : 0;
      out.push({ tensor: s.tensor, index: s.index, from: s.id, to: cands[k][best], distance: 1 - sim[best], order: magnitude });
    });
  }
  // Stable order: key, then slot position.
  return out.sort((a, b) => a.order - b.order || a.tensor - b.tensor || a.index - b.index);
}

/** Outcome of an accuracy loop: the accepted proposals and the score of that state. */
interface LoopResult {
  accepted: Proposal[];
  score: number;
}

type Score = (subs: Proposal[]) => Promise<number>;

/** netsDB: evaluate after every `every` substitutions; at the first failure keep the last passing state. */
export async function netsdbLoop(props: Proposal[], score: Score, before: number, maxDrop: number, every: number): Promise<LoopResult> {
  let passing = 0;
  let passingScore = before;
  for (let n = Math.min(every, props.length); n > passing; n = Math.min(n + every, props.length)) {
    const s = await score(props.slice(0, n));
    if (before - s > maxDrop + 1e-12) break;
    passing = n;
    passingScore = s;
  }
  return { accepted: props.slice(0, passing), score: passingScore };
}

/**
 * Ours: evaluate everything; if that fails, binary-search the longest passing prefix, skip the
 * proposal after it (the one that broke the bound) and search the rest again, up to `rounds` times.
 */
export async function searchLoop(props: Proposal[], score: Score, before: number, maxDrop: number, rounds: number): Promise<LoopResult> {
  const passes = (s: number) => before - s <= maxDrop + 1e-12;
  let accepted: Proposal[] = [];
  let acceptedScore = before;
  let rest = props;
  for (let round = 0; round < rounds && rest.length; round++) {
    const all = await score([...accepted, ...rest]);
    if (passes(all)) return { accepted: [...accepted, ...rest], score: all };
    let lo = 0;
    let loScore = acceptedScore;
    let hi = rest.length;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      const s = await score([...accepted, ...rest.slice(0, mid)]);
      if (passes(s)) {
        lo = mid;
        loScore = s;
      } else hi = mid;
    }
    accepted = [...accepted, ...rest.slice(0, lo)];
    acceptedScore = loScore;
    rest = rest.slice(lo + 1);
  }
  return { accepted, score: acceptedScore };
}

/** Bytes freed once `subs` are settled: originals no slot elsewhere still holds. */
function bytesFreed(store: TesseraStore, model: ModelEntry, subs: Proposal[]): number {
  const held = new Map<number, number>();
  for (const t of model.tensors) for (const id of t.blocks) held.set(id, (held.get(id) ?? 0) + 1);
  const replaced = new Map<number, number>();
  for (const s of subs) replaced.set(s.from, (replaced.get(s.from) ?? 0) + 1);
  let bytes = 0;
  for (const [id, n] of replaced) {
    const b = store.catalog.blocks.get(id)!;
    if (b.refs === n && held.get(id) === n) bytes += b.length;
  }
  return bytes;
}

/**
 * Lossy near-duplicate dedup of the store's models (or `opts.models`) under an accuracy bound.
 * Each model's accepted substitutions are committed at once (undo with `undoSubstitutions`,
 * finalise with `settle` or `compact`).
 */
export async function dedupModels(store: TesseraStore, opts: DedupOptions): Promise<ModelDedupReport[]> {
  validateMaxDrop(opts.maxDrop);
  const method = opts.method ?? 'ours';
  if (!DEDUP_METHODS.includes(method)) throw new InvalidArgumentError(`unknown dedup method "${method}": use one of ${DEDUP_METHODS.join(', ')}.`);
  const targets = targetsOf(store, opts.models);
  const progress = opts.onProgress ?? (() => {});
  const view = await BlockCatalogView.create(store, method === 'ours' ? 'simhash' : method === 'netsdb' ? 'pstable' : 'minhash', opts.seed ?? 1);
  const targetSet = new Set(targets);
  const others = store.listModels().filter((m) => !targetSet.has(m));
  for (let i = 0; i < others.length; i++) {
    progress({ model: others[i], step: 'index', done: i + 1, total: others.length });
    await view.addModel(store.model(others[i]));
  }
  const reports: ModelDedupReport[] = [];
  for (const name of targets) {
    const model = store.model(name);
    const weights = await store.tensorData(name);
    const slots = view.slotsOf(model);
    await view.load(slots);
    progress({ model: name, step: 'candidates', done: 0, total: slots.length });
    const props = propose(view, model, weights, slots, method, opts);
    progress({ model: name, step: 'candidates', done: slots.length, total: slots.length });
    const evaluator = await opts.evaluator(model, weights);
    const before = evaluator.kind === 'agreement' ? 1 : await evaluator.score(weights);
    let evaluated = 0;
    const score: Score = async (subs) => {
      progress({ model: name, step: 'evaluate', done: ++evaluated, total: Math.max(evaluated, props.length) });
      return evaluator.score(weightsWith(view, model, weights, subs));
    };
    let result: LoopResult = { accepted: [], score: before };
    if (props.length) {
      result = method === 'ours'
        ? await searchLoop(props, score, before, opts.maxDrop, opts.rounds ?? 3)
        : await netsdbLoop(props, score, before, opts.maxDrop, opts.every ?? NETSDB_PLANNER.every);
    }
    const bytesSaved = bytesFreed(store, model, result.accepted);
    progress({ model: name, step: 'commit', done: 0, total: 1 });
    await store.substitute(name, result.accepted.map(({ tensor, index, to, distance }) => ({ tensor, index, to, distance })));
    progress({ model: name, step: 'commit', done: 1, total: 1 });
    reports.push({
      name, method, scoring: evaluator.kind, proposals: props.length, blocksReplaced: result.accepted.length, bytesSaved,
      accuracyBefore: before, accuracyAfter: result.score, evaluations: evaluator.evaluations,
    });
    await view.addModel(store.model(name));
  }
  return reports;
}

export interface LosslessReport {
  name: string;
  blocksReplaced: number;
  bytesSaved: number;
}

/**
 * Lossless dedup: each raw float block a model holds alone is re-stored as a compressed delta
 * against its nearest representative (least L2 among SimHash candidates) when that saves at least
 * `minSaving` of its bytes. Reads stay bit-exact; no evaluation is needed.
 */
export async function dedupLossless(store: TesseraStore, opts: { models?: string[]; minSaving?: number; seed?: number; onProgress?: (p: DedupProgress) => void } = {}): Promise<LosslessReport[]> {
  const targets = targetsOf(store, opts.models);
  const progress = opts.onProgress ?? (() => {});
  const view = await BlockCatalogView.create(store, 'simhash', opts.seed ?? 1);
  const { tile } = store.config;
  const targetSet = new Set(targets);
  for (const m of store.listModels()) if (!targetSet.has(m)) await view.addModel(store.model(m));
  const reports: LosslessReport[] = [];
  for (const name of targets) {
    const model = store.model(name);
    const slots = view.slotsOf(model);
    await view.load(slots);
    progress({ model: name, step: 'candidates', done: 0, total: slots.length });
    const own = new Set<number>();
    for (const t of model.tensors) for (const id of t.blocks) own.add(id);
    const cands = view.candidates(slots, own, 16);
    const pairs: { block: number; base: number }[] = [];
    slots.forEach((s, k) => {
      if (!cands[k].length) return;
      const d = view.distance.l2(view.tileOf(s.id), cands[k].map((id) => view.tileOf(id)), blockRegion(tile.rows, tile.cols, s.h, s.w));
      let best = 0;
      for (let j = 1; j < d.length; j++) if (d[j] < d[best]) best = j;
      pairs.push({ block: s.id, base: cands[k][best] });
    });
    progress({ model: name, step: 'commit', done: 0, total: 1 });
    const r = await store.storeDeltas(name, pairs, { minSaving: opts.minSaving });
    progress({ model: name, step: 'commit', done: 1, total: 1 });
    reports.push({ name, blocksReplaced: r.replaced, bytesSaved: r.bytesSaved });
    await view.addModel(store.model(name));
  }
  return reports;
}
