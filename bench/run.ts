/**
 * Benchmark entry: `npm run bench -- <name> [--quick] [--json]`. Each benchmark is bench/<name>.ts
 * exporting `run(opts)` that returns one JSON-able object. With --json exactly that object is
 * printed on stdout (logs go to stderr); the result is always written to bench/results/<name>.json.
 */
import { mkdir, writeFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BenchOptions {
  quick: boolean;
  json: boolean;
  args: string[];
}

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const name = argv.find((a) => !a.startsWith('--'));
const available = (await readdir(here)).filter((f) => f.endsWith('.ts') && f !== 'run.ts').map((f) => f.slice(0, -3));
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <name> [--quick] [--json]\nbenchmarks: ${available.join(', ')}`);
  process.exit(2);
}
const opts: BenchOptions = { quick: argv.includes('--quick'), json: argv.includes('--json'), args: argv };
// Keep stdout for the JSON object alone: everything a benchmark logs goes to stderr.
console.log = (...a: unknown[]) => console.error(...a);
const mod = (await import(join(here, `${name}.ts`))) as { run: (o: BenchOptions) => Promise<object> };
const result = await mod.run(opts);
const withMeta = { benchmark: name, quick: opts.quick, date: new Date().toISOString(), ...result };
await mkdir(join(here, 'results'), { recursive: true });
await writeFile(join(here, 'results', `${name}${opts.quick ? '.quick' : ''}.json`), JSON.stringify(withMeta, null, 2) + '\n');
if (opts.json) process.stdout.write(JSON.stringify(withMeta) + '\n');
else console.error(JSON.stringify(withMeta, null, 2));
