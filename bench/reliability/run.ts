/**
 * Full reliability runs, one command each (the CI tests run reduced versions):
 *   tsx bench/reliability/run.ts crash      [--seed N] [--trials N]   (default 150 SIGKILL trials)
 *   tsx bench/reliability/run.ts corruption [--seed N] [--flips N]    (default 2,000 page bit flips)
 *   tsx bench/reliability/run.ts fuzz       [--seed N] [--cases N]    (default 1,000 a target, 10,000 in all)
 *   tsx bench/reliability/run.ts concurrency [--readers N] [--ms N] (default 4 readers for 30 s)
 *   tsx bench/reliability/run.ts faults     [--ops add,rm,...]        (every disk-changing call x ENOSPC, EIO, short write)
 *   tsx bench/reliability/run.ts disk       [--fs DIR]                  (a real full disk: a 2 MiB tmpfs, needs root; or a small file system at DIR)
 *   tsx bench/reliability/run.ts locks      [--trials N] [--writers N] (default 400 in-process + 20 multi-process races of 4 writers)
 *   tsx bench/reliability/run.ts all
 * Prints a JSON summary and writes it to bench/reliability/results/<name>.json; exits 1 on any failure.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCrashTrials } from '../../tools/reliability/crash.ts';
import { runCorruption } from '../../tools/reliability/corruption.ts';
import { runFuzz } from '../../tools/reliability/fuzz.ts';
import { runConcurrency } from '../../tools/reliability/concurrency.ts';
import { runFaultSweep } from '../../tools/reliability/faults.ts';
import { runLockRace, runLockRaceInProcess } from '../../tools/reliability/lock-race.ts';
import { mountTmpfs, runFullDisk } from '../../tools/reliability/full-disk.ts';

const argv = process.argv.slice(2);
const flag = (name: string, dflt: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const seed = flag('seed', 1);

const runs: Record<string, (dir: string) => Promise<{ failures: unknown[] }>> = {
  crash: (dir) =>
    runCrashTrials({
      dir,
      seed,
      trials: flag('trials', 150),
      onTrial: (t) => process.stderr.write(`trial ${t.trial} ${t.op} ${t.inject.kind === 'point' ? `${t.inject.method}:${t.inject.when}` : t.inject.kind} killed=${t.killed} committed=${t.committed}${t.problems.length ? ' FAILED ' + t.problems.join('; ') : ''}\n`),
    }),
  corruption: (dir) => runCorruption({ dir, seed, flips: flag('flips', 2000), truncations: 100, zeroed: 200, catalogFlips: 300 }),
  fuzz: () => runFuzz({ seed, casesPerTarget: flag('cases', 1000) }),
  concurrency: (dir) => runConcurrency({ dir, seed, readers: flag('readers', 4), ms: flag('ms', 30000) }),
  disk: async (dir) => {
    const i = argv.indexOf('--fs');
    if (i >= 0) return runFullDisk({ fsDir: argv[i + 1], maxFree: 40 << 10, step: 512 });
    const fsDir = join(dir, 'tmpfs');
    await mkdir(fsDir);
    const unmount = mountTmpfs(fsDir, 2 << 20);
    try {
      return await runFullDisk({ fsDir, maxFree: 40 << 10, step: 512 });
    } finally {
      unmount();
    }
  },
  locks: async (dir) => {
    const writers = flag('writers', 4);
    const inProcess = await runLockRaceInProcess({ dir, trials: flag('trials', 400), writers, seed });
    const processes = await runLockRace({ dir, trials: Math.max(2, Math.round(flag('trials', 400) / 20)), writers, seed });
    return { inProcess, processes, failures: [...inProcess.failures, ...processes.failures] };
  },
  faults: (dir) => {
    const i = argv.indexOf('--ops');
    return runFaultSweep({
      dir,
      ops: i >= 0 ? argv[i + 1].split(',') : undefined,
      onTrial: (t) => t.problems.length && process.stderr.write(`${t.op} #${t.nth} ${t.fault}${t.persistent ? ' (persistent)' : ''}: ${t.outcome} ${t.code ?? ''} FAILED ${t.problems.join('; ').slice(0, 400)}\n`),
    });
  },
};

// 'all' leaves out disk (it mounts a file system).
const which = argv[0] === 'all' ? Object.keys(runs).filter((r) => r !== 'disk') : [argv[0]];
if (!which.every((w) => w in runs)) {
  console.error(`usage: tsx bench/reliability/run.ts <${Object.keys(runs).join('|')}|all> [--seed N] [--trials N] [--flips N] [--cases N]`);
  process.exit(2);
}
const out = join(dirname(fileURLToPath(import.meta.url)), 'results');
await mkdir(out, { recursive: true });
let failed = false;
for (const name of which) {
  const dir = await mkdtemp(join(tmpdir(), `tessera-reliability-${name}-`));
  try {
    const result = { run: name, seed, date: new Date().toISOString(), ...(await runs[name](dir)) };
    failed ||= result.failures.length > 0;
    await writeFile(join(out, `${name}.json`), JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
process.exitCode = failed ? 1 : 0;
