/**
 * ARC (Megiddo & Modha, FAST 2003), counted in bytes so variable page sizes work. T1 holds pages
 * seen once recently, T2 pages seen at least twice; B1 and B2 remember (ids and sizes only) pages
 * recently evicted from each. A miss that hits a ghost list moves the target size p of T1 towards
 * the list that would have kept it: the policy adapts between recency and frequency.
 */
import { OrderedSet, firstEvictable } from '../ordered-set.ts';
import type { EvictionPolicy, PageRef } from '../policy.ts';

class SizedList {
  readonly order = new OrderedSet();
  readonly sizes = new Map<number, number>();
  bytes = 0;
  push(id: number, bytes: number): void {
    this.remove(id);
    this.order.pushHead(id);
    this.sizes.set(id, bytes);
    this.bytes += bytes;
  }
  remove(id: number): number | undefined {
    const b = this.sizes.get(id);
    if (b === undefined) return undefined;
    this.order.delete(id);
    this.sizes.delete(id);
    this.bytes -= b;
    return b;
  }
  has(id: number): boolean {
    return this.sizes.has(id);
  }
  dropOldest(): void {
    const id = this.order.oldest();
    if (id !== undefined) this.remove(id);
  }
}

export class ArcPolicy implements EvictionPolicy {
  readonly name = 'arc';
  private readonly t1 = new SizedList();
  private readonly t2 = new SizedList();
  private readonly b1 = new SizedList();
  private readonly b2 = new SizedList();
  private capacity = Number.MAX_SAFE_INTEGER;
  /** Target bytes for T1. */
  private p = 0;
  /** The incoming page p was last adapted for, so a miss adapts once however many victims it needs. */
  private adapted: number | undefined;
  private adaptedGhost = false;

  setCapacity(budgetBytes: number): void {
    this.capacity = budgetBytes;
  }
  onInsert(page: PageRef): void {
    const { id, bytes } = page;
    this.adapt(id, bytes);
    // A ghost hit goes to T2 even if evictions for it trimmed the ghost meanwhile.
    const fromGhost = this.b1.remove(id) !== undefined || this.b2.remove(id) !== undefined || this.adaptedGhost;
    this.adapted = undefined;
    this.adaptedGhost = false;
    if (fromGhost) this.t2.push(id, bytes);
    else this.t1.push(id, bytes);
    this.trimGhosts();
  }
  onHit(page: PageRef): void {
    this.t1.remove(page.id);
    this.t2.push(page.id, page.bytes);
  }
  onRemove(pageId: number, evicted: boolean): void {
    const fromT1 = this.t1.remove(pageId);
    const fromT2 = fromT1 === undefined ? this.t2.remove(pageId) : undefined;
    if (evicted && fromT1 !== undefined) this.b1.push(pageId, fromT1);
    if (evicted && fromT2 !== undefined) this.b2.push(pageId, fromT2);
    this.trimGhosts();
  }
  victim(evictable: (pageId: number) => boolean, incoming?: number): number | undefined {
    // ARC adapts p on a ghost hit before it chooses what to replace.
    if (incoming !== undefined) this.adapt(incoming, this.b1.sizes.get(incoming) ?? this.b2.sizes.get(incoming) ?? 0);
    const preferT1 =
      this.t1.bytes > 0 && (this.t1.bytes > this.p || (incoming !== undefined && this.b2.has(incoming) && this.t1.bytes >= this.p));
    const first = preferT1 ? this.t1 : this.t2;
    const second = preferT1 ? this.t2 : this.t1;
    return firstEvictable(first.order.fromOldest(), evictable) ?? firstEvictable(second.order.fromOldest(), evictable);
  }
  /** A miss on a ghost grows the target of the list that would have kept the page; once per miss. */
  private adapt(id: number, bytes: number): void {
    if (this.adapted === id) return;
    this.adapted = id;
    this.adaptedGhost = this.b1.has(id) || this.b2.has(id);
    const ratio = (a: number, b: number) => (b > 0 ? Math.max(a / b, 1) : 1);
    if (this.b1.has(id)) this.p = Math.min(this.capacity, this.p + ratio(this.b2.bytes, this.b1.bytes) * bytes);
    else if (this.b2.has(id)) this.p = Math.max(0, this.p - ratio(this.b1.bytes, this.b2.bytes) * bytes);
  }
  /** Ghosts never describe more than the cache could hold: |T1|+|B1| ≤ c and the total ≤ 2c. */
  private trimGhosts(): void {
    while (this.b1.bytes > 0 && this.t1.bytes + this.b1.bytes > this.capacity) this.b1.dropOldest();
    while (this.b2.bytes > 0 && this.t1.bytes + this.t2.bytes + this.b1.bytes + this.b2.bytes > 2 * this.capacity) this.b2.dropOldest();
  }
}
