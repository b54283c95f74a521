/**
 * Trace simulator: replays a stream of model requests through a real BufferPool over a page
 * layout and reports hit ratios. Each request pins all of its model's pages at once (a model
 * needs all its weights to run) and then releases them, exactly as serving does.
 */
import { InvalidArgumentError } from '../errors.ts';
import { BufferPool } from './buffer-pool.ts';
import type { EvictionPolicy } from './policy.ts';
import { createPolicy, type PolicyName } from './policies.ts';

export interface PageLayout {
  models: ReadonlyArray<{ name: string; pages: readonly number[] }>;
  /** Every page's size, or one size for all. */
  pageBytes: number | ((pageId: number) => number);
}

export interface SimulationResult {
  policy: string;
  budgetBytes: number;
  /** Page hits / page touches, after warm-up. */
  hitRatio: number;
  /** Bytes served from the pool / bytes touched, after warm-up. */
  byteHitRatio: number;
  requests: number;
  pageTouches: number;
  evictions: number;
  peakResidentBytes: number;
}

export interface SimulationOptions {
  /** Requests replayed before counting starts (default 10% of the trace). */
  warmupRequests?: number;
}

export function sizeOfPage(layout: PageLayout): (pageId: number) => number {
  const { pageBytes } = layout;
  return typeof pageBytes === 'number' ? () => pageBytes : pageBytes;
}

/** Bytes of all distinct pages in the layout: what a budget fraction of 1 holds. */
export function distinctBytes(layout: PageLayout): number {
  const size = sizeOfPage(layout);
  const seen = new Set<number>();
  let total = 0;
  for (const m of layout.models) for (const p of m.pages) if (!seen.has(p)) (seen.add(p), (total += size(p)));
  return total;
}

/** For each page, the models that use it. */
export function pageSharers(layout: PageLayout): Map<number, string[]> {
  const users = new Map<number, string[]>();
  for (const m of layout.models) {
    for (const p of new Set(m.pages)) {
      const list = users.get(p);
      if (list) list.push(m.name);
      else users.set(p, [m.name]);
    }
  }
  return users;
}

export async function simulate(
  layout: PageLayout,
  trace: readonly string[],
  policy: PolicyName | (() => EvictionPolicy),
  budgetBytes: number,
  opts: SimulationOptions = {},
): Promise<SimulationResult> {
  const size = sizeOfPage(layout);
  const byName = new Map(layout.models.map((m) => [m.name, [...new Set(m.pages)]]));
  for (const [name, pages] of byName) {
    const bytes = pages.reduce((s, p) => s + size(p), 0);
    if (bytes > budgetBytes) throw new InvalidArgumentError(`model "${name}" needs ${bytes} bytes, more than the simulated budget of ${budgetBytes}`);
  }
  const users = pageSharers(layout);
  let largest = 0;
  for (const p of users.keys()) largest = Math.max(largest, size(p));
  const backing = new Uint8Array(largest); // every fetch returns a view of it: no allocation per miss
  const pool = new BufferPool({
    budgetBytes,
    policy: typeof policy === 'string' ? createPolicy(policy) : policy(),
    fetch: async (id) => backing.subarray(0, size(id)),
    sizeOf: size,
    pageInfo: (id) => {
      const models = users.get(id) ?? [];
      return { sharers: models.length, models };
    },
  });
  const warmup = opts.warmupRequests ?? Math.floor(trace.length / 10);
  let touched = 0;
  let touchedBytes = 0;
  let start = pool.stats();
  const noop = () => undefined;
  for (let r = 0; r < trace.length; r++) {
    if (r === warmup) start = pool.stats();
    const pages = byName.get(trace[r]);
    if (!pages) throw new InvalidArgumentError(`trace names model "${trace[r]}", which the layout does not have`);
    await pool.withPages(pages, noop, { model: trace[r] });
    if (r >= warmup) {
      touched += pages.length;
      for (const p of pages) touchedBytes += size(p);
    }
  }
  const end = pool.stats();
  const hits = end.hits + end.joins - start.hits - start.joins;
  const fetched = end.bytesFetched - start.bytesFetched;
  return {
    policy: pool.policy.name,
    budgetBytes,
    hitRatio: touched ? hits / touched : 0,
    byteHitRatio: touchedBytes ? 1 - fetched / touchedBytes : 0,
    requests: trace.length - warmup,
    pageTouches: touched,
    evictions: end.evictions - start.evictions,
    peakResidentBytes: end.peakResidentBytes,
  };
}

/** Hit ratio of each policy at each budget fraction (of the layout's distinct bytes): { policy: { fraction: ratio } }. */
export async function hitRatioTable(
  layout: PageLayout,
  trace: readonly string[],
  policies: readonly PolicyName[],
  budgetFractions: readonly number[],
  opts: SimulationOptions & { byBytes?: boolean } = {},
): Promise<Record<string, Record<string, number>>> {
  const total = distinctBytes(layout);
  const table: Record<string, Record<string, number>> = {};
  for (const policy of policies) {
    table[policy] = {};
    for (const f of budgetFractions) {
      const r = await simulate(layout, trace, policy, Math.floor(total * f), opts);
      table[policy][String(f)] = opts.byBytes ? r.byteHitRatio : r.hitRatio;
    }
  }
  return table;
}
