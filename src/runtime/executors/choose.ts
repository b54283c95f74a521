/**
 * Which executor serves a model, and why, from measured costs:
 * - a dense MLP chain runs block-native (bench serving: the MLP zoo >= 3x onnxruntime sessions);
 * - any other graph starts on shared weights: a weight-less session costs the graph only, so
 *   every model's session can stay built while its weights are pooled once;
 * - a hot model is given a session with its own weights when the memory left after every
 *   shared-weights model's working set covers the session's cost, and keeps it only if its
 *   measured runs are faster than its shared-weights runs.
 * The costs of sessions are estimates from the graph, checked against process RSS by the benchmark
 * and test/server-rss.test.ts (onnxruntime-node 1.30 on PP-OCRv4 rec: a session with its weights
 * grew RSS by ~1.35x the weight bytes; a weight-less one by about its graph).
 */
import type { ExecutorKind } from './executor.ts';

export interface ExecutorChoice {
  kind: ExecutorKind;
  reason: string;
}

/**
 * Fixed memory of an onnxruntime-node session (kernels, allocator and graph state): measured
 * 1.6-1.9 MiB of RSS per weight-less session of PP-OCR cls and rec once built (16 sessions;
 * 2-3.5 MiB after a first run, part of which is the run's working memory).
 */
export const SESSION_FIXED_BYTES = 2 << 20;
/** Per byte of the graph and the small tensors left in it (the model bytes parsed, and its copy). */
export const GRAPH_FACTOR = 2;
/** A session owning its weights: measured 1.15-1.3x the weight bytes of PP-OCR rec (8 sessions). */
export const OWN_WEIGHTS_FACTOR = 1.3;
/** Requests a model must have seen before it is considered hot. */
export const HOT_AFTER_REQUESTS = 3;
/** Own weights are kept only when at least this much faster per run (p50) than shared. */
export const OWN_MIN_SPEEDUP = 1.03;
/** Runs measured on own weights before that comparison. */
export const OWN_TRIAL_RUNS = 4;

/** Ledger bytes of a weight-less session: fixed state, its graph and the small tensors left inside it. */
export function sharedSessionBytes(graphBytes: number, inlineBytes: number, fixed = SESSION_FIXED_BYTES): number {
  return fixed + GRAPH_FACTOR * (graphBytes + inlineBytes);
}

export function ownSessionBytes(graphBytes: number, weightBytes: number, fixed = SESSION_FIXED_BYTES): number {
  return fixed + GRAPH_FACTOR * graphBytes + Math.ceil(OWN_WEIGHTS_FACTOR * weightBytes);
}

export function median(xs: readonly number[]): number {
  if (!xs.length) return Infinity;
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}
