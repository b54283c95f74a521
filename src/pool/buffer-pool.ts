/**
 * The buffer pool: page bytes under a hard byte budget, shared by every model that uses them.
 *
 * The invariant `residentBytes ≤ budgetBytes` is kept by reserving before reading: a miss learns
 * the page's size first (the caller's `bytes`, the `sizeOf` hint or the fixed `pageBytes`),
 * evicts unpinned pages until that many bytes are free, reserves them, and only then starts the
 * fetch. `residentBytes` therefore counts resident pages, in-flight reservations and invalidated
 * pages still pinned by their readers. A request that cannot fit even with every unpinned page
 * evicted fails with CapacityError('BUDGET_EXCEEDED') before anything is evicted.
 *
 * Pins are reference counts; an in-flight page is pinned by everyone waiting on it, so it cannot
 * be evicted, and concurrent pins of one page share one fetch. A failed fetch leaves no trace:
 * its reservation is released and the next pin fetches again.
 *
 * Returned arrays are the pool's own copies, shared by all pinners: treat them as read-only, and
 * use them only between pin and unpin.
 */
import { CapacityError, InvalidArgumentError, StoreError, TesseraError } from '../errors.ts';
import type { EvictionPolicy, PageRef } from './policy.ts';
import { createPolicy, type PolicyName } from './policies.ts';

export interface PageInfo {
  /** How many models use the page. */
  sharers: number;
  /** Which models use it, when known (the dedup-aware policy weighs them by popularity). */
  models?: readonly string[];
}

export interface BufferPoolOptions {
  budgetBytes: number;
  policy: EvictionPolicy | PolicyName;
  fetch: (pageId: number) => Promise<Uint8Array>;
  pageInfo?: (pageId: number) => PageInfo;
  /** Bytes a page will occupy, known before it is read (e.g. from the catalog). */
  sizeOf?: (pageId: number) => number;
  /** Fixed page size to reserve when neither the caller nor `sizeOf` says (e.g. the store's pageSize). */
  pageBytes?: number;
  /**
   * A shared account to draw bytes from instead of a budget of the pool's own (the server's one
   * ledger): the pool reserves there before reading, releases there on eviction, and registers
   * itself as a reclaimer so others' reservations can evict its unpinned entries.
   */
  account?: { ledger: MemoryAccount; kind: string; /** Register as a reclaimer (default true). */ reclaimer?: boolean };
}

/** What a shared ledger offers a pool (src/runtime/ledger.ts implements it). */
export interface MemoryAccount {
  readonly budgetBytes: number;
  /** Throws CapacityError (having freed nothing) when `bytes` cannot be made free. */
  reserve(kind: any, bytes: number, what: string): void;
  release(kind: any, bytes: number): void;
  addReclaimer(r: { name: string; reclaimable(): number; reclaim(bytes: number): number }): void;
}

export interface PinContext {
  /** The model whose request needs the page (for popularity and sharing-aware policies). */
  model?: string;
  /** The page's size, when the caller knows it better than `sizeOf`/`pageBytes`. */
  bytes?: number;
}

export interface PoolStats {
  /** Pins served by a resident page. */
  hits: number;
  /** Pins that started a fetch. */
  misses: number;
  /** Pins that joined a fetch already in flight (single flight). */
  joins: number;
  evictions: number;
  invalidations: number;
  fetchErrors: number;
  bytesFetched: number;
  /** Everything the pool holds: resident pages, in-flight reservations, invalidated pages still pinned. */
  residentBytes: number;
  /** Part of residentBytes reserved for fetches in flight. */
  inFlightBytes: number;
  /** Part of residentBytes that cannot be evicted now (pinned or in flight). */
  pinnedBytes: number;
  /** The highest residentBytes ever reached; never above budgetBytes. */
  peakResidentBytes: number;
  budgetBytes: number;
  residentPages: number;
}

