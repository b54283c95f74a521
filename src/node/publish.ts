/**
 * Publishing a store as static files (format: src/store/published.ts), and reading a published
 * folder as an import source. Page files are immutable under their id.epoch name, so republishing
 * writes only new pages; the index is replaced last (atomically), then unreferenced files go.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CapacityError, StoreError, TesseraError } from '../errors.ts';
import { sealPage } from '../store/page-format.ts';
import { buildIndex, INDEX_FILE, pageFile, type PublishedIndex, type PublishedSource } from '../store/published.ts';
import type { TesseraStore } from '../store/store.ts';

export interface PublishReport {
  dir: string;
  models: number;
  pages: number;
  /** Page files written this time (the others were already published). */
  pagesWritten: number;
  /** Bytes of every published file (index, catalog, pages). */
  bytes: number;
  /** Bytes the models take as whole ONNX files. */
  wholeFileBytes: number;
  staleFilesRemoved: number;
}

function ioError(what: string, e: unknown): TesseraError {
  if (e instanceof TesseraError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC') return new CapacityError('QUOTA_EXCEEDED', `${what}: the disk is full. Free space and publish again.`, { cause: e });
  return new StoreError('IO_ERROR', `${what}: ${(e as Error).message}`, { cause: e });
}

/** Writes every model of `store` into folder `dir` as a published store. */
export async function publishStore(store: TesseraStore, dir: string, opts: { onProgress?: (done: number, total: number) => void } = {}): Promise<PublishReport> {
  const catalog = store.catalog;
  const pages = store.blockSource({ maxCachedPages: 0 });
  const snapshot = catalog.snapshot();
  const index = buildIndex(catalog, snapshot);
  try {
    await mkdir(join(dir, 'pages'), { recursive: true });
    let pagesWritten = 0;
    let done = 0;
    for (const [id, epoch, bytes] of index.pages) {
      const path = join(dir, pageFile(id, epoch));
      const existing = await stat(path).catch(() => null);
      if (existing?.size !== bytes) {
        const sealed = sealPage(id, epoch, await pages.page(id));
        await writeFile(path + '.tmp', sealed);
        await rename(path + '.tmp', path);
        pagesWritten++;
      }
      opts.onProgress?.(++done, index.pages.length);
    }
    await writeFile(join(dir, index.catalog.file), snapshot);
    await writeFile(join(dir, INDEX_FILE + '.tmp'), JSON.stringify(index) + '\n');
    await rename(join(dir, INDEX_FILE + '.tmp'), join(dir, INDEX_FILE));

    // Files of earlier publications no longer referenced (readers of the old index may 404 on
    // them: their import fails cleanly and is retried against the new index).
    const keepPages = new Set(index.pages.map(([id, epoch]) => pageFile(id, epoch).slice('pages/'.length)));
    let staleFilesRemoved = 0;
    for (const f of await readdir(join(dir, 'pages'))) {
      if (!keepPages.has(f)) {
        await rm(join(dir, 'pages', f), { force: true });
        staleFilesRemoved++;
      }
    }
    for (const f of await readdir(dir)) {
      if (/^catalog\.[0-9a-f]{16}\.msgpack$/.test(f) && f !== index.catalog.file) {
        await rm(join(dir, f), { force: true });
        staleFilesRemoved++;
      }
    }
    const bytes = index.pages.reduce((n, [, , b]) => n + b, 0) + snapshot.length + (await stat(join(dir, INDEX_FILE))).size;
    return {
      dir,
      models: index.models.length,
      pages: index.pages.length,
      pagesWritten,
      bytes,
      wholeFileBytes: index.models.reduce((n, m) => n + m.sourceBytes, 0),
      staleFilesRemoved,
    };
  } catch (e) {
    throw ioError(`cannot publish the store into ${dir}`, e);
  }
}

/** A published store kept in a local folder, as an import source. */
export function folderSource(dir: string): PublishedSource & { bytesRead: number } {
  const src = {
    location: dir,
    bytesRead: 0,
    async get(path: string): Promise<Uint8Array> {
      if (path.includes('..')) throw new StoreError('IO_ERROR', `refusing to read "${path}" outside ${dir}`);
      try {
        const bytes = new Uint8Array(await readFile(join(dir, path)));
        src.bytesRead += bytes.length;
        return bytes;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new StoreError('IO_ERROR', `${join(dir, path)} is missing: ${dir} is not a complete published store (publish it again).`);
        throw ioError(`cannot read ${join(dir, path)}`, e);
      }
    },
  };
  return src;
}

export async function readPublishedIndex(dir: string): Promise<PublishedIndex> {
  return JSON.parse(new TextDecoder().decode(await folderSource(dir).get(INDEX_FILE))) as PublishedIndex;
}
