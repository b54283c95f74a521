/**
 * netsDB's cost model (docs/PAPER.md#3-dedup-aware-buffer-pool): the cost of evicting a page is its write cost plus
 * p_reuse × its read cost, with p_reuse = 1 / reference distance (ticks since its last use); the
 * cheapest page goes first. Model pages are clean, so the write cost is 0 and the read cost is the
 * page's bytes. netsDB's dedup change is kept: a page shared by several models is evicted only
 * when no unshared page can be. Within a tier the lowest cost is searched among the `window`
 * least recently used evictable pages (exact for equal page sizes, where cost order is LRU order).
 */
import { OrderedSet } from '../ordered-set.ts';
import type { EvictionPolicy, PageRef } from '../policy.ts';

export class CostPolicy implements EvictionPolicy {
  readonly name = 'cost';
  private readonly unshared = new OrderedSet();
  private readonly shared = new OrderedSet();
  private readonly lastUse = new Map<number, number>();
  private readonly bytes = new Map<number, number>();
  private tick = 0;
  constructor(private readonly window = 8, private readonly writeCost = 0) {}

  onInsert(page: PageRef): void {
    this.touch(page);
  }
  onHit(page: PageRef): void {
    this.touch(page);
  }
  onRemove(pageId: number): void {
    this.unshared.delete(pageId);
    this.shared.delete(pageId);
    this.lastUse.delete(pageId);
    this.bytes.delete(pageId);
  }
  victim(evictable: (pageId: number) => boolean): number | undefined {
    return this.cheapest(this.unshared, evictable) ?? this.cheapest(this.shared, evictable);
  }
  private touch(page: PageRef): void {
    const [tier, other] = page.sharers > 1 ? [this.shared, this.unshared] : [this.unshared, this.shared];
    other.delete(page.id);
    tier.pushHead(page.id);
    this.lastUse.set(page.id, ++this.tick);
    this.bytes.set(page.id, page.bytes);
  }
  private cheapest(tier: OrderedSet, evictable: (pageId: number) => boolean): number | undefined {
    let best: number | undefined;
    let bestCost = Infinity;
    let seen = 0;
    for (const id of tier.fromOldest()) {
      if (!evictable(id)) continue;
      const distance = this.tick + 1 - this.lastUse.get(id)!;
      const cost = this.writeCost + this.bytes.get(id)! / distance;
      if (cost < bestCost) {
        bestCost = cost;
        best = id;
      }
      if (++seen >= this.window) break;
    }
    return best;
  }
}
