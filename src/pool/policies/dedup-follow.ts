/**
 * tessera's default eviction ('dedup'): the dedup-aware order (policies/dedup.ts), following the
 * leader among shadow caches.
 *
 * No single order wins every budget. The dedup-aware order is ahead where memory is scarce (it
 * keeps what many models share); at high budgets, where only the rarest models' own pages go,
 * S3-FIFO is sometimes a little ahead, mostly after popularity shifts (it drops a model that
 * stopped being asked for sooner than a decayed count does). So the policy simulates the
 * dedup-aware order and the candidates in shadow (page ids and sizes only, no data, each at the
 * pool's byte budget: shadow-cache.ts) on the live access stream, counts the bytes each would
 * have fetched (decayed, half-life `scoreHalfLife` requests), and follows the best: when the pool
 * must evict, it evicts a resident page the leader's shadow does not hold (the lowest in the
 * dedup-aware order among those), and the dedup-aware order's own victim when the leader holds
 * every resident page. The pool's contents then converge to the leader's. A shadow takes a
 * missed page in at `onMiss`, before the pool makes room, so the pool evicts what the leader
 * just evicted: followed from the start, a shadow's hit ratio is reproduced exactly.
 *
 * Following costs a transition each time the leader changes (the pool misses what the new
 * leader holds and it does not), and the shadows' differences at high budgets are a few
 * requests per thousand, so the leader changes only when a challenger has fetched `margin` fewer
 * bytes than the leader and its lead is `z` standard deviations of the difference (the accesses
 * on which the two disagree), and at most once per n page touches (rebuilding the set of pages
 * the leader lacks costs O(n)). Measured in bench/pool.ts.
 *
 * Scan resistance: every shadow is scan-resistant (the dedup-aware order's values, S3-FIFO's
 * small queue), so whichever leads, a one-shot scan of cold models evicts its own pages.
 *
 * Cost per page access: each shadow's policy (the dedup-aware order and S3-FIFO; the pool's own
 * pages are ranked by the order's shadow, whose counts do not depend on residency) and O(1) set
 * updates; a victim scans at most `SCAN_LIMIT` of the pages the leader lacks, and at most
 * `SCAN_LIMIT` pages of the order's shadow the pool does not hold before ranking every resident
 * page (only when the leader holds every resident page and the shadows disagree). Memory: each shadow holds ids of at most a budget
 * of pages plus its policy's ghosts (S3-FIFO: 90% of the budget; the dedup-aware order: a history
 * as large as what it holds).
 */
import { OrderedSet } from '../ordered-set.ts';
import type { EvictionPolicy, PageRef } from '../policy.ts';
import { ShadowCache } from '../shadow-cache.ts';
import { DedupAwarePolicy, type DedupAwareOptions } from './dedup.ts';
import { S3FifoPolicy } from './s3fifo.ts';

export interface DedupFollowOptions {
  /** The policies simulated beside the dedup-aware order, each made fresh (default: S3-FIFO). */
  candidates?: ReadonlyArray<() => EvictionPolicy>;
  /** Options of the dedup-aware order (and of its shadow). */
  order?: DedupAwareOptions;
  /** Half-life, in requests, of each shadow's count of fetched bytes (default 2048). */
  scoreHalfLife?: number;
  /** A challenger leads once it fetched this fraction fewer bytes than the leader (default 0.03)... */
  margin?: number;
  /** ...and its lead is this many standard deviations of the difference (default 2). */
  z?: number;
  /** The shadow followed first: 0 is the dedup-aware order, i the i-th candidate (default 0). */
  leader?: number;
}

const CHECK_EVERY = 16;
const SCAN_LIMIT = 64;
const ANONYMOUS_TOUCHES_PER_REQUEST = 8;
/** A page the shadows took in at onMiss whose read never completed is forgotten after this many requests. */
const EARLY_REQUESTS = 1024;

export class DedupFollowPolicy implements EvictionPolicy {
  readonly name = 'dedup';
  /**
   * The dedup-aware order: its shadow's policy. Its counts do not depend on what is resident
   * (every access counts), so the pool's own pages are ranked by them too, without a second copy.
   */
  readonly order: DedupAwarePolicy;
  /** The dedup-aware order's shadow, then the candidates'. */
  readonly shadows: readonly ShadowCache[];
  private leaderIndex: number;
  private readonly decay: number;
  private readonly margin: number;
  private readonly z: number;
  /** Pages the pool holds (as told by onInsert / onRemove). */
  private readonly resident = new Set<number>();
  /** Resident pages the leader's shadow does not hold, oldest first. */
  private readonly lacking = new OrderedSet();
  /** Pages the shadows took in at onMiss whose onInsert is still to come, with the epoch then. */
  private readonly early = new Map<number, number>();
  private readonly hit: Uint8Array;
  /** Decayed sum of squared bytes of the accesses on which shadows i < j disagreed, at i * k + j. */
  private readonly disagreement: Float64Array;
  private epoch = 0;
  private anonymousTouches = 0;
  private touchesSinceSwitch = 0;
  private switches = 0;

