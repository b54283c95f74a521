/**
 * Everything the browser demo and benchmark serve: zoo families (tiny by default; the MLP family
 * unless others are asked for), each added to its own file store and published as static files
 * (as added, and again after lossless delta dedup), the whole .onnx files beside them (the
 * baseline a whole-file cache downloads), and some MNIST test digits for in-page inference.
 */
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildFamilies, zooTestSplit, type FamilyName, type Manifest, type ZooSize } from '../bench/zoo/build.ts';
import { openStore } from '../src/node/open.ts';
import { folderSource, publishStore, type PublishReport } from '../src/node/publish.ts';
import { importModels } from '../src/store/published.ts';
import { dedupLossless } from '../src/dedup/planner.ts';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Small pages, so a model spans many and a relative fetches only the ones it does not share. */
export const DEMO_PAGE_SIZE = 64 * 1024;
export const DEMO_DIGITS = 64;

/** One family, published. */
export interface PreparedFamily {
  family: FamilyName;
  manifest: Manifest;
  pubDir: string;
  onnxDir: string;
  publish: PublishReport;
  /** The same store after lossless delta dedup (bit-exact), published beside. */
  pubLosslessDir: string;
  publishLossless: PublishReport;
}

export interface PreparedDemo extends Omit<PreparedFamily, 'family'> {
  dir: string;
  /** Every family prepared; the fields above are the first one's (the demo page shows it). */
  families: PreparedFamily[];
}

export interface PrepareOptions {
  size?: ZooSize;
  /** Families to prepare (default: the MLP family). */
  families?: readonly FamilyName[];
  dir?: string;
  /** Page size of the published stores (default DEMO_PAGE_SIZE). */
  pageSize?: number;
  log?: (m: string) => void;
}

export async function prepareDemo(opts: PrepareOptions = {}): Promise<PreparedDemo> {
  const size = opts.size ?? 'tiny';
  const log = opts.log ?? ((m: string) => console.error(m));
  const dir = opts.dir ?? join(repoRoot, '.tmp', `browser-demo-${size}`);
  const zooDir = join(repoRoot, 'bench', 'zoo', size === 'tiny' ? 'tiny-models' : 'models');
  log(`zoo (${size}) in ${zooDir} (built on first use, reused after)`);
  const built = await buildFamilies({ size, dir: zooDir, families: opts.families ?? ['mlp'], onProgress: (m) => log(`  ${m}`) });

  await rm(dir, { recursive: true, force: true });
  const families: PreparedFamily[] = [];
  for (const { family, dir: familyZoo, manifest } of built) {
    // The MLP family at the root (the demo page's paths), others in a folder each.
    const out = family === 'mlp' ? dir : join(dir, family);
    const onnxDir = join(out, 'onnx');
    await mkdir(onnxDir, { recursive: true });
    const store = await openStore(join(out, 'store'), { create: true, pageSize: opts.pageSize ?? DEMO_PAGE_SIZE });
    try {
      for (const m of manifest.models) {
        await copyFile(join(familyZoo, m.file), join(onnxDir, m.file));
        await store.add(m.name, new Uint8Array(await readFile(join(familyZoo, m.file))));
      }
      const publish = await publishStore(store, join(out, 'pub'));
      log(`${family}: published ${publish.models} models: ${publish.pages} pages, ${publish.bytes} bytes vs ${publish.wholeFileBytes} as whole files`);
      // Lossless delta dedup leaves the replaced blocks' bytes dead on pages that keep other live
      // blocks, and an import fetches whole pages. Compaction would pack blocks of several models
      // together (an import of one would fetch the others'); an import into a fresh store writes
      // each model's blocks onto pages of its own instead, deltas kept: that store is published.
      await dedupLossless(store);
      await publishStore(store, join(out, 'deltas'));
      const relaid = await openStore(join(out, 'store-lossless'), { create: true, pageSize: opts.pageSize ?? DEMO_PAGE_SIZE, tile: store.config.tile });
      let publishLossless: PublishReport;
      try {
        await importModels(relaid, folderSource(join(out, 'deltas')));
        publishLossless = await publishStore(relaid, join(out, 'pub-lossless'));
      } finally {
        await relaid.close();
      }
      await rm(join(out, 'deltas'), { recursive: true, force: true });
      log(`${family}: published with lossless deltas: ${publishLossless.pages} pages, ${publishLossless.bytes} bytes`);
      families.push({ family, manifest, pubDir: join(out, 'pub'), onnxDir, publish, pubLosslessDir: join(out, 'pub-lossless'), publishLossless });
    } finally {
      await store.close();
    }
  }
  const test = zooTestSplit(size);
  const n = Math.min(DEMO_DIGITS, test.n);
  await writeFile(join(dir, 'digits.bin'), new Uint8Array(test.images.buffer, test.images.byteOffset, n * 784 * 4));
  await writeFile(join(dir, 'digits.json'), JSON.stringify({ n, labels: Array.from(test.labels.subarray(0, n)) }));
  const { family: _, ...first } = families[0];
  await writeFile(join(dir, 'zoo.json'), JSON.stringify(first.manifest, null, 2));
  return { dir, families, ...first };
}
