/**
 * A writer or a reader process on one file store (the concurrency harness spawns several).
 *   node --import tsx tools/reliability/concurrency-worker.ts '{"role":"writer"|"reader","dir":..,"seed":..,"ms":..}'
 * Model `m<i>` always holds `specFor(i)`, so a reader knows every model's source from its name.
 * The writer adds, removes, checkpoints and compacts for `ms`, printing "ready" once it holds the
 * lock. A reader loops for `ms`: refresh, then read every listed model and compare it bit for bit.
 * A page rewritten since the reader's catalog was read is the store's to handle (it re-reads the
 * catalog and retries), so PAGE_CORRUPT or CATALOG_CORRUPT reaching the reader is a failure (a false
 * corruption report, issue 13 finding 7); MODEL_NOT_FOUND (removed after it was listed) is a retry.
 * It prints one JSON line: reads, retries by error code, and failures (wrong bytes, untyped or
 * corruption errors).
 */
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/node/open.ts';
import { TesseraError } from '../../src/errors.ts';
import { mulberry32 as rng } from '../../src/random.ts'; // the project's seeded PRNG (test/helpers.ts's rng)
import { modelBytes, modelMatches, randomSpec, type ModelSpec } from './models.ts';

export interface ConcurrencyJob {
  role: 'writer' | 'reader';
  dir: string;
  seed: number;
  ms: number;
}

export interface ReaderReport {
  reads: number;
  refreshes: number;
  retries: Record<string, number>;
  failures: string[];
}

export const specFor = (i: number): ModelSpec => randomSpec(rng(1000 + i));

async function writer(job: ConcurrencyJob): Promise<void> {
  const store = await openStore(job.dir);
  process.stdout.write('ready\n');
  const r = rng(job.seed);
  let next = Math.max(-1, ...store.listModels().map((n) => Number(n.slice(1)))) + 1;
  const end = Date.now() + job.ms;
  while (Date.now() < end) {
    const x = r();
    const names = store.listModels();
    if (x < 0.5 || names.length < 3) await store.add(`m${next}`, await modelBytes(specFor(next++)));
    else if (x < 0.85) await store.remove(names[Math.floor(r() * names.length)]);
    else if (x < 0.93) await store.checkpoint();
    else await store.compact();
  }
  await store.close();
  process.stdout.write('done\n');
}

async function reader(job: ConcurrencyJob): Promise<ReaderReport> {
  const store = await openStore(job.dir, { readOnly: true });
  const report: ReaderReport = { reads: 0, refreshes: 0, retries: {}, failures: [] };
  const end = Date.now() + job.ms;
  while (Date.now() < end) {
    try {
      await store.refresh();
      report.refreshes++;
      for (const name of store.listModels()) {
        if (!(await modelMatches(store, name, specFor(Number(name.slice(1)))))) report.failures.push(`${name} read with wrong bytes`);
        report.reads++;
      }
    } catch (e) {
      if (!(e instanceof TesseraError)) {
        report.failures.push(`untyped error: ${(e as Error)?.stack ?? e}`);
        break;
      }
      report.retries[e.code] = (report.retries[e.code] ?? 0) + 1;
      if (e.code === 'PAGE_CORRUPT' || e.code === 'CATALOG_CORRUPT') report.failures.push(`false corruption report: ${e.message}`);
    }
  }
  await store.close();
  return report;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const job = JSON.parse(process.argv[2]) as ConcurrencyJob;
  (job.role === 'writer' ? writer(job) : reader(job).then((r) => void process.stdout.write(JSON.stringify(r) + '\n'))).catch((e) => {
    process.stderr.write(`${job.role} failed: ${e?.stack ?? e}\n`);
    process.exit(3);
  });
}
