/**
 * Buffer-pool hit ratio per eviction policy × budget (fraction of the family's distinct page
 * bytes), on synthetic request streams over (a) a fine-tune family whose models share a backbone
 * and group pages and (b) the same models with nothing shared. LRU is the baseline: every row is
 * also reported as points above or below LRU from the same run. Goals (issues 5 and 10): dedup-aware
 * ≥ the best of LRU/LFU/ARC/SIEVE/S3-FIFO with sharing, and never more than 1 point below LRU without.
 *
 * 'dedup' is the default policy (the dedup-aware order following the best of its shadow caches,
 * src/pool/policies/dedup-follow.ts); 'dedup-order' is that order alone, reported beside it.
 *
 * Three parts: the primary traces (every policy, 11 budgets, plus the dedup-aware order held at
 * fixed half-lives, to show why it chooses its memory online, and how often 'dedup' changed the
 * shadow it follows); held-out traces the policy was not designed on (other seeds, Zipf exponents,
 * phase counts and family shapes; anchors, dedup-order and dedup, 6 budgets); and policy cost in
 * page accesses per second against SIEVE.
 *
 *   npm run bench -- pool [--quick] [--json]
 */
import type { BenchOptions } from './run.ts';
import {
  createPolicy, DedupAwarePolicy, DedupFollowPolicy, distinctBytes, fineTuneFamily, hitRatioTable, pageSharers, POLICY_NAMES, simulate, zipfTrace,
  type EvictionPolicy, type FamilyOptions, type PageLayout,
} from '../src/pool/index.ts';

const ANCHORS = ['lru', 'lfu', 'arc', 'sieve', 's3fifo'] as const;
/** Fixed half-lives shown beside the adaptive policy: the old default (50) and a long one. */
const FIXED_HALF_LIVES = [50, 1024];

interface TraceKind { name: string; skew: number; phases: number; seed: number }
interface HeldOut { family: string; shape: FamilyOptions; trace: TraceKind }

const PRIMARY_FAMILY: FamilyOptions = { models: 50, pagesPerModel: 40, sharedFraction: 0.6, groupFraction: 0.2, groups: 5, pageBytes: 64 * 1024 };
const SHAPES: Record<string, FamilyOptions> = {
  'F0 (50x40, 60% backbone, 5 groups of 10)': PRIMARY_FAMILY,
  'F1 (50x40, 40% backbone, 30% in 10 groups of 5)': { ...PRIMARY_FAMILY, sharedFraction: 0.4, groupFraction: 0.3, groups: 10 },
  'F2 (100x20, 50% backbone, 25% in 4 groups of 25)': { ...PRIMARY_FAMILY, models: 100, pagesPerModel: 20, sharedFraction: 0.5, groupFraction: 0.25, groups: 4 },
  'F3 (30x60, 20% backbone, 50% in 10 groups of 3)': { ...PRIMARY_FAMILY, models: 30, pagesPerModel: 60, sharedFraction: 0.2, groupFraction: 0.5, groups: 10 },
};
const [F0, F1, F2, F3] = Object.keys(SHAPES);
const trace = (skew: number, phases: number, seed: number): TraceKind => ({
  name: `${phases > 1 ? `shifting-${skew.toFixed(1)}x${phases}` : `zipf-${skew.toFixed(1)}`}/seed${seed}`, skew, phases, seed,
});
const HELD_OUT: HeldOut[] = [
  ...[trace(1.0, 1, 2), trace(0.6, 1, 2), trace(1.0, 8, 2), trace(0.8, 1, 1), trace(1.2, 1, 1), trace(0.8, 4, 1)].map((t) => ({ family: F0, shape: SHAPES[F0], trace: t })),
  ...[F1, F2, F3].flatMap((f) => [trace(1.0, 1, 1), trace(0.8, 4, 1)].map((t) => ({ family: f, shape: SHAPES[f], trace: t }))),
];

