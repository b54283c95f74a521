/** Least recently used: evict the page untouched for longest. */
import { OrderedSet, firstEvictable } from '../ordered-set.ts';
import type { EvictionPolicy, PageRef } from '../policy.ts';

export class LruPolicy implements EvictionPolicy {
  readonly name: string = 'lru';
  protected readonly order = new OrderedSet();
  onInsert(page: PageRef): void {
    this.order.pushHead(page.id);
  }
  onHit(page: PageRef): void {
    this.order.pushHead(page.id);
  }
  onRemove(pageId: number): void {
    this.order.delete(pageId);
  }
  victim(evictable: (pageId: number) => boolean): number | undefined {
    return firstEvictable(this.order.fromOldest(), evictable);
  }
}
