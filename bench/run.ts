/**
 * Benchmark entry: `npm run bench -- <name> [--quick] [--json]`; `npm run bench` (or `--help`)
 * lists them. Each benchmark is bench/<name>.ts exporting `run(opts)`, which returns one
 * JSON-able object; it is always written to bench/results/<name>.json (quick runs to
 * <name>.quick.json, not tracked), with the run's wall time. Without --json the benchmark's
 * tables go to stdout; with --json stdout carries exactly the JSON object and logs go to stderr.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BenchOptions {
  quick: boolean;
  json: boolean;
  args: string[];
}

/** One line per benchmark, and its time on a 2-core machine (replaced by the last recorded run). */
export const BENCHMARKS: Record<string, { about: string; typical: string }> = {
  store: { about: 'ingest vs cp + sync, tile/page layout sweep, serving latency from the store vs the file', typical: '~3 min (quick ~40 s)' },
  packing: { about: "pages per packing algorithm on netsDB's real inputs (bench/data) vs netsDB's, and scaling to 1M blocks", typical: '~2 min (quick ~15 s)' },
  kernels: { about: 'near-duplicate kernels: LSH hashing and distances, wasm SIMD vs TS, recall', typical: '~5 min (quick ~1.5 min)' },
  gemm: { about: 'GFLOP/s of the wasm SIMD gemm vs its TS twin at the zoo\'s training shapes', typical: '~30 s (quick ~10 s)' },
  dedup: { about: 'near-duplicate dedup on the zoo per method: bytes saved vs accuracy bound', typical: '~5 min (quick ~1 min)' },
  pool: { about: 'buffer-pool hit ratio per eviction policy and budget, shared vs unshared pages, held-out traces, policy cost', typical: '~3 min (quick ~30 s)' },
  serving: { about: 'many-model serving under one budget vs one onnxruntime session per file (LRU): throughput, p99, RSS; parts real, resident, zoo, scale', typical: '~20 min, each part under 8 (quick ~4 min)' },
  http: { about: 'tessera serve over HTTP (KServe v2) with autocannon: req/s and p50/p99 at 1/16/64 connections, file vs PostgreSQL, 1 vs 3 nodes, overload, recovery', typical: '~2 min (quick ~1 min)' },
  browser: { about: 'models in Chromium: imported pages in IndexedDB vs whole files in the Cache API, bytes and time', typical: '~2 min (quick ~40 s)' },
};

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const name = argv.find((a) => !a.startsWith('--'));
const available = (await readdir(here)).filter((f) => f.endsWith('.ts') && f !== 'run.ts').map((f) => f.slice(0, -3)).sort();

/** The wall time of the last recorded run, if its result file says. */
async function lastTime(bench: string, quick: boolean): Promise<number | null> {
  try {
    const r = JSON.parse(await readFile(join(here, 'results', `${bench}${quick ? '.quick' : ''}.json`), 'utf8'));
    return typeof r.seconds === 'number' ? r.seconds : null;
  } catch {
    return null;
  }
}

const human = (s: number) => (s >= 90 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`);

async function usage(): Promise<string> {
  const rows: string[][] = [];
  for (const b of available) {
    const [full, quick] = [await lastTime(b, false), await lastTime(b, true)];
    const time = full !== null ? `${human(full)}${quick !== null ? ` (quick ${human(quick)})` : ''}, last run` : (BENCHMARKS[b]?.typical ?? '');
    rows.push([b, BENCHMARKS[b]?.about ?? '(no description in bench/run.ts)', time]);
  }
  const w = [0, 1].map((i) => Math.max(...rows.map((r) => r[i].length)));
  return [
    'usage: npm run bench -- <name> [--quick] [--json]',
    '  --quick  smaller inputs, for a first look (results in bench/results/<name>.quick.json)',
    '  --json   print the result object on stdout (tables go to stderr)',
    '  --part=P one part of a benchmark that has parts (store: large-models; serving: real, resident, zoo, scale),',
    '           in bench/results/<name>.<P>.json (serving also merges it into serving.json)',
    '',
    'benchmarks:',
    ...rows.map((r) => `  ${r[0].padEnd(w[0])}  ${r[1].padEnd(w[1])}  ${r[2]}`),
    '',
    'Times: the last recorded run on this machine, or an estimate (~) for a 2-core machine.',
    'Results: bench/results/<name>.json; `npm run report` charts them in bench/report/index.html.',
  ].join('\n');
}

if (!name || argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write((await usage()) + '\n');
  process.exit(0);
}
if (!available.includes(name)) {
  process.stderr.write(`unknown benchmark "${name}": run \`npm run bench\` for the list (${available.join(', ')}).\n`);
  process.exit(2);
}
const opts: BenchOptions = { quick: argv.includes('--quick'), json: argv.includes('--json'), args: argv };
// With --json, stdout carries the JSON object alone: what a benchmark logs goes to stderr.
if (opts.json) console.log = (...a: unknown[]) => console.error(...a);
const t0 = performance.now();
const mod = (await import(join(here, `${name}.ts`))) as { run: (o: BenchOptions) => Promise<object>; mergePart?: (previous: Record<string, unknown> | null, result: Record<string, unknown>) => object };
const result = await mod.run(opts);
const seconds = +((performance.now() - t0) / 1000).toFixed(1);
const withMeta = { benchmark: name, quick: opts.quick, date: new Date().toISOString(), seconds, ...result };
// `--part=P` runs one part of a benchmark that has parts; its results go beside the whole run's.
const part = argv.find((a) => a.startsWith('--part='))?.slice('--part='.length);
const resultName = `${name}${part ? `.${part}` : ''}${opts.quick ? '.quick' : ''}.json`;
const file = join(here, 'results', resultName);
await mkdir(dirname(file), { recursive: true });
await writeFile(file, JSON.stringify(withMeta, null, 2) + '\n');
// A benchmark whose parts make up one result (serving) merges the part into its whole result file.
if (part && mod.mergePart) {
  const whole = join(here, 'results', `${name}${opts.quick ? '.quick' : ''}.json`);
  const previous = await readFile(whole, 'utf8').then((t) => JSON.parse(t) as Record<string, unknown>, () => null);
  await writeFile(whole, JSON.stringify(mod.mergePart(previous, withMeta), null, 2) + '\n');
}
if (opts.json) process.stdout.write(JSON.stringify(withMeta) + '\n');
else process.stdout.write(`\n${name}: ${human(seconds)}; results in ${join('bench', 'results', resultName)}\n`);
