/**
 * Many-model serving under a memory budget: tessera's Server (block-native kernels over pooled
 * pages; onnxruntime sessions built from pooled pages; weights fed per run) against the baseline
 * (each model's .onnx file as its own onnxruntime-web session, LRU by bytes, as Triton / SageMaker
 * multi-model endpoints do), on the same request streams and budgets, measured in the same run.
 *
 *   npm run bench -- serving [--quick] [--json]
 *
 * Families: the MNIST zoo (13 models, bench/zoo/models) and a generated fine-tune family (50
 * models; full run ≥ 1 GB logical): one backbone layer shared by all, a middle layer per group of
 * 10, and per model a fine-tuned quarter of the middle layer plus its own head.
 * Per policy: buffer-pool hit ratio (src/pool/simulate over the store's real page layout).
 * Per system: throughput, p50/p99, bytes read from the store, peak RSS; each system x budget runs
 * in a fresh child process so its peak RSS is its own.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchOptions } from './run.ts';
import { buildZoo } from './zoo/build.ts';
import { exportMlpOnnx, readMlpOnnx } from './zoo/onnx-export.ts';
import type { Layer } from './zoo/train.ts';
import { openStore } from '../src/node/open.ts';
import type { TesseraStore } from '../src/store/store.ts';
import { hitRatioTable, POLICY_NAMES, zipfTrace, type PageLayout } from '../src/pool/index.ts';
import { mulberry32 } from '../src/random.ts';

const PAGE_SIZE = 256 * 1024;
const SEED = 1;

interface Family {
  name: string;
  storeDir: string;
  fileDir: string;
  models: string[];
  /** Sum of the models' .onnx file sizes: what a budget fraction is a fraction of. */
  totalBytes: number;
  storedBytes: number;
}

interface ChildConfig {
  system: 'tessera-kernel' | 'tessera-session' | 'tessera-feeds' | 'baseline';
  family: string;
  storeDir: string;
  fileDir: string;
  models: string[];
  budgetBytes: number;
  budgetFraction: number;
  trace: { skew: number; phases: number; requests: number; warmup: number };
  policy: string;
}

/** The store's real page layout as the simulator wants it: each model's pages (delta bases included). */
export function layoutOf(store: TesseraStore): PageLayout {
  const cat = store.catalog;
  const models = store.listModels().map((name) => {
    const pages = new Set<number>();
    const walk = (id: number): void => {
      const b = cat.blocks.get(id)!;
      pages.add(b.page);
      if (b.base !== undefined) walk(b.base);
    };
    for (const t of store.model(name).tensors) for (const id of t.blocks) walk(id);
    return { name, pages: [...pages] };
  });
  // The server gives every page a full frame, so the simulator counts pages at the page size too.
  return { models, pageBytes: store.config.pageSize };
}

async function ingest(name: string, storeDir: string, fileDir: string, files: { name: string; bytes?: Uint8Array; path?: string }[]): Promise<Family> {
  await rm(storeDir, { recursive: true, force: true });
  const store = await openStore(storeDir, { create: true, pageSize: PAGE_SIZE });
  let totalBytes = 0;
  for (const f of files) {
    const bytes = f.bytes ?? new Uint8Array(await readFile(f.path!));
    totalBytes += bytes.length;
    await store.add(f.name, bytes);
  }
  const storedBytes = store.stats().storedBytes;
  await store.close();
  return { name, storeDir, fileDir, models: files.map((f) => f.name), totalBytes, storedBytes };
}

