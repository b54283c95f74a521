/**
 * The file-system calls the file backend makes, as one replaceable object: production uses
 * node:fs/promises; the reliability tests wrap it to fail the n-th call with ENOSPC, EIO, EROFS
 * or a short write (tools/reliability/faulty-fs.ts, after SQLite's I/O-error tests).
 * `writeAll` is the only way the backend writes: a short count is never taken for success.
 */
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';

export interface FileIO {
  open(path: string, flags: string | number, mode?: number): Promise<FileHandle>;
  readFile(path: string): Promise<Uint8Array>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  link(existing: string, newPath: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  stat(path: string): Promise<Stats>;
}

export const nodeFileIO: FileIO = {
  open: (path, flags, mode) => fsp.open(path, flags, mode),
  readFile: async (path) => new Uint8Array(await fsp.readFile(path)),
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => fsp.unlink(path),
  link: (existing, newPath) => fsp.link(existing, newPath),
  mkdir: async (path) => void (await fsp.mkdir(path, { recursive: true })),
  readdir: (path) => fsp.readdir(path),
  stat: (path) => fsp.stat(path),
};

/** Writes every byte of `bytes` at `position`, looping over short writes; a write of 0 bytes is a full disk. */
export async function writeAll(h: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await h.write(bytes, done, bytes.length - done, position + done);
    if (bytesWritten <= 0) throw Object.assign(new Error(`ENOSPC: no space left on device, write returned 0 of ${bytes.length - done} bytes`), { code: 'ENOSPC' });
    done += bytesWritten;
  }
}

/** fsyncs a folder, so renames, links and new files in it survive a power loss. */
export async function syncDir(io: FileIO, dir: string): Promise<void> {
  const h = await io.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
