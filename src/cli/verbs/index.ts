/**
 * Every `tessera` verb, one file each (`<verb>.ts` exporting `register(program)`), in the order
 * `tessera --help` lists them. A new verb is a new file and one line here.
 *
 * Verbs are imported on demand: a command loads its own verb's module and what that imports, not
 * the server, the dedup planner and the runtime of the others (the CLI bundle keeps each in its
 * own chunk, build/build.mjs). `tessera add` loaded all of them at every start (issue 12).
 */
import type { Command } from 'commander';

export interface Verb {
  register(program: Command): void;
}

export const VERBS: Readonly<Record<string, () => Promise<Verb>>> = {
  add: () => import('./add.ts'),
  ls: () => import('./ls.ts'),
  info: () => import('./info.ts'),
  stats: () => import('./stats.ts'),
  run: () => import('./run.ts'),
  export: () => import('./export.ts'),
  rm: () => import('./rm.ts'),
  compact: () => import('./compact.ts'),
  verify: () => import('./verify.ts'),
  gc: () => import('./gc.ts'),
  dedup: () => import('./dedup.ts'),
  publish: () => import('./publish.ts'),
  'browser-assets': () => import('./browser-assets.ts'),
  serve: () => import('./serve.ts'),
  'serve-bench': () => import('./serve-bench.ts'),
};

/**
 * The verbs a command line needs: the one it names, none for `--version`, or every verb
 * (`tessera --help`, `tessera help add`, a typo that wants "Did you mean ...?", no verb at all).
 */
export function verbsFor(argv: readonly string[]): Promise<Verb[]> {
  const named = argv[2];
  if ((named === '-V' || named === '--version') && argv.length === 3) return Promise.resolve([]);
  const names = named !== undefined && Object.hasOwn(VERBS, named) ? [named] : Object.keys(VERBS);
  return Promise.all(names.map((n) => VERBS[n]()));
}
