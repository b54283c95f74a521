/**
 * Writers racing for a store whose LOCK was left by a killed writer. Each writer that gets the
 * lock enters a critical section (mkdir of a marker folder, which fails if another is inside),
 * holds it, and leaves; two writers inside at once is a failure. Delays injected at every step of
 * the takeover (judged, break file, before unlink, after link) widen the windows in which the
 * race of issue 13 (both read a dead pid, one removes the other's fresh lock) happened.
 * Writers run as separate processes (`runLockRace`) or, for many cheap trials, as concurrent
 * opens in this process (`runLockRaceInProcess`; a lock held by this process is told apart by token).
 *   node --import tsx tools/reliability/lock-race.ts <dir> <seed>   (one writer process)
 */
import { spawn } from 'node:child_process';
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FilePageStore } from '../../src/node/file-store.ts';
import { TesseraError } from '../../src/errors.ts';
import { mulberry32 } from '../../src/random.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One writer: 'won', 'locked', or 'DOUBLE' (another writer was inside the critical section). */
export async function raceOnce(dir: string, seed: number, maxDelayMs: number): Promise<'won' | 'locked' | 'DOUBLE'> {
  const r = mulberry32(seed);
  let store: FilePageStore;
  try {
    store = await FilePageStore.open(dir, { lockDelay: () => sleep(r() * maxDelayMs) });
  } catch (e) {
    if (e instanceof TesseraError && e.code === 'STORE_LOCKED') return 'locked';
    throw e;
  }
  try {
    await mkdir(join(dir, 'inside'));
  } catch {
    await store.close();
    return 'DOUBLE';
  }
  await sleep(20 + r() * 30);
  await rmdir(join(dir, 'inside'));
  await store.close();
  return 'won';
}

/** A stale LOCK as a killed writer leaves it (new format: token, dead pid; or an older tessera's bare pid). */
export async function plantStaleLock(dir: string, legacy: boolean): Promise<void> {
  const pid = 2 ** 22 + 12345; // above the default pid_max: no such process
  const body = legacy ? `${pid}\n` : JSON.stringify({ token: 'a'.repeat(32), pid, host: (await import('node:os')).hostname(), bootId: null, startTime: null, since: new Date(0).toISOString() }) + '\n';
  await writeFile(join(dir, 'LOCK'), body);
}

export interface LockRaceResult {
  trials: number;
  writers: number;
  won: number;
  locked: number;
  failures: string[];
}

async function prepare(dir: string): Promise<void> {
  const s = await FilePageStore.open(dir, { create: true, pageSize: 4096 });
  await s.close();
}

export async function runLockRaceInProcess(opts: { dir: string; trials: number; writers: number; seed: number; maxDelayMs?: number }): Promise<LockRaceResult> {
  const res: LockRaceResult = { trials: opts.trials, writers: opts.writers, won: 0, locked: 0, failures: [] };
  for (let t = 0; t < opts.trials; t++) {
    const dir = join(opts.dir, `inproc-${t}`);
    await prepare(dir);
    await plantStaleLock(dir, t % 2 === 1);
    const outcomes = await Promise.all(Array.from({ length: opts.writers }, (_, w) => raceOnce(dir, opts.seed * 1000 + t * 10 + w, opts.maxDelayMs ?? 30)));
    tally(res, t, outcomes);
  }
  return res;
}

export async function runLockRace(opts: { dir: string; trials: number; writers: number; seed: number }): Promise<LockRaceResult> {
  const res: LockRaceResult = { trials: opts.trials, writers: opts.writers, won: 0, locked: 0, failures: [] };
  const self = fileURLToPath(import.meta.url);
  for (let t = 0; t < opts.trials; t++) {
    const dir = join(opts.dir, `proc-${t}`);
    await prepare(dir);
    await plantStaleLock(dir, t % 2 === 1);
    const outcomes = await Promise.all(
      Array.from({ length: opts.writers }, (_, w) =>
        new Promise<string>((resolve) => {
          const p = spawn(process.execPath, ['--import', 'tsx', self, dir, String(opts.seed * 1000 + t * 10 + w)], { stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          p.stdout.on('data', (d) => (out += d));
          p.stderr.on('data', (d) => (out += d));
          p.on('close', () => resolve(out.trim()));
        }),
      ),
    );
    tally(res, t, outcomes);
  }
  return res;
}

function tally(res: LockRaceResult, trial: number, outcomes: string[]): void {
  const won = outcomes.filter((o) => o === 'won').length;
  res.won += won;
  res.locked += outcomes.filter((o) => o === 'locked').length;
  if (outcomes.some((o) => o !== 'won' && o !== 'locked')) res.failures.push(`trial ${trial}: ${outcomes.join(', ')}`);
  if (won < 1) res.failures.push(`trial ${trial}: no writer took the stale lock (${outcomes.join(', ')})`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // Long delays across processes: the takeover steps of several writers interleave.
  raceOnce(process.argv[2], Number(process.argv[3]), 300).then(
    (o) => process.stdout.write(o + '\n'),
    (e) => process.stdout.write(`error ${e?.code ?? ''} ${e?.message ?? e}\n`),
  );
}
