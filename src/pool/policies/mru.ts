/** Most recently used: evict the page touched last. Right for loops larger than the pool. */
import { firstEvictable } from '../ordered-set.ts';
import { LruPolicy } from './lru.ts';

/** The same recency order as LRU, evicted from the other end. */
export class MruPolicy extends LruPolicy {
  override readonly name: string = 'mru';
  override victim(evictable: (pageId: number) => boolean): number | undefined {
    return firstEvictable(this.order.fromNewest(), evictable);
  }
}
