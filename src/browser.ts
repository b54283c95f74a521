/**
 * tessera for the browser: the isomorphic surface (src/core.ts) plus a model store in IndexedDB, imports from a store published over
 * HTTP (fetching only the pages not already held), and inference with onnxruntime-web.
 *
 *   const remote = PublishedStore.open(httpSource('/models/'));   // opening while IndexedDB opens
 *   const store = await openBrowserStore({ name: 'my-app', published: remote });
 *   await importModels(store, await remote, ['base', 'fine-tune']);  // one batch: pages fetched together
 *   const session = await openSession(store, 'fine-tune');
 *
 * The bundle (build/bundle-browser.mjs → build/out/browser/) ships onnxruntime-web's .wasm beside
 * itself and points the runtime at the folder the script holding it was loaded from. A page that
 * bundles tessera into its own script serves the two files beside that script
 * (`npx tessera browser-assets <dir>`), or says where they are with `wasmPaths`.
 */
import { IdbPageStore, type IdbStoreOptions } from './browser/idb-store.ts';
import { httpSource, type HttpSourceOptions } from './browser/http-source.ts';
import { importModels, PublishedStore, type ImportOptions, type ImportReport } from './store/published.ts';
import { TesseraStore } from './store/store.ts';
import { defaultOrt } from './runtime/ort.ts';
import type { TileShape } from './blocks/tiling.ts';

export * from './core.ts';
export { IdbPageStore, type IdbStoreOptions } from './browser/idb-store.ts';
export { httpSource, type HttpSource, type HttpSourceOptions } from './browser/http-source.ts';

export interface BrowserStoreOptions extends IdbStoreOptions {
  /** IndexedDB database name (default 'tessera'). */
  name?: string;
  /** Tile shape for a new store; taken from `published` when given, so its blocks can be shared. */
  tile?: TileShape;
  /**
   * The published store models will come from (its tile is a new store's). May be given while
   * it is still opening: IndexedDB is opened meanwhile, so the two waits overlap.
   */
  published?: PublishedStore | Promise<PublishedStore>;
  /**
   * Where onnxruntime-web's `ort-wasm-simd-threaded.{mjs,wasm}` are served (a folder URL, or one
   * URL per file), forwarded to `ort.env.wasm.wasmPaths`. Default: beside the script that holds
   * tessera (`npx tessera browser-assets <dir>` copies them there).
   */
  wasmPaths?: WasmPaths;
}

/** A folder URL ending in `/`, or the URL of each of onnxruntime-web's two files. */
export type WasmPaths = string | { mjs?: string; wasm?: string };

/** Opens (creating if needed) a store kept in IndexedDB. */
export async function openBrowserStore(opts: BrowserStoreOptions = {}): Promise<TesseraStore> {
  if (opts.wasmPaths !== undefined) await configureRuntime({ wasmPaths: opts.wasmPaths });
  const published = Promise.resolve(opts.published);
  published.catch(() => {}); // awaited below, once the database is open
  const backend = await IdbPageStore.open(opts.name ?? 'tessera', opts);
  try {
    const store = await TesseraStore.open(backend, { tile: opts.tile ?? (await published)?.index.tile });
    // A page that cannot be read names the models that read it.
    backend.modelsOnPage = (id) => store.modelsOnPage(id);
    return store;
  } catch (e) {
    await backend.close();
    throw e;
  }
}

/** Imports models (default: all) published at `url` into `store`; returns one report per model. */
export async function importFromUrl(store: TesseraStore, url: string | URL, names?: string[], opts: ImportOptions & HttpSourceOptions = {}): Promise<ImportReport[]> {
  return importModels(store, await PublishedStore.open(httpSource(url, opts)), names, opts);
}

/** Where onnxruntime-web finds its .wasm files, and its thread count (default 1: no COOP/COEP needed). */
export async function configureRuntime(opts: { wasmPaths?: WasmPaths; numThreads?: number } = {}): Promise<void> {
  const ort = await defaultOrt();
  if (!ort.env) return;
  if (opts.wasmPaths !== undefined) ort.env.wasm.wasmPaths = typeof opts.wasmPaths === 'string' ? new URL(opts.wasmPaths, globalThis.location?.href).href : opts.wasmPaths;
  if (opts.numThreads !== undefined) ort.env.wasm.numThreads = opts.numThreads;
}

/** The origin's storage use and quota as the browser reports them (null where unsupported). */
export async function storageEstimate(): Promise<{ usage: number; quota: number } | null> {
  const storage = (globalThis as { navigator?: Navigator }).navigator?.storage;
  if (!storage?.estimate) return null;
  const { usage = 0, quota = 0 } = await storage.estimate();
  return { usage, quota };
}

/** Asks the browser not to evict this origin's storage under pressure; resolves to whether it agreed. */
export async function requestPersistentStorage(): Promise<boolean> {
  const storage = (globalThis as { navigator?: Navigator }).navigator?.storage;
  return storage?.persist ? storage.persist() : false;
}
