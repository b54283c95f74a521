/**
 * `npm run bench -- store [--quick] [--json]`: the foundation's figures, each with its baseline
 * from the same run.
 * - ingest: adding the zoo to a file store vs writing the same ONNX bytes raw (+ fsync); the ratio.
 * - layout sweep: stored bytes, pages and ingest time per tile shape and page size (chooses defaults).
 * - serving: batch-1 latency from the store vs onnxruntime-web on the original file; session build time.
 * - weight hand-over: inline model bytes vs externalData vs weights as feeds (latency, build time).
 */
import { mkdir, readFile, rm, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as ort from 'onnxruntime-web';
import type { BenchOptions } from './run.ts';
import { buildZoo, type Manifest } from './zoo/build.ts';
import { loadMnist } from './zoo/mnist.ts';
import { openStore, addModelFile } from '../src/node/open.ts';
import { medianLatencyMs } from './lib/serving.ts';
import { feedsSession } from './lib/feeds-mode.ts';
import { openSession } from '../src/runtime/store-session.ts';

ort.env.wasm.numThreads = 1;

async function zoo(quick: boolean): Promise<{ dir: string; manifest: Manifest }> {
  const dir = join(import.meta.dirname, 'zoo', quick ? 'tiny-models' : 'models');
  const manifest = await buildZoo({ size: quick ? 'tiny' : 'standard', dir, onProgress: (m) => console.error(m) });
  return { dir, manifest };
}

async function ingest(files: string[], tile: { rows: number; cols: number }, pageSize: number) {
  const path = join(tmpdir(), `tessera-bench-${process.pid}-${tile.rows}x${tile.cols}-${pageSize}`);
  await rm(path, { recursive: true, force: true });
  const t0 = performance.now();
  const store = await openStore(path, { create: true, tile, pageSize });
  for (const f of files) await addModelFile(store, f);
  const ms = performance.now() - t0;
  const s = store.stats();
  await store.close();
  await rm(path, { recursive: true, force: true });
  return { tile: `${tile.rows}x${tile.cols}`, pageSize, ms, logicalBytes: s.logicalBytes, storedBytes: s.storedBytes, pages: s.pages, pageBytes: s.pageBytes, dedupRatio: s.logicalBytes / s.storedBytes, pagesPerModel: s.perModel.reduce((a, m) => a + m.pages, 0) / s.models };
}

async function rawWrite(files: string[]): Promise<number> {
  const dir = join(tmpdir(), `tessera-bench-raw-${process.pid}`);
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  for (const f of files) {
    const bytes = await readFile(f);
    const h = await open(join(dir, f.split('/').pop()!), 'w');
    await h.writeFile(bytes);
    await h.sync();
    await h.close();
  }
  const ms = performance.now() - t0;
  await rm(dir, { recursive: true, force: true });
  return ms;
}

export async function run(opts: BenchOptions) {
  const { dir, manifest } = await zoo(opts.quick);
  const files = manifest.models.map((m) => join(dir, m.file));
  let totalBytes = 0;
  for (const f of files) totalBytes += (await readFile(f)).length;

  // Ingest vs raw write, alternating to share the machine's noise; best of 3.
  const rawMs: number[] = [];
  const tesseraMs: number[] = [];
  let base: Awaited<ReturnType<typeof ingest>> | null = null;
  for (let i = 0; i < 3; i++) {
    rawMs.push(await rawWrite(files));
    base = await ingest(files, { rows: 64, cols: 64 }, 1 << 20);
    tesseraMs.push(base.ms);
  }
  const raw = Math.min(...rawMs);
  const ours = Math.min(...tesseraMs);
  const ingestResult = {
    bytes: totalBytes,
    rawWriteMs: raw,
    tesseraMs: ours,
    rawMBps: totalBytes / 1e6 / (raw / 1e3),
    tesseraMBps: totalBytes / 1e6 / (ours / 1e3),
    ratio: raw / ours,
    dedupRatio: base!.dedupRatio,
    storedBytes: base!.storedBytes,
    logicalBytes: base!.logicalBytes,
  };
  console.error('ingest', ingestResult);

  const tiles = opts.quick ? [{ rows: 64, cols: 64 }] : [16, 32, 64, 128, 256].map((n) => ({ rows: n, cols: n }));
  const pageSizes = opts.quick ? [1 << 20] : [1 << 18, 1 << 20, 1 << 22];
  const layout = [];
  // A full tile of 8-byte elements must fit a page.
  for (const tile of tiles) for (const ps of pageSizes) if (tile.rows * tile.cols * 8 <= ps) layout.push(await ingest(files, tile, ps));
  console.error('layout', layout);

  // Serving: store sessions (externalData) vs the original files; and the three hand-over modes.
  const path = join(tmpdir(), `tessera-bench-serve-${process.pid}`);
  await rm(path, { recursive: true, force: true });
  const store = await openStore(path, { create: true });
  for (const f of files) await addModelFile(store, f);
  const { test } = loadMnist();
  const input = manifest.inputName;
  const serving: Record<string, number | string>[] = [];
  const sample = opts.quick ? manifest.models.slice(0, 2) : manifest.models;
  for (const m of sample) {
    const bytes = new Uint8Array(await readFile(join(dir, m.file)));
    const row: Record<string, number | string> = { model: m.name };
    let t0 = performance.now();
    const fileSession = await ort.InferenceSession.create(bytes);
    row.fileBuildMs = performance.now() - t0;
    row.fileMs = await medianLatencyMs((x) => fileSession.run(x), input, test.images);
    for (const mode of ['external', 'inline'] as const) {
      t0 = performance.now();
      const s = await openSession(store, m.name, { mode });
      row[`${mode}BuildMs`] = performance.now() - t0;
      row[`${mode}Ms`] = await medianLatencyMs((x) => s.run(x), input, test.images);
      await s.release();
    }
    t0 = performance.now();
    const f = await feedsSession(bytes);
    row.feedsBuildMs = performance.now() - t0;
    row.feedsMs = await medianLatencyMs((x) => f.session.run({ ...x, ...f.weights }), input, test.images);
    row.ratio = (row.externalMs as number) / (row.fileMs as number);
    await f.session.release();
    await fileSession.release();
    serving.push(row);
    console.error(row);
  }
  await store.close();
  await rm(path, { recursive: true, force: true });
  const mean = (k: string) => serving.reduce((a, r) => a + (r[k] as number), 0) / serving.length;
  const modes = Object.fromEntries(['file', 'external', 'inline', 'feeds'].map((k) => [k, { latencyMs: mean(`${k}Ms`), buildMs: mean(`${k}BuildMs`) }]));
  return { models: manifest.models.length, ingest: ingestResult, layout, serving, modes, storeVsFileLatencyRatio: mean('externalMs') / mean('fileMs') };
}
