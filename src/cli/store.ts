/**
 * The CLI's one open-store helper. Every verb opens its store through `withStore`, which closes
 * it (releasing the writer's lock) however the verb ends, and which undoes the creation of a
 * store when the command that created it fails: `tessera add new-store missing.onnx` leaves no
 * `new-store/` behind.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { openStore, type OpenStoreOptions } from '../node/open.ts';
import { isPostgresUrl } from '../node/pg-store.ts';
import type { TesseraStore } from '../store/store.ts';

/** Entries in folder `path`, or null when it does not exist. */
async function entries(path: string): Promise<Set<string> | null> {
  try {
    return new Set(await readdir(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    return new Set(); // not a folder, or unreadable: openStore says which
  }
}

let breakLock = false;
/** `--break-lock` on a writer verb: its writer open removes a lock it cannot prove stale. */
export function requestBreakLock(on: boolean): void {
  breakLock = on;
}

export async function withStore<T>(path: string, fn: (store: TesseraStore) => Promise<T>, opts: OpenStoreOptions = {}): Promise<T> {
  // Only a folder that was missing or empty can be undone; an existing store is never touched
  // here (its own commit protocol keeps it as it was when an operation fails).
  const before = opts.create && !isPostgresUrl(path) ? await entries(path) : undefined;
  const creates = before === null || before?.size === 0;
  const undoCreate = async () => {
    if (!creates) return;
    if (before === null) return rm(path, { recursive: true, force: true });
    for (const e of (await entries(path)) ?? []) await rm(join(path, e), { recursive: true, force: true });
  };
  let store: TesseraStore;
  try {
    store = await openStore(path, opts.readOnly ? opts : { breakLock, ...opts });
  } catch (e) {
    await undoCreate();
    throw e;
  }
  let ok = false;
  try {
    const result = await fn(store);
    ok = true;
    return result;
  } finally {
    await store.close();
    if (!ok) await undoCreate();
  }
}

/** How every verb's help names its store argument. */
export const STORE_ARG = 'store: a folder, or a postgres:// URL';
