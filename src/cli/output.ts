/**
 * The CLI's one output helper: everything a verb prints goes through here, so tables line up the
 * same way everywhere, JSON is always pretty-printed, and progress bars never reach a pipe.
 */
import { createRequire } from 'node:module';
import type * as CliProgress from 'cli-progress';
import type { Progress } from '../store/store.ts';

/**
 * cli-progress, required when a bar is shown on a terminal: a command whose stderr is a pipe
 * (scripts, CI, benchmarks) never loads it and its string-width / emoji-regex dependencies. A
 * require the bundler cannot follow, so it stays out of the CLI bundle (issue 12: start-up).
 */
const loadCliProgress = (): typeof CliProgress => createRequire(import.meta.url)('cli-progress');

/** One line on stdout. */
export function print(s: string): void {
  process.stdout.write(s + '\n');
}

/** A value as pretty JSON on stdout (bigints as decimal strings, so every dtype survives). */
export function printJson(v: unknown): void {
  print(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2));
}

/** A note for the person at the terminal, on stderr, so stdout stays parseable. */
export function note(s: string): void {
  process.stderr.write(`tessera: ${s}\n`);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2) : n} ${units[i]}`;
}

/**
 * An aligned table with a header and a rule: the first column (a name) is left-aligned, the
 * others (numbers) right-aligned, unless `align` says otherwise per column ('l' or 'r').
 */
export function table(head: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const side = (i: number) => align?.[i] ?? (i === 0 ? 'l' : 'r');
  const line = (r: string[]) =>
    r
      .map((c = '', i) => (side(i) === 'l' ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A progress bar on stderr, shown only on a terminal (pipes and CI stay clean). */
export function progressBar(label: string): { update(p: Progress): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const cliProgress = loadCliProgress();
  const bar = new cliProgress.SingleBar(
    { format: `${label} {phase} [{bar}] {value}/{total}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(p) {
      if (!started) {
        bar.start(p.total, p.done, { phase: p.phase });
        started = true;
      }
      bar.setTotal(p.total);
      bar.update(p.done, { phase: p.phase });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/**
 * A reader that closed our stdout (`tessera ls | head`, `tessera stats | true`) is a normal end,
 * as for git or cat: exit 0 quietly instead of dying on EPIPE with a stack trace.
 */
export function exitQuietlyOnClosedStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}