interface Entry {
  readonly id: number;
  state: 'loading' | 'ready';
  /** Bytes counted for this entry: the reservation while loading, the page's length once ready. */
  bytes: number;
  pins: number;
  data?: Uint8Array;
  promise?: Promise<Uint8Array>;
  sharers: number;
  models?: readonly string[];
  /** Invalidated while pinned or loading: held until its last unpin, never served again. */
  stale: boolean;
}

export class BufferPool {
  readonly budgetBytes: number;
  readonly policy: EvictionPolicy;
  private readonly fetchPage: (pageId: number) => Promise<Uint8Array>;
  private readonly pageInfo?: (pageId: number) => PageInfo;
  private readonly sizeOf?: (pageId: number) => number;
  private readonly pageBytes?: number;
  private readonly account?: { ledger: MemoryAccount; kind: string; reclaimer?: boolean };
  private readonly entries = new Map<number, Entry>();
  private readonly stale = new Map<number, Entry[]>();
  private held = 0;
  private pinned = 0;
  private peak = 0;
  private counters = { hits: 0, misses: 0, joins: 0, evictions: 0, invalidations: 0, fetchErrors: 0, bytesFetched: 0 };
  private readonly evictable = (id: number): boolean => {
    const e = this.entries.get(id);
    return e !== undefined && e.state === 'ready' && e.pins === 0;
  };

  constructor(opts: BufferPoolOptions) {
    if (opts.account) opts = { ...opts, budgetBytes: opts.account.ledger.budgetBytes };
    if (!Number.isFinite(opts.budgetBytes) || opts.budgetBytes <= 0) {
      throw new InvalidArgumentError(`buffer pool budget must be a positive number of bytes, got ${opts.budgetBytes}`);
    }
    if (typeof opts.fetch !== 'function') throw new InvalidArgumentError('buffer pool needs a fetch(pageId) function that reads a page');
    if (opts.pageBytes !== undefined && !isByteCount(opts.pageBytes)) {
      throw new InvalidArgumentError(`pageBytes must be a non-negative integer, got ${opts.pageBytes}`);
    }
    this.budgetBytes = opts.budgetBytes;
    this.policy = typeof opts.policy === 'string' ? createPolicy(opts.policy) : opts.policy;
    this.policy.setCapacity?.(opts.budgetBytes);
    this.fetchPage = opts.fetch;
    this.pageInfo = opts.pageInfo;
    this.sizeOf = opts.sizeOf;
    this.pageBytes = opts.pageBytes;
    this.account = opts.account;
    if (this.account && this.account.reclaimer !== false) this.account.ledger.addReclaimer({
      name: `pool of ${this.account.kind}`,
      reclaimable: () => this.reclaimableBytes(),
      reclaim: (bytes) => this.reclaim(bytes),
    });
  }

  /** Bytes of entries that can be evicted now (resident and unpinned). */
  reclaimableBytes(): number {
    return this.held - this.pinned;
  }

  /** The entry the policy would evict next (resident and unpinned), without evicting it. */
  nextVictim(): number | undefined {
    const v = this.policy.victim(this.evictable);
    return v !== undefined && this.evictable(v) ? v : this.anyEvictable();
  }

  /** Evicts one resident unpinned entry; returns the bytes freed (0 when it cannot). */
  evictEntry(id: number): number {
    if (!this.evictable(id)) return 0;
    const bytes = this.entries.get(id)!.bytes;
    this.evict(id);
    return bytes;
  }

  /** Evicts unpinned entries (policy order) until `bytes` are freed or none is left; returns bytes freed. */
  reclaim(bytes: number): number {
    let freed = 0;
    while (freed < bytes && this.held > this.pinned) {
      let victim = this.policy.victim(this.evictable);
      if (victim === undefined || !this.evictable(victim)) victim = this.anyEvictable();
      if (victim === undefined) break;
      freed += this.entries.get(victim)!.bytes;
      this.evict(victim);
    }
    return freed;
  }

