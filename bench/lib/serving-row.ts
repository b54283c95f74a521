/**
 * One row of bench/serving.ts on the PP-OCRv4 rec family (one system at one budget, in a fresh
 * child, as `npm run bench -- serving --part=real` runs it), for a look at one figure:
 *   npx tsx bench/lib/serving-row.ts <tessera|baseline|baseline-web> <budget fraction> <requests>
 * Prints the row as JSON (progress on stderr).
 */
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureRow, ocrFamily } from '../serving.ts';

const [system, fraction, requests] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] ?? 64)];
if (!['tessera', 'baseline', 'baseline-web'].includes(system) || !(fraction > 0) || !(requests > 0)) {
  console.error('usage: npx tsx bench/lib/serving-row.ts <tessera|baseline|baseline-web> <budget fraction> <requests>');
  process.exit(2);
}
const work = join(tmpdir(), `tessera-serving-row-${process.pid}`);
await mkdir(work, { recursive: true });
try {
  process.env.SERVING_PROGRESS = '1';
  const family = await ocrFamily('ocr-rec', 8, work);
  console.log(JSON.stringify(await measureRow({ part: 'real', system: system as 'tessera', family, budgetFraction: fraction, requests })));
} finally {
  await rm(work, { recursive: true, force: true });
}
