import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-web';
import { buildZoo } from '../bench/zoo/build.ts';
import { openStore, addModelFile } from '../src/node/open.ts';
import { parseModel } from '../src/onnx/model.ts';
import { tempDir } from './helpers.ts';
import { openSession } from '../src/runtime/store-session.ts';

ort.env.wasm.numThreads = 1;

test('the tiny zoo: heads share the backbone, every model exports bit-exact and serves identical outputs', async () => {
  const dir = await tempDir();
  try {
    const zoo = join(dir.path, 'zoo');
    const manifest = await buildZoo({ size: 'tiny', dir: zoo });
    const store = await openStore(join(dir.path, 'store'), { create: true });
    for (const m of manifest.models) await addModelFile(store, join(zoo, m.file));
    const stats = store.stats();
    const byName = new Map(stats.perModel.map((m) => [m.name, m]));
    const heads = manifest.models.filter((m) => m.name.startsWith('head-'));
    assert.ok(heads.length >= 2);
    for (const h of heads) {
      // Only the new last layer is the head's own: the backbone is stored once, with the base.
      assert.ok(byName.get(h.name)!.uniqueBytes < byName.get(h.name)!.logicalBytes * 0.1, `${h.name} shares its backbone`);
    }
    assert.ok(stats.storedBytes < stats.logicalBytes * 0.85, `dedup ${stats.dedupRatio}`);
    const x = new ort.Tensor('float32', Float32Array.from({ length: 3 * 784 }, (_, i) => ((i * 37) % 255) / 255), [3, 784]);
    for (const m of manifest.models) {
      const original = new Uint8Array(await readFile(join(zoo, m.file)));
      const exported = await store.exportModel(m.name);
      const [a, b] = [await parseModel(original), await parseModel(exported)];
      a.tensors.forEach((t, i) => assert.ok(Buffer.from(t.data).equals(Buffer.from(b.tensors[i].data)), `${m.name}/${t.name}`));
      const fromFile = await ort.InferenceSession.create(original);
      const fromStore = await openSession(store, m.name);
      const want = await fromFile.run({ [manifest.inputName]: x });
      const got = await fromStore.run({ [manifest.inputName]: x });
      assert.equal(Array.from(got[manifest.outputName].data as Float32Array), Array.from(want[manifest.outputName].data as Float32Array), m.name);
      await fromFile.release();
      await fromStore.release();
    }
    await store.close();
  } finally {
    await dir.cleanup();
  }
});

test.run();
