/**
 * SIEVE (Zhang et al., NSDI 2024): a FIFO queue with one "visited" bit per page and a hand that
 * moves from the oldest page towards the newest. A hit only sets the bit (lazy promotion); the hand
 * clears set bits as it passes and evicts the first unvisited page, staying where it stopped.
 * Pinned pages are passed over without clearing their bit.
 */
import { OrderedSet } from '../ordered-set.ts';
import type { EvictionPolicy, PageRef } from '../policy.ts';

export class SievePolicy implements EvictionPolicy {
  readonly name = 'sieve';
  private readonly queue = new OrderedSet();
  private readonly visited = new Set<number>();
  private hand: number | undefined;
  onInsert(page: PageRef): void {
    this.queue.pushHead(page.id);
  }
  onHit(page: PageRef): void {
    this.visited.add(page.id);
  }
  onRemove(pageId: number): void {
    if (this.hand === pageId) this.hand = this.queue.newer(pageId);
    this.queue.delete(pageId);
    this.visited.delete(pageId);
  }
  victim(evictable: (pageId: number) => boolean): number | undefined {
    // Two full sweeps suffice: the first clears every bit it may, the second finds a page.
    let steps = 2 * this.queue.size + 1;
    let id = this.hand ?? this.queue.oldest();
    while (id !== undefined && steps-- > 0) {
      if (evictable(id)) {
        if (!this.visited.has(id)) {
          this.hand = id;
          return id;
        }
        this.visited.delete(id);
      }
      id = this.queue.newer(id) ?? this.queue.oldest();
    }
    return undefined;
  }
}
