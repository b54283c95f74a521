/**
 * The crash harness: runs store operations in a child process and SIGKILLs it at random times or
 * at injected points of the backend protocol, then checks what the next open sees:
 * - the store opens (the dead writer's lock is taken over) and `verify` passes,
 * - the models are exactly those committed before the kill, or those plus the interrupted
 *   operation's effect (all or nothing), each bit-exact with its source,
 * - after `collectGarbage` no page slot is left that the catalog does not reference, and the pages
 *   file holds no slot past the last committed page.
 * One store lives through every trial, so crashes hit stores with shared pages, deltas,
 * compacted layouts and checkpoints.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/node/open.ts';
import { PAGE_HEADER_BYTES } from '../../src/store/page-format.ts';
import { mulberry32 as rng } from '../../src/random.ts'; // the project's seeded PRNG (test/helpers.ts's rng)
import { checkModels, modelBytes, PAGE_SIZE, TILE, type ModelSpec } from './models.ts';
import { CRASH_OPS, pickOp, type CrashOp, type CrashOpName, type ExpectedState } from './crash-ops.ts';
import type { Injection, InjectMethod, WorkerJob } from './crash-worker.ts';

const WORKER = fileURLToPath(new URL('./crash-worker.ts', import.meta.url));

export interface TrialResult {
  trial: number;
  op: CrashOpName;
  inject: Injection;
  /** The worker died by SIGKILL (else it ran to completion). */
  killed: boolean;
  /** The interrupted (or completed) operation's commit is visible after reopen. */
  committed: boolean;
  /** The dead writer's LOCK was still there and was taken over. */
  staleLock: boolean;
  /** Unreferenced page slots found before garbage collection. */
  leakedBeforeGc: number;
  problems: string[];
}

export interface CrashSummary {
  seed: number;
  trials: number;
  kills: number;
  opsRun: Record<string, number>;
  killsByOp: Record<string, number>;
  killsByPoint: Record<string, number>;
  committedAfterKill: number;
  rolledBackAfterKill: number;
  staleLocksRecovered: number;
  trialsWithLeakedPagesBeforeGc: number;
  failures: TrialResult[];
  seconds: number;
}

function runWorker(job: WorkerJob): Promise<{ killed: boolean; doneMs: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d) => {
      out += d;
      if (job.inject.kind === 'delay' && out.startsWith('ready\n') && !timer) {
        timer = setTimeout(() => child.kill('SIGKILL'), job.inject.ms);
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const done = /done ([\d.]+)/.exec(out);
      if (signal !== 'SIGKILL' && code !== 0) return reject(new Error(`worker exited with ${code ?? signal}: ${stderr.slice(-2000)}`));
      resolve({ killed: signal === 'SIGKILL', doneMs: done ? Number(done[1]) : null, stderr });
    });
  });
}

function pickInjection(r: () => number, methods: InjectMethod[], estimateMs: number): Injection {
  if (r() < 0.5) return { kind: 'delay', ms: r() * estimateMs * 1.3 };
  const method = methods[Math.floor(r() * methods.length)];
  const when = (['before', 'during', 'after'] as const)[Math.floor(r() * 3)];
  return { kind: 'point', method, nth: 1 + Math.floor(r() * (method === 'writePages' ? 4 : 1)), when, cut: 0.05 + r() * 0.9 };
}

