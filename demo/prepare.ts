/**
 * Everything the browser demo and benchmark serve: the zoo (tiny by default) added to a file
 * store and published as static files, the whole .onnx files beside it (the baseline a
 * whole-file cache downloads), and some MNIST test digits for in-page inference.
 */
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildZoo, zooTestSplit, type Manifest, type ZooSize } from '../bench/zoo/build.ts';
import { openStore } from '../src/node/open.ts';
import { publishStore, type PublishReport } from '../src/node/publish.ts';
import { dedupLossless } from '../src/dedup/planner.ts';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Small pages, so a model spans many and a relative fetches only the ones it does not share. */
export const DEMO_PAGE_SIZE = 64 * 1024;
export const DEMO_DIGITS = 64;

export interface PreparedDemo {
  dir: string;
  pubDir: string;
  onnxDir: string;
  manifest: Manifest;
  publish: PublishReport;
  /** The same store after lossless delta dedup (bit-exact), published beside. */
  pubLosslessDir: string;
  publishLossless: PublishReport;
}

export async function prepareDemo(opts: { size?: ZooSize; dir?: string; log?: (m: string) => void } = {}): Promise<PreparedDemo> {
  const size = opts.size ?? 'tiny';
  const log = opts.log ?? ((m: string) => console.error(m));
  const dir = opts.dir ?? join(repoRoot, '.tmp', `browser-demo-${size}`);
  const zooDir = join(repoRoot, 'bench', 'zoo', size === 'tiny' ? 'tiny-models' : 'models');
  log(`zoo (${size}) in ${zooDir} (built on first use, reused after)`);
  const manifest = await buildZoo({ size, dir: zooDir, onProgress: (m) => log(`  ${m}`) });

  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'onnx'), { recursive: true });
  const store = await openStore(join(dir, 'store'), { create: true, pageSize: DEMO_PAGE_SIZE });
  try {
    for (const m of manifest.models) {
      await copyFile(join(zooDir, m.file), join(dir, 'onnx', m.file));
      await store.add(m.name, new Uint8Array(await readFile(join(zooDir, m.file))));
    }
    const publish = await publishStore(store, join(dir, 'pub'));
    log(`published ${publish.models} models: ${publish.pages} pages, ${publish.bytes} bytes vs ${publish.wholeFileBytes} as whole files`);
    // No compaction: each model's delta blocks stay on its own pages, so an import reads only them.
    await dedupLossless(store);
    const publishLossless = await publishStore(store, join(dir, 'pub-lossless'));
    log(`published with lossless deltas: ${publishLossless.pages} pages, ${publishLossless.bytes} bytes`);
    const test = zooTestSplit(size);
    const n = Math.min(DEMO_DIGITS, test.n);
    await writeFile(join(dir, 'digits.bin'), new Uint8Array(test.images.buffer, test.images.byteOffset, n * 784 * 4));
    await writeFile(join(dir, 'digits.json'), JSON.stringify({ n, labels: Array.from(test.labels.subarray(0, n)) }));
    await writeFile(join(dir, 'zoo.json'), JSON.stringify(manifest, null, 2));
    return { dir, pubDir: join(dir, 'pub'), onnxDir: join(dir, 'onnx'), manifest, publish, pubLosslessDir: join(dir, 'pub-lossless'), publishLossless };
  } finally {
    await store.close();
  }
}
