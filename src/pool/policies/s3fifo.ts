/**
 * S3-FIFO (Yang et al., SOSP 2023): three FIFO queues. New pages enter a small queue S (10% of the
 * bytes); a page leaving S that was hit while there moves to the main queue M, the others are
 * evicted and remembered in a ghost queue G (ids only). A page re-inserted while remembered in G
 * goes straight to M. M is a FIFO with reinsertion: a page at its tail with hits left is moved back
 * to the head with one hit fewer (counts capped at 3). A one-shot scan passes through S and never
 * reaches M, so it cannot flush the hot set. Byte-aware: queue sizes are in bytes. Pinned pages
 * are passed over where they stand.
 */
import { OrderedSet } from '../ordered-set.ts';
import type { EvictionPolicy, PageRef } from '../policy.ts';

export interface S3FifoOptions {
  /** Share of the capacity for the small queue (default 0.1, the paper's). */
  smallShare?: number;
}

const MAX_FREQ = 3;

export class S3FifoPolicy implements EvictionPolicy {
  readonly name = 's3fifo';
  private readonly small = new OrderedSet();
  private readonly main = new OrderedSet();
  private readonly ghost = new OrderedSet();
  private readonly ghostSize = new Map<number, number>();
  private readonly freq = new Map<number, number>();
  private readonly size = new Map<number, number>();
  private smallBytes = 0;
  private mainBytes = 0;
  private ghostBytes = 0;
  private capacity = Infinity;
  private readonly smallShare: number;

  constructor(opts: S3FifoOptions = {}) {
    this.smallShare = opts.smallShare ?? 0.1;
  }
  setCapacity(budgetBytes: number): void {
    this.capacity = budgetBytes;
  }
  onInsert(page: PageRef): void {
    this.size.set(page.id, page.bytes);
    this.freq.set(page.id, 0);
    if (this.ghost.delete(page.id)) {
      this.ghostBytes -= this.ghostSize.get(page.id) ?? 0;
      this.ghostSize.delete(page.id);
      this.main.pushHead(page.id);
      this.mainBytes += page.bytes;
    } else {
      this.small.pushHead(page.id);
      this.smallBytes += page.bytes;
    }
  }
  onHit(page: PageRef): void {
    if (!this.size.has(page.id)) return this.onInsert(page);
    this.freq.set(page.id, Math.min(MAX_FREQ, this.freq.get(page.id)! + 1));
  }
  onRemove(pageId: number, evicted: boolean): void {
    const bytes = this.size.get(pageId);
    if (bytes === undefined) return;
    if (this.small.delete(pageId)) {
      this.smallBytes -= bytes;
      if (evicted) this.remember(pageId, bytes);
    } else if (this.main.delete(pageId)) this.mainBytes -= bytes;
    this.size.delete(pageId);
    this.freq.delete(pageId);
  }
  victim(evictable: (pageId: number) => boolean): number | undefined {
    // Each step either returns, or moves a page S→M, or spends one of a page's hits in M: bounded.
    let steps = (MAX_FREQ + 2) * (this.small.size + this.main.size) + 2;
    while (steps-- > 0) {
      const fromSmall = this.smallBytes > this.smallShare * this.capacity || this.main.size === 0;
      const id = (fromSmall ? this.first(this.small, evictable) : undefined) ?? this.first(this.main, evictable) ?? this.first(this.small, evictable);
      if (id === undefined) return undefined;
      const f = this.freq.get(id)!;
      if (this.small.has(id)) {
        if (f === 0) return id;
        // Hit while in S: promoted to M with its count reset.
        this.small.delete(id);
        this.smallBytes -= this.size.get(id)!;
        this.main.pushHead(id);
        this.mainBytes += this.size.get(id)!;
        this.freq.set(id, 0);
      } else {
        if (f === 0) return id;
        this.main.pushHead(id);
        this.freq.set(id, f - 1);
      }
    }
    return undefined;
  }
  private first(q: OrderedSet, evictable: (id: number) => boolean): number | undefined {
    for (let id = q.oldest(); id !== undefined; id = q.newer(id)) if (evictable(id)) return id;
    return undefined;
  }
  /** The ghost queue remembers about as many bytes as M may hold. */
  private remember(id: number, bytes: number): void {
    this.ghost.pushHead(id);
    this.ghostSize.set(id, bytes);
    this.ghostBytes += bytes;
    const limit = (1 - this.smallShare) * this.capacity;
    while (this.ghostBytes > limit && this.ghost.size > 0) {
      const old = this.ghost.oldest()!;
      this.ghost.delete(old);
      this.ghostBytes -= this.ghostSize.get(old) ?? 0;
      this.ghostSize.delete(old);
    }
  }
}
