/**
 * `npm run bench -- browser [--quick] [--json] [--standard]`: a family of zoo models loaded into
 * real Chromium two ways, in the same page and run: tessera (published pages imported into
 * IndexedDB, only missing pages fetched) vs the baseline (each whole .onnx fetched and kept in
 * the Cache API, as transformers.js and WebLLM do). Reports bytes fetched and stored, time to
 * first inference (empty storage → first output of the first model; the wasm runtime is compiled
 * once beforehand so neither side pays it), and the origin's storage use as Chromium counts it.
 * The zoo holds real trained weights (Chromium compresses stored values: constant fills would lie).
 */
import { join } from 'node:path';
import type { BenchOptions } from './run.ts';
import { prepareDemo, repoRoot } from '../demo/prepare.ts';
import { startStaticServer } from '../demo/serve.ts';
import { launchChromium } from '../tools/fixtures/chromium.ts';

interface Side {
  bytesFetched: number;
  bytesStored: number;
  firstInferenceMs: number;
  /** Import/cache every model and run each once. */
  allModelsMs: number;
  /** Growth of navigator.storage.estimate().usage (on-disk, after Chromium's compression). */
  usageBytes: number;
}

export async function run(opts: BenchOptions): Promise<object> {
  const size = opts.args.includes('--standard') ? 'standard' : 'tiny';
  const demo = await prepareDemo({ size });
  // @ts-expect-error a plain build script without types; importing it bundles build/out/browser/
  await import('../build/bundle-browser.mjs');
  const names = demo.manifest.models.map((m) => m.name).slice(0, opts.quick ? 4 : undefined);
  const files = Object.fromEntries(demo.manifest.models.map((m) => [m.name, m.file]));
  const server = await startStaticServer(
    { '/lib/': join(repoRoot, 'build', 'out', 'browser'), '/pub/': demo.pubDir, '/pub-lossless/': demo.pubLosslessDir, '/onnx/': demo.onnxDir, '/data/': demo.dir },
    { index: join(repoRoot, 'demo', 'index.html') },
  );
  const { context, close } = await launchChromium();
  try {
    const page = await context.newPage();
    await page.goto(server.url + '/data/digits.json');
    const result = await page.evaluate(async ({ names, files }) => {
      const t = await import('/lib/tessera.browser.mjs' as string);
      const ort = await t.loadOrt();
      const digits = new Float32Array(await (await fetch('/data/digits.bin')).arrayBuffer()).subarray(0, 784);
      // (No named local functions in here: tsx would wrap them in a helper the page lacks.)
      // Compile the runtime's wasm once (same for both sides), on a model neither side stores.
      const warm = new Uint8Array(await (await fetch('/onnx/' + files[names[0]])).arrayBuffer());
      await (await ort.InferenceSession.create(warm)).run({ input: new ort.Tensor('float32', digits, [1, 784]) });

      // Baseline: whole files through the Cache API.
      const u0 = (await navigator.storage.estimate()).usage ?? 0;
      const cache = await caches.open('onnx-models');
      let fetched = 0;
      let stored = 0;
      let first = 0;
      const c0 = performance.now();
      for (const name of names) {
        const url = '/onnx/' + files[name];
        const res = await fetch(url, { cache: 'no-store' });
        const bytes = new Uint8Array(await res.clone().arrayBuffer());
        fetched += bytes.length;
        await cache.put(url, res);
        stored += bytes.length;
        const cached = new Uint8Array(await (await cache.match(url))!.arrayBuffer());
        const session = await ort.InferenceSession.create(cached);
        await session.run({ input: new ort.Tensor('float32', digits, [1, 784]) });
        if (!first) first = performance.now() - c0;
      }
      const cacheApi = { bytesFetched: fetched, bytesStored: stored, firstInferenceMs: first, allModelsMs: performance.now() - c0, usageBytes: ((await navigator.storage.estimate()).usage ?? 0) - u0 };

      // tessera: published pages into IndexedDB; exact dedup only, then with lossless deltas.
      const sides: Record<string, unknown> = {};
      const perModel = [];
      for (const [key, pub] of [['tessera', '/pub/'], ['tesseraLossless', '/pub-lossless/']]) {
        const u1 = (await navigator.storage.estimate()).usage ?? 0;
        const s0 = performance.now();
        const remote = await t.PublishedStore.open(t.httpSource(pub));
        const store = await t.openBrowserStore({ name: 'bench-' + key, published: remote });
        const catalogBytes = remote.bytesFetched;
        let tFetched = catalogBytes;
        let tStored = 0;
        let tFirst = 0;
        for (const name of names) {
          const r = await remote.importModel(store, name);
          tFetched += r.bytesFetched;
          tStored += r.bytesStored;
          const session = await t.openSession(store, name);
          await session.run({ input: { data: digits, dims: [1, 784], dtype: 'float32' } });
          if (!tFirst) tFirst = performance.now() - s0;
          if (key === 'tessera') perModel.push({ name, wholeFileBytes: r.wholeFileBytes, bytesFetched: r.bytesFetched, bytesStored: r.bytesStored, pagesFetched: r.pagesFetched, pagesRead: r.pagesRead });
        }
        const allMs = performance.now() - s0;
        await store.close();
        sides[key] = { bytesFetched: tFetched, bytesStored: tStored, firstInferenceMs: tFirst, allModelsMs: allMs, usageBytes: ((await navigator.storage.estimate()).usage ?? 0) - u1, catalogBytes };
      }
      const tessera = sides.tessera;
      const tesseraLossless = sides.tesseraLossless;
      return { tessera, tesseraLossless, cacheApi, perModel };
    }, { names, files });

    const tessera = result.tessera as Side & { catalogBytes: number };
    const cacheApi = result.cacheApi as Side;
    const tesseraLossless = result.tesseraLossless as Side & { catalogBytes: number };
    const ratio = (a: number, b: number) => (b ? Number((a / b).toFixed(3)) : null);
    const out = {
      models: names,
      zoo: size,
      tessera,
      tesseraLossless,
      cacheApi,
      losslessRatios: {
        bytesFetched: ratio(tesseraLossless.bytesFetched, cacheApi.bytesFetched),
        bytesStored: ratio(tesseraLossless.bytesStored, cacheApi.bytesStored),
      },
      ratios: {
        bytesFetched: ratio(tessera.bytesFetched, cacheApi.bytesFetched),
        bytesStored: ratio(tessera.bytesStored, cacheApi.bytesStored),
        usageBytes: ratio(tessera.usageBytes, cacheApi.usageBytes),
        firstInferenceMs: ratio(tessera.firstInferenceMs, cacheApi.firstInferenceMs),
      },
      perModel: result.perModel,
      notes: 'Exact block dedup: frozen-backbone heads share all but their last layer; full fine-tunes and scratch models change every weight and share nothing exactly. tessera.bytesFetched includes the index and catalog. tesseraLossless: the same store after lossless delta dedup (bit-exact, not compacted, so every model keeps its deltas on its own pages): near-duplicate fine-tunes travel as compressed deltas; the importer stores blocks decoded, so stored bytes do not shrink.',
    };
    console.error(`browser: ${names.length} models; fetched ${tessera.bytesFetched} vs ${cacheApi.bytesFetched} bytes (x${out.ratios.bytesFetched}), stored ${tessera.bytesStored} vs ${cacheApi.bytesStored}, first inference ${tessera.firstInferenceMs.toFixed(1)} vs ${cacheApi.firstInferenceMs.toFixed(1)} ms`);
    return out;
  } finally {
    await close();
    await server.close();
  }
}