  constructor(opts: DedupFollowOptions = {}) {
    this.decay = Math.pow(2, -1 / (opts.scoreHalfLife ?? 2048));
    this.margin = opts.margin ?? 0.03;
    this.z = opts.z ?? 2;
    const candidates = opts.candidates ?? [() => new S3FifoPolicy()];
    const makers = [() => new DedupAwarePolicy(opts.order) as EvictionPolicy, ...candidates];
    this.leaderIndex = Math.min(Math.max(0, opts.leader ?? 0), makers.length - 1);
    this.shadows = makers.map((make, i) => new ShadowCache(make(), {
      admitted: (id) => {
        if (i === this.leaderIndex) this.lacking.delete(id);
      },
      evicted: (id) => {
        if (i === this.leaderIndex && this.resident.has(id)) this.lacking.pushHead(id);
      },
    }));
    this.order = this.shadows[0].policy as DedupAwarePolicy;
    this.hit = new Uint8Array(this.shadows.length);
    this.disagreement = new Float64Array(this.shadows.length ** 2);
  }

  /** The policy whose shadow the pool follows now. */
  get leader(): string {
    return this.shadows[this.leaderIndex].name;
  }
  /** How many times the leader changed. */
  get leaderChanges(): number {
    return this.switches;
  }

  setCapacity(budgetBytes: number): void {
    for (const s of this.shadows) s.setCapacity(budgetBytes);
  }
  onRequest(model: string): void {
    this.nextEpoch(model);
  }
  onMiss(page: PageRef): void {
    // The shadows take the page in now, before the pool makes room for it: the leader has then
    // made its own room, and the pool evicts what the leader just evicted, not a page it keeps.
    if (this.early.has(page.id) || this.resident.has(page.id)) return;
    this.touched(page);
    this.early.set(page.id, this.epoch);
    this.replay(page);
  }
  onInsert(page: PageRef): void {
    this.resident.add(page.id);
    if (!this.early.delete(page.id)) {
      this.touched(page);
      this.replay(page);
    }
    if (!this.shadows[this.leaderIndex].holds(page.id)) this.lacking.pushHead(page.id);
  }
  onHit(page: PageRef): void {
    this.touched(page);
    this.replay(page);
  }
  onRemove(pageId: number, evicted: boolean): void {
    this.resident.delete(pageId);
    this.lacking.delete(pageId);
    if (!evicted) for (const s of this.shadows) s.invalidate(pageId);
  }
  victim(evictable: (pageId: number) => boolean): number | undefined {
    let best: number | undefined;
    let seen = 0;
    for (let id = this.lacking.oldest(); id !== undefined && seen < SCAN_LIMIT; id = this.lacking.newer(id)) {
      if (!evictable(id)) continue;
      seen++;
      if (best === undefined || this.order.evictsBefore(id, best)) best = id;
    }
    if (best !== undefined) return best;
    // The leader holds every resident page: the order's lowest one the pool holds. The order's
    // shadow may hold pages the pool does not (when another shadow leads); past SCAN_LIMIT of
    // those, every resident page is ranked instead.
    best = this.order.victimWithin(evictable, SCAN_LIMIT);
    if (best !== undefined) return best;
    for (const id of this.resident) if (evictable(id) && (best === undefined || this.order.evictsBefore(id, best))) best = id;
    return best;
  }

  /** One access on every shadow; where two disagree (one held the page, one did not), the variance of their difference grows. */
  private replay(page: PageRef): void {
    const k = this.shadows.length;
    for (let i = 0; i < k; i++) this.hit[i] = this.shadows[i].access(page) ? 1 : 0;
    const square = page.bytes * page.bytes;
    for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) if (this.hit[i] !== this.hit[j]) this.disagreement[i * k + j] += square;
  }
  private touched(page: PageRef): void {
    this.touchesSinceSwitch++;
    // A pool that never records requests still forgets, and its shadows still see request epochs.
    if (page.model === undefined && ++this.anonymousTouches % ANONYMOUS_TOUCHES_PER_REQUEST === 0) this.nextEpoch(undefined);
  }
  private nextEpoch(model: string | undefined): void {
    this.epoch++;
    for (const s of this.shadows) {
      s.onRequest(model, this.epoch);
      s.scale(this.decay);
    }
    for (let i = 0; i < this.disagreement.length; i++) this.disagreement[i] *= this.decay;
    if (this.epoch % CHECK_EVERY === 0) this.choose();
    if (this.epoch % EARLY_REQUESTS === 0) for (const [id, e] of this.early) if (e < this.epoch - EARLY_REQUESTS) this.early.delete(id);
  }
  private choose(): void {
    const current = this.shadows[this.leaderIndex];
    let best = this.leaderIndex;
    for (let i = 0; i < this.shadows.length; i++) if (this.shadows[i].missBytes < this.shadows[best].missBytes) best = i;
    if (best === this.leaderIndex || this.touchesSinceSwitch < this.resident.size) return;
    const k = this.shadows.length;
    const spread = Math.sqrt(this.disagreement[Math.min(best, this.leaderIndex) * k + Math.max(best, this.leaderIndex)]);
    const ahead = current.missBytes - this.shadows[best].missBytes;
    if (ahead <= this.margin * current.missBytes || ahead <= this.z * spread) return;
    this.leaderIndex = best;
    this.touchesSinceSwitch = 0;
    this.switches++;
    const leader = this.shadows[best];
    for (const id of [...this.lacking.fromOldest()]) this.lacking.delete(id);
    for (const id of this.resident) if (!leader.holds(id)) this.lacking.pushHead(id);
  }
}
