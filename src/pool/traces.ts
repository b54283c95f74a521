/**
 * Seeded synthetic workloads for the simulator: page layouts of model families and request streams
 * over them. Deterministic for a given seed, so tests and benchmarks replay exactly.
 */
import { InvalidArgumentError } from '../errors.ts';
import type { PageLayout } from './simulate.ts';
import { mulberry32 } from '../random.ts';

/** Seeded uniform floats in [0, 1) (the project's one PRNG). */
export const seededRandom = mulberry32;


function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Cumulative Zipf weights 1/rank^skew, normalised to end at 1. */
function zipfCdf(n: number, skew: number): Float64Array {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / Math.pow(i + 1, skew);
  for (let i = 0; i < n; i++) cdf[i] /= sum;
  return cdf;
}

function drawRank(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid] > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export interface ZipfTraceOptions {
  models: readonly string[];
  /** Zipf exponent s: 0 is uniform, larger is more skewed. */
  skew: number;
  requests: number;
  seed: number;
  /** Popularity changes this many times: each phase ranks the models in a new random order (default 1). */
  phases?: number;
}

/** A stream of model names drawn from Zipf(s), with popularity reshuffled at each phase. */
export function zipfTrace(opts: ZipfTraceOptions): string[] {
  const { models, skew, requests, seed } = opts;
  const phases = opts.phases ?? 1;
  if (models.length === 0) throw new InvalidArgumentError('a trace needs at least one model');
  if (!(skew >= 0)) throw new InvalidArgumentError(`Zipf skew must be ≥ 0, got ${skew}`);
  if (!Number.isInteger(phases) || phases < 1) throw new InvalidArgumentError(`phases must be a positive integer, got ${phases}`);
  const rand = seededRandom(seed);
  const cdf = zipfCdf(models.length, skew);
  const out: string[] = [];
  let ranking = shuffled(models, rand);
  for (let r = 0; r < requests; r++) {
    if (r > 0 && Math.floor((r * phases) / requests) !== Math.floor(((r - 1) * phases) / requests)) ranking = shuffled(models, rand);
    out.push(ranking[drawRank(cdf, rand())]);
  }
  return out;
}

export interface FamilyOptions {
  /** Number of models (default 50). */
  models?: number;
  /** Pages per model (default 40). */
  pagesPerModel?: number;
  /** Fraction of each model's pages shared by all models: the frozen backbone (default 0.6). */
  sharedFraction?: number;
  /** Fraction of each model's pages shared within its group: a shared adapter or task head (default 0.2). */
  groupFraction?: number;
  /** Number of groups (default 5). */
  groups?: number;
  pageBytes?: number;
  /** false: the same models with every page private (the no-sharing control). */
  sharing?: boolean;
}

/**
 * A fine-tune family: every model = backbone pages (shared by all) + group pages (shared by the
 * models of its group) + its own pages. With `sharing: false` every model owns all its pages.
 */
export function fineTuneFamily(opts: FamilyOptions = {}): PageLayout {
  const n = opts.models ?? 50;
  const perModel = opts.pagesPerModel ?? 40;
  const groups = opts.groups ?? 5;
  const sharing = opts.sharing ?? true;
  const backbone = sharing ? Math.round(perModel * (opts.sharedFraction ?? 0.6)) : 0;
  const grouped = sharing ? Math.round(perModel * (opts.groupFraction ?? 0.2)) : 0;
  const own = perModel - backbone - grouped;
  if (own < 0) throw new InvalidArgumentError('sharedFraction + groupFraction must not exceed 1');
  let next = 0;
  const range = (k: number) => Array.from({ length: k }, () => next++);
  const backbonePages = range(backbone);
  const groupPages = Array.from({ length: groups }, () => range(grouped));
  const models = Array.from({ length: n }, (_, i) => ({
    name: `ft-${String(i).padStart(3, '0')}`,
    pages: [...backbonePages, ...groupPages[i % groups], ...range(own)],
  }));
  return { models, pageBytes: opts.pageBytes ?? 64 * 1024 };
}
