/**
 * End to end in real Chromium (Debian's chromium via playwright-core, fresh profile, pages on
 * 127.0.0.1): the browser bundle imports two related models from a published store, the second
 * fetching only its new pages; in-page outputs equal onnxruntime's in Node; an interrupted import
 * and a full quota leave stored models servable; and the PageStore conformance suite passes
 * against Chromium's IndexedDB. Fails (never skips) when Chromium is missing.
 */
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as esbuild from 'esbuild';
import { startStaticServer } from '../demo/serve.ts';
import { launchChromium } from '../tools/fixtures/chromium.ts';
import { tempDir } from './helpers.ts';
import { BATCH, DIMS, publishedFamily } from './published-family.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The conformance suite bundled for the page; node: imports (test helpers' temp folders) stubbed. */
async function bundleConformance(outDir: string): Promise<void> {
  await esbuild.build({
    stdin: {
      contents: `
        import { exec } from 'uvu';
        import { openDB } from 'idb';
        import { pageStoreConformance, storeBehaviour } from './test/store-conformance.ts';
        import { IdbPageStore } from './src/browser/idb-store.ts';
        let n = 0;
        pageStoreConformance('indexeddb (Chromium)', async (pageSize) => {
          const name = 'conformance-' + (++n);
          let store = await IdbPageStore.open(name, { pageSize });
          return {
            store,
            reopen: async () => { await store.close(); store = await IdbPageStore.open(name, { create: false }); return store; },
            openWriter: () => IdbPageStore.open(name, { create: false }),
            openReader: () => IdbPageStore.open(name, { readOnly: true }),
            flipBit: async (id, bit) => {
              await store.flush(); // a page written since the last commit is held in memory until then
              const db = await openDB(name);
              const sealed = new Uint8Array(await db.get('pages', id));
              const used = 32 + new DataView(sealed.buffer).getUint32(12, true);
              const b = bit % (used * 8);
              sealed[b >> 3] ^= 1 << (b & 7);
              await db.put('pages', sealed, id);
              db.close();
            },
            cleanup: async () => { await store.close(); await IdbPageStore.destroy(name); },
          };
        });
        // Store-level behaviour (add, export, rm, compact, verify, dedup, recovery) on Chromium's IndexedDB.
        storeBehaviour('indexeddb (Chromium)', async () => {
          const name = 'behaviour-' + (++n);
          const h = {
            backend: await IdbPageStore.open(name, { pageSize: 8192 }),
            reopen: async () => { await h.backend.close(); return IdbPageStore.open(name, { create: false }); },
            cleanup: async () => { await h.backend.close(); await IdbPageStore.destroy(name); },
          };
          return h;
        });
        export { exec };`,
      resolveDir: root,
      sourcefile: 'conformance-entry.ts',
      loader: 'ts',
    },
    outfile: join(outDir, 'conformance.mjs'),
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    logLevel: 'error',
    plugins: [{
      name: 'stub-node',
      setup(b) {
        b.onResolve({ filter: /^node:/ }, (a) => ({ path: a.path, namespace: 'stub' }));
        b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
      },
    }],
  });
  // The lossless block codec's zstd wasm, fetched from beside the bundle (as build/bundle-browser.mjs places it).
  await copyFile(join(root, 'node_modules', '@bokuweb', 'zstd-wasm', 'dist', 'web', 'zstd.wasm'), join(outDir, 'zstd.wasm'));
}