  /** Tells the policy a model request began (withPages does it when given a model). */
  recordRequest(model: string): void {
    this.policy.onRequest?.(model);
  }

  /** Resolves to the page's bytes, pinned until a matching unpin. */
  pin(pageId: number, ctx: PinContext = {}): Promise<Uint8Array> {
    try {
      return this.pinNow(pageId, ctx);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Releases one pin. Pass the array pin returned to release exactly that copy after an invalidate. */
  unpin(pageId: number, data?: Uint8Array): void {
    const current = this.entries.get(pageId);
    const staleList = this.stale.get(pageId);
    let e: Entry | undefined;
    if (data !== undefined) {
      e = current?.data === data && current.pins > 0 ? current : staleList?.find((s) => s.data === data && s.pins > 0);
    }
    // Without the array, the current copy first: if that guess is wrong, an invalidated copy is
    // held a little longer, which over-counts and never breaks the budget.
    e ??= current && current.state === 'ready' && current.pins > 0 ? current : staleList?.find((s) => s.state === 'ready' && s.pins > 0);
    if (!e) {
      const why = current?.state === 'loading' ? 'it is still loading: unpin after its pin resolves' : 'it is not pinned: each unpin must match one resolved pin';
      throw new InvalidArgumentError(`cannot unpin page ${pageId}: ${why}`);
    }
    e.pins--;
    if (e.pins > 0) return;
    this.pinned -= e.bytes;
    if (e.stale) this.dropStale(e);
  }

  /**
   * Pins every page of `ids`, runs `fn` with their bytes (in the order of `ids`), and unpins them
   * whatever `fn` does. If any pin fails, the others are released and the error is thrown.
   */
  async withPages<T>(ids: readonly number[], fn: (pages: Uint8Array[]) => T | Promise<T>, ctx: PinContext = {}): Promise<T> {
    if (ctx.model !== undefined) this.recordRequest(ctx.model);
    const unique = [...new Set(ids)];
    const settled = await Promise.allSettled(unique.map((id) => this.pin(id, ctx)));
    const byId = new Map<number, Uint8Array>();
    let failure: unknown;
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') byId.set(unique[i], s.value);
      else failure ??= s.reason;
    });
    const release = () => {
      for (const [id, data] of byId) this.unpin(id, data);
    };
    if (failure !== undefined) {
      release();
      throw failure;
    }
    try {
      return await fn(ids.map((id) => byId.get(id)!));
    } finally {
      release();
    }
  }

  /**
   * Forgets a page the store freed or rewrote: later pins fetch it again. Readers still holding it
   * keep their copy (still counted) until they unpin. Returns whether the pool held the page.
   */
  invalidate(pageId: number): boolean {
    const e = this.entries.get(pageId);
    if (!e) return false;
    this.entries.delete(pageId);
    this.counters.invalidations++;
    if (e.state === 'ready') this.policy.onRemove(pageId, false);
    if (e.pins === 0) {
      this.give(e.bytes);
      return true;
    }
    e.stale = true;
    const list = this.stale.get(pageId);
    if (list) list.push(e);
    else this.stale.set(pageId, [e]);
    return true;
  }

  /** Invalidates every entry (readers still pinning one keep it until they unpin). Returns how many. */
  clear(): number {
    let n = 0;
    for (const id of [...this.entries.keys()]) if (this.invalidate(id)) n++;
    return n;
  }

  isResident(pageId: number): boolean {
    return this.entries.get(pageId)?.state === 'ready';
  }

  /** Current pins on the served copy of a page (0 when absent). */
  pinCount(pageId: number): number {
    return this.entries.get(pageId)?.pins ?? 0;
  }

