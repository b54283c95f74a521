/**
 * tessera's dedup-aware policy. A page is worth what the models that use it are worth: its score
 * is the sum, over the models sharing it, of each model's decayed request count, per byte held.
 * The page with the lowest score goes first (ties: least recently used). Because popularity
 * belongs to models, not pages, a page fetched for a popular model is valued at once (in-cache LFU
 * starts it at 1), a backbone page shared by many models outranks any one model's own pages, and
 * the exponential decay (half-life in requests) follows shifting popularity.
 *
 * Decay without touching every count: each request adds an increment that grows by 2^(1/halfLife),
 * which orders counts exactly as decaying them all would; counts are rescaled before overflow.
 * When `pageInfo` does not name a page's models, the page's own decayed touch count stands in,
 * started at sharers × the requesting model's popularity.
 */
import { KeyedHeap } from '../keyed-heap.ts';
import type { EvictionPolicy, PageRef } from '../policy.ts';

export interface DedupAwareOptions {
  /**
   * Requests after which a model's past requests count half (default 50). Longer is steadier under
   * fixed popularity (+1-3 points at 200), shorter follows shifts sooner; 50 measured never below
   * LRU on shifting traces with phases of ~190 requests (bench/pool.ts).
   */
  halfLifeRequests?: number;
}

interface PageState {
  bytes: number;
  models?: readonly string[];
  /** Decayed touches of this page, used when its models are unknown. */
  touches: number;
}

const RESCALE_ABOVE = 1e120;

export class DedupAwarePolicy implements EvictionPolicy {
  readonly name = 'dedup';
  private readonly heap = new KeyedHeap();
  private readonly pages = new Map<number, PageState>();
  private readonly popularity = new Map<string, number>();
  private readonly growth: number;
  private increment = 1;
  private tick = 0;

  constructor(opts: DedupAwareOptions = {}) {
    this.growth = Math.pow(2, 1 / (opts.halfLifeRequests ?? 50));
  }
  onRequest(model: string): void {
    this.increment *= this.growth;
    this.popularity.set(model, (this.popularity.get(model) ?? 0) + this.increment);
    if (this.increment > RESCALE_ABOVE) this.rescale(1 / this.increment);
  }
  onInsert(page: PageRef): void {
    const prior = page.model !== undefined ? page.sharers * (this.popularity.get(page.model) ?? 0) : 0;
    const state: PageState = { bytes: page.bytes, models: page.models, touches: Math.max(prior, this.increment) };
    this.pages.set(page.id, state);
    this.heap.set(page.id, this.score(state), ++this.tick);
  }
  onHit(page: PageRef): void {
    const state = this.pages.get(page.id);
    if (!state) return this.onInsert(page);
    state.touches += this.increment;
    if (page.models) state.models = page.models;
    this.heap.set(page.id, this.score(state), ++this.tick);
  }
  onRemove(pageId: number): void {
    this.pages.delete(pageId);
    this.heap.delete(pageId);
  }
  victim(evictable: (pageId: number) => boolean): number | undefined {
    return this.heap.minWhere(evictable);
  }
  /** Current decayed request count of a model (in the policy's inflated units). */
  popularityOf(model: string): number {
    return this.popularity.get(model) ?? 0;
  }
  private score(state: PageState): number {
    let sum = 0;
    if (state.models) for (const m of state.models) sum += this.popularity.get(m) ?? 0;
    return (sum > 0 ? sum : state.touches) / state.bytes;
  }
  private rescale(factor: number): void {
    this.increment *= factor;
    for (const [m, v] of this.popularity) this.popularity.set(m, v * factor);
    for (const s of this.pages.values()) s.touches *= factor;
    this.heap.scalePrimary(factor);
  }
}
