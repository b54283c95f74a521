/**
 * Measures a serving run's memory in a fresh process (test/server-rss.test.ts spawns it):
 *   node --expose-gc --import tsx test/server-rss-worker.ts '{"storeDir":..,"fileDir":..,"system":"tessera"|"sessions","budget":N,"requests":N}'
 * 'tessera':  the Server at `budget` bytes on the shared-weights executor (onnxruntime-node),
 *             requests cycling over every model so each one's weights are assembled again and again.
 * 'sessions': the no-budget baseline: one onnxruntime-node session per .onnx file, all kept.
 * Prints one JSON line: baseline RSS (runtime loaded, store open, gc'd); peak RSS growth over it,
 * sampled after every request and (raw) every 2 ms (with `collect`: after a collection, so memory
 * still held, dead buffers not counted); the ledger's peak.
 */
import { fileURLToPath } from 'node:url';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openStore } from '../src/node/open.ts';
import { loadOrt } from '../src/runtime/ort.ts';
import { Server } from '../src/runtime/server.ts';
import { mulberry32 } from '../src/random.ts';
import { zipfTrace } from '../src/pool/traces.ts';

interface Job {
  storeDir: string;
  fileDir: string;
  system: 'tessera' | 'sessions';
  budget: number;
  requests: number;
  dims: number[];
  /** 'cycle' (default): every request a different model than the last; 'zipf': skew 1.0, as the serving benchmark. */
  trace?: 'cycle' | 'zipf';
  /** Collect garbage before every sample: the samples then measure what the process still holds. */
  collect?: boolean;
}

/** One thread: the tests share two cores with everything else. */
const SESSION = { intraOpNumThreads: 1, interOpNumThreads: 1 };

async function main(job: Job) {
  const ort = await loadOrt('node');
  const store = await openStore(job.storeDir, { readOnly: true });
  const models = store.listModels().sort();
  const rand = mulberry32(3);
  const n = job.dims.reduce((a, d) => a * d, 1);
  const input = new ort.Tensor('float32', Float32Array.from({ length: n }, () => rand() * 2 - 1), job.dims);
  globalThis.gc?.();
  const baseline = process.memoryUsage().rss;
  let sampled = baseline;
  const sample = () => {
    if (job.collect) globalThis.gc!();
    sampled = Math.max(sampled, process.memoryUsage().rss);
  };
  // Raw: also sample every 2 ms, so peaks inside a run (onnxruntime runs off the JS thread) count.
  // Not maxRSS: Linux carries it over from the parent through fork and exec, and under `npm test`
  // the parent is far larger than this child.
  const timer = job.collect ? undefined : setInterval(sample, 2);
  let ledgerPeak = 0;
  let executors: string[] = [];
  if (job.system === 'tessera') {
    const server = await Server.create(store, { budgetBytes: job.budget, ort, sessionOptions: SESSION, executor: 'shared-weights', concurrency: 1 });
    const trace = job.trace === 'zipf' ? zipfTrace({ models, skew: 1.0, requests: job.requests, seed: 1 }) : Array.from({ length: job.requests }, (_, i) => models[i % models.length]);
    for (const model of trace) {
      await server.run(model, { x: input });
      sample();
    }
    const m = server.metrics();
    const problems = server.checkInvariants();
    if (problems.length) throw new Error(`server invariants broken: ${problems.join('; ')}`);
    ledgerPeak = m.peakBytes;
    executors = [...new Set(Object.values(m.executors).map((e) => e.kind))];
    await server.close();
  } else {
    const sessions = [];
    for (const m of models) {
      sessions.push(await ort.InferenceSession.create(new Uint8Array(await readFile(join(job.fileDir, `${m}.onnx`))), SESSION));
      sample();
    }
    for (let i = 0; i < job.requests; i++) {
      await sessions[i % sessions.length].run({ x: input });
      sample();
    }
    for (const s of sessions) await s.release();
  }
  clearInterval(timer);
  await store.close();
  const peak = sampled;
  process.stdout.write(JSON.stringify({ baseline, peakGrowth: peak - baseline, sampledGrowth: sampled - baseline, ledgerPeak, executors }) + '\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(JSON.parse(process.argv[2])).catch((e) => {
    process.stderr.write(`server rss worker failed: ${e?.stack ?? e}\n`);
    process.exit(3);
  });
}
