import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openStore } from '../../src/node/open.ts';
import { mlp } from '../../tools/fixtures/onnx-builders.ts';
import { tempDir } from '../helpers.ts';

const WORKER = fileURLToPath(new URL('./memory-worker.ts', import.meta.url));
const MiB = 2 ** 20;
/** Fixed overhead allowed above the budget: allocator slack, V8 heap growth, module caches. */
export const FIXED_OVERHEAD = 48 * MiB;

async function measure(dir: string, mode: 'export' | 'pool', budget = 0) {
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', 'tsx', WORKER, JSON.stringify({ dir, mode, budget })]);
  return JSON.parse(stdout.trim()) as { baseline: number; peakGrowth: number; largestModelBytes: number; poolPeak: number };
}

test('memory: serving pages through a 2 MiB pool and exporting models stay within budget / model size plus a fixed overhead', async () => {
  const dir = await tempDir('tessera-memory-');
  try {
    const path = join(dir.path, 's');
    const store = await openStore(path, { create: true, tile: { rows: 64, cols: 64 }, pageSize: 1 << 16 });
    for (let i = 0; i < 3; i++) await store.add(`m${i}`, mlp({ inputDim: 768, hidden: 768, outputDim: 64, seed: i }));
    await store.close();
    const budget = 2 * MiB;
    const pool = await measure(path, 'pool', budget);
    assert.ok(pool.poolPeak <= budget, `pool peak ${pool.poolPeak} > budget ${budget}`);
    assert.ok(pool.peakGrowth <= budget + FIXED_OVERHEAD, `pool serving grew RSS by ${(pool.peakGrowth / MiB).toFixed(1)} MiB`);
    const exp = await measure(path, 'export');
    // Export holds the tensors and the encoded ONNX: about 2x the model, plus page reads.
    assert.ok(exp.peakGrowth <= 4 * exp.largestModelBytes + FIXED_OVERHEAD, `export grew RSS by ${(exp.peakGrowth / MiB).toFixed(1)} MiB for a ${(exp.largestModelBytes / MiB).toFixed(1)} MiB model`);
    console.log(`memory: pool budget 2 MiB -> RSS +${(pool.peakGrowth / MiB).toFixed(1)} MiB (pool peak ${(pool.poolPeak / MiB).toFixed(2)} MiB); export of ${(exp.largestModelBytes / MiB).toFixed(1)} MiB models -> RSS +${(exp.peakGrowth / MiB).toFixed(1)} MiB`);
  } finally {
    await dir.cleanup();
  }
});

test.run();