  stats(): PoolStats {
    let inFlight = 0;
    let pages = 0;
    for (const e of this.entries.values()) {
      if (e.state === 'loading') inFlight += e.bytes;
      else pages++;
    }
    for (const list of this.stale.values()) for (const e of list) if (e.state === 'loading') inFlight += e.bytes;
    return {
      ...this.counters,
      residentBytes: this.held,
      inFlightBytes: inFlight,
      pinnedBytes: this.pinned,
      peakResidentBytes: this.peak,
      budgetBytes: this.budgetBytes,
      residentPages: pages,
    };
  }

  /** Recomputes the accounting from scratch; returns what disagrees (empty when consistent). For tests. */
  checkInvariants(): string[] {
    const problems: string[] = [];
    let held = 0;
    let pinned = 0;
    const all = [...this.entries.values(), ...[...this.stale.values()].flat()];
    for (const e of all) {
      held += e.bytes;
      if (e.pins > 0) pinned += e.bytes;
      if (e.pins < 0) problems.push(`page ${e.id} has ${e.pins} pins`);
      if (e.state === 'loading' && e.pins === 0) problems.push(`page ${e.id} is loading with no pin`);
      if (e.stale && e.pins === 0) problems.push(`invalidated page ${e.id} is held with no pin`);
    }
    if (held !== this.held) problems.push(`residentBytes ${this.held} but entries hold ${held}`);
    if (pinned !== this.pinned) problems.push(`pinnedBytes ${this.pinned} but pinned entries hold ${pinned}`);
    if (this.held > this.budgetBytes) problems.push(`residentBytes ${this.held} exceed the budget ${this.budgetBytes}`);
    if (this.peak > this.budgetBytes) problems.push(`peakResidentBytes ${this.peak} exceed the budget ${this.budgetBytes}`);
    return problems;
  }

  private pinNow(pageId: number, ctx: PinContext): Promise<Uint8Array> {
    if (!Number.isSafeInteger(pageId) || pageId < 0) throw new InvalidArgumentError(`page id must be a non-negative integer, got ${pageId}`);
    const e = this.entries.get(pageId);
    if (e?.state === 'ready') {
      this.addPin(e);
      this.counters.hits++;
      this.policy.onHit(this.ref(e, ctx));
      return Promise.resolve(e.data!);
    }
    if (e) {
      this.addPin(e);
      this.counters.joins++;
      return e.promise!;
    }
    const bytes = this.expectedSize(pageId, ctx);
    const info = this.pageInfo?.(pageId);
    this.policy.onMiss?.({ id: pageId, bytes, sharers: info?.sharers ?? 1, models: info?.models, model: ctx.model });
    this.makeRoom(bytes, pageId);
    const entry: Entry = { id: pageId, state: 'loading', bytes, pins: 0, sharers: info?.sharers ?? 1, models: info?.models, stale: false };
    this.entries.set(pageId, entry);
    this.held += bytes;
    this.peak = Math.max(this.peak, this.held);
    this.addPin(entry);
    this.counters.misses++;
    entry.promise = this.load(entry, ctx);
    return entry.promise;
  }

  private async load(e: Entry, ctx: PinContext): Promise<Uint8Array> {
    let data: Uint8Array;
    try {
      data = await this.fetchPage(e.id);
      if (!(data instanceof Uint8Array)) throw new StoreError('IO_ERROR', `fetch(${e.id}) returned ${typeof data}, not a Uint8Array`);
      if (data.length > e.bytes) {
        // The size hint was low: take the difference from unpinned pages or give the page up.
        try {
          this.makeRoom(data.length - e.bytes, e.id);
        } catch (err) {
          throw new CapacityError('BUDGET_EXCEEDED', `page ${e.id} is ${data.length} bytes but ${e.bytes} were reserved for it (the size hint was low), and the difference does not fit: ${(err as Error).message}`);
        }
      }
    } catch (err) {
      this.counters.fetchErrors++;
      this.dropLoading(e);
      if (err instanceof TesseraError) throw err;
      throw new StoreError('IO_ERROR', `reading page ${e.id} failed (${err instanceof Error ? err.message : String(err)}); the pool is unchanged, pin again to retry`, { cause: err });
    }
    this.resize(e, data.length);
    e.state = 'ready';
    e.data = data;
    e.promise = undefined;
    this.counters.bytesFetched += data.length;
    if (!e.stale) this.policy.onInsert(this.ref(e, ctx));
    return data;
  }