export async function run(opts: BenchOptions): Promise<object> {
  const fractions = opts.quick ? [0.1, 0.25, 0.5, 0.9] : [0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];
  const heldOutFractions = opts.quick ? [0.1, 0.4, 0.8] : [0.1, 0.25, 0.4, 0.6, 0.8, 0.9];
  const requests = opts.quick ? 1500 : 4000;
  const primaryKinds = opts.quick
    ? [trace(1.0, 1, 1), trace(1.0, 8, 1)]
    : [trace(1.0, 1, 1), trace(0.6, 1, 1), trace(1.0, 8, 1)];
  const heldOut = opts.quick ? HELD_OUT.filter((_, i) => i % 4 === 0) : HELD_OUT;

  const traces: Record<string, object> = {};
  const goals: Record<string, object> = {};
  const fixedHalfLife: Record<string, Record<string, { hitRatio: Record<string, number>; marginPoints: number[] }>> = {};
  let primary: Record<string, Record<string, number>> = {};
  for (const sharing of [true, false]) {
    const layout = fineTuneFamily({ ...PRIMARY_FAMILY, sharing });
    const family = sharing ? 'shared' : 'unshared';
    for (const kind of primaryKinds) {
      const key = `${family}/${kind.name.replace('/seed1', '')}`;
      const started = performance.now();
      const requestsOf = zipfTrace({ models: layout.models.map((m) => m.name), skew: kind.skew, requests, seed: kind.seed, phases: kind.phases });
      const hitRatio = await hitRatioTable(layout, requestsOf, POLICY_NAMES.filter((p) => p !== 'dedup'), fractions);
      // The default policy, run here to read how often it changed the shadow it follows.
      hitRatio.dedup = {};
      const changes: Record<string, { leaderChanges: number; leaderAtEnd: string }> = {};
      for (const f of fractions) {
        const policy = new DedupFollowPolicy();
        hitRatio.dedup[String(f)] = (await simulate(layout, requestsOf, () => policy, Math.floor(distinctBytes(layout) * f))).hitRatio;
        changes[String(f)] = { leaderChanges: policy.leaderChanges, leaderAtEnd: policy.leader };
      }
      const fixed: Record<string, Record<string, number>> = {};
      for (const h of FIXED_HALF_LIVES) {
        const row: Record<string, number> = {};
        for (const f of fractions) {
          const r = await simulate(layout, requestsOf, () => new DedupAwarePolicy({ halfLifeRequests: h }), Math.floor(distinctBytes(layout) * f));
          row[String(f)] = r.hitRatio;
        }
        fixed[`dedup-h${h}`] = row;
      }
      fixedHalfLife[key] = Object.fromEntries(Object.entries(fixed).map(([name, row]) => {
        const withAnchors = { ...Object.fromEntries(ANCHORS.map((a) => [a, hitRatio[a]])), lru: hitRatio.lru, dedup: row };
        return [name, { hitRatio: roundTable({ row }).row, marginPoints: goalOf(sharing, withAnchors, fractions).marginPoints }];
      }));
      const winner: Record<string, string[]> = {};
      const vsLru: Record<string, Record<string, number>> = {};
      for (const f of fractions.map(String)) {
        const best = Math.max(...POLICY_NAMES.map((p) => hitRatio[p][f]));
        winner[f] = POLICY_NAMES.filter((p) => hitRatio[p][f] >= best - 1e-9); // ties list every winner
        for (const p of POLICY_NAMES) (vsLru[p] ??= {})[f] = round(100 * (hitRatio[p][f] - hitRatio.lru[f]));
      }
      goals[key] = { ...goalOf(sharing, hitRatio, fractions), orderMarginPoints: goalOf(sharing, { ...hitRatio, dedup: hitRatio['dedup-order'] }, fractions).marginPoints };
      traces[key] = { hitRatio: roundTable(hitRatio), pointsVsLru: vsLru, winner, following: changes };
      if (key === 'shared/zipf-1.0') primary = roundTable(hitRatio);
      console.log(`\n${key}  (${requests} requests, ${((performance.now() - started) / 1000).toFixed(1)} s)`);
      printTable({ ...hitRatio, ...fixed }, fractions);
      console.log(`winner: ${fractions.map((f) => `${Math.round(f * 100)}%:${winner[String(f)].length === POLICY_NAMES.length ? 'all' : winner[String(f)].join('+')}`).join(' ')}`);
      console.log(`goal: ${JSON.stringify(goals[key])}`);
      console.log(`leader changes: ${fractions.map((f) => `${Math.round(f * 100)}%:${changes[String(f)].leaderChanges}(${changes[String(f)].leaderAtEnd})`).join(' ')}`);
    }
  }

  const heldOutResults: Record<string, object> = {};
  console.log('\nheld-out traces (anchors, dedup-order and dedup; unshared: LRU, dedup-order and dedup)');
  for (const h of heldOut) {
    for (const sharing of [true, false]) {
      const layout = fineTuneFamily({ ...h.shape, sharing });
      const key = `${sharing ? 'shared' : 'unshared'}/${h.family.split(' ')[0]}/${h.trace.name}`;
      const requestsOf = zipfTrace({ models: layout.models.map((m) => m.name), skew: h.trace.skew, requests, seed: h.trace.seed, phases: h.trace.phases });
      const policies = sharing ? [...ANCHORS, 'dedup-order' as const, 'dedup' as const] : (['lru', 'dedup-order', 'dedup'] as const);
      const hitRatio = await hitRatioTable(layout, requestsOf, policies, heldOutFractions);
      const goal = goalOf(sharing, hitRatio, heldOutFractions);
      const orderMarginPoints = goalOf(sharing, { ...hitRatio, dedup: hitRatio['dedup-order'] }, heldOutFractions).marginPoints;
      heldOutResults[key] = { family: h.family, hitRatio: roundTable(hitRatio), ...goal, orderMarginPoints };
      console.log(`${key.padEnd(34)} margins ${(goal.marginPoints as number[]).map(fmt).join(' ')}  ${goal.met ? 'met' : 'MISSED'}  (order alone ${orderMarginPoints.map(fmt).join(' ')})`);
    }
  }

  const cost = policyCost(opts.quick);
  console.log(`\npolicy cost (page accesses/s, shared F0 zipf-1.0 at 25%): ${Object.entries(cost.accessesPerSecond).map(([p, v]) => `${p} ${Math.round(v)}`).join(', ')}; dedup/sieve ${cost.dedupVsSieve}, dedup-order/sieve ${cost.dedupOrderVsSieve}`);

  return {
    /** shared/zipf-1.0, the headline table: { policy: { budgetFraction: hit ratio } }. */
    hitRatio: primary,
    traces,
    goals,
    fixedHalfLife,
    heldOut: { fractions: heldOutFractions, traces: heldOutResults },
    cost,
    baseline: 'lru',
    setup: {
      family: PRIMARY_FAMILY,
      shapes: SHAPES,
      requests,
      warmup: '10% of requests not counted',
      budget: 'fraction of the family\'s distinct page bytes',
      request: 'pins all of a model\'s pages, then releases them',
      hitRatio: 'page hits / page touches (pages are equal-sized, so it equals the byte hit ratio)',
      margins: 'points; shared: dedup minus the best of lru/lfu/arc/sieve/s3fifo (goal >= 0); unshared: dedup minus lru (goal >= -1); orderMarginPoints: the same for dedup-order, the dedup-aware order without its shadows',
    },
  };
}

