/**
 * Every `tessera` verb, one file each (`<verb>.ts` exporting `register(program)`), in the order
 * `tessera --help` lists them. A new verb is a new file and one line here.
 */
import type { Command } from 'commander';
import * as add from './add.ts';
import * as ls from './ls.ts';
import * as info from './info.ts';
import * as stats from './stats.ts';
import * as run from './run.ts';
import * as exportVerb from './export.ts';
import * as rm from './rm.ts';
import * as compact from './compact.ts';
import * as verify from './verify.ts';
import * as gc from './gc.ts';
import * as dedup from './dedup.ts';
import * as publish from './publish.ts';
import * as serve from './serve.ts';
import * as serveBench from './serve-bench.ts';
import * as browserAssets from './browser-assets.ts';

export const VERBS: { register(program: Command): void }[] = [add, ls, info, stats, run, exportVerb, rm, compact, verify, gc, dedup, publish, browserAssets, serve, serveBench];
