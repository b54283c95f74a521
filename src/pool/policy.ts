/**
 * The one small interface every eviction policy implements. The pool owns residency, pins and the
 * byte budget; a policy only orders the resident pages it was told about and names a victim.
 * Pinned (and in-flight) pages are never offered: `victim` receives a filter and must skip pages
 * it rejects.
 */

/** What the pool knows about a resident page when it tells the policy about it. */
export interface PageRef {
  readonly id: number;
  /** Bytes the page occupies in the pool. */
  readonly bytes: number;
  /** How many models use the page (1 when unknown). */
  readonly sharers: number;
  /** The models that use the page, when the caller's `pageInfo` knows them. */
  readonly models?: readonly string[];
  /** The model whose request touched the page now, when the caller said. */
  readonly model?: string;
}

export interface EvictionPolicy {
  readonly name: string;
  /** Called once by the pool before any other call: byte-aware policies (ARC's ghosts) size themselves by it. */
  setCapacity?(budgetBytes: number): void;
  /** A model request began (the pool's `recordRequest`): popularity-aware policies count it. */
  onRequest?(model: string): void;
  /**
   * A page that is not resident was asked for, before the pool makes room for it (its onInsert
   * follows once it is read, unless the read fails). Shadow-simulating policies replay the access
   * here, so they choose victims knowing it.
   */
  onMiss?(page: PageRef): void;
  /** The page became resident (after a miss). */
  onInsert(page: PageRef): void;
  /** A resident page was requested again. */
  onHit(page: PageRef): void;
  /** The page left the pool: `evicted` true when the policy's own victim, false when invalidated. */
  onRemove(pageId: number, evicted: boolean): void;
  /**
   * The page to evict next among resident pages for which `evictable(id)` is true, or undefined
   * when there is none. `incoming` is the page that needs the room (ARC uses it).
   */
  victim(evictable: (pageId: number) => boolean, incoming?: number): number | undefined;
}

/**
 * `inner`, telling `removed` after each page leaves the pool (evicted or invalidated): the
 * runtime frees a page's frame, or keeps an evicted tensor's buffer for reuse, there.
 */
export function onRemoval(inner: EvictionPolicy, removed: (pageId: number, evicted: boolean) => void): EvictionPolicy {
  return {
    name: inner.name,
    setCapacity: (b) => inner.setCapacity?.(b),
    onRequest: (m) => inner.onRequest?.(m),
    onMiss: (p) => inner.onMiss?.(p),
    onInsert: (p) => inner.onInsert(p),
    onHit: (p) => inner.onHit(p),
    onRemove: (id, evicted) => {
      inner.onRemove(id, evicted);
      removed(id, evicted);
    },
    victim: (ok, incoming) => inner.victim(ok, incoming),
  };
}
