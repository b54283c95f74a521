/**
 * tessera's dedup-aware policy. A page is worth the requests that use it: a page shared by many
 * models is used by every request of each of them, so its value is the sum of their popularity.
 * Each page keeps an exponentially decayed count of the requests that used it (one per request,
 * however many times it was pinned), per byte held; the page with the lowest value goes first
 * (ties: least recently used). A page seen for the first time starts at the summed popularity of
 * the models that share it, so a backbone page fetched for any model is valued at once, and a
 * page's count survives its eviction (a bounded history), so it comes back at its true value.
 * Because a request touches every page it needs, the count equals the sharing-weighted sum of
 * model popularity, kept in O(1) per touch instead of a sum over the sharers.
 *
 * How long to remember is chosen online, not tuned per trace: counts are kept at several
 * half-lives at once (16 to 2048 requests), and the pool orders pages by the half-life whose model
 * popularity best predicted the recent requests (lowest decayed log-loss of "which model comes
 * next"). Stable popularity selects long memory (near-LFU, close to the ideal "keep the most
 * requested pages"), shifting popularity selects short memory. Measured in bench/pool.ts: fixed
 * half-lives win either the static traces (long) or the shifting ones (short), never both.
 *
 * Scan resistance: a one-off model's pages start at one request's worth, below any page its
 * hot models used repeatedly, so a scan of cold models evicts its own pages, not the hot set.
 *
 * Decay without touching every count: each request adds an increment that grows by 2^(1/halfLife),
 * which orders counts exactly as decaying them all would; counts are rescaled before overflow.
 * Cost: O(half-lives) per request, O(half-lives + log n) per page touch, O(sharers) the first time
 * a page is seen; a change of half-life re-keys the heap and is allowed once per n touches, so
 * amortised O(log n). A pool that never records requests still forgets: 8 page touches without a
 * model count as one request.
 */
import { KeyedHeap } from '../keyed-heap.ts';
import { OrderedSet } from '../ordered-set.ts';
import type { EvictionPolicy, PageRef } from '../policy.ts';

export interface DedupAwareOptions {
  /** A fixed half-life in requests, instead of choosing one online among `halfLives`. */
  halfLifeRequests?: number;
  /** The half-lives (requests) to choose among (default 16, 32, ..., 2048). */
  halfLives?: readonly number[];
}

const DEFAULT_HALF_LIVES = [16, 32, 64, 128, 256, 512, 1024, 2048];
/** The half-life used until the predictions say otherwise. */
const START_HALF_LIFE = 64;
/** The prediction loss forgets with a half-life of 1024 requests, so the choice follows the workload. */
const LOSS_DECAY = Math.pow(2, -1 / 1024);
/** Pseudo-requests per model when predicting the next model (so unseen models are not impossible). */
const SMOOTHING = 0.5;
const CHECK_EVERY = 16;
const ANONYMOUS_TOUCHES_PER_REQUEST = 8;
const RESCALE_ABOVE = 1e100;

interface PageState {
  bytes: number;
  /** Decayed request counts, one per half-life, in each one's inflated units. */
  counts: Float64Array;
  /** The request epoch that last counted this page (a page counts once per request). */
  epoch: number;
  /** Recency tie-break. */
  tick: number;
  resident: boolean;
}

export class DedupAwarePolicy implements EvictionPolicy {
  readonly name = 'dedup-order';
  readonly halfLives: readonly number[];
  private readonly growth: Float64Array;
  private readonly increment: Float64Array;
  private readonly total: Float64Array;
  private readonly loss: Float64Array;
  private readonly adaptive: boolean;
  private readonly popularity = new Map<string, Float64Array>();
  private readonly pages = new Map<number, PageState>();
  /** Evicted pages whose counts are remembered, oldest first; bounded by `historyLimit`. */
  private readonly history = new OrderedSet();
  private readonly heap = new KeyedHeap();
  private current: number;
  private epoch = 0;
  private requests = 0;
  private anonymousTouches = 0;
  private touchesSinceSwitch = 0;
  private tick = 0;

  constructor(opts: DedupAwareOptions = {}) {
    this.adaptive = opts.halfLifeRequests === undefined;
    this.halfLives = opts.halfLifeRequests !== undefined ? [opts.halfLifeRequests] : [...(opts.halfLives ?? DEFAULT_HALF_LIVES)];
    const n = this.halfLives.length;
    this.growth = Float64Array.from(this.halfLives, (h) => Math.pow(2, 1 / h));
    this.increment = new Float64Array(n).fill(1);
    this.total = new Float64Array(n);
    this.loss = new Float64Array(n);
    const start = this.halfLives.indexOf(START_HALF_LIFE);
    this.current = start >= 0 ? start : 0;
  }

  /** The half-life (requests) the pool orders pages by now. */
  get halfLife(): number {
    return this.halfLives[this.current];
  }

