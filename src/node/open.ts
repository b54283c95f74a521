/** Opening a store: a folder (the Node default backend) or a PostgreSQL URL (postgres://…). */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { InvalidModelError, TesseraError } from '../errors.ts';
import { readSkippingWeights, type ReadAt, type ReadSpace, type SparseFile } from '../onnx/sparse-read.ts';
import { TesseraStore, type AddOptions, type AddReport, type Progress } from '../store/store.ts';
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

/**
 * Adds an ONNX file: name defaults to the file's base name without `.onnx`. The file's structure
 * is read first and each large weight when its turn comes (readSkippingWeights), so the add never
 * holds the whole file in memory.
 */
export async function addModelFile(store: TesseraStore, file: string, opts: { name?: string; onProgress?: (p: Progress) => void } = {}): Promise<AddReport> {
  return addFileTo(store, file, opts);
}

/** What a file is added to: a store (its own commit) or a batch (committed with the others). */
interface AddTarget {
  add(name: string, onnx: Uint8Array, opts: AddOptions): Promise<AddReport>;
}

/**
 * A model file opened and its structure read (readSkippingWeights), its weights still to read:
 * what adding it needs from the file before the parse. `openModelFile` starts this for the next
 * file of a batch while the one before it is parsed and placed, so its open, stat and structure
 * reads (a few round trips to the thread pool per file) overlap that work.
 */
export interface OpenedModelFile {
  file: string;
  handle: FileHandle;
  readAt: ReadAt;
  /** The file's bytes: whole, or with its large weights left unread (`sparse`). */
  bytes: Uint8Array;
  sparse: SparseFile | null;
}

/** Opens `file` and reads its structure (into `space`, when given: see ReadSpace). The caller closes the handle (addFileTo does). */
export async function openModelFile(file: string, space?: ReadSpace): Promise<OpenedModelFile> {
  const cannotRead = (e: unknown) => new InvalidModelError('ONNX_MALFORMED', `cannot read model file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (e) {
    throw cannotRead(e);
  }
  try {
    const h = handle;
    const readAt: ReadAt = async (into, position) => {
      let done = 0;
      try {
        while (done < into.length) {
          const { bytesRead } = await h.read(into, done, into.length - done, position + done);
          if (bytesRead === 0) throw Object.assign(new Error(`the file ended at byte ${position + done} (it changed while being added?)`), { code: 'ETRUNCATED' });
          done += bytesRead;
        }
      } catch (e) {
        throw cannotRead(e);
      }
    };
    let size: number;
    try {
      size = (await h.stat()).size;
    } catch (e) {
      throw cannotRead(e);
    }
    const sparse = await readSkippingWeights(size, readAt, undefined, space);
    let bytes: Uint8Array;
    if (sparse) bytes = sparse.bytes;
    else {
      bytes = new Uint8Array(size);
      await readAt(bytes, 0);
    }
    return { file, handle, readAt, bytes, sparse };
  } catch (e) {
    await handle.close().catch(() => {});
    throw e;
  }
}

/** A batch's files opened one ahead of their adds (openAhead). */
export interface OpenAhead {
  /** File i's opening (null for one not opened ahead), and file i + 1's started; i counts up from 0. */
  take(i: number): Promise<OpenedModelFile> | null;
  /** Closes the file opened ahead, once it has (for a batch that stops before adding it). */
  discard(): void;
}

/**
 * Opens each of a batch's files (openModelFile) while the one before it is added: its open, stat
 * and structure reads overlap that add's parse and placement, the structure reads taking turns
 * with two buffers (ReadSpace). A file given as null (stdin) is not opened ahead.
 */
export function openAhead(files: readonly (string | null)[]): OpenAhead {
  const spaces: ReadSpace[] = [{ bytes: new Uint8Array(0) }, { bytes: new Uint8Array(0) }];
  const openAt = (i: number) => {
    const file = files[i];
    if (file === undefined || file === null) return null;
    const opened = openModelFile(file, spaces[i & 1]);
    opened.catch(() => {}); // awaited by addFileTo; a batch that stops first discards it
    return opened;
  };
  let ahead = openAt(0);
  return {
    take(i) {
      const opened = ahead;
      ahead = openAt(i + 1);
      return opened;
    },
    discard() {
      ahead?.then((o) => o.handle.close()).catch(() => {});
    },
  };
}

/** Adds `file` to `target` (a store or an AddBatch), reading it as addModelFile does. */
export async function addFileTo(
  target: AddTarget,
  file: string,
  /**
   * `space`: a buffer for the file's structure, reused across the files of a batch (ReadSpace);
   * `opened`: the file already being opened (openModelFile), as a batch reads one file ahead.
   */
  opts: { name?: string; onProgress?: (p: Progress) => void; space?: ReadSpace; opened?: Promise<OpenedModelFile> } = {},
): Promise<AddReport> {
  const name = opts.name ?? modelNameOf(file);
  const opened = await (opts.opened ?? openModelFile(file, opts.space));
  try {
    const { bytes, sparse, readAt } = opened;
    return await target.add(name, bytes, { readExternal: externalDataReader(file), onProgress: opts.onProgress, ...(sparse ? { sparse: { file: sparse, read: readAt } } : {}) });
  } finally {
    await opened.handle.close().catch(() => {});
  }
}

/**
 * Adds several ONNX files in one commit (AddBatch): all of them, or, when one fails, none (the
 * error is thrown, the store is as it was). With `keepGoing`, a file that cannot be read or parsed
 * is reported in `failed` and the others are committed; an I/O error of the store still fails all.
 * Each file is opened and its structure read while the one before it is added (openModelFile),
 * into one of two buffers the files take turns with.
 */
export async function addModelFiles(
  store: TesseraStore,
  files: readonly (string | { file: string; name?: string })[],
  opts: { keepGoing?: boolean; onProgress?: (file: string, p: Progress) => void } = {},
): Promise<{ added: AddReport[]; failed: { file: string; error: TesseraError }[] }> {
  const batch = store.addBatch();
  const added: AddReport[] = [];
  const failed: { file: string; error: TesseraError }[] = [];
  const entries = files.map((f) => (typeof f === 'string' ? { file: f, name: undefined } : f));
  const ahead = openAhead(entries.map((e) => e.file));
  for (let i = 0; i < entries.length; i++) {
    const { file, name } = entries[i];
    const opened = ahead.take(i)!;
    try {
      added.push(await addFileTo(batch, file, { name, opened, onProgress: opts.onProgress && ((p) => opts.onProgress!(file, p)) }));
    } catch (e) {
      if (!opts.keepGoing || !(e instanceof TesseraError) || batch.broken) {
        ahead.discard();
        throw e;
      }
      failed.push({ file, error: e });
    }
  }
  if (added.length) await batch.commit();
  return { added, failed };
}

export function modelNameOf(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? file;
  return base.replace(/\.onnx$/i, '');
}
