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
 * Fixed memory of an onnxruntime-node session holding its own weights (kernels, allocator and
 * graph state), measured with PP-OCR (1.6-1.9 MiB of RSS per session once built, 16 sessions;
 * 2-3.5 MiB after a first run). Weight-less sessions are estimated from their graph instead
 * (sharedSessionBytes).
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
export const OWN_TRIAL_RUNS = 6;
/** Runs on a new own-weights session before its trial measures (its warm-up). */
export const OWN_TRIAL_WARMUP_RUNS = 2;

/**
 * A weight-less session's own memory, from its graph: a base, a share per node (kernels and their
 * state) and its run's working memory, which grows with the input (activations). Measured with
 * onnxruntime-node 1.30, one thread, each session built and run once at batch 1, mean RSS growth
 * over 32 sessions (`node --expose-gc --import tsx bench/lib/session-cost.ts 32`, 2026-12-01
 * 15:19 UTC, locked run): the zoo's MLP 8 nodes, 784 inputs, 0.11 MiB; CNN 16 nodes, 0.06 MiB; ViT
 * 245 nodes, 0.68 MiB; PP-OCR cls 288 nodes, 3x48x192 input, 0.52 MiB; PP-OCRv4 rec 643 nodes,
 * 3x48x320 input, 4.35 MiB. The constants below put the static-input ones at or above their
 * measurement (0.12, 0.14, 0.79 MiB with the graph's own bytes); the fixed 2 MiB used before was
 * PP-OCR's and three to thirty times what a zoo MLP, CNN or ViT session holds, so at a 40% budget
 * their sessions were evicted for memory they never used (bench serving --part=zoo: 413
 * weight-less session builds in 800 requests at 40%; 11 for the CNN and 51 for the ViT with this
 * and the value-ordered eviction of server.ts). A
 * graph whose input size is not fixed (PP-OCR's width) has an unknown run size: it keeps at
 * least the fixed SESSION_FIXED_BYTES (rec measured 4.35 MiB after a 48x320 run, so its estimate,
 * 2.11 MiB, is still low by ~2.2 MiB).
 */
export const SESSION_BASE_BYTES = 64 << 10;
export const SESSION_BYTES_PER_NODE = 2560;
/** Working memory per byte of batch-1 float input. */
export const SESSION_ACTIVATION_FACTOR = 12;

export interface GraphSize {
  /** Bytes of the weight-less graph and of the small tensors left inside it. */
  graphBytes: number;
  inlineBytes: number;
  nodes: number;
  /** Elements of its own inputs at batch 1. */
  inputElements: number;
  /** An input dimension past the batch is symbolic. */
  dynamicInputs: boolean;
}

/**
 * Ledger bytes of a weight-less session: its memory estimated from the graph (above), or `fixed`
 * when the server was given one (sessionOverheadBytes), plus its graph and the small tensors left
 * inside it, held twice while parsed.
 */
export function sharedSessionBytes(g: GraphSize, fixed?: number): number {
  const estimate = SESSION_BASE_BYTES + SESSION_BYTES_PER_NODE * g.nodes + SESSION_ACTIVATION_FACTOR * 4 * g.inputElements;
  const own = fixed ?? (g.dynamicInputs ? Math.max(SESSION_FIXED_BYTES, estimate) : estimate);
  return own + GRAPH_FACTOR * (g.graphBytes + g.inlineBytes);
}

export function ownSessionBytes(graphBytes: number, weightBytes: number, fixed = SESSION_FIXED_BYTES): number {
  return fixed + GRAPH_FACTOR * graphBytes + Math.ceil(OWN_WEIGHTS_FACTOR * weightBytes);
}

export function median(xs: readonly number[]): number {
  if (!xs.length) return Infinity;
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}
