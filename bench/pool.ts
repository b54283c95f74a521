/**
 * Buffer-pool hit ratio per eviction policy × budget (fraction of the family's distinct page
 * bytes), on synthetic request streams over (a) a fine-tune family whose models share a backbone
 * and group pages and (b) the same models with nothing shared. LRU is the baseline: every row is
 * also reported as points above or below LRU from the same run. Goals (issues 5 and 10): dedup-aware
 * ≥ the best of LRU/LFU/ARC/SIEVE/S3-FIFO with sharing, and never more than 1 point below LRU without.
 *
 *   npm run bench -- pool [--quick] [--json]
 */
import type { BenchOptions } from './run.ts';
import { fineTuneFamily, hitRatioTable, POLICY_NAMES, zipfTrace, type PageLayout } from '../src/pool/index.ts';

const ANCHORS = ['lru', 'lfu', 'arc', 'sieve', 's3fifo'] as const;

export async function run(opts: BenchOptions): Promise<object> {
  const fractions = opts.quick ? [0.1, 0.25, 0.5, 1] : [0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];
  const requests = opts.quick ? 1500 : 4000;
  const seed = 1;
  const familyOptions = { models: 50, pagesPerModel: 40, sharedFraction: 0.6, groupFraction: 0.2, groups: 5, pageBytes: 64 * 1024 };
  const families: Record<string, PageLayout> = {
    shared: fineTuneFamily(familyOptions),
    unshared: fineTuneFamily({ ...familyOptions, sharing: false }),
  };
  const traceKinds = opts.quick
    ? [{ name: 'zipf-1.0', skew: 1.0, phases: 1 }, { name: 'shifting-1.0x8', skew: 1.0, phases: 8 }]
    : [{ name: 'zipf-1.0', skew: 1.0, phases: 1 }, { name: 'zipf-0.6', skew: 0.6, phases: 1 }, { name: 'shifting-1.0x8', skew: 1.0, phases: 8 }];

  const traces: Record<string, object> = {};
  const goals: Record<string, object> = {};
  let primary: Record<string, Record<string, number>> = {};
  for (const [family, layout] of Object.entries(families)) {
    const names = layout.models.map((m) => m.name);
    for (const kind of traceKinds) {
      const key = `${family}/${kind.name}`;
      const started = performance.now();
      const trace = zipfTrace({ models: names, skew: kind.skew, requests, seed, phases: kind.phases });
      const hitRatio = await hitRatioTable(layout, trace, POLICY_NAMES, fractions);
      const winner: Record<string, string[]> = {};
      const vsLru: Record<string, Record<string, number>> = {};
      for (const f of fractions.map(String)) {
        const best = Math.max(...POLICY_NAMES.map((p) => hitRatio[p][f]));
        winner[f] = POLICY_NAMES.filter((p) => hitRatio[p][f] >= best - 1e-9); // ties list every winner
        for (const p of POLICY_NAMES) (vsLru[p] ??= {})[f] = round(100 * (hitRatio[p][f] - hitRatio.lru[f]));
      }
      // Goal margins in points: with sharing vs the best anchor, without sharing vs LRU.
      const margin = fractions.map(String).map((f) =>
        family === 'shared' ? hitRatio.dedup[f] - Math.max(...ANCHORS.map((a) => hitRatio[a][f])) : hitRatio.dedup[f] - hitRatio.lru[f],
      );
      const worst = round(100 * Math.min(...margin));
      goals[key] = family === 'shared'
        ? { goal: 'dedup >= best of lru/lfu/arc/sieve/s3fifo', worstMarginPoints: worst, met: worst >= 0 }
        : { goal: 'dedup >= lru - 1 point', worstMarginPoints: worst, met: worst >= -1 };
      traces[key] = { hitRatio: roundTable(hitRatio), pointsVsLru: vsLru, winner };
      if (key === 'shared/zipf-1.0') primary = roundTable(hitRatio);
      console.log(`\n${key}  (${requests} requests, ${((performance.now() - started) / 1000).toFixed(1)} s)`);
      console.log(['policy', ...fractions.map((f) => `${Math.round(f * 100)}%`)].map((c) => c.padStart(7)).join(''));
      for (const p of POLICY_NAMES) console.log([p, ...fractions.map((f) => hitRatio[p][String(f)].toFixed(3))].map((c) => c.padStart(7)).join(''));
      console.log(`winner: ${fractions.map((f) => `${Math.round(f * 100)}%:${winner[String(f)].length === POLICY_NAMES.length ? 'all' : winner[String(f)].join('+')}`).join(' ')}  goal: ${JSON.stringify(goals[key])}`);
    }
  }
  return {
    /** shared/zipf-1.0, the headline table: { policy: { budgetFraction: hit ratio } }. */
    hitRatio: primary,
    traces,
    goals,
    baseline: 'lru',
    setup: {
      family: familyOptions,
      requests,
      seed,
      warmup: '10% of requests not counted',
      budget: 'fraction of the family\'s distinct page bytes',
      request: 'pins all of a model\'s pages, then releases them',
      hitRatio: 'page hits / page touches (pages are equal-sized, so it equals the byte hit ratio)',
    },
  };
}

const round = (x: number) => Math.round(x * 1000) / 1000;
function roundTable(t: Record<string, Record<string, number>>): Record<string, Record<string, number>> {
  return Object.fromEntries(Object.entries(t).map(([p, row]) => [p, Object.fromEntries(Object.entries(row).map(([f, v]) => [f, round(v)]))]));
}
