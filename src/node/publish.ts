/**
 * Publishing a store as static files (format: src/store/published.ts), and reading a published
 * folder as an import source. Page files are immutable under their id.epoch name, so republishing
 * writes only new pages; the index is replaced last (atomically), then unreferenced files go.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { CapacityError, StoreError, TesseraError } from '../errors.ts';
import { loadSha256, sha256 } from '../hash.ts';
import { sealPage } from '../store/page-format.ts';
import { buildIndex, encodeBlockHashes, IMPORT_LIMITS, INDEX_FILE, pageFile, type PublishedIndex, type PublishedSource } from '../store/published.ts';
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
  await loadSha256();
  const catalog = store.catalog;
  const pages = store.blockSource({ maxCachedPages: 0 });
  const snapshot = catalog.snapshot();
  // Every block's SHA-256 (of its content): what an importer checks fetched and local blocks against.
  const contents = store.blockSource({ maxCachedPages: 64 });
  const hashes = new Map<number, Uint8Array>();
  for (const id of [...catalog.blocks.keys()].sort((a, b) => a - b)) hashes.set(id, sha256(await contents.block(id)));
  const blockTable = encodeBlockHashes(hashes);
  const deflated = new Uint8Array(deflateRawSync(snapshot, { level: 9 }));
  const index = buildIndex(catalog, snapshot, blockTable, deflated);
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
    await writeFile(join(dir, index.catalog.file), deflated);
    await writeFile(join(dir, index.blocks.file), blockTable);
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
      if ((/^catalog\.[0-9a-f]{16}\.msgpack(\.deflate)?$/.test(f) && f !== index.catalog.file) || (/^blocks\.[0-9a-f]{64}\.bin$/.test(f) && f !== index.blocks.file)) {
        await rm(join(dir, f), { force: true });
        staleFilesRemoved++;
      }
    }
    const bytes = index.pages.reduce((n, [, , b]) => n + b, 0) + deflated.length + blockTable.length + (await stat(join(dir, INDEX_FILE))).size;
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
    async get(path: string, opts: { maxBytes?: number } = {}): Promise<Uint8Array> {
      // Only files under the published folder: no absolute paths, no way up.
      if (isAbsolute(path) || path.split(/[\\/]/).includes('..')) throw new StoreError('IO_ERROR', `refusing to read "${path}": it is outside the published store ${dir}.`);
      const file = join(dir, path);
      try {
        const size = (await stat(file)).size;
        if (opts.maxBytes !== undefined && size > opts.maxBytes) throw new StoreError('IO_ERROR', `${file} is ${size} bytes, more than the ${opts.maxBytes} expected: refused (a damaged or hostile published store).`);
        const bytes = new Uint8Array(await readFile(file));
        if (opts.maxBytes !== undefined && bytes.length > opts.maxBytes) throw new StoreError('IO_ERROR', `${file} grew past the ${opts.maxBytes} bytes expected while being read: refused.`);
        src.bytesRead += bytes.length;
        return bytes;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new StoreError('IO_ERROR', `${file} is missing: ${dir} is not a complete published store (publish it again).`);
        throw ioError(`cannot read ${file}`, e);
      }
    },
  };
  return src;
}

export async function readPublishedIndex(dir: string): Promise<PublishedIndex> {
  return JSON.parse(new TextDecoder().decode(await folderSource(dir).get(INDEX_FILE, { maxBytes: IMPORT_LIMITS.indexBytes }))) as PublishedIndex;
}