function goalOf(sharing: boolean, hitRatio: Record<string, Record<string, number>>, fractions: readonly number[]) {
  const margin = fractions.map(String).map((f) =>
    sharing ? hitRatio.dedup[f] - Math.max(...ANCHORS.filter((a) => hitRatio[a]).map((a) => hitRatio[a][f])) : hitRatio.dedup[f] - hitRatio.lru[f],
  );
  const marginPoints = margin.map((m) => round(100 * m));
  const worst = Math.min(...marginPoints);
  return sharing
    ? { goal: 'dedup >= best of lru/lfu/arc/sieve/s3fifo', marginPoints, worstMarginPoints: worst, met: worst >= 0 }
    : { goal: 'dedup >= lru - 1 point', marginPoints, worstMarginPoints: worst, met: worst >= -1 };
}

/**
 * Policy bookkeeping alone (no pool, no fetch): the simulator's call sequence replayed straight on
 * the policy, so the figure is the policy's own cost per page access. Counted in CPU time of this
 * process (the machine is shared: wall time swung 4x between runs), median of 5.
 */
function policyCost(quick: boolean) {
  const layout = fineTuneFamily(PRIMARY_FAMILY);
  const requests = zipfTrace({ models: layout.models.map((m) => m.name), skew: 1, requests: quick ? 1500 : 4000, seed: 1 });
  const budget = Math.floor(distinctBytes(layout) * 0.25);
  const accessesPerSecond: Record<string, number> = {};
  for (const name of ['lru', 'sieve', 's3fifo', 'arc', 'dedup-order', 'dedup']) {
    const times: number[] = [];
    let accesses = 0;
    for (let rep = 0; rep < 5; rep++) {
      const before = process.cpuUsage();
      accesses = replayOnPolicy(layout, requests, createPolicy(name), budget);
      const used = process.cpuUsage(before);
      times.push((used.user + used.system) / 1000);
    }
    const median = times.sort((a, b) => a - b)[2];
    accessesPerSecond[name] = accesses / (median / 1000);
  }
  return {
    accessesPerSecond,
    dedupVsSieve: round(accessesPerSecond.dedup / accessesPerSecond.sieve),
    dedupOrderVsSieve: round(accessesPerSecond['dedup-order'] / accessesPerSecond.sieve),
    setup: 'shared F0, zipf-1.0, 25% budget, CPU time, median of 5',
  };
}

