/**
 * Least frequently used (in-cache counts, ties broken by recency): evict the page with the fewest
 * hits since it became resident. Counts are forgotten on eviction, as in the classic policy.
 */
import { KeyedHeap } from '../keyed-heap.ts';
import type { EvictionPolicy, PageRef } from '../policy.ts';

export class LfuPolicy implements EvictionPolicy {
  readonly name = 'lfu';
  private readonly heap = new KeyedHeap();
  private readonly counts = new Map<number, number>();
  private tick = 0;
  onInsert(page: PageRef): void {
    this.counts.set(page.id, 1);
    this.heap.set(page.id, 1, ++this.tick);
  }
  onHit(page: PageRef): void {
    const c = (this.counts.get(page.id) ?? 0) + 1;
    this.counts.set(page.id, c);
    this.heap.set(page.id, c, ++this.tick);
  }
  onRemove(pageId: number): void {
    this.counts.delete(pageId);
    this.heap.delete(pageId);
  }
  victim(evictable: (pageId: number) => boolean): number | undefined {
    return this.heap.minWhere(evictable);
  }
}
