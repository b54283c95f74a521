/**
 * Near-duplicate dedup planner: for each model, candidate representatives for its float blocks
 * (from an index over the store's other blocks), verified, ordered by expected impact, then
 * applied under an accuracy bound. Only a state that passed its evaluation is ever committed (one
 * atomic `substitute` per model), so a dedup interrupted at any point leaves every model servable
 * and within the bound.
 *
 * How candidates are found and ordered and how the bound is checked is the method's (a named
 * registry, methods/index.ts: simhash-l2-bisect, pstable-stepwise (netsDB-style),
 * minhash-stepwise (MISTIQUE-style), exact). What they share lives here: the block view, the
 * evaluation (through the evaluator the caller gives, so dedup never builds a runtime session
 * itself) and the commit. The index follows netsDB: blocks of models not being deduplicated seed
 * it; each processed model's remaining blocks are added after it (its replaced blocks never
 * become representatives).
 */
import { InvalidArgumentError } from '../errors.ts';
import type { ModelEntry } from '../catalog/catalog.ts';
import { blockRegion } from '../kernels/distance.ts';
import type { TesseraStore } from '../store/store.ts';
import { BlockCatalogView, weightsWith, type Proposal } from './block-view.ts';
import type { Evaluator } from './evaluate.ts';
import { DEFAULT_DEDUP_METHOD, dedupMethod, type LoopResult, type MethodOptions, type Score } from './methods/index.ts';

export { DEDUP_METHODS, DEFAULT_DEDUP_METHOD, dedupMethod, NETSDB_PLANNER, stepwiseLoop, bisectLoop, type DedupMethod } from './methods/index.ts';
export { BlockCatalogView, SIMHASH_LSH, weightsWith, type Proposal } from './block-view.ts';

export interface DedupProgress {
  model: string;
  step: 'index' | 'candidates' | 'evaluate' | 'commit';
  done: number;
  total: number;
}

export interface DedupOptions extends MethodOptions {
  /** Largest accepted drop of the score, as a fraction in [0, 1] (0.01 = one point). */
  maxDrop: number;
  /** A registered method name (methods/index.ts; default simhash-l2-bisect). */
  method?: string;
  /** Models to deduplicate (default: all, in store order). */
  models?: string[];
  /** The evaluator of a model, given its current weights (skeleton order). */
  evaluator: (model: ModelEntry, weights: Uint8Array[]) => Promise<Evaluator>;
  onProgress?: (p: DedupProgress) => void;
  seed?: number;
  /**
   * A tensor is substituted only when its elements fill more than `minTensorBlocks - 1` whole
   * blocks (default 2: more than one block's rows x cols). netsDB's rule, "a layer that fits in
   * one block was never deduplicated", counted in elements: with 64 x 64 tiles a vector of n
   * values is cut into n / 64 slivers of 64 x 1, so counting grid blocks would let every bias and
   * LayerNorm vector in. Those save next to nothing and look alike in every model, related or
   * not: in the zoo's ViT family ours substituted 52 LayerNorm blocks (128-wide, two slivers
   * each) of the unrelated scratch-trained controls, 26 of them costing held-out accuracy.
   */
  minTensorBlocks?: number;
}

export interface ModelDedupReport {
  name: string;
  method: string;
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
  const method = dedupMethod(opts.method ?? DEFAULT_DEDUP_METHOD);
  const targets = targetsOf(store, opts.models);
  const progress = opts.onProgress ?? (() => {});
  const view = await BlockCatalogView.create(store, method.index, opts.seed ?? 1);
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
    const minElements = ((opts.minTensorBlocks ?? 2) - 1) * store.config.tile.rows * store.config.tile.cols;
    const elements = model.tensors.map((t) => t.dims.reduce((a, d) => a * d, 1));
    const slots = view.slotsOf(model).filter((s) => elements[s.tensor] > minElements);
    await view.load(slots);
    progress({ model: name, step: 'candidates', done: 0, total: slots.length });
    const props = method.propose(view, model, weights, slots, opts);
    progress({ model: name, step: 'candidates', done: slots.length, total: slots.length });
    const evaluator = await opts.evaluator(model, weights);
    const before = evaluator.kind === 'agreement' ? 1 : await evaluator.score(weights);
    let evaluated = 0;
    const score: Score = async (subs) => {
      progress({ model: name, step: 'evaluate', done: ++evaluated, total: Math.max(evaluated, props.length) });
      // A state below the bound may be cut short (only whether it fails is used).
      return evaluator.score(weightsWith(view, model, weights, subs), { floor: before - opts.maxDrop });
    };
    let result: LoopResult = { accepted: [], score: before };
    if (props.length) result = await method.accept(props, score, before, opts.maxDrop, opts);
    const bytesSaved = bytesFreed(store, model, result.accepted);
    progress({ model: name, step: 'commit', done: 0, total: 1 });
    await store.substitute(name, result.accepted.map(({ tensor, index, to, distance }) => ({ tensor, index, to, distance })));
    progress({ model: name, step: 'commit', done: 1, total: 1 });
    reports.push({
      name, method: method.name, scoring: evaluator.kind, proposals: props.length, blocksReplaced: result.accepted.length, bytesSaved,
      accuracyBefore: before, accuracyAfter: result.score, evaluations: evaluator.evaluations,
    });
    await view.addModel(store.model(name));
  }
  return reports;
}

export interface LosslessReport {
  name: string;
  /** Blocks re-stored as deltas against a representative. */
  blocksReplaced: number;
  /** Raw blocks left without a base that were coded alone (`code`). */
  blocksCoded: number;
  bytesSaved: number;
}

export interface LosslessOptions {
  models?: string[];
  /** Smallest saving a delta must make over the block without one (storeDeltas). */
  minSaving?: number;
  /** Also code the blocks left without a base ('zstd-planes' alone; default true). */
  code?: boolean;
  /** zstd level of the coded planes. */
  level?: number;
  seed?: number;
  onProgress?: (p: DedupProgress) => void;
}

/**
 * Lossless dedup: each raw float block a model holds alone is re-stored as a coded delta against
 * its nearest representative (least L2 among SimHash candidates) when that beats the block coded
 * alone; then (`code`, the default) the model's blocks still raw are coded alone where that pays
 * (byte planes + zstd, src/codecs/block-codec.ts). Reads stay bit-exact; no evaluation is needed.
 */
export async function dedupLossless(store: TesseraStore, opts: LosslessOptions = {}): Promise<LosslessReport[]> {
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
    const r = await store.storeDeltas(name, pairs, { minSaving: opts.minSaving, level: opts.level });
    let coded = { recoded: 0, bytesSaved: 0 };
    if (opts.code ?? true) {
      const raw = new Set<number>();
      for (const t of store.model(name).tensors) for (const id of t.blocks) raw.add(id);
      coded = await store.recodeBlocks(raw, { level: opts.level });
    }
    progress({ model: name, step: 'commit', done: 1, total: 1 });
    reports.push({ name, blocksReplaced: r.replaced, blocksCoded: coded.recoded, bytesSaved: r.bytesSaved + coded.bytesSaved });
    await view.addModel(store.model(name));
  }
  return reports;
}
