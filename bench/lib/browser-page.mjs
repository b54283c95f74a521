// The in-page half of `bench browser` (bench/browser.ts): loaded by the page from /bench/, it uses
// only the bundled browser entry (/lib/tessera.browser.mjs) and the platform (fetch, Cache API,
// IndexedDB). Plain JavaScript, so the page runs exactly this text (tsx would wrap functions
// passed to page.evaluate in helpers the page lacks).

const t = await import('/lib/tessera.browser.mjs');
const ort = await t.loadOrt();

const now = () => performance.now();
/**
 * Storage of earlier runs is deleted only at the end (`cleanup`): Chromium reclaims deleted
 * storage lazily, and a deletion landing inside a later run made its usage growth negative.
 */
const made = { caches: [], dbs: [] };

export async function cleanup() {
  for (const name of made.caches.splice(0)) await caches.delete(name);
  for (const name of made.dbs.splice(0)) await t.IdbPageStore.destroy(name);
}
const usage = async () => (await navigator.storage.estimate()).usage ?? 0;

/** Compiles onnxruntime's wasm once, on a model neither side stores, so neither side pays it. */
export async function warm({ url, inputName, dims }) {
  const bytes = new Uint8Array(await (await fetch(url, { cache: 'no-store' })).arrayBuffer());
  const session = await ort.InferenceSession.create(bytes);
  await session.run({ [inputName]: new ort.Tensor('float32', await input(dims), dims) });
  await session.release();
}

let digits;
/** The first digits, as many as `dims` holds (one per batch row). */
async function input(dims) {
  digits ??= new Float32Array(await (await fetch('/data/digits.bin')).arrayBuffer());
  return digits.subarray(0, dims.reduce((a, b) => a * b, 1));
}

/**
 * The baseline: each whole .onnx fetched and kept in the Cache API (as transformers.js and WebLLM
 * do), all at once as `cache.addAll` would; then each read back from the cache into a session and
 * run once. A fresh cache name per run.
 */
export async function cacheApi({ cacheName, onnxBase, files, names, inputName, dims }) {
  const x = await input(dims);
  const u0 = await usage();
  const t0 = now();
  const cache = await caches.open(cacheName);
  let fetched = 0;
  await Promise.all(names.map(async (name) => {
    const url = onnxBase + files[name];
    const res = await fetch(url, { cache: 'no-store' });
    const body = await res.arrayBuffer();
    fetched += body.byteLength;
    await cache.put(url, new Response(body, { headers: { 'content-type': 'application/octet-stream' } }));
  }));
  const importMs = now() - t0;
  const outputs = {};
  for (const name of names) {
    const bytes = new Uint8Array(await (await cache.match(onnxBase + files[name])).arrayBuffer());
    const session = await ort.InferenceSession.create(bytes);
    const out = await session.run({ [inputName]: new ort.Tensor('float32', x, dims) });
    outputs[name] = Array.from(out[session.outputNames[0]].data);
    await session.release();
  }
  const readyMs = now() - t0;
  const usageBytes = (await usage()) - u0;
  made.caches.push(cacheName);
  return { importMs, readyMs, bytesFetched: fetched, bytesStored: fetched, usageBytes, outputs };
}

/**
 * tessera: the published family imported into IndexedDB in one batch (only missing pages
 * fetched), then a session opened from the store for each model and run once. A fresh database
 * per run.
 */
export async function tessera({ dbName, pub, names, inputName, dims, importOptions = {} }) {
  const x = await input(dims);
  const u0 = await usage();
  const t0 = now();
  // The published index and the database open at once.
  const opening = t.PublishedStore.open(t.httpSource(pub));
  const store = await t.openBrowserStore({ name: dbName, published: opening });
  const remote = await opening;
  const reports = await remote.importModels(store, names, importOptions);
  const importMs = now() - t0;
  const outputs = {};
  for (const name of names) {
    const session = await t.openSession(store, name);
    const out = await session.run({ [inputName]: { data: x, dims, dtype: 'float32' } });
    outputs[name] = Array.from(Object.values(out)[0].data);
    await session.release();
  }
  const readyMs = now() - t0;
  const usageBytes = (await usage()) - u0;
  const catalogBytes = remote.bytesFetched - reports.reduce((n, r) => n + r.bytesFetched, 0);
  // The catalog is stored too (skeletons, block tables): counted like the pages, as IndexedDB
  // holds it (deflated).
  const catalogStoredBytes = await store.backend.catalogBytes();
  const codedBlocks = [...store.catalog.blocks.values()].filter((b) => b.base !== undefined || b.codec !== undefined).length;
  await store.close();
  made.dbs.push(dbName);
  return {
    importMs,
    readyMs,
    bytesFetched: remote.bytesFetched,
    bytesStored: catalogStoredBytes + reports.reduce((n, r) => n + r.bytesStored, 0),
    catalogStoredBytes,
    usageBytes,
    catalogBytes,
    codedBlocks,
    perModel: reports.map(({ name, wholeFileBytes, bytesFetched, bytesStored, pagesFetched, pagesRead }) => ({ name, wholeFileBytes, bytesFetched, bytesStored, pagesFetched, pagesRead })),
    outputs,
  };
}
