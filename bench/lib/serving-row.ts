/** One row of bench/serving.ts (one system at one budget on the PP-OCRv4 rec family, in a fresh child):
 *   npx tsx bench/lib/serving-row.ts <tessera|baseline|baseline-web> <budget fraction> <requests>
 * Expects the family in bench/zoo/cache/ocr-rec (written by `npm run bench -- serving`). */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { openStore } from '../../src/node/open.ts';
const [system, fraction, requests] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const dir = join(import.meta.dirname, '..', 'zoo', 'cache', 'ocr-rec');
const files = readdirSync(dir).filter((f) => f.endsWith('.onnx')).sort();
const storeDir = join(tmpdir(), 'tessera-ocr-store');
let total = 0; for (const f of files) total += statSync(join(dir, f)).size;
try { statSync(storeDir); } catch {
  const store = await openStore(storeDir, { create: true, pageSize: 256 * 1024 });
  const { readFile } = await import('node:fs/promises');
  for (const f of files) await store.add(f.slice(0, -5), new Uint8Array(await readFile(join(dir, f))));
  await store.close();
}
const family = { name: 'ocr-rec', storeDir, fileDir: dir, models: files.map((f) => f.slice(0, -5)), totalBytes: total, storedBytes: 0, input: { name: 'x', dims: [1, 3, 48, 320] } };
const cfg = { system, family, budgetBytes: Math.floor(fraction * total), budgetFraction: fraction, requests, warmup: Math.floor(requests / 8), ort: system === 'baseline-web' ? 'web' : 'node', residentCheck: fraction === 1 };
const r = spawnSync('nice', ['-n', '10', process.execPath, '--import', 'tsx', join(import.meta.dirname, '..', 'serving.ts'), '--serving-child', JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', env: { ...process.env, SERVING_PROGRESS: '1' } });
console.log(r.stdout);
