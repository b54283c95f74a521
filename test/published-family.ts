/**
 * The Chromium tests' published store: members of an MLP family (tools/fixtures/family.ts; same
 * backbone seed = shared backbone blocks) added to a file store at 64 KiB pages and published, with
 * onnxruntime's outputs on each original file for one fixed batch, and a blank page to open.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openStore } from '../src/node/open.ts';
import { publishStore } from '../src/node/publish.ts';
import { defaultOrt } from '../src/runtime/ort.ts';
import { familyMember } from '../tools/fixtures/family.ts';
import { randomFloats } from '../tools/fixtures/onnx-builders.ts';

export const DIMS = { inputDim: 784, hidden: 128, outputDim: 10 };
export const BATCH = 4;

export interface PublishedFamily {
  models: Record<string, Uint8Array>;
  /** The published store's folder (`dir`/pub). */
  pub: string;
  /** The batch every test runs, [BATCH, DIMS.inputDim]. */
  x: Float32Array;
  /** Output Y of each model on x, from onnxruntime on its original file. */
  expected: Record<string, number[]>;
  /** A blank page (`dir`/page/index.html) for the static server's index. */
  index: string;
}

export async function publishedFamily(dir: string, members: Record<string, { backboneSeed: number; headSeed: number }>, title: string): Promise<PublishedFamily> {
  const models: Record<string, Uint8Array> = {};
  for (const [name, seeds] of Object.entries(members)) models[name] = familyMember({ ...DIMS, ...seeds });
  const pub = join(dir, 'pub');
  const store = await openStore(join(dir, 'store'), { create: true, pageSize: 65536 });
  for (const [name, bytes] of Object.entries(models)) await store.add(name, bytes);
  await publishStore(store, pub);
  await store.close();

  // Reference outputs: onnxruntime (web, in Node) on the original files.
  const x = randomFloats(BATCH * DIMS.inputDim, 42);
  const ort = await defaultOrt();
  const expected: Record<string, number[]> = {};
  for (const name of Object.keys(models)) {
    const s = await ort.InferenceSession.create(models[name]);
    const out = await s.run({ X: new ort.Tensor('float32', x, [BATCH, DIMS.inputDim]) });
    expected[name] = Array.from(out.Y.data as Float32Array);
  }

  await mkdir(join(dir, 'page'), { recursive: true });
  const index = join(dir, 'page', 'index.html');
  await writeFile(index, `<!doctype html><meta charset="utf-8"><title>tessera ${title}</title><body>${title}</body>`);
  return { models, pub, x, expected, index };
}