/** The call order BufferPool.withPages makes, without the pool: returns page accesses made. */
function replayOnPolicy(layout: PageLayout, requests: readonly string[], policy: EvictionPolicy, budget: number): number {
  const pagesOf = new Map(layout.models.map((m) => [m.name, [...new Set(m.pages)]]));
  const users = pageSharers(layout);
  const bytes = layout.pageBytes as number;
  const resident = new Set<number>();
  const pinned = new Set<number>();
  const evictable = (id: number) => resident.has(id) && !pinned.has(id);
  policy.setCapacity?.(budget);
  let accesses = 0;
  for (const model of requests) {
    policy.onRequest?.(model);
    const missed: number[] = [];
    for (const id of pagesOf.get(model)!) {
      const models = users.get(id)!;
      accesses++;
      pinned.add(id);
      if (resident.has(id)) {
        policy.onHit({ id, bytes, sharers: models.length, models, model });
        continue;
      }
      policy.onMiss?.({ id, bytes, sharers: models.length, models, model });
      while ((resident.size + missed.length + 1) * bytes > budget) {
        const v = policy.victim(evictable, id)!;
        resident.delete(v);
        policy.onRemove(v, true);
      }
      missed.push(id);
    }
    for (const id of missed) {
      resident.add(id);
      const models = users.get(id)!;
      policy.onInsert({ id, bytes, sharers: models.length, models, model });
    }
    pinned.clear();
  }
  return accesses;
}

function printTable(t: Record<string, Record<string, number>>, fractions: readonly number[]): void {
  console.log(['policy', ...fractions.map((f) => `${Math.round(f * 100)}%`)].map((c, i) => (i ? c.padStart(7) : c.padEnd(12))).join(''));
  for (const [p, row] of Object.entries(t)) console.log([p, ...fractions.map((f) => row[String(f)].toFixed(3))].map((c, i) => (i ? c.padStart(7) : c.padEnd(12))).join(''));
}

const fmt = (m: number) => (m >= 0 ? '+' : '') + m.toFixed(2);
const round = (x: number) => Math.round(x * 1000) / 1000;
function roundTable(t: Record<string, Record<string, number>>): Record<string, Record<string, number>> {
  return Object.fromEntries(Object.entries(t).map(([p, row]) => [p, Object.fromEntries(Object.entries(row).map(([f, v]) => [f, round(v)]))]));
}
