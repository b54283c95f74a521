/**
 * `tessera serve-bench <store>`: serves a Zipf request stream over every model in the store under
 * a memory budget and prints the server's metrics (hits, misses, bytes read, latency).
 */
import type { Command } from 'commander';
import { InferenceError } from '../../errors.ts';
import { Server } from '../../runtime/server.ts';
import { zipfTrace } from '../../pool/traces.ts';
import { mulberry32 } from '../../random.ts';
import { parseNumber, parsePositiveInt, parseSize } from '../args.ts';
import { formatBytes, print, printJson } from '../output.ts';
import { STORE_ARG, withStore } from '../store.ts';
import { runtimeOptions, withRuntimeFlags, type RuntimeFlags } from '../runtime-flags.ts';

export function register(program: Command): void {
  const command = program
    .command('serve-bench')
    .description('serve a Zipf request stream over the store\'s models under a memory budget; print hits, misses, bytes read and latency')
    .argument('<store>', STORE_ARG)
    .requiredOption('--budget <size>', 'memory budget for pages, sessions and scratch (e.g. 64MiB)', parseSize)
    .option('--requests <n>', 'requests to serve', parsePositiveInt, 500)
    .option('--skew <s>', 'Zipf skew (0 = uniform)', parseNumber, 1);
  withRuntimeFlags(command)
    .option('--seed <n>', 'trace seed', parseNumber, 1)
    .option('--json', 'print JSON')
    .action(async (path: string, o: { budget: number; requests: number; skew: number; seed: number; json?: boolean } & RuntimeFlags) => {
      await withStore(path, async (store) => {
        const server = await Server.create(store, { budgetBytes: o.budget, ...(await runtimeOptions(o)) });
        const models = store.listModels();
        const trace = zipfTrace({ models, skew: o.skew, requests: o.requests, seed: o.seed });
        const rand = mulberry32(o.seed);
        const t0 = performance.now();
        for (const name of trace) {
          const m = store.model(name);
          const feeds: Record<string, { data: Float32Array; dims: number[] }> = {};
          for (const i of m.inputs) {
            if (i.dtype !== 'float32') throw new InferenceError('INVALID_FEEDS', `serve-bench feeds random float32 inputs; model "${name}" input "${i.name}" is ${i.dtype}`);
            const dims = i.shape.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
            feeds[i.name] = { data: Float32Array.from({ length: dims.reduce((a, d) => a * d, 1) }, () => rand()), dims };
          }
          await server.run(name, feeds);
        }
        const seconds = (performance.now() - t0) / 1000;
        const m = server.metrics();
        await server.close();
        const summary = { requests: m.requests, throughput: m.requests / seconds, hits: m.hits, misses: m.misses, bytesRead: m.bytesRead, p50Ms: m.latency.p50Ms, p99Ms: m.latency.p99Ms, peakBytes: m.peakBytes, budgetBytes: m.budgetBytes, sessionBuilds: m.sessionBuilds, executors: m.executors, latency: m.latency };
        if (o.json) printJson(summary);
        else {
          print(
            `${m.requests} requests over ${models.length} models in ${seconds.toFixed(2)} s (${summary.throughput.toFixed(1)} req/s)\n` +
              `hits ${m.hits}, misses ${m.misses}, read ${formatBytes(m.bytesRead)}, session builds ${m.sessionBuilds}\n` +
              `latency p50 ${m.latency.p50Ms.toFixed(2)} ms, p99 ${m.latency.p99Ms.toFixed(2)} ms; peak ${formatBytes(m.peakBytes)} of ${formatBytes(m.budgetBytes)}`,
          );
        }
      }, { readOnly: true });
    });
}
