/**
 * In real Chromium: a committed model whose pages an import kept as published (Cache API entries)
 * survives losing them. An adopted page whose entry is deleted, or overwritten with damaged bytes,
 * is fetched again from the published store it came from, verified, put back and returned: reads
 * and inference give onnxruntime's outputs on the original files, and readers waiting for one
 * page fetch it once. Where the source cannot repair it (404, connection refused, other bytes),
 * the read is PAGE_CORRUPT naming the page and its models, and nothing unverified is kept.
 * Removing the models deletes the pages' records with their entries.
 * Fails (never skips) when Chromium is missing.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startStaticServer } from '../demo/serve.ts';
import { launchChromium } from '../tools/fixtures/chromium.ts';
import { tempDir } from './helpers.ts';
import { BATCH, DIMS, publishedFamily } from './published-family.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

interface Failure {
  code?: string;
  pageId?: number;
  models?: string[];
  message: string;
}

test('Chromium: adopted pages lost or damaged in the Cache API are fetched again and verified; an unrepairable one is PAGE_CORRUPT', async () => {
  const t0 = Date.now();
  const { context, close } = await launchChromium();
  const tmp = await tempDir();
  let server: Awaited<ReturnType<typeof startStaticServer>> | undefined;
  try {
    // @ts-expect-error a plain build script without types; importing it bundles build/out/browser/
    const bundled = import('../build/bundle-browser.mjs');
    // a and b share a backbone (the victim page below holds it), with their own heads.
    const { pub, x, expected, index } = await publishedFamily(tmp.path, { a: { backboneSeed: 5, headSeed: 1 }, b: { backboneSeed: 5, headSeed: 2 } }, 'heal');
    await bundled;
    server = await startStaticServer({ '/lib/': join(root, 'build', 'out', 'browser'), '/pub/': pub }, { index });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // Page files the store requests (the test's own reference fetches carry a query and are not counted).
    const requested: string[] = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith('/pub/pages/') && !u.search) requested.push(u.pathname.slice('/pub/'.length));
    });
    await page.goto(server.url + '/');

    // Helpers in the page. A string, not functions: tsx would wrap named functions in a helper the page lacks.
    const prelude = `
      const t = await import('/lib/tessera.browser.mjs');
      const cache = await caches.open('tessera-pages:heal');
      const keyOf = async (id) => (await cache.keys()).find((k) => k.url.split('/')[3] === String(id));
      const cached = async (id) => { const k = await keyOf(id); return k ? Array.from(new Uint8Array(await (await cache.match(k)).arrayBuffer())) : null; };
      const run = async (store, name) => {
        const session = await t.openSession(store, name);
        const out = await session.run({ X: { data: new Float32Array(${JSON.stringify(Array.from(x))}), dims: [${BATCH}, ${DIMS.inputDim}], dtype: 'float32' } });
        await session.release();
        return Array.from(out.Y.data);
      };
      const caught = async (f) => { try { await f(); return null; } catch (e) { return { code: e.code, pageId: e.pageId, models: e.models, message: e.message }; } };
      const idbCount = async (name, storeName) => {
        const db = await new Promise((ok, fail) => { const r = indexedDB.open(name); r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
        const n = await new Promise((ok) => { const q = db.transaction(storeName).objectStore(storeName).count(); q.onsuccess = () => ok(q.result); });
        db.close();
        return n;
      };`;
    const inPage = async <T>(body: string, args: Record<string, unknown> = {}): Promise<T> =>
      (await page.evaluate(`(async (${Object.keys(args).join(', ') ? `{ ${Object.keys(args).join(', ')} }` : ''}) => {${prelude}\n${body}\n})(${JSON.stringify(args)})`)) as T;

    // 0. Import a and b, pages kept as published; each adopted page is recorded with its origin.
    const imported = await inPage<{ victim: number; epoch: number; file: string; records: number; referenced: number; entries: number; models: string[] }>(`
      const remote = await t.PublishedStore.open(t.httpSource('/pub/'));
      const store = await t.openBrowserStore({ name: 'heal', published: remote });
      await remote.importModels(store, ['a', 'b']);
      const victim = store.catalog.blocks.get(store.model('a').tensors[0].blocks[0]).page;
      const epoch = store.catalog.pages.get(victim).epoch;
      const parts = (await keyOf(victim)).url.split('/');
      const out = { victim, epoch, file: 'pages/' + parts[5] + '.' + parts[6] + '.page', referenced: store.catalog.pages.size, models: store.modelsOnPage(victim) };
      await store.close();
      return { ...out, records: await idbCount('heal', 'adopted'), entries: (await cache.keys()).length };`);
    const { victim, epoch, file } = imported;
    assert.ok(imported.referenced > 1, `the models read ${imported.referenced} pages`);
    assert.is(imported.entries, imported.referenced, 'every page is kept as published');
    assert.is(imported.records, imported.referenced, 'every adopted page has its record in IndexedDB');
    assert.equal(imported.models, ['a', 'b'], 'the victim page holds the shared backbone');
    const original = new Uint8Array(await readFile(join(pub, file)));
    const payload = Array.from(original.subarray(32));
    const fetchesOfVictim = () => requested.filter((f) => f === file).length;
    assert.is(fetchesOfVictim(), 1, 'the import fetched the page once');

    // 1. The entry deleted: four concurrent reads fetch it once; it is back, byte for byte; inference is exact.
    const missing = await inPage<{ reads: number[][]; back: number[] | null; a: number[]; ok: boolean }>(`
      await cache.delete(await keyOf(victim));
      const store = await t.openBrowserStore({ name: 'heal' });
      const reads = (await Promise.all([0, 1, 2, 3].map(() => store.backend.readPage(victim, epoch)))).map((r) => Array.from(r));
      const back = await cached(victim);
      const a = await run(store, 'a');
      const ok = (await store.verify()).ok;
      await store.close();
      return { reads, back, a, ok };`, { victim, epoch });
    for (const r of missing.reads) assert.equal(r, payload, 'readPage gives the published payload');
    assert.is(fetchesOfVictim(), 2, 'four readers of the missing page fetched it once');
    assert.equal(missing.back, Array.from(original), 'the entry is back, the published bytes');
    assert.equal(missing.a, expected.a, 'a: outputs equal onnxruntime on the original file');
    assert.ok(missing.ok, 'the store verifies');

    // 2. The entry overwritten with damaged bytes: readPageInto and inference heal it.
    const damaged = await inPage<{ into: number[]; back: number[] | null; a: number[]; b: number[] }>(`
      const k = await keyOf(victim);
      const bytes = new Uint8Array(await (await cache.match(k)).arrayBuffer());
      bytes[40] ^= 1; // a payload byte of the first block
      await cache.put(k, new Response(bytes));
      const store = await t.openBrowserStore({ name: 'heal' });
      const into = Array.from(await store.backend.readPageInto(victim, new Uint8Array(32 + store.config.pageSize), epoch));
      const back = await cached(victim);
      const out = { into, back, a: await run(store, 'a'), b: await run(store, 'b') };
      await store.close();
      return out;`, { victim, epoch });
    assert.equal(damaged.into, payload, 'readPageInto gives the published payload');
    assert.equal(damaged.back, Array.from(original), 'the damaged entry is replaced by the published bytes');
    assert.equal(damaged.a, expected.a);
    assert.equal(damaged.b, expected.b);
    assert.is(fetchesOfVictim(), 3);

    // 2b. heal: false: a missing page is PAGE_CORRUPT and nothing is fetched.
    const off = await inPage<{ error: Failure | null }>(`
      await cache.delete(await keyOf(victim));
      const store = await t.openBrowserStore({ name: 'heal', heal: false });
      const error = await caught(() => store.backend.readPage(victim, epoch));
      await store.close();
      return { error };`, { victim, epoch });
    assert.is(off.error?.code, 'PAGE_CORRUPT', JSON.stringify(off.error));
    assert.match(off.error!.message, /heal: false/);
    assert.is(fetchesOfVictim(), 3, 'heal: false fetches nothing');

    // 3. The source gone: the page file removed (404), then the server refusing connections.
    await rm(join(pub, file));
    const gone = await inPage<{ read: Failure | null; model: Failure | null; inference: Failure | null; back: boolean }>(`
      const store = await t.openBrowserStore({ name: 'heal' });
      const read = await caught(() => store.backend.readPage(victim, epoch));
      const model = await caught(() => store.tensorData('a'));
      const inference = await caught(() => run(store, 'b'));
      await store.close();
      return { read, model, inference, back: !!(await keyOf(victim)) };`, { victim, epoch });
    for (const e of [gone.read, gone.model, gone.inference]) {
      assert.is(e?.code, 'PAGE_CORRUPT', JSON.stringify(e));
      assert.is(e?.pageId, victim);
    }
    const msg = gone.read!.message;
    assert.match(msg, new RegExp(`^page ${victim} `), msg);
    assert.match(msg, /its Cache API entry is gone/);
    assert.match(msg, /could not repair it/);
    assert.match(msg, /HTTP 404/);
    assert.match(msg, /\(a, b\)/, 'the message names the models that read the page');
    assert.match(msg, /import them again/);
    assert.equal(gone.read!.models, ['a', 'b']);
    assert.equal(gone.model!.models, ['a', 'b']);
    assert.ok(!gone.back, 'nothing was put back');

    await context.route('**/pub/pages/**', (route) => route.abort('connectionrefused'));
    const refused = await inPage<{ read: Failure | null }>(`
      const store = await t.openBrowserStore({ name: 'heal' });
      const read = await caught(() => store.backend.readPage(victim, epoch));
      await store.close();
      return { read };`, { victim, epoch });
    await context.unrouteAll();
    assert.is(refused.read?.code, 'PAGE_CORRUPT', JSON.stringify(refused.read));
    assert.match(refused.read!.message, /could not be fetched/);

    // 4. The source sending other bytes (a flipped payload bit; then another page's file, sealed
    // as that page): PAGE_CORRUPT, and nothing is kept.
    const flipped = original.slice();
    flipped[40] ^= 1;
    await writeFile(join(pub, file), flipped);
    const wrong = await inPage<{ flipped: Failure | null; back: boolean }>(`
      const store = await t.openBrowserStore({ name: 'heal' });
      const flipped = await caught(() => store.backend.readPage(victim, epoch));
      await store.close();
      return { flipped, back: !!(await keyOf(victim)) };`, { victim, epoch });
    assert.is(wrong.flipped?.code, 'PAGE_CORRUPT', JSON.stringify(wrong.flipped));
    assert.match(wrong.flipped!.message, /sends other bytes \(checksum mismatch\)/);
    assert.ok(!wrong.back, 'bytes failing their seal are not kept');
    const listed = (JSON.parse(await readFile(join(pub, 'tessera-index.json'), 'utf8')) as { pages: [number, number, number][] }).pages;
    const otherFile = listed.map(([id, e]) => `pages/${id}.${e}.page`).find((f) => f !== file)!;
    await writeFile(join(pub, file), await readFile(join(pub, otherFile)));
    const misdirected = await inPage<{ read: Failure | null; back: boolean; records: number }>(`
      const store = await t.openBrowserStore({ name: 'heal' });
      const read = await caught(() => store.backend.readPage(victim, epoch));
      await store.close();
      return { read, back: !!(await keyOf(victim)), records: await idbCount('heal', 'adopted') };`, { victim, epoch });
    assert.is(misdirected.read?.code, 'PAGE_CORRUPT', JSON.stringify(misdirected.read));
    assert.match(misdirected.read!.message, /could not repair it/);
    assert.ok(!misdirected.back, 'a page sealed as another is not kept');
    assert.is(misdirected.records, imported.records, 'the records stay: a later read tries again');

    // 5. The source repaired: the next read heals.
    await writeFile(join(pub, file), original);
    const repaired = await inPage<{ a: number[]; back: number[] | null }>(`
      const store = await t.openBrowserStore({ name: 'heal' });
      const a = await run(store, 'a');
      await store.close();
      return { a, back: await cached(victim) };`, { victim });
    assert.equal(repaired.a, expected.a);
    assert.equal(repaired.back, Array.from(original));

    // 6. Removing the models releases their pages: the entries and the records go with them.
    const removed = await inPage<{ records: number; entries: number; ok: boolean; leaked: number[] }>(`
      const store = await t.openBrowserStore({ name: 'heal' });
      await store.remove('a');
      await store.remove('b');
      const verify = await store.verify();
      await store.close();
      return { records: await idbCount('heal', 'adopted'), entries: (await cache.keys()).length, ok: verify.ok, leaked: verify.leakedPages };`);
    assert.equal(removed, { records: 0, entries: 0, ok: true, leaked: [] });
    assert.equal(errors, []);
    console.error(`browser heal: ${Date.now() - t0} ms; page ${victim} (${original.length} B) fetched ${fetchesOfVictim()} times`);
  } finally {
    await close();
    await server?.close();
    await tmp.cleanup();
  }
});

test.run();
