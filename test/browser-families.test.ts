/**
 * Every zoo architecture in real Chromium (tiny zoo: MLP, CNN with Conv/MaxPool/GlobalAveragePool,
 * ViT with LayerNormalization/attention/GELU): each family published after lossless delta dedup
 * is imported into IndexedDB through the browser bundle, and every model's in-page outputs through
 * tessera equal onnxruntime's on the original .onnx file in the same page, bit for bit. The
 * delta and zstd-coded blocks that travelled stay so in IndexedDB (decoded on read, through the
 * same BlockSource and codecs as every backend: the bundle carries zstd's wasm). Fails, never skips,
 * when Chromium is missing.
 */
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { prepareDemo, repoRoot } from '../demo/prepare.ts';
import { startStaticServer } from '../demo/serve.ts';
import { launchChromium } from '../tools/fixtures/chromium.ts';
import { tempDir } from './helpers.ts';

const BATCH = 4;

test('Chromium: MLP, CNN and ViT families import with their deltas kept, and run equal to onnxruntime on the original files', async () => {
  const t0 = Date.now();
  const tmp = await tempDir();
  const { context, close } = await launchChromium();
  let server: Awaited<ReturnType<typeof startStaticServer>> | undefined;
  try {
    // @ts-expect-error a plain build script without types; importing it bundles build/out/browser/
    const bundled = import('../build/bundle-browser.mjs');
    const demo = await prepareDemo({ size: 'tiny', families: ['mlp', 'cnn', 'vit'], dir: join(tmp.path, 'demo'), log: () => {} });
    await bundled;
    const routes: Record<string, string> = { '/lib/': join(repoRoot, 'build', 'out', 'browser'), '/data/': demo.dir };
    for (const f of demo.families) {
      routes[`/${f.family}/pub/`] = f.pubLosslessDir;
      routes[`/${f.family}/onnx/`] = f.onnxDir;
    }
    server = await startStaticServer(routes, { index: join(repoRoot, 'demo', 'index.html') });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url + '/data/digits.json');
    // Base, frozen-backbone heads, a LoRA-merged or full fine-tune: the first five of each family.
    const families = demo.families.map((f) => ({
      family: f.family,
      models: f.manifest.models.slice(0, 5).map((m) => ({ name: m.name, file: m.file })),
      dims: f.family === 'mlp' ? [BATCH, 784] : [BATCH, 1, 28, 28],
    }));
    // A string, not a function: tsx would wrap named functions in a helper the page lacks.
    const results = (await page.evaluate(`(async () => {
      const t = await import('/lib/tessera.browser.mjs');
      const ort = await t.loadOrt();
      const digits = new Float32Array(await (await fetch('/data/digits.bin')).arrayBuffer());
      const out = [];
      for (const f of ${JSON.stringify(families)}) {
        const x = digits.subarray(0, f.dims.reduce((a, b) => a * b, 1));
        const remote = await t.PublishedStore.open(t.httpSource('/' + f.family + '/pub/'));
        const store = await t.openBrowserStore({ name: 'families-' + f.family, published: remote });
        const names = f.models.map((m) => m.name);
        const reports = await remote.importModels(store, names);
        const deltas = (catalog) => names.flatMap((n) => catalog.models.get(n).tensors.flatMap((tt) => Array.from(tt.blocks))).filter((id) => catalog.blocks.get(id).base !== undefined || catalog.blocks.get(id).codec !== undefined).length;
        const models = [];
        for (const m of f.models) {
          const session = await t.openSession(store, m.name);
          const got = Object.values(await session.run({ input: { data: x, dims: f.dims, dtype: 'float32' } }))[0];
          await session.release();
          const original = new Uint8Array(await (await fetch('/' + f.family + '/onnx/' + m.file)).arrayBuffer());
          const reference = await ort.InferenceSession.create(original);
          const want = (await reference.run({ input: new ort.Tensor('float32', x, f.dims) }))[reference.outputNames[0]];
          await reference.release();
          models.push({ name: m.name, got: Array.from(got.data), want: Array.from(want.data), dims: got.dims });
        }
        const verify = await store.verify();
        out.push({ family: f.family, models, publishedDeltas: deltas(remote.catalog), storedDeltas: deltas(store.catalog), bytesStored: reports.reduce((n, r) => n + r.bytesStored, 0), ok: verify.ok });
        await store.close();
      }
      return out;
    })()`)) as { family: string; models: { name: string; got: number[]; want: number[]; dims: number[] }[]; publishedDeltas: number; storedDeltas: number; ok: boolean }[];

    assert.equal(results.map((r) => r.family), ['mlp', 'cnn', 'vit']);
    for (const r of results) {
      for (const m of r.models) {
        assert.ok(m.want.length >= BATCH * 2 && m.want.every(Number.isFinite), `${r.family}/${m.name}: the reference gives ${m.want.length} finite outputs`);
        assert.equal(m.got, m.want, `${r.family}/${m.name}: in-page outputs through tessera equal onnxruntime on the original file`);
      }
      assert.ok(r.ok, `${r.family}: the imported store verifies`);
      assert.is(r.storedDeltas, r.publishedDeltas, `${r.family}: every published delta or coded block stays a delta or coded in IndexedDB`);
    }
    assert.ok(results.every((r) => r.publishedDeltas > 0), 'every family travels with deltas or coded blocks (else the path is untested here)');
    assert.equal(errors, []);
    console.error(`browser families: ${Date.now() - t0} ms; deltas and coded blocks kept ${results.map((r) => `${r.family} ${r.storedDeltas}/${r.publishedDeltas}`).join(', ')}`);
  } finally {
    await close();
    await server?.close();
    await tmp.cleanup();
  }
});

test.run();