  onRequest(model: string): void {
    let counts = this.popularity.get(model);
    if (counts) {
      // How well did each half-life's popularity predict the model that came? (log-loss). A model
      // never seen says nothing about how long to remember, so a scan of new models cannot
      // shorten the memory and flush the hot set.
      const models = this.popularity.size;
      for (let i = 0; i < this.halfLives.length; i++) {
        const p = (counts[i] / this.increment[i] + SMOOTHING) / (this.total[i] / this.increment[i] + SMOOTHING * models);
        this.loss[i] = this.loss[i] * LOSS_DECAY - Math.log(p);
      }
    } else this.popularity.set(model, (counts = new Float64Array(this.halfLives.length)));
    this.advance();
    for (let i = 0; i < this.halfLives.length; i++) {
      counts[i] += this.increment[i];
      this.total[i] += this.increment[i];
    }
    if (this.adaptive && ++this.requests % CHECK_EVERY === 0) this.choose();
  }
  onInsert(page: PageRef): void {
    this.touch(page);
  }
  onHit(page: PageRef): void {
    this.touch(page);
  }
  onRemove(pageId: number, evicted: boolean): void {
    this.heap.delete(pageId);
    const state = this.pages.get(pageId);
    if (!state) return;
    if (!evicted) {
      // Invalidated: the page's content changed, its history means nothing now.
      this.pages.delete(pageId);
      return;
    }
    state.resident = false;
    this.history.pushHead(pageId);
    while (this.history.size > this.historyLimit()) {
      const old = this.history.oldest()!;
      this.history.delete(old);
      this.pages.delete(old);
    }
  }
  victim(evictable: (pageId: number) => boolean): number | undefined {
    return this.heap.minWhere(evictable);
  }
  /**
   * Whether this order would evict page `a` before page `b`, resident here or not (a page it
   * holds or remembers is ranked by its count; one it has forgotten, or never saw, goes first).
   */
  evictsBefore(a: number, b: number): boolean {
    const sa = this.pages.get(a);
    const sb = this.pages.get(b);
    if (!sa || !sb) return !sa && sb !== undefined;
    const va = sa.counts[this.current] / sa.bytes;
    const vb = sb.counts[this.current] / sb.bytes;
    return va < vb || (va === vb && sa.tick < sb.tick);
  }
  /** Like victim, but gives up (undefined) after looking at `maxVisits` pages it holds that `evictable` rejects. */
  victimWithin(evictable: (pageId: number) => boolean, maxVisits: number): number | undefined {
    return this.heap.minWhere(evictable, maxVisits);
  }
  /** A model's decayed request count at the current half-life (in the policy's inflated units). */
  popularityOf(model: string): number {
    return this.popularity.get(model)?.[this.current] ?? 0;
  }

  private touch(page: PageRef): void {
    if (page.model === undefined && ++this.anonymousTouches % ANONYMOUS_TOUCHES_PER_REQUEST === 0) this.advance();
    let state = this.pages.get(page.id);
    if (!state) {
      state = { bytes: page.bytes, counts: this.firstCounts(page), epoch: this.epoch, tick: 0, resident: true };
      this.pages.set(page.id, state);
    } else if (state.epoch !== this.epoch) {
      for (let i = 0; i < state.counts.length; i++) state.counts[i] += this.increment[i];
      state.epoch = this.epoch;
    }
    if (!state.resident) {
      this.history.delete(page.id);
      state.resident = true;
    }
    state.bytes = page.bytes;
    state.tick = ++this.tick;
    this.touchesSinceSwitch++;
    this.heap.set(page.id, state.counts[this.current] / state.bytes, state.tick);
  }
  /** A page never seen: the models that share it, at their popularity (this request included). */
  private firstCounts(page: PageRef): Float64Array {
    const counts = new Float64Array(this.halfLives.length);
    let known = false;
    for (const m of page.models ?? []) {
      const c = this.popularity.get(m);
      if (!c) continue;
      known = true;
      for (let i = 0; i < counts.length; i++) counts[i] += c[i];
    }
    if (!known) counts.set(this.increment);
    return counts;
  }
  /** One request's time passes: the increments grow, which decays every older count. */
  private advance(): void {
    this.epoch++;
    for (let i = 0; i < this.halfLives.length; i++) {
      this.increment[i] *= this.growth[i];
      if (this.increment[i] > RESCALE_ABOVE) this.rescale(i, 1 / this.increment[i]);
    }
  }
  /** Orders pages by the half-life with the lowest prediction loss; re-keying costs O(n log n), so at most once per n touches. */
  private choose(): void {
    let best = this.current;
    for (let i = 0; i < this.loss.length; i++) if (this.loss[i] < this.loss[best]) best = i;
    if (best === this.current || this.touchesSinceSwitch < this.heap.size) return;
    this.current = best;
    this.touchesSinceSwitch = 0;
    for (const [id, s] of this.pages) if (s.resident) this.heap.set(id, s.counts[best] / s.bytes, s.tick);
  }
  private rescale(i: number, factor: number): void {
    this.increment[i] *= factor;
    this.total[i] *= factor;
    for (const c of this.popularity.values()) c[i] *= factor;
    for (const s of this.pages.values()) s.counts[i] *= factor;
    if (i === this.current) this.heap.scalePrimary(factor);
  }
  /** Remembered evicted pages: as many as are resident, and at least 1024. */
  private historyLimit(): number {
    return Math.max(1024, this.heap.size);
  }
}
