/**
 * The README's main command (`npm run demo`): builds the MNIST model zoo if it is missing, adds
 * it to ./tessera-store (the embedded default file store), and prints per model: logical vs
 * stored bytes, test accuracy served from the store vs from the original file (equal), latency.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openStore, addModelFile } from '../../src/node/open.ts';
import { formatBytes, table } from '../../src/cli/output.ts';
import { defaultOrt } from '../../src/runtime/ort.ts';
import { buildZoo } from '../zoo/build.ts';
import { loadMnist, taskLabel } from '../zoo/mnist.ts';
import { accuracyOf, medianLatencyMs } from '../lib/serving.ts';
import { openSession } from '../../src/runtime/store-session.ts';

const storePath = process.argv[2] ?? 'tessera-store';
const zooDir = join(import.meta.dirname, '..', 'zoo', 'models');

const manifest = await buildZoo({ size: 'standard', dir: zooDir, onProgress: (m) => console.error(m) });
const store = await openStore(storePath, { create: true });
try {
  for (const m of manifest.models) {
    if (store.has(m.name)) continue;
    const r = await addModelFile(store, join(zooDir, m.file));
    console.error(`added ${m.name}: ${formatBytes(r.logicalBytes)} logical, ${formatBytes(r.newBytes)} new`);
  }
  const ort = await defaultOrt();
  const { test } = loadMnist();
  const stats = store.stats();
  const rows: string[][] = [];
  for (const m of manifest.models) {
    const fromStore = await openSession(store, m.name);
    const original = await ort.InferenceSession.create(new Uint8Array(await readFile(join(zooDir, m.file))));
    const labels = Uint8Array.from(test.labels, (d) => taskLabel(m.task, d));
    const accStore = await accuracyOf((x) => fromStore.run(x), manifest.inputName, manifest.outputName, test.images, labels);
    const accFile = await accuracyOf((x) => original.run(x as any) as any, manifest.inputName, manifest.outputName, test.images, labels);
    const lat = await medianLatencyMs((x) => fromStore.run(x), manifest.inputName, test.images);
    const s = stats.perModel.find((p) => p.name === m.name)!;
    rows.push([m.name, m.task, m.derivedFrom ?? '-', formatBytes(s.logicalBytes), formatBytes(s.uniqueBytes), (accStore * 100).toFixed(2) + '%', (accFile * 100).toFixed(2) + '%', accStore === accFile ? 'yes' : 'NO', lat.toFixed(3)]);
    await fromStore.release();
    await original.release();
  }
  console.log(table(['model', 'task', 'derived from', 'logical', 'unique stored', 'acc (store)', 'acc (file)', 'equal', 'ms/inference'], rows));
  console.log(`\nstore ${storePath}: ${stats.models} models, ${formatBytes(stats.logicalBytes)} logical, ${formatBytes(stats.storedBytes)} stored (${stats.dedupRatio.toFixed(2)}x), ${stats.pages} pages of ${formatBytes(stats.pageSize)}`);
} finally {
  await store.close();
}