/** A fine-tune family derived from the zoo's base model, widened to `hidden`; written as .onnx files. */
async function generateFamily(dir: string, base: Layer[], count: number, hidden: [number, number]): Promise<{ name: string; path: string }[]> {
  await mkdir(dir, { recursive: true });
  const rand = mulberry32(SEED + 100);
  const widen = (src: Float32Array, rows: number, cols: number, inR: number, inC: number) => {
    const out = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = src[(r % inR) * inC + (c % inC)] * (1 + 0.01 * (((r / inR) | 0) + ((c / inC) | 0)));
    return out;
  };
  const [h1, h2] = hidden;
  const fc1: Layer = { name: 'fc1', inDim: 784, outDim: h1, weight: widen(base[0].weight, 784, h1, base[0].inDim, base[0].outDim), bias: widen(base[0].bias, 1, h1, 1, base[0].outDim) };
  const groups = Array.from({ length: 5 }, (_, g) => {
    const w = widen(base[1].weight, h1, h2, base[1].inDim, base[1].outDim);
    for (let i = 0; i < w.length; i++) w[i] += (rand() - 0.5) * 1e-3 * (g + 1);
    return { w, b: widen(base[1].bias, 1, h2, 1, base[1].outDim) };
  });
  const files: { name: string; path: string }[] = [];
  for (let i = 0; i < count; i++) {
    const g = groups[i % groups.length];
    const w2 = g.w.slice();
    // Fine-tuned slice: a quarter of the middle layer's rows change per model.
    const rows = h1 / 4;
    const row0 = (i * 64) % (h1 - rows);
    for (let r = row0; r < row0 + rows; r++) for (let c = 0; c < h2; c++) w2[r * h2 + c] += (rand() - 0.5) * 1e-3;
    const head = new Float32Array(h2 * 10);
    for (let j = 0; j < head.length; j++) head[j] = base[2].weight[j % base[2].weight.length] + (rand() - 0.5) * 1e-2;
    const layers: Layer[] = [fc1, { name: 'fc2', inDim: h1, outDim: h2, weight: w2, bias: g.b }, { name: 'fc3', inDim: h2, outDim: 10, weight: head, bias: base[2].bias.slice(0, 10) }];
    const name = `ft-${String(i).padStart(3, '0')}`;
    const path = join(dir, `${name}.onnx`);
    await writeFile(path, exportMlpOnnx({ layers }, { graphName: name }));
    files.push({ name, path });
  }
  return files;
}

