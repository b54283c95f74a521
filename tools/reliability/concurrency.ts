/**
 * One writer and several readers, each in its own process, on one file store. Readers must only
 * ever see committed states (every model they list reads bit-exact, or a typed error tells them to
 * refresh); a second writer gets STORE_LOCKED; after the writer is SIGKILLed mid-work its stale
 * lock is taken over and the store verifies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/node/open.ts';
import { TesseraError } from '../../src/errors.ts';
import { modelBytes, PAGE_SIZE, TILE } from './models.ts';
import { specFor, type ConcurrencyJob, type ReaderReport } from './concurrency-worker.ts';

const WORKER = fileURLToPath(new URL('./concurrency-worker.ts', import.meta.url));

export interface ConcurrencyFigures {
  readers: number;
  seconds: number;
  reads: number;
  refreshes: number;
  retries: Record<string, number>;
  secondWriter: string;
  staleLockRecovered: boolean;
  failures: string[];
}

function start(job: ConcurrencyJob): { child: ChildProcess; out: Promise<string>; ready: Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  let err = '';
  let onReady: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  child.stdout!.on('data', (d) => {
    buf += d;
    if (buf.includes('ready\n')) onReady();
  });
  child.stderr!.on('data', (d) => (err += d));
  const out = new Promise<string>((resolve, reject) =>
    child.on('close', (code, signal) => (code === 0 || signal === 'SIGKILL' ? resolve(buf) : reject(new Error(`${job.role} exited ${code ?? signal}: ${err.slice(-1500)}`)))),
  );
  return { child, out, ready };
}

export async function runConcurrency(opts: { dir: string; seed: number; readers: number; ms: number }): Promise<ConcurrencyFigures> {
  const dir = join(opts.dir, 'store');
  const init = await openStore(dir, { create: true, tile: TILE, pageSize: PAGE_SIZE });
  for (let i = 0; i < 4; i++) await init.add(`m${i}`, await modelBytes(specFor(i)));
  await init.close();

  const writer = start({ role: 'writer', dir, seed: opts.seed, ms: opts.ms * 10 });
  await writer.ready;
  const readers = Array.from({ length: opts.readers }, (_, k) => start({ role: 'reader', dir, seed: opts.seed + k, ms: opts.ms }));
  const f: ConcurrencyFigures = { readers: opts.readers, seconds: opts.ms / 1000, reads: 0, refreshes: 0, retries: {}, secondWriter: 'opened', staleLockRecovered: false, failures: [] };
  try {
    const second = await openStore(dir);
    await second.close();
    f.failures.push('a second writer opened the store while the first held it');
  } catch (e) {
    f.secondWriter = e instanceof TesseraError ? e.code : String(e);
    if (f.secondWriter !== 'STORE_LOCKED') f.failures.push(`second writer: ${f.secondWriter}, not STORE_LOCKED`);
  }
  for (const r of readers) {
    const report = JSON.parse((await r.out).trim().split('\n').pop()!) as ReaderReport;
    f.reads += report.reads;
    f.refreshes += report.refreshes;
    for (const [k, v] of Object.entries(report.retries)) f.retries[k] = (f.retries[k] ?? 0) + v;
    f.failures.push(...report.failures);
  }
  // The writer is still working: kill it, then a new writer takes the lock over.
  writer.child.kill('SIGKILL');
  await writer.out;
  try {
    const after = await openStore(dir);
    const v = await after.verify();
    f.staleLockRecovered = true;
    if (!v.ok) f.failures.push(`after the writer was killed the store does not verify: ${JSON.stringify(v)}`);
    await after.close();
  } catch (e) {
    f.failures.push(`after the writer was killed the store does not open: ${(e as Error).message}`);
  }
  return f;
}
