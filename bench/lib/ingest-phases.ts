/**
 * Ingest of one large model, phase by phase, against `cp` + `sync` of the same file in the same
 * run (issue 12, finding 4). In the process: the whole-file read (what ingest no longer does, for
 * reference), the structure read with weights skipped, parse, the weight reads into ingest's wasm
 * memory, the kernel's cut there, hash (each alone, as ingest runs them), then a whole `addModelFile` into a file
 * store with its own marks (structure read, parse, dedup + weights read + pages written as they
 * fill, commit). End to end: `tessera add` as a user runs it (the built CLI), with its peak RSS
 * from the child process itself. Best of `runs` for times, worst for memory.
 */
import { spawnSync } from 'node:child_process';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseModel } from '../../src/onnx/model.ts';
import { claimDeferred, readSkippingWeights, type ReadAt } from '../../src/onnx/sparse-read.ts';
import { gridOf, tileExtent } from '../../src/blocks/tiling.ts';
import { IngestMemory } from '../../src/store/ingest-kernel.ts';
import { DTYPES } from '../../src/onnx/dtypes.ts';
import { hash64Hex } from '../../src/hash.ts';
import { DEFAULT_TILE } from '../../src/store/store.ts';
import { openStore, addModelFile } from '../../src/node/open.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const MiB = 2 ** 20;

function sh(cmd: string, args: string[]): { ms: number; stderr: string } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { ms, stderr: r.stderr };
}

/** `cp` then `sync` of the copy (coreutils sync FILE fsyncs that file only). */
function cpSync(file: string, dst: string): number {
  return sh('sh', ['-c', `cp "$0" "$1" && sync "$1"`, file, dst]).ms;
}

async function inProcess(file: string, storeDir: string) {
  const T = () => performance.now();
  let t = T();
  await readFile(file);
  const wholeReadMs = T() - t;
  const h = await open(file, 'r');
  const readAt: ReadAt = async (into, position) => {
    for (let done = 0; done < into.length; ) done += (await h.read(into, done, into.length - done, position + done)).bytesRead;
  };
  t = T();
  const sparse = (await readSkippingWeights((await h.stat()).size, readAt))!;
  const structureReadMs = T() - t;
  t = T();
  const parsed = await parseModel(sparse.bytes);
  const parseMs = T() - t;
  const ranges = claimDeferred(sparse, parsed.tensors.map((x) => x.data))!;
  // Weights read, cut and hashed as ingest does: one tensor at a time, read into ingest's wasm
  // memory (IngestMemory) and cut there by its kernel onto consecutive room, blocks hashed where
  // they lie. (Cutting with tiling.ts cutTensor into an ordinary scratch buffer instead, as this
  // bench did before, measured a path ingest does not take for weights: 99 ms for IS-Net's 88 MB
  // of 64-wide fp16 tiles, 128-byte rows at ~145 ns each, against ~10-20 ms through the kernel.)
  let weightReadMs = 0;
  let cutMs = 0;
  let hashMs = 0;
  const largest = Math.max(0, ...parsed.tensors.map((x) => x.data.length));
  const memory = new IngestMemory();
  if (!memory.reserve(2 * largest + 64)) throw new Error(`bench: ingest's wasm memory cannot hold 2 x ${largest} bytes`);
  const room = new Uint8Array(memory.buffer, memory.base, 2 * largest + 64);
  const weights = room.subarray(0, largest);
  const cuts = room.subarray(Math.ceil(largest / 64) * 64); // 64-byte aligned, as page payloads are
  for (const [k, x] of parsed.tensors.entries()) {
    const r = ranges[k];
    const data = weights.subarray(0, x.data.length);
    t = T();
    if (r) await readAt(data, r.offset);
    else data.set(x.data);
    weightReadMs += T() - t;
    const es = DTYPES[x.dtype].bytes;
    const grid = gridOf(x.dims, DEFAULT_TILE);
    const rowBytes = grid.cols * es;
    const blocks: Uint8Array[] = new Array(grid.count);
    t = T();
    for (let i = 0, used = 0; i < grid.count; i++) {
      const { r0, c0, h: rows, w } = tileExtent(grid, DEFAULT_TILE, i);
      if (w === grid.cols) blocks[i] = data.subarray(r0 * rowBytes, (r0 + rows) * rowBytes);
      else memory.cut(data, r0 * rowBytes + c0 * es, rowBytes, w * es, rows, (blocks[i] = cuts.subarray(used, (used += rows * w * es))));
    }
    cutMs += T() - t;
    t = T();
    for (const b of blocks) hash64Hex(b);
    hashMs += T() - t;
  }
  await h.close();

  await rm(storeDir, { recursive: true, force: true });
  const store = await openStore(storeDir, { create: true });
  const marks = new Map<string, number>();
  t = T();
  await addModelFile(store, file, { name: 'model', onProgress: (p) => { if (!marks.has(p.phase)) marks.set(p.phase, T() - t); } });
  const addMs = T() - t;
  await store.close();
  const at = (phase: string) => marks.get(phase) ?? addMs;
  return {
    wholeReadMs, structureReadMs, parseMs, weightReadMs, cutMs, hashMs, addMs,
    // Phases of the add itself: the structure read until the parse mark, the parse until the
    // dedup mark, then weights read, cut, hashed, deduplicated and written as pages fill until the
    // commit mark, then the commit (pages fsynced, catalog record appended).
    add: { structureReadMs: at('parse'), parseMs: at('dedup') - at('parse'), weightsCutHashDedupPagesMs: at('commit') - at('dedup'), commitMs: addMs - at('commit') },
  };
}

