/**
 * A shadow cache: one eviction policy simulated on page ids and sizes only (no data) at a byte
 * budget, fed the live access stream. It answers "would this policy have held the page?" and
 * counts the bytes it would have served, so a pool can measure, on its own traffic, which policy
 * would be doing best (see policies/dedup-follow.ts).
 *
 * The shadow evicts as the pool would: a request's pages are pinned together, so a page touched
 * in the current request epoch is not a victim while another page is. It never refuses a page:
 * one that cannot fit is held over budget until the next access makes room.
 */
import type { EvictionPolicy, PageRef } from './policy.ts';

export interface ShadowHooks {
  /** The shadow took the page in (a miss it now holds). */
  admitted(pageId: number): void;
  /** The shadow's policy evicted the page. */
  evicted(pageId: number): void;
}

export class ShadowCache {
  /** Decayed bytes this policy would have had to fetch (its misses). */
  missBytes = 0;
  private readonly epochs = new Map<number, number>();
  private readonly sizes = new Map<number, number>();
  private used = 0;
  private capacity = Number.MAX_SAFE_INTEGER;
  private epoch = 0;
  private readonly notPinned = (id: number) => this.epochs.has(id) && this.epochs.get(id) !== this.epoch;
  private readonly held = (id: number) => this.epochs.has(id);

  constructor(readonly policy: EvictionPolicy, private readonly hooks?: ShadowHooks) {}

  get name(): string {
    return this.policy.name;
  }
  get size(): number {
    return this.epochs.size;
  }
  setCapacity(budgetBytes: number): void {
    this.capacity = budgetBytes;
    this.policy.setCapacity?.(budgetBytes);
  }
  /** A model request began: a new pin epoch. */
  onRequest(model: string | undefined, epoch: number): void {
    this.epoch = epoch;
    if (model !== undefined) this.policy.onRequest?.(model);
  }
  holds(pageId: number): boolean {
    return this.epochs.has(pageId);
  }
  /** Replays one access: returns whether the shadow held the page. */
  access(page: PageRef): boolean {
    const last = this.epochs.get(page.id);
    if (last !== undefined) {
      this.epochs.set(page.id, this.epoch);
      this.policy.onHit(page);
      return true;
    }
    while (this.used + page.bytes > this.capacity && this.epochs.size > 0) {
      let v = this.policy.victim(this.notPinned, page.id);
      if (v === undefined || !this.epochs.has(v)) v = this.policy.victim(this.held, page.id);
      if (v === undefined || !this.epochs.has(v)) break;
      this.drop(v, true);
    }
    this.missBytes += page.bytes;
    this.epochs.set(page.id, this.epoch);
    this.sizes.set(page.id, page.bytes);
    this.used += page.bytes;
    this.policy.onInsert(page);
    this.hooks?.admitted(page.id);
    return false;
  }
  /** The page's content changed: forget it (not an eviction). */
  invalidate(pageId: number): void {
    if (this.epochs.has(pageId)) this.drop(pageId, false);
  }
  /** Multiplies the miss count (the caller decays all shadows' counts together). */
  scale(factor: number): void {
    this.missBytes *= factor;
  }
  private drop(pageId: number, evicted: boolean): void {
    this.used -= this.sizes.get(pageId)!;
    this.epochs.delete(pageId);
    this.sizes.delete(pageId);
    this.policy.onRemove(pageId, evicted);
    if (evicted) this.hooks?.evicted(pageId);
  }
}