/** Runs `trials` seeded crash trials on a fresh store in `dir`. */
export async function runCrashTrials(opts: { dir: string; seed: number; trials: number; onTrial?: (t: TrialResult) => void }): Promise<CrashSummary> {
  const t0 = performance.now();
  const r = rng(opts.seed);
  const dir = join(opts.dir, 'store');
  // Start from a populated store (a base, fine-tunes sharing its pages, a family) so that rm,
  // dedup and compact have work from the first trial on.
  const state: ExpectedState = { models: new Map(), nextName: 0 };
  const created = await openStore(dir, { create: true, tile: TILE, pageSize: PAGE_SIZE });
  const initial: ModelSpec[] = [
    { kind: 'mlp', seed: 1 },
    { kind: 'variant', base: 1, tensor: 0, seed: 1 },
    { kind: 'variant', base: 1, tensor: 2, seed: 2 },
    { kind: 'family', backbone: 1, head: 1 },
  ];
  for (const spec of initial) {
    const name = `m${state.nextName++}`;
    await created.add(name, await modelBytes(spec));
    state.models.set(name, spec);
  }
  let seq = created.catalog.seq;
  await created.close();
  const estimate = new Map<CrashOpName, number>();
  const summary: CrashSummary = {
    seed: opts.seed, trials: opts.trials, kills: 0, opsRun: {}, killsByOp: {}, killsByPoint: {},
    committedAfterKill: 0, rolledBackAfterKill: 0, staleLocksRecovered: 0, trialsWithLeakedPagesBeforeGc: 0, failures: [], seconds: 0,
  };
  for (let trial = 0; trial < opts.trials; trial++) {
    const { op, args } = pickOp(state, r);
    const inject = pickInjection(r, CRASH_OPS[op].points, estimate.get(op) ?? 40);
    const run = await runWorker({ dir, op, args, inject });
    if (run.doneMs !== null) estimate.set(op, run.doneMs + 15); // + the close after the op
    const before = new Map(state.models);
    const after = new Map(state.models);
    (CRASH_OPS[op] as CrashOp<unknown>).apply(after, args);
    if (op === 'add') state.nextName++;

    const staleLock = existsSync(join(dir, 'LOCK'));
    const problems: string[] = [];
    let committed = false;
    let leakedBeforeGc = 0;
    let store;
    try {
      store = await openStore(dir);
    } catch (e) {
      problems.push(`the store does not open: ${(e as Error).message}`);
    }
    if (store) {
      try {
        committed = store.catalog.seq > seq;
        if (run.doneMs !== null && !committed && op !== 'checkpoint' && op !== 'dedup' && op !== 'compact') problems.push('the operation returned but its commit is not visible');
        // Compact may commit twice: the repack, then the slide-down that moves no model's block
        // (src/store/compact.ts); a kill between them leaves one record, a kill after both two.
        const records = store.catalog.seq - seq;
        if (committed && records > (op === 'compact' ? 2 : 1)) problems.push(`catalog went from seq ${seq} to ${store.catalog.seq}`);
        const expected = committed ? after : before;
        const v = await store.verify();
        if (!v.ok) problems.push(`verify: ${JSON.stringify({ damaged: v.damagedPages, catalog: v.catalogProblems })}`);
        leakedBeforeGc = v.leakedPages.length;
        problems.push(...(await checkModels(store, expected, { exportToo: trial % 4 === 0 })));
        await store.collectGarbage();
        const v2 = await store.verify();
        if (!v2.ok || v2.leakedPages.length) problems.push(`after GC: ok=${v2.ok}, leaked pages [${v2.leakedPages.join(', ')}]`);
        const { size } = await stat(join(dir, 'pages.dat'));
        if (size > store.catalog.pageLimit() * (PAGE_HEADER_BYTES + PAGE_SIZE)) problems.push(`pages.dat holds ${size} bytes, past the last committed page ${store.catalog.pageLimit() - 1}`);
        state.models = expected;
        seq = store.catalog.seq;
      } finally {
        await store.close();
      }
    }
    const result: TrialResult = { trial, op, inject, killed: run.killed, committed, staleLock, leakedBeforeGc, problems };
    summary.opsRun[op] = (summary.opsRun[op] ?? 0) + 1;
    if (run.killed) {
      summary.kills++;
      summary.killsByOp[op] = (summary.killsByOp[op] ?? 0) + 1;
      const point = inject.kind === 'point' ? `${inject.method}:${inject.when}` : inject.kind;
      summary.killsByPoint[point] = (summary.killsByPoint[point] ?? 0) + 1;
      if (committed) summary.committedAfterKill++;
      else summary.rolledBackAfterKill++;
      if (staleLock) summary.staleLocksRecovered++;
    }
    if (leakedBeforeGc) summary.trialsWithLeakedPagesBeforeGc++;
    if (problems.length) {
      summary.failures.push(result);
      if (!store) break; // nothing more can be learned from a store that does not open
    }
    opts.onTrial?.(result);
  }
  summary.seconds = (performance.now() - t0) / 1000;
  return summary;
}