function cliAdd(file: string, storeDir: string): { ms: number; maxRssBytes: number } {
  const r = sh(process.execPath, ['--import', join(ROOT, 'bench/lib/report-rss.mjs'), join(ROOT, 'bin/tessera.js'), 'add', storeDir, file, '--name', 'model']);
  const line = r.stderr.trim().split('\n').pop()!;
  return { ms: r.ms, maxRssBytes: JSON.parse(line).maxRssBytes };
}

function nodeStartup(): number {
  return sh(process.execPath, ['-e', '0']).ms;
}

export async function ingestPhases(file: string, label: string, runs: number) {
  const bytes = (await stat(file)).size;
  const dir = join(tmpdir(), `tessera-bench-phases-${process.pid}`);
  const best: Record<string, number> = {};
  let phases: Awaited<ReturnType<typeof inProcess>> | null = null;
  let worstRss = 0;
  const keep = (k: string, v: number) => (best[k] = Math.min(best[k] ?? Infinity, v));
  for (let i = 0; i < runs; i++) {
    // Alternate baseline and tessera so both see the same machine noise.
    keep('cpSyncMs', cpSync(file, `${dir}-copy.onnx`));
    await rm(`${dir}-copy.onnx`, { force: true });
    const p = await inProcess(file, `${dir}-store`);
    if (!phases || p.addMs < phases.addMs) phases = p;
    await rm(`${dir}-cli`, { recursive: true, force: true });
    const cli = cliAdd(file, `${dir}-cli`);
    keep('cliMs', cli.ms);
    worstRss = Math.max(worstRss, cli.maxRssBytes);
    keep('nodeStartupMs', nodeStartup());
  }
  await rm(`${dir}-store`, { recursive: true, force: true });
  await rm(`${dir}-cli`, { recursive: true, force: true });
  // addModelFile reads the file itself (structure, then each weight in its turn).
  const inProcessMs = phases!.addMs;
  const rssBudget = 1.5 * bytes + 64 * MiB;
  const result = {
    model: label,
    bytes,
    cpSyncMs: best.cpSyncMs,
    phases: phases!,
    inProcessMs,
    inProcessVsCpSync: inProcessMs / best.cpSyncMs,
    cliMs: best.cliMs,
    nodeStartupMs: best.nodeStartupMs,
    cliVsCpSync: best.cliMs / best.cpSyncMs,
    cliMaxRssBytes: worstRss,
    rssBudgetBytes: rssBudget,
    rssVsBudget: worstRss / rssBudget,
    rssVsFile: worstRss / bytes,
    goals: { cliWithin5x: best.cliMs <= 5 * best.cpSyncMs, inProcessWithin2x: inProcessMs <= 2 * best.cpSyncMs, rssWithinBudget: worstRss <= rssBudget },
  };
  console.error('ingest phases', result);
  return result;
}
