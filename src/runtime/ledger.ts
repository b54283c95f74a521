/**
 * The server's one memory ledger: every byte it holds is entered here under a kind (pooled pages,
 * pooled tensors, sessions, kernel scratch, in-flight copies), and the total never exceeds the
 * budget. A reservation that does not fit asks the reclaimers (the pools, the idle sessions) to
 * free memory, in the order they were added; when even everything they could free would not be
 * enough it fails with CapacityError before anything is reclaimed, so a refused request changes
 * nothing. The benchmark and test/server-rss.test.ts compare this ledger with process RSS.
 */
import { CapacityError, InvalidArgumentError } from '../errors.ts';

export const LEDGER_KINDS = ['pages', 'tensors', 'sessions', 'scratch', 'inflight'] as const;
export type LedgerKind = (typeof LEDGER_KINDS)[number];

/** Something holding memory it can give back on request (a pool's unpinned entries, idle sessions). */
export interface Reclaimer {
  readonly name: string;
  /** Bytes it could free now. */
  reclaimable(): number;
  /** Frees at least `bytes` if it can (fewer when it cannot); returns the bytes freed. */
  reclaim(bytes: number): number;
}

export class MemoryLedger {
  readonly budgetBytes: number;
  private readonly held = new Map<LedgerKind, number>(LEDGER_KINDS.map((k) => [k, 0]));
  private total = 0;
  private peak = 0;
  private readonly reclaimers: Reclaimer[] = [];

  constructor(budgetBytes: number) {
    if (!Number.isSafeInteger(budgetBytes) || budgetBytes <= 0) throw new InvalidArgumentError(`the memory budget must be a positive whole number of bytes, got ${budgetBytes}`);
    this.budgetBytes = budgetBytes;
  }

  get heldBytes(): number {
    return this.total;
  }
  get peakBytes(): number {
    return this.peak;
  }
  get freeBytes(): number {
    return this.budgetBytes - this.total;
  }

  /** Reclaimers are asked in the order added: put the cheapest to refill first. */
  addReclaimer(r: Reclaimer): void {
    this.reclaimers.push(r);
  }

  /** Bytes free now plus what every reclaimer could free. */
  available(): number {
    return this.freeBytes + this.reclaimers.reduce((n, r) => n + r.reclaimable(), 0);
  }

  /**
   * Enters `bytes` under `kind`, reclaiming memory if needed. Throws CapacityError, having
   * reclaimed nothing, when the bytes cannot be made free.
   */
  reserve(kind: LedgerKind, bytes: number, what: string): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new InvalidArgumentError(`a reservation must be a non-negative whole number of bytes, got ${bytes} for ${what}`);
    if (bytes > this.freeBytes) {
      const available = this.available();
      if (available < bytes) {
        throw new CapacityError('BUDGET_EXCEEDED', `${what} needs ${bytes} bytes but only ${available} of the ${this.budgetBytes}-byte budget can be freed (${this.describe()}); raise the budget or wait for running requests`);
      }
      for (const r of this.reclaimers) {
        if (bytes <= this.freeBytes) break;
        r.reclaim(bytes - this.freeBytes);
      }
      // A reclaimer that freed less than it promised must not break the budget.
      if (bytes > this.freeBytes) throw new CapacityError('BUDGET_EXCEEDED', `${what} needs ${bytes} bytes; after reclaiming, ${this.freeBytes} are free (${this.describe()})`);
    }
    this.held.set(kind, this.held.get(kind)! + bytes);
    this.total += bytes;
    if (this.total > this.peak) this.peak = this.total;
  }

  release(kind: LedgerKind, bytes: number): void {
    const now = this.held.get(kind)! - bytes;
    if (bytes < 0 || now < 0) throw new InvalidArgumentError(`releasing ${bytes} ${kind} bytes but only ${this.held.get(kind)} are held`);
    this.held.set(kind, now);
    this.total -= bytes;
  }

  byKind(): Record<LedgerKind, number> {
    return Object.fromEntries(this.held) as Record<LedgerKind, number>;
  }

  describe(): string {
    return LEDGER_KINDS.map((k) => `${k} ${this.held.get(k)}`).join(', ');
  }
}
