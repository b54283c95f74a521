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
 * grew RSS by 1.45x the weight bytes beyond its fixed memory; a weight-less one by about its graph).
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
/**
 * A session owning its weights, per weight byte beyond its fixed memory and graph. Measured on
 * onnxruntime-node 1.30 with PP-OCRv4 rec (10.26 MiB of weights, batch-1 48x320 input, one
 * thread): 8 sessions made one after another from files held in memory, RSS after each one's
 * first run and a collection grew by 16.6-17.9 MiB (median 17.0) per session after the first, i.e.
 * 2 MiB fixed + 1.40-1.53x its weights. 1.55 covers the largest; the earlier 1.3 (from 1.15-1.3x
 * measured while freed buffers were being reused) under-counted each hot model by ~2 MiB.
 */
export const OWN_WEIGHTS_FACTOR = 1.55;
/** Requests a model must have seen before it is considered hot. */
export const HOT_AFTER_REQUESTS = 3;
/**
 * The same for a block-native model: its kernel run is already cheap (0.17 ms for the zoo's MLP
 * against onnxruntime-node's 0.09 ms, resident, bench serving), so a session build of a few ms and
 * a trial pay off only for a model that stays hot for many requests.
 */
export const KERNEL_HOT_AFTER_REQUESTS = 64;
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