function runChild(cfg: ChildConfig): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serving-child', JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
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
    const zooDir = join(import.meta.dirname, 'zoo', 'models');
    const manifest = await buildZoo({ size: 'standard', dir: zooDir, onProgress: (m) => console.error(m) });
    const t0 = performance.now();
    const zoo = await ingest('zoo', join(work, 'zoo-store'), zooDir, manifest.models.map((m) => ({ name: m.name, path: join(zooDir, m.file) })));
    const base = readMlpOnnx(new Uint8Array(await readFile(join(zooDir, 'base-digit.onnx')))).layers;
    const famFiles = await generateFamily(join(work, 'family-files'), base, 50, quick ? [1024, 256] : [4096, 1024]);
    const family = await ingest('family', join(work, 'family-store'), join(work, 'family-files'), famFiles);
    console.log(`stores built in ${((performance.now() - t0) / 1000).toFixed(1)} s: zoo ${mb(zoo.totalBytes)} logical / ${mb(zoo.storedBytes)} stored; family ${mb(family.totalBytes)} / ${mb(family.storedBytes)}`);

    // ---- hit ratio per policy over each store's real page layout ----
    const fractions = quick ? [0.1, 0.25, 0.5, 1] : [0.1, 0.25, 0.5, 0.75, 1];
    const traceKinds = quick
      ? [{ name: 'zipf-1.0', skew: 1.0, phases: 1 }, { name: 'shifting-1.0x4', skew: 1.0, phases: 4 }]
      : [{ name: 'zipf-0.6', skew: 0.6, phases: 1 }, { name: 'zipf-1.0', skew: 1.0, phases: 1 }, { name: 'zipf-1.4', skew: 1.4, phases: 1 }, { name: 'shifting-1.0x4', skew: 1.0, phases: 4 }];
    const hitRatios: Record<string, Record<string, Record<string, number>>> = {};
    for (const fam of [zoo, family]) {
      const store = await openStore(fam.storeDir, { readOnly: true });
      const layout = layoutOf(store);
      await store.close();
      for (const kind of traceKinds) {
        const trace = zipfTrace({ models: fam.models, skew: kind.skew, requests: quick ? 1000 : 3000, seed: SEED, phases: kind.phases });
        // Budgets below the largest model are skipped by the simulator (no policy can serve them).
        const largest = Math.max(...layout.models.map((m) => new Set(m.pages).size)) * PAGE_SIZE;
        const usable = fractions.filter((f) => f * fam.totalBytes >= largest);
        const table = await hitRatioTable({ ...layout }, trace, POLICY_NAMES, usable.map((f) => (f * fam.totalBytes) / distinct(layout)));
        // Re-key by fraction of total model bytes (the simulator's fractions are of distinct page bytes).
        const rekeyed: Record<string, Record<string, number>> = {};
        for (const p of POLICY_NAMES) {
          rekeyed[p] = {};
          usable.forEach((f) => (rekeyed[p][String(f)] = round(table[p][String((f * fam.totalBytes) / distinct(layout))])));
        }
        hitRatios[`${fam.name}/${kind.name}`] = rekeyed;
        console.log(`hit ratio ${fam.name}/${kind.name}: ` + POLICY_NAMES.map((p) => `${p} ${usable.map((f) => rekeyed[p][String(f)].toFixed(2)).join('/')}`).join('  '));
      }
    }

    // ---- systems ----
    const systemFractions = quick ? [0.25, 1] : [0.1, 0.25, 0.5, 1];
    const systems: Record<string, unknown>[] = [];
    const plan: { fam: Family; sys: ChildConfig['system']; f: number }[] = [];
    for (const fam of quick ? [zoo, family] : [zoo, family]) {
      for (const f of systemFractions) {
        for (const sys of ['tessera-kernel', 'baseline'] as const) plan.push({ fam, sys, f });
        if (fam === zoo && (f === 0.25 || f === 1)) {
          plan.push({ fam, sys: 'tessera-session', f });
          if (!quick) plan.push({ fam, sys: 'tessera-feeds', f });
        }
      }
    }
    for (const { fam, sys, f } of plan) {
      const requests = quick ? 150 : fam === zoo ? 600 : 400;
      const cfg: ChildConfig = {
        system: sys, family: fam.name, storeDir: fam.storeDir, fileDir: fam.fileDir, models: fam.models,
        budgetBytes: Math.floor(f * fam.totalBytes), budgetFraction: f,
        trace: { skew: 1.0, phases: 1, requests, warmup: Math.floor(requests / 10) }, policy: 'dedup',
      };
      const r = await runChild(cfg);
      systems.push({ name: sys, family: fam.name, budgetFraction: f, budgetBytes: cfg.budgetBytes, ...r });
      console.log(`${fam.name} ${sys} @${f * 100}%: ${r.error ? `FAILED ${r.error}` : `${(r.throughput as number).toFixed(1)} req/s  p50 ${(r.p50Ms as number).toFixed(2)} ms  p99 ${(r.p99Ms as number).toFixed(2)} ms  read ${mb(r.bytesRead as number)}  peak RSS ${mb(r.peakRssBytes as number)} (idle ${mb(r.idleRssBytes as number)})  hit ${(r.hitRatio as number)?.toFixed(2)}`}`);
    }

    // ---- goals: at 25% of model bytes, vs the baseline of the same family ----
    const goals: Record<string, unknown> = {};
    for (const fam of [zoo, family]) {
      const t = systems.find((s) => s.family === fam.name && s.name === 'tessera-kernel' && s.budgetFraction === 0.25) as any;
      const b = systems.find((s) => s.family === fam.name && s.name === 'baseline' && s.budgetFraction === 0.25) as any;
      if (!t || !b) continue;
      const tp = b.throughput ? t.throughput / b.throughput : null;
      const p99 = b.p99Ms && t.p99Ms ? b.p99Ms / t.p99Ms : null;
      goals[fam.name] = { throughputRatio: tp && round(tp), p99Ratio: p99 && round(p99), met: !!(tp && tp >= 3 && p99 && p99 >= 3), baselineError: b.error ?? null };
    }
    const warm = systems.filter((s) => s.family === 'zoo' && s.budgetFraction === 1 && s.warmPathOverhead !== undefined).map((s) => ({ system: s.name, overhead: s.warmPathOverhead }));
    return {
      hitRatio: hitRatios['family/zipf-1.0'],
      hitRatios,
      systems,
      goals,
      warmPath: warm,
      setup: {
        pageSize: PAGE_SIZE,
        families: Object.fromEntries([zoo, family].map((f) => [f.name, { models: f.models.length, totalBytes: f.totalBytes, storedBytes: f.storedBytes }])),
        budget: 'fraction of the family\'s total .onnx bytes',
        trace: 'zipf 1.0, seed 1, batch-1 requests, 2 in flight, first 10% not timed',
        policy: 'dedup-aware page eviction for tessera; LRU sessions for the baseline',
        rss: 'peak RSS of a fresh child process per row (maxRSS), idle RSS before the first request alongside',
      },
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function distinct(layout: PageLayout): number {
  const seen = new Set<number>();
  for (const m of layout.models) for (const p of m.pages) seen.add(p);
  return seen.size * (layout.pageBytes as number);
}
const round = (x: number) => Math.round(x * 1000) / 1000;
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;

// ---- child: one system at one budget, in its own process ----

async function child(cfg: ChildConfig): Promise<Record<string, unknown>> {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = 1;
  const { Server } = await import('../src/runtime/server.ts');
  const { BaselineServer } = await import('./lib/baseline-server.ts');
  const store = await openStore(cfg.storeDir, { readOnly: true });
  const trace = zipfTrace({ models: cfg.models, skew: cfg.trace.skew, requests: cfg.trace.requests, seed: SEED, phases: cfg.trace.phases });
  const rand = mulberry32(SEED + 7);
  const inputs = Array.from({ length: 16 }, () => new ort.Tensor('float32', Float32Array.from({ length: 784 }, () => rand()), [1, 784]));
  const sizes = new Map<string, number>();
  for (const m of cfg.models) sizes.set(m, (await stat(join(cfg.fileDir, `${m}.onnx`))).size);
  let server: { run(m: string, f: Record<string, any>): Promise<unknown>; metrics(): any; close(): Promise<void> };
  try {
    if (cfg.system === 'baseline') {
      server = await BaselineServer.create({ budgetBytes: cfg.budgetBytes, models: cfg.models, sizeOf: (m) => sizes.get(m)!, load: async (m) => new Uint8Array(await readFile(join(cfg.fileDir, `${m}.onnx`))) });
    } else {
      const executor = cfg.system === 'tessera-kernel' ? 'auto' : cfg.system === 'tessera-session' ? 'own-weights' : 'shared-weights';
      server = await Server.create(store, { budgetBytes: cfg.budgetBytes, executor, policy: cfg.policy as any, maxBatch: 16 });
    }
  } catch (e) {
    return { error: `${(e as { code?: string }).code ?? ''} ${(e as Error).message}` };
  }
  const idleRssBytes = process.memoryUsage().rss;
  const latencies: number[] = [];
  let next = 0;
  let t0 = 0;
  let readAtStart = 0;
  let hitsAtStart = 0;
  let error: string | undefined;
  const worker = async () => {
    while (next < trace.length && !error) {
      const i = next++;
      if (i === cfg.trace.warmup) {
        t0 = performance.now();
        readAtStart = server.metrics().bytesRead;
        hitsAtStart = server.metrics().hits;
      }
      const s = performance.now();
      try {
        await server.run(trace[i], { input: inputs[i % inputs.length] });
      } catch (e) {
        error = `${(e as { code?: string }).code ?? ''} ${(e as Error).message}`;
      }
      if (i >= cfg.trace.warmup) latencies.push(performance.now() - s);
    }
  };
  await Promise.all([worker(), worker()]);
  const seconds = (performance.now() - t0) / 1000;
  const m = server.metrics();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  const result: Record<string, unknown> = {
    throughput: latencies.length / seconds,
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    bytesRead: m.bytesRead - readAtStart,
    hitRatio: (m.hits - hitsAtStart) / latencies.length,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    idleRssBytes,
    peakAccountedBytes: m.peakBytes,
    ...(error ? { error } : {}),
  };
  // Warm path: one model, resident; the server's run vs the raw runtime call on the same input.
  if (cfg.budgetFraction === 1 && cfg.family === 'zoo' && !error) {
    const model = cfg.models[0];
    const raw = await ort.InferenceSession.create(new Uint8Array(await readFile(join(cfg.fileDir, `${model}.onnx`))));
    const time = async (fn: () => Promise<unknown>) => {
      for (let i = 0; i < 300; i++) await fn();
      const ts: number[] = [];
      for (let i = 0; i < 1000; i++) {
        const s = performance.now();
        await fn();
        ts.push(performance.now() - s);
      }
      return ts.sort((a, b) => a - b)[500];
    };
    const rawMs = await time(() => raw.run({ input: inputs[0] }));
    const serverMs = await time(() => server.run(model, { input: inputs[0] }));
    result.warmPathOverhead = { rawSessionRunMs: rawMs, serverRunMs: serverMs, ratio: serverMs / rawMs };
  }
  await server.close();
  await store.close();
  return result;
}

if (process.argv.includes('--serving-child')) {
  const cfg = JSON.parse(process.argv[process.argv.indexOf('--serving-child') + 1]) as ChildConfig;
  const out = await child(cfg).catch((e) => ({ error: String(e?.message ?? e) }));
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}