test('Chromium: import a family, fetch only new pages, same outputs as Node, failures keep models servable, conformance', async () => {
  const t0 = Date.now();
  const { context, close } = await launchChromium();
  const tmp = await tempDir();
  let server: Awaited<ReturnType<typeof startStaticServer>> | undefined;
  try {
    // @ts-expect-error a plain build script without types; importing it bundles build/out/browser/
    const bundled = import('../build/bundle-browser.mjs');
    const conformance = bundleConformance(join(tmp.path, 't'));

    // Published store: a and b share a backbone (different heads); d is unrelated.
    const { pub, x, expected, index } = await publishedFamily(tmp.path, { a: { backboneSeed: 5, headSeed: 1 }, b: { backboneSeed: 5, headSeed: 2 }, d: { backboneSeed: 9, headSeed: 3 } }, 'e2e');
    await Promise.all([bundled, conformance]);
    server = await startStaticServer(
      { '/lib/': join(root, 'build', 'out', 'browser'), '/pub/': pub, '/t/': join(tmp.path, 't') },
      { index },
    );
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    // Chromium applies a quota override only if set before the origin opens its storage (so before
    // the page loads): room for a and b (~420 kB with the storage's overhead), not for d as well
    // (~410 kB more).
    const cdp = await context.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url, quotaSize: 640_000 });
    await page.goto(server.url + '/');

    // 1. Two related models; then inference on both.
    const first = await page.evaluate(async ({ xs, batch, inputDim }) => {
      const t = await import('/lib/tessera.browser.mjs' as string);
      const remote = await t.PublishedStore.open(t.httpSource('/pub/'));
      const store = await t.openBrowserStore({ name: 'e2e', published: remote });
      const reports = [];
      // Into IndexedDB pages (the older layout, `repack`), so that step 3's quota check counts their
      // bytes: Chromium's IndexedDB keeps its own view of the space left, which bytes written
      // through the Cache API (pages kept as published) do not update. d comes in as published.
      for (const name of ['a', 'b']) reports.push({ ...(await remote.importModel(store, name, { repack: true })), plan: remote.plan(store, name) });
      const outputs: Record<string, number[]> = {};
      for (const name of ['a', 'b']) {
        const session = await t.openSession(store, name);
        const out = await session.run({ X: { data: new Float32Array(xs), dims: [batch, inputDim], dtype: 'float32' } });
        outputs[name] = Array.from(out.Y.data as Float32Array);
      }
      const pagesRead = { a: store.pagesOf('a').length, b: store.pagesOf('b').length };
      const estimate = await t.storageEstimate();
      await store.close();
      return { reports, outputs, pagesRead, estimate, published: remote.index.models };
    }, { xs: Array.from(x), batch: BATCH, inputDim: DIMS.inputDim });

    const [ra, rb] = first.reports;
    const pubA = first.published.find((m: { name: string }) => m.name === 'a')!;
    assert.is(ra.status, 'imported');
    assert.is(ra.pagesFetched, pubA.pages, 'a fetches every page it reads');
    assert.is(ra.bytesFetched, pubA.pageBytes);
    assert.is(rb.status, 'imported');
    assert.ok(rb.pagesFetched >= 1 && rb.pagesFetched < rb.pagesRead, `b fetched ${rb.pagesFetched} of ${rb.pagesRead} pages`);
    // b's only new blocks are its head: W2 [128, 10] and b2 [10], on one page.
    assert.is(rb.pagesFetched, 1);
    assert.is(rb.newBlocks, 3);
    assert.ok(rb.bytesFetched < 8 * 1024, `b fetched ${rb.bytesFetched} bytes`);
    assert.equal(first.outputs.a, expected.a, 'a: in-page outputs equal Node');
    assert.equal(first.outputs.b, expected.b, 'b: in-page outputs equal Node');
    assert.ok(first.estimate && first.estimate.usage > 0 && first.estimate.quota > first.estimate.usage);

    // 2. An import cut off mid-way (connection resets after 3 pages, retries included) stores nothing.
    let pageRequests = 0;
    await context.route('**/pub/pages/**', (route) => (++pageRequests > 3 ? route.abort('connectionreset') : route.continue()));
    const cut = await page.evaluate(async () => {
      const t = await import('/lib/tessera.browser.mjs' as string);
      const store = await t.openBrowserStore({ name: 'e2e' });
      const before = store.catalog.pages.size;
      let error = null;
      try {
        await t.importFromUrl(store, '/pub/', ['d']);
      } catch (e) {
        error = { code: (e as { code?: string }).code, message: (e as Error).message };
      }
      const models = store.listModels();
      const verify = await store.verify();
      const pages = store.catalog.pages.size;
      await store.close();
      // Pages adopted for the import that did not commit are gone from the Cache API too.
      const cached = (await (await caches.open('tessera-pages:e2e')).keys()).length;
      return { error, models, ok: verify.ok, leaked: verify.leakedPages, before, pages, cached };
    });
    await context.unrouteAll();
    assert.is(cut.error?.code, 'IO_ERROR', JSON.stringify(cut.error));
    assert.match(cut.error!.message, /Nothing was stored/);
    assert.equal(cut.models, ['a', 'b']);
    assert.ok(cut.ok);
    assert.equal(cut.leaked, []);
    assert.is(cut.pages, cut.before, 'the catalog is as before the import');
    assert.is(cut.cached, 0, 'no page of the failed import is left in the Cache API (a and b are in IndexedDB pages)');

    // 3. Storage full (the quota set above): Chromium's own QuotaExceededError. Through IndexedDB
    // (repack): Chromium's Cache API does not always refuse a streamed put past the quota (its
    // size is not known when the put starts; seen here in about half the runs), so only this
    // path fails deterministically. A refused adopted page cleans up as the cut-off import did.
    const full = await page.evaluate(async ({ xs, batch, inputDim }) => {
      const t = await import('/lib/tessera.browser.mjs' as string);
      const store = await t.openBrowserStore({ name: 'e2e' });
      let error = null;
      try {
        await t.importFromUrl(store, '/pub/', ['d'], { repack: true });
      } catch (e) {
        error = { code: (e as { code?: string }).code, message: (e as Error).message };
      }
      const models = store.listModels();
      const session = await t.openSession(store, 'a');
      const out = await session.run({ X: { data: new Float32Array(xs), dims: [batch, inputDim], dtype: 'float32' } });
      await store.close();
      return { error, models, a: Array.from(out.Y.data as Float32Array) };
    }, { xs: Array.from(x), batch: BATCH, inputDim: DIMS.inputDim });
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url });
    assert.is(full.error?.code, 'QUOTA_EXCEEDED', JSON.stringify(full.error));
    assert.match(full.error!.message, /quota/);
    assert.equal(full.models, ['a', 'b']);
    assert.equal(full.a, expected.a, 'a still serves the same outputs after the failed import');

    // 4. With the quota lifted, d imports whole and runs.
    const retry = await page.evaluate(async ({ xs, batch, inputDim }) => {
      const t = await import('/lib/tessera.browser.mjs' as string);
      const store = await t.openBrowserStore({ name: 'e2e' });
      const [r] = await t.importFromUrl(store, '/pub/', ['d']);
      const out = await (await t.openSession(store, 'd')).run({ X: { data: new Float32Array(xs), dims: [batch, inputDim], dtype: 'float32' } });
      const verify = await store.verify();
      await store.close();
      return { status: r.status, d: Array.from(out.Y.data as Float32Array), ok: verify.ok, leaked: verify.leakedPages };
    }, { xs: Array.from(x), batch: BATCH, inputDim: DIMS.inputDim });
    assert.is(retry.status, 'imported');
    assert.equal(retry.d, expected.d);
    assert.ok(retry.ok);
    assert.equal(retry.leaked, []);

    // 5. The layouts: a and b were imported into IndexedDB pages (repack), d kept as published in
    // the Cache API; both read back after reopening, readPageInto as readPage. A store of adopted
    // pages only has none in IndexedDB; an adopted page damaged in storage, with healing off, is
    // PAGE_CORRUPT when read.
    // A string, not a function: tsx would wrap the named helpers in one the page lacks.
    const layout = (await page.evaluate(`(async ({ xs, batch, inputDim }) => {
      const t = await import('/lib/tessera.browser.mjs');
      const idbPages = async (name) => {
        const db = await new Promise((ok, fail) => { const r = indexedDB.open(name); r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
        const n = await new Promise((ok) => { const q = db.transaction('pages').objectStore('pages').count(); q.onsuccess = () => ok(q.result); });
        db.close();
        return n;
      };
      const cached = async (name) => (await caches.open('tessera-pages:' + name)).keys();
      const run = async (store, name) => {
        const session = await t.openSession(store, name);
        const out = await session.run({ X: { data: new Float32Array(xs), dims: [batch, inputDim], dtype: 'float32' } });
        await session.release();
        return Array.from(out.Y.data);
      };
      const store = await t.openBrowserStore({ name: 'e2e' });
      const keys = await cached('e2e');
      const pid = Number(keys[0].url.split('/')[3]);
      const epoch = store.catalog.pages.get(pid).epoch;
      const whole = await store.backend.readPage(pid, epoch);
      const into = await store.backend.readPageInto(pid, new Uint8Array(32 + store.config.pageSize), epoch);
      const mixed = { referenced: store.catalog.pages.size, cached: keys.length, idb: await idbPages('e2e'), sameInto: whole.length > 0 && whole.length === into.length && whole.every((v, i) => v === into[i]), a: await run(store, 'a'), d: await run(store, 'd') };
      await store.close();

      const remote = await t.PublishedStore.open(t.httpSource('/pub/'));
      const dmg = await t.openBrowserStore({ name: 'e2e-damaged', published: remote });
      await remote.importModels(dmg, ['a']);
      const victim = dmg.catalog.blocks.get(dmg.model('a').tensors[0].blocks[0]).page;
      const adopted = { referenced: dmg.catalog.pages.size, cached: (await cached('e2e-damaged')).length, idb: await idbPages('e2e-damaged') };
      await dmg.close();
      const cache = await caches.open('tessera-pages:e2e-damaged');
      const key = (await cache.keys()).find((k) => k.url.split('/')[3] === String(victim));
      const bytes = new Uint8Array(await (await cache.match(key)).arrayBuffer());
      bytes[40] ^= 1; // a payload byte of the first block
      await cache.put(key, new Response(bytes));
      // heal: false, or the read would fetch the page again from /pub/ (test/browser-heal.test.ts).
      const damaged = await t.openBrowserStore({ name: 'e2e-damaged', heal: false });
      let error = null;
      try {
        await damaged.tensorData('a');
      } catch (e) {
        error = { code: e.code, pageId: e.pageId, models: e.models, message: e.message };
      }
      let intoError = null;
      try {
        await damaged.backend.readPageInto(victim, new Uint8Array(32 + damaged.config.pageSize));
      } catch (e) {
        intoError = e.code;
      }
      const verify = await damaged.verify();
      await damaged.close();
      await t.IdbPageStore.destroy('e2e-damaged');
      const gone = (await caches.keys()).filter((n) => n === 'tessera-pages:e2e-damaged');
      return { mixed, adopted, victim, error, intoError, damagedPages: verify.damagedPages, gone };
    })(${JSON.stringify({ xs: Array.from(x), batch: BATCH, inputDim: DIMS.inputDim })})`)) as {
      mixed: { referenced: number; cached: number; idb: number; sameInto: boolean; a: number[]; d: number[] };
      adopted: { referenced: number; cached: number; idb: number };
      victim: number;
      intoError: string | null;
      error: { code?: string; pageId?: number; models?: string[]; message: string } | null;
      damagedPages: { page: number }[];
      gone: string[];
    };
    assert.ok(layout.mixed.cached > 0 && layout.mixed.idb > 0, `both layouts in one store: ${JSON.stringify(layout.mixed)}`);
    assert.is(layout.mixed.cached + layout.mixed.idb, layout.mixed.referenced, 'each page is in one of them');
    assert.equal(layout.mixed.a, expected.a, 'a, in IndexedDB pages, reads after reopening');
    assert.equal(layout.mixed.d, expected.d, 'd, kept as published, reads after reopening');
    assert.ok(layout.mixed.sameInto, 'readPageInto gives an adopted page as readPage does');
    assert.ok(layout.adopted.referenced > 0);
    assert.is(layout.adopted.cached, layout.adopted.referenced, 'an import keeps every page as published in the Cache API');
    assert.is(layout.adopted.idb, 0, 'no page went through IndexedDB');
    assert.is(layout.intoError, 'PAGE_CORRUPT', 'readPageInto verifies an adopted page too');
    assert.is(layout.error?.code, 'PAGE_CORRUPT', JSON.stringify(layout.error));
    assert.is(layout.error?.pageId, layout.victim);
    assert.equal(layout.error?.models, ['a']);
    assert.match(layout.error!.message, /checksum mismatch/);
    assert.equal(layout.damagedPages.map((d) => d.page), [layout.victim]);
    assert.equal(layout.gone, [], 'destroy deletes the Cache API pages too');

    // 6. The shared PageStore conformance suite against Chromium's IndexedDB.
    const log = await page.evaluate(async () => {
      const lines: string[] = [];
      const g = globalThis as Record<string, unknown>;
      g.UVU_DEFER = 1;
      g.UVU_QUEUE = [['indexeddb conformance']];
      const original = console.log;
      console.log = (...a: unknown[]) => lines.push(a.join(' '));
      try {
        const m = await import('/t/conformance.mjs' as string);
        await m.exec();
      } finally {
        console.log = original;
      }
      return lines.join('');
    });
    const plain = log.replace(/\x1b\[[0-9;]*m/g, '');
    const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1]);
    const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1]);
    assert.ok(total >= 15 && passed === total, `conformance and store behaviour in Chromium: ${plain}`);
    console.error(`browser e2e: ${Date.now() - t0} ms; b fetched ${rb.pagesFetched}/${rb.pagesRead} pages (${rb.bytesFetched} B) vs ${rb.wholeFileBytes} B whole file; conformance ${passed}/${total}`);
  } finally {
    await close();
    await server?.close();
    await tmp.cleanup();
  }
});

test.run();
