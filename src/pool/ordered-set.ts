/**
 * An ordered set of page ids with O(1) insert-at-head, move-to-head, remove and walks from either
 * end: the recency list under LRU, MRU, SIEVE, ARC and the cost model. (A JS Map keeps insertion
 * order but cannot be walked newest-first, which MRU and SIEVE need.)
 */
interface Node {
  id: number;
  prev: Node | null; // towards head (newer)
  next: Node | null; // towards tail (older)
}

export class OrderedSet {
  private readonly nodes = new Map<number, Node>();
  private head: Node | null = null;
  private tail: Node | null = null;

  get size(): number {
    return this.nodes.size;
  }
  has(id: number): boolean {
    return this.nodes.has(id);
  }
  /** Inserts `id` at the head (newest), or moves it there. */
  pushHead(id: number): void {
    let n = this.nodes.get(id);
    if (n) this.unlink(n);
    else this.nodes.set(id, (n = { id, prev: null, next: null }));
    n.next = this.head;
    n.prev = null;
    if (this.head) this.head.prev = n;
    this.head = n;
    if (!this.tail) this.tail = n;
  }
  delete(id: number): boolean {
    const n = this.nodes.get(id);
    if (!n) return false;
    this.unlink(n);
    this.nodes.delete(id);
    return true;
  }
  /** The oldest id, or undefined. */
  oldest(): number | undefined {
    return this.tail?.id;
  }
  /** The id one step newer than `id` (towards the head), or undefined. */
  newer(id: number): number | undefined {
    return this.nodes.get(id)?.prev?.id;
  }
  /** Ids from oldest to newest. */
  *fromOldest(): IterableIterator<number> {
    for (let n = this.tail; n; n = n.prev) yield n.id;
  }
  /** Ids from newest to oldest. */
  *fromNewest(): IterableIterator<number> {
    for (let n = this.head; n; n = n.next) yield n.id;
  }
  private unlink(n: Node): void {
    if (n.prev) n.prev.next = n.next;
    else this.head = n.next;
    if (n.next) n.next.prev = n.prev;
    else this.tail = n.prev;
    n.prev = n.next = null;
  }
}

/** The first id of `ids` that `evictable` accepts. */
export function firstEvictable(ids: Iterable<number>, evictable: (id: number) => boolean): number | undefined {
  for (const id of ids) if (evictable(id)) return id;
  return undefined;
}
