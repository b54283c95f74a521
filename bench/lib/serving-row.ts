/**
 * One row of bench/serving.ts (one system at one budget, in a fresh child, as
 * `npm run bench -- serving` runs it) on the PP-OCRv4 rec family (default) or one of the zoo's
 * families, for a look at one figure:
 *   npx tsx bench/lib/serving-row.ts <tessera|baseline|baseline-web> <budget fraction> <requests> [ocr-rec|ocr-rec-scale|mlp|cnn|vit]
 * Prints the row as JSON (progress on stderr).
 */
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureRow, ocrFamily, zooFamilies } from '../serving.ts';

const [system, fraction, requests, familyName] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] ?? 64), process.argv[5] ?? 'ocr-rec'];
if (!['tessera', 'baseline', 'baseline-web'].includes(system) || !(fraction > 0) || !(requests > 0) || !['ocr-rec', 'ocr-rec-scale', 'mlp', 'cnn', 'vit'].includes(familyName)) {
  console.error('usage: npx tsx bench/lib/serving-row.ts <tessera|baseline|baseline-web> <budget fraction> <requests> [ocr-rec|ocr-rec-scale|mlp|cnn|vit]');
  process.exit(2);
}
const work = join(tmpdir(), `tessera-serving-row-${process.pid}`);
await mkdir(work, { recursive: true });
try {
  process.env.SERVING_PROGRESS = '1';
  // ocr-rec: the real part's 8 variants; ocr-rec-scale: the scale part's 96.
  const family = familyName.startsWith('ocr-rec') ? await ocrFamily(familyName, familyName === 'ocr-rec' ? 8 : 96, work) : (await zooFamilies(work, [familyName as 'cnn']))[0];
  const part = familyName === 'ocr-rec' ? 'real' : familyName === 'ocr-rec-scale' ? 'scale' : 'zoo';
  console.log(JSON.stringify(await measureRow({ part, system: system as 'tessera', family, budgetFraction: fraction, requests })));
} finally {
  await rm(work, { recursive: true, force: true });
}
