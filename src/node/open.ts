/** Opening a store: a folder (the Node default backend) or a PostgreSQL URL (postgres://…). */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { InvalidModelError } from '../errors.ts';
import { TesseraStore, type Progress } from '../store/store.ts';
import type { TileShape } from '../blocks/tiling.ts';
import { FilePageStore, type FileStoreOptions } from './file-store.ts';
import { PgPageStore, isPostgresUrl } from './pg-store.ts';

export interface OpenStoreOptions extends FileStoreOptions {
  /** Tile shape for a new store. */
  tile?: TileShape;
}

/**
/**
 * Opens (or with `create`, creates) the store at `location`: a folder, or a PostgreSQL URL
 * `postgres://user@host:port/db[?schema=name]`. A writer takes the store's lock and recovers
 * (PageStore.recover: slots no commit references are released); `readOnly` creates and writes
 * nothing (works on read-only media and for read-only users).
 */
export async function openStore(location: string, opts: OpenStoreOptions = {}): Promise<TesseraStore> {
  const backend = isPostgresUrl(location) ? await PgPageStore.open(location, opts) : await FilePageStore.open(location, opts);
  try {
    return await TesseraStore.open(backend, { tile: opts.tile });
  } catch (e) {
    await backend.close();
    throw e;
  }
}

/** Reads external-data files named by a model, only from the model's own folder. */
export function externalDataReader(modelPath: string): (location: string) => Promise<Uint8Array> {
  const base = dirname(modelPath);
  return async (location: string) => {
    const rel = normalize(location);
    if (isAbsolute(location) || rel.startsWith('..' + sep) || rel === '..') {
      throw new InvalidModelError('ONNX_EXTERNAL_DATA', `external data location "${location}" points outside the model's folder: refused.`);
    }
    try {
      return new Uint8Array(await readFile(join(base, rel)));
    } catch (e) {
      throw new InvalidModelError('ONNX_EXTERNAL_DATA', `external data file "${location}" next to ${modelPath} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): put it beside the model.`);
    }
  };
}

/** Adds an ONNX file: name defaults to the file's base name without `.onnx`. */
export async function addModelFile(store: TesseraStore, file: string, opts: { name?: string; onProgress?: (p: Progress) => void } = {}) {
  const name = opts.name ?? modelNameOf(file);
  let bytes: Uint8Array;
  try {
    // A view of the Buffer, not `new Uint8Array(buffer)`: that copies the whole file once more.
    const buf = await readFile(file);
    bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (e) {
    throw new InvalidModelError('ONNX_MALFORMED', `cannot read model file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return store.add(name, bytes, { readExternal: externalDataReader(file), onProgress: opts.onProgress });
}

export function modelNameOf(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? file;
  return base.replace(/\.onnx$/i, '');
}
