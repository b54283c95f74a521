/**
 * A binary min-heap of page ids keyed by (primary, secondary) numbers, with update and remove by
 * id: the score order under LFU and the dedup-aware policy.
 */
export class KeyedHeap {
  private ids: number[] = [];
  private primary: number[] = [];
  private secondary: number[] = [];
  private readonly pos = new Map<number, number>();

  get size(): number {
    return this.ids.length;
  }
  has(id: number): boolean {
    return this.pos.has(id);
  }
  /** Inserts `id` or changes its key. */
  set(id: number, primary: number, secondary: number): void {
    const i = this.pos.get(id);
    if (i === undefined) {
      const j = this.ids.length;
      this.ids.push(id);
      this.primary.push(primary);
      this.secondary.push(secondary);
      this.pos.set(id, j);
      this.up(j);
      return;
    }
    this.primary[i] = primary;
    this.secondary[i] = secondary;
    this.down(this.up(i));
  }
  delete(id: number): boolean {
    const i = this.pos.get(id);
    if (i === undefined) return false;
    const last = this.ids.length - 1;
    this.swap(i, last);
    this.ids.pop();
    this.primary.pop();
    this.secondary.pop();
    this.pos.delete(id);
    if (i < last) this.down(this.up(i));
    return true;
  }
  /** Multiplies every primary key by a positive factor (order is unchanged). */
  scalePrimary(factor: number): void {
    for (let i = 0; i < this.primary.length; i++) this.primary[i] *= factor;
  }
  /**
   * The smallest-keyed id that `accept` takes, found best-first over the heap's tree so that
   * rejected ids (pinned pages) cost a visit each rather than a pop and a push. Gives up
   * (undefined) after `maxRejected` rejections.
   */
  minWhere(accept: (id: number) => boolean, maxRejected = Infinity): number | undefined {
    if (this.ids.length === 0) return undefined;
    // Frontier of heap indices, searched best-first; it stays tiny because rejected ids are few.
    const frontier: number[] = [0];
    let rejected = 0;
    while (frontier.length > 0 && rejected <= maxRejected) {
      let best = 0;
      for (let k = 1; k < frontier.length; k++) if (this.less(frontier[k], frontier[best])) best = k;
      const i = frontier[best];
      frontier[best] = frontier[frontier.length - 1];
      frontier.pop();
      if (accept(this.ids[i])) return this.ids[i];
      rejected++;
      const l = 2 * i + 1;
      if (l < this.ids.length) frontier.push(l);
      if (l + 1 < this.ids.length) frontier.push(l + 1);
    }
    return undefined;
  }
  private less(a: number, b: number): boolean {
    const pa = this.primary[a];
    const pb = this.primary[b];
    return pa < pb || (pa === pb && this.secondary[a] < this.secondary[b]);
  }
  private swap(a: number, b: number): void {
    if (a === b) return;
    const { ids, primary, secondary } = this;
    [ids[a], ids[b]] = [ids[b], ids[a]];
    [primary[a], primary[b]] = [primary[b], primary[a]];
    [secondary[a], secondary[b]] = [secondary[b], secondary[a]];
    this.pos.set(ids[a], a);
    this.pos.set(ids[b], b);
  }
  private up(i: number): number {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
    return i;
  }
  private down(i: number): void {
    const n = this.ids.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.less(l, m)) m = l;
      if (r < n && this.less(r, m)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}