  private expectedSize(pageId: number, ctx: PinContext): number {
    const bytes = ctx.bytes ?? this.sizeOf?.(pageId) ?? this.pageBytes;
    if (bytes === undefined) {
      throw new InvalidArgumentError(`the size of page ${pageId} is unknown: give the pool sizeOf or pageBytes, or pin with { bytes }`);
    }
    if (!isByteCount(bytes)) throw new InvalidArgumentError(`page ${pageId} size must be a non-negative integer, got ${bytes}`);
    return bytes;
  }

  /** Evicts unpinned pages until `needed` bytes are free, or throws having evicted nothing. */
  private makeRoom(needed: number, incoming: number): void {
    if (this.account) return this.account.ledger.reserve(this.account.kind, needed, `entry ${incoming} of the ${this.account.kind} pool`);
    const free = this.budgetBytes - this.held;
    if (free >= needed) return;
    const evictable = this.held - this.pinned;
    if (free + evictable < needed) {
      throw new CapacityError(
        'BUDGET_EXCEEDED',
        `page ${incoming} needs ${needed} bytes but the pool can free only ${free + evictable}: budget ${this.budgetBytes} bytes, ` +
          `${this.pinned} bytes pinned or in flight. Unpin pages sooner, pin fewer at once, or raise the budget.`,
      );
    }
    while (this.budgetBytes - this.held < needed) {
      let victim = this.policy.victim(this.evictable, incoming);
      // A policy that loses track must not break the budget: fall back to any unpinned page.
      if (victim === undefined || !this.evictable(victim)) victim = this.anyEvictable();
      this.evict(victim!);
    }
  }

  private anyEvictable(): number | undefined {
    for (const [id] of this.entries) if (this.evictable(id)) return id;
    return undefined;
  }

  private evict(pageId: number): void {
    const e = this.entries.get(pageId)!;
    this.entries.delete(pageId);
    this.give(e.bytes);
    this.counters.evictions++;
    this.policy.onRemove(pageId, true);
  }

  private addPin(e: Entry): void {
    if (e.pins++ === 0) this.pinned += e.bytes;
  }

  /** Bytes leave the pool (and its account). */
  private give(bytes: number): void {
    this.held -= bytes;
    if (this.account && bytes) this.account.ledger.release(this.account.kind, bytes);
  }

  private resize(e: Entry, bytes: number): void {
    const delta = bytes - e.bytes;
    // Growth was reserved by makeRoom in load(); shrinking gives the difference back.
    if (delta < 0 && this.account) this.account.ledger.release(this.account.kind, -delta);
    e.bytes = bytes;
    this.held += delta;
    if (e.pins > 0) this.pinned += delta;
    this.peak = Math.max(this.peak, this.held);
  }

  private dropLoading(e: Entry): void {
    if (e.stale) {
      this.dropStale(e);
    } else {
      this.entries.delete(e.id);
      this.give(e.bytes);
    }
    if (e.pins > 0) this.pinned -= e.bytes;
    e.pins = 0;
  }

  private dropStale(e: Entry): void {
    const list = this.stale.get(e.id);
    if (!list) return;
    const i = list.indexOf(e);
    if (i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.stale.delete(e.id);
    this.give(e.bytes);
  }

  private ref(e: Entry, ctx: PinContext): PageRef {
    return { id: e.id, bytes: e.bytes, sharers: e.sharers, models: e.models, model: ctx.model };
  }
}

function isByteCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}
