/**
 * The file PageStore: one folder per store.
 *   tessera.json   marker + format + page size (written once, at creation)
 *   pages.dat      page slots, slot i at i * (header + pageSize); a page is written only into a slot
 *                  the committed catalog does not reference, so live pages are never overwritten
 *   catalog.snap   the last checkpoint (one framed record)
 *   catalog.log    framed records appended after it: u32 length | u64 xxHash64 | payload
 *   LOCK           the writer's identity (lock.ts): a second writer gets STORE_LOCKED, a dead
 *                  writer's lock is taken over without a race
 * The backend moves bytes only; CheckedPageStore seals, verifies and checks (page-store.ts).
 * Durability order: every write stores all its bytes or fails (writeAll); pages are fsynced
 * before the catalog record that references them is appended, the log is fsynced before a commit
 * returns, and the folder is fsynced after every rename. A failed append is cut back off, so the
 * committed catalog is the old one; if even that fails (or an fsync fails, after which the page
 * cache cannot be trusted) the store refuses every later write until it is reopened. A torn last
 * record (a crash mid-append) fails its checksum and is ignored, and cut off by the next writer.
 * A read-only open creates and writes nothing: pages.dat is opened O_RDONLY, no LOCK is taken,
 * so stores on read-only media and for users without write permission can be read.
 */
import type { FileHandle } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { CapacityError, CorruptionError, InvalidArgumentError, StoreError, TesseraError } from '../errors.ts';
import { hash64 } from '../hash.ts';
import type { PageBackend, PageStoreSupports, SealedPage } from '../store/page-store.ts';
import { CheckedPageStore } from '../store/checked-store.ts';
import { PAGE_HEADER_BYTES } from '../store/page-format.ts';
import { nodeFileIO, syncDir, writeAll, type FileIO } from './file-io.ts';
import { acquireLock, type LockOptions } from './lock.ts';

const MARKER = 'tessera.json';
const FORMAT = 'tessera-store';
const FORMAT_VERSION = 1;
const FRAME_HEADER = 12;
/**
 * Bytes of pages written after which the device is asked, in the background, to start storing
 * them (fdatasync, not awaited): the commit's fsync then waits for what the last stretch wrote,
 * not for every page of the add. The durability rules do not change (a commit still fsyncs
 * pages.dat before its record); this only moves device time under the cutting and hashing.
 */
const EARLY_SYNC_BYTES = 8 << 20;

export interface FileStoreOptions {
  /** Create the store if the folder has none (default false). */
  create?: boolean;
  /** Page size for a new store. */
  pageSize?: number;
  /** Open without taking the writer lock; nothing is created or written, writes are refused. */
  readOnly?: boolean;
  /** Remove a lock held by a writer that cannot be judged dead (see lock.ts; the CLI's --break-lock). */
  breakLock?: boolean;
  /** The file-system calls (default node:fs/promises); the reliability tests inject faults here. */
  io?: FileIO;
  /** Test hook: delays inside the lock protocol. */
  lockDelay?: LockOptions['delay'];
}

function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length, true);
  view.setBigUint64(4, hash64(payload), true);
  out.set(payload, FRAME_HEADER);
  return out;
}

/**
 * Splits a log into its valid records; `validBytes` is where a torn last frame starts. Only the
 * last append can be torn (appends are sequential and each is fsynced before the next), so a frame
 * that fails its checksum while more bytes follow it is damage, not a crash: dropping it would
 * silently lose every later commit (and the next writer would cut them off for good).
 */
function unframe(bytes: Uint8Array, file: string): { records: Uint8Array[]; validBytes: number } {
  const records: Uint8Array[] = [];
  let pos = 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  while (pos + FRAME_HEADER <= bytes.length) {
    const len = view.getUint32(pos, true);
    const end = pos + FRAME_HEADER + len;
    if (end > bytes.length) break;
    const payload = bytes.subarray(pos + FRAME_HEADER, end);
    if (hash64(payload) !== view.getBigUint64(pos + 4, true)) {
      if (end === bytes.length) break;
      throw new CorruptionError('CATALOG_CORRUPT', `${file}: the record at byte ${pos} fails its checksum and committed records follow it: the catalog is damaged. Restore the store from a backup.`);
    }
    records.push(payload);
    pos = end;
  }
  return { records, validBytes: pos };
}

/** Maps a file-system error to a typed one; the message says what to do. */
export function ioError(what: string, err: unknown): TesseraError {
  if (err instanceof TesseraError) return err;
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new CapacityError('QUOTA_EXCEEDED', `${what}: the disk is full. Free space and retry; the store is unchanged.`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new StoreError('IO_ERROR', `${what}: permission denied (${e.code}). Writing needs write permission on the store folder; open read-only to read.`, { cause: err });
    case 'EROFS':
      return new StoreError('IO_ERROR', `${what}: the file system is read-only. Open the store read-only to read it.`, { cause: err });
    case 'EISDIR':
      return new StoreError('IO_ERROR', `${what}: a folder stands where the store keeps a file (${e.path ?? e.message}): the store folder was tampered with; move that folder away.`, { cause: err });
    default:
      return new StoreError('IO_ERROR', `${what}: ${e?.message ?? String(err)}`, { cause: err });
  }
}

/** The bytes of one store folder. */
class FileBackend implements PageBackend {
  readonly kind = 'file';
  readonly supports: PageStoreSupports = { persistent: true, concurrentReaders: true, writerLock: true };
  private pagesDirty = false;
  /** Page bytes written since the last early sync started (EARLY_SYNC_BYTES). */
  private unsyncedBytes = 0;
  /** The early sync in flight, if any; its failure is kept for `syncPages`, which must not trust the pages then. */
  private earlySync: Promise<void> | null = null;
  private earlySyncError: unknown = null;
  /** Set when the on-disk state may differ from what this process believes: every write is refused. */
  private broken: TesseraError | null = null;

  constructor(
    readonly dir: string,
    readonly pageSize: number,
    readonly readOnly: boolean,
    private readonly io: FileIO,
    /** null: a read-only open of a store that has no pages.dat yet. */
    private readonly pages: FileHandle | null,
    private readonly log: FileHandle | null,
    private logSize: number,
    private readonly unlock: (() => Promise<void>) | null,
  ) {}

  static async open(dir: string, opts: FileStoreOptions): Promise<FileBackend> {
    const io = opts.io ?? nodeFileIO;
    const readOnly = !!opts.readOnly;
    let marker: { format?: string; version?: number; pageSize?: number } | null = null;
    try {
      marker = JSON.parse(new TextDecoder().decode(await io.readFile(join(dir, MARKER))));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (e instanceof SyntaxError) throw new StoreError('NOT_A_STORE', `${dir} is not a tessera store: ${MARKER} is not JSON (${e.message}).`);
      if (code === 'ENOTDIR') throw new StoreError('NOT_A_STORE', `${dir} is a file, not a tessera store folder.`);
      if (code === 'EISDIR') throw new StoreError('NOT_A_STORE', `${dir} is not a tessera store: ${MARKER} is a folder.`);
      if (code !== 'ENOENT') throw ioError(`cannot read ${join(dir, MARKER)}`, e);
    }
    if (!marker) {
      if (!opts.create || readOnly) throw new StoreError('NOT_A_STORE', `${dir} is not a tessera store (no ${MARKER}). Create one with \`tessera add ${dir} model.onnx\`.`);
      marker = await FileBackend.create(io, dir, opts.pageSize ?? 1 << 20);
    }
    if (marker?.format !== FORMAT || typeof marker.pageSize !== 'number' || !Number.isInteger(marker.pageSize) || marker.pageSize <= 0) throw new StoreError('NOT_A_STORE', `${dir}/${MARKER} does not describe a tessera store.`);
    if (marker.version !== FORMAT_VERSION) throw new StoreError('NOT_A_STORE', `${dir} uses store format ${marker.version}; this tessera reads format ${FORMAT_VERSION}.`);
    const pageSize = marker.pageSize;
    if (readOnly) {
      let pages: FileHandle | null = null;
      try {
        pages = await io.open(join(dir, 'pages.dat'), fsConstants.O_RDONLY);
        // Opening a folder read-only succeeds; reading it would not.
        if (!(await pages.stat()).isFile()) throw Object.assign(new Error(`EISDIR: ${join(dir, 'pages.dat')} is not a file`), { code: 'EISDIR', path: join(dir, 'pages.dat') });
      } catch (e) {
        await pages?.close().catch(() => {});
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot open ${join(dir, 'pages.dat')} for reading`, e);
      }
      return new FileBackend(dir, pageSize, true, io, pages, null, 0, null);
    }
    const unlock = await acquireLock(io, dir, { breakLock: opts.breakLock, delay: opts.lockDelay });
    let pages: FileHandle | null = null;
    let log: FileHandle | null = null;
    try {
      pages = await io.open(join(dir, 'pages.dat'), fsConstants.O_RDWR | fsConstants.O_CREAT);
      log = await io.open(join(dir, 'catalog.log'), fsConstants.O_RDWR | fsConstants.O_CREAT);
      // Cut a torn last record (a crash mid-append) so the next append follows the last commit.
      const bytes = await io.readFile(join(dir, 'catalog.log'));
      const { validBytes } = unframe(bytes, join(dir, 'catalog.log'));
      if (validBytes < bytes.length) {
        await log.truncate(validBytes);
        await log.sync();
      }
      return new FileBackend(dir, pageSize, false, io, pages, log, validBytes, unlock);
    } catch (e) {
      await pages?.close().catch(() => {});
      await log?.close().catch(() => {});
      await unlock();
      throw ioError(`cannot open the store in ${dir}`, e);
    }
  }

  private static async create(io: FileIO, dir: string, pageSize: number) {
    if (!Number.isInteger(pageSize) || pageSize < 4096 || pageSize > 1 << 30) throw new InvalidArgumentError(`page size must be an integer between 4096 and 2^30 bytes, got ${pageSize}`);
    const marker = { format: FORMAT, version: FORMAT_VERSION, pageSize };
    try {
      await io.mkdir(dir);
      const existing = (await io.readdir(dir)).filter((f) => !f.startsWith('.'));
      if (existing.length) throw new StoreError('NOT_A_STORE', `${dir} is not empty and not a tessera store: choose an empty or new folder.`);
      const tmp = join(dir, MARKER + '.tmp');
      const h = await io.open(tmp, 'w');
      try {
        await writeAll(h, new TextEncoder().encode(JSON.stringify(marker) + '\n'), 0);
        await h.sync();
      } finally {
        await h.close();
      }
      await io.rename(tmp, join(dir, MARKER));
      await syncDir(io, dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOTDIR' || (e as NodeJS.ErrnoException).code === 'EEXIST') throw new StoreError('NOT_A_STORE', `${dir} is a file, not a tessera store folder.`);
      throw ioError(`cannot create a store in ${dir}`, e);
    }
    return marker;
  }

  private writable(): void {
    if (this.broken) throw new StoreError('IO_ERROR', `an earlier write to ${this.dir} failed in a way that leaves the disk state unknown to this process (${this.broken.message}); every stored model is intact: open the store again.`, { cause: this.broken });
  }

  /** Marks the store unusable for writes and returns the typed error to throw. */
  private poison(what: string, e: unknown): TesseraError {
    const err = ioError(what, e);
    this.broken = err;
    return err;
  }

  private slotOffset(id: number): number {
    return id * (PAGE_HEADER_BYTES + this.pageSize);
  }

  async readSealed(id: number): Promise<Uint8Array> {
    if (!this.pages) return new Uint8Array(0);
    const buf = new Uint8Array(PAGE_HEADER_BYTES + this.pageSize);
    try {
      const { bytesRead } = await this.pages.read(buf, 0, buf.length, this.slotOffset(id));
      return buf.subarray(0, bytesRead);
    } catch (e) {
      throw ioError(`cannot read page ${id}`, e);
    }
  }

  async readSealedInto(id: number, target: Uint8Array): Promise<number> {
    if (!this.pages) return 0;
    try {
      const { bytesRead } = await this.pages.read(target, 0, Math.min(target.length, PAGE_HEADER_BYTES + this.pageSize), this.slotOffset(id));
      return bytesRead;
    } catch (e) {
      throw ioError(`cannot read page ${id}`, e);
    }
  }

  async writeSealed(pages: ReadonlyArray<SealedPage>): Promise<void> {
    this.writable();
    try {
      for (const p of pages) {
        await writeAll(this.pages!, p.sealed, this.slotOffset(p.id));
        this.unsyncedBytes += p.sealed.length;
      }
    } catch (e) {
      // Only slots the committed catalog does not reference were touched: the store is as it was.
      throw ioError(`cannot write pages to ${this.dir}`, e);
    }
    this.pagesDirty = true;
    if (this.unsyncedBytes >= EARLY_SYNC_BYTES && !this.earlySync) {
      this.unsyncedBytes = 0;
      const pagesFile = this.pages!;
      this.earlySync = pagesFile.datasync().then(
        () => void (this.earlySync = null),
        (e: unknown) => {
          this.earlySyncError ??= e;
          this.earlySync = null;
        },
      );
    }
  }

  /** Waits for the early sync in flight (a handle is never closed under it). */
  private async settleEarlySync(): Promise<void> {
    while (this.earlySync) await this.earlySync;
  }

  /** Makes the pages written since the last commit durable (a commit may then reference them). */
  private async syncPages(): Promise<void> {
    if (!this.pagesDirty) return;
    try {
      await this.settleEarlySync();
      if (this.earlySyncError) throw this.earlySyncError;
      this.unsyncedBytes = 0;
      await this.pages!.sync();
    } catch (e) {
      // After a failed fsync (early or not) the kernel may have dropped the dirty pages: trust nothing written.
      throw this.poison('cannot make the new pages durable', e);
    }
    this.pagesDirty = false;
  }

  async appendCatalog(record: Uint8Array): Promise<void> {
    this.writable();
    await this.syncPages();
    const framed = frame(record);
    const at = this.logSize;
    try {
      await writeAll(this.log!, framed, at);
      await this.log!.sync();
    } catch (e) {
      // Undo the partial record, so the committed catalog is the old one, on disk and here.
      try {
        await this.log!.truncate(at);
        await this.log!.sync();
      } catch {
        throw this.poison('cannot commit to the catalog, nor cut the partial record off', e);
      }
      throw ioError('cannot commit to the catalog', e);
    }
    this.logSize = at + framed.length;
  }

  async readCatalog(): Promise<{ snapshot: Uint8Array | null; records: Uint8Array[] }> {
    const snapFile = join(this.dir, 'catalog.snap');
    const logFile = join(this.dir, 'catalog.log');
    const read = async (file: string): Promise<Uint8Array | null> => {
      try {
        return await this.io.readFile(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        if ((e as NodeJS.ErrnoException).code === 'EISDIR') throw new CorruptionError('CATALOG_CORRUPT', `${file} is a folder, not the catalog file: the store folder was tampered with. Move that folder away and restore the file from a backup.`);
        throw ioError(`cannot read ${file}`, e);
      }
    };
    // A checkpoint may replace the snapshot while a reader reads: retry until both files agree.
    for (let attempt = 0; attempt < 20; attempt++) {
      const before = await this.snapStamp();
      let snapshot: Uint8Array | null = null;
      const snapBytes = await read(snapFile);
      if (snapBytes) {
        const { records } = unframe(snapBytes, snapFile);
        if (records.length !== 1 || snapBytes.length !== FRAME_HEADER + records[0].length) {
          if ((await this.snapStamp()) !== before) continue;
          throw new CorruptionError('CATALOG_CORRUPT', `${snapFile} fails its checksum: the catalog is damaged. Restore the store from a backup.`);
        }
        snapshot = records[0];
      }
      const log = (await read(logFile)) ?? new Uint8Array(0);
      if ((await this.snapStamp()) !== before) continue;
      return { snapshot, records: unframe(log, logFile).records };
    }
    throw new StoreError('STORE_LOCKED', `the catalog of ${this.dir} kept changing while being read: retry.`);
  }

  /** Identity, mtime and size of a file of the store ('none' when absent): a replaced or grown file changes it. */
  private async fileStamp(name: string): Promise<string> {
    const s = await this.io.stat(join(this.dir, name)).catch(() => null);
    return s ? `${s.ino}:${s.mtimeMs}:${s.size}` : 'none';
  }

  private snapStamp(): Promise<string> {
    return this.fileStamp('catalog.snap');
  }

  async checkpointCatalog(snapshot: Uint8Array): Promise<void> {
    this.writable();
    const tmp = join(this.dir, 'catalog.snap.tmp');
    try {
      await this.syncPages();
      const h = await this.io.open(tmp, 'w');
      try {
        await writeAll(h, frame(snapshot), 0);
        await h.sync();
      } finally {
        await h.close();
      }
    } catch (e) {
      await this.io.unlink(tmp).catch(() => {});
      throw ioError('cannot checkpoint the catalog', e);
    }
    try {
      await this.io.rename(tmp, join(this.dir, 'catalog.snap'));
    } catch (e) {
      await this.io.unlink(tmp).catch(() => {});
      throw ioError('cannot checkpoint the catalog', e);
    }
    try {
      // The new snapshot must be durable before the records it folds in are dropped.
      await syncDir(this.io, this.dir);
      // Records folded into the snapshot are skipped by sequence number if this is cut short.
      await this.log!.truncate(0);
      this.logSize = 0;
      await this.log!.sync();
    } catch (e) {
      // Snapshot and log hold the same committed state either way, but which of them is durable
      // is unknown: refuse further writes until reopened.
      throw this.poison('cannot finish the checkpoint', e);
    }
  }

  async releasePages(ids: readonly number[]): Promise<void> {
    this.writable();
    try {
      // Shrink the file when the highest slots are released; inner slots are reused by later writes.
      const { size } = await this.pages!.stat();
      const slot = PAGE_HEADER_BYTES + this.pageSize;
      const released = new Set(ids);
      let top = Math.ceil(size / slot);
      // Slots released earlier have a cleared header: they may be cut too once on top.
      while (top > 0 && (released.has(top - 1) || (await this.slotCleared(top - 1)))) top--;
      if (top * slot < size) await this.pages!.truncate(top * slot);
      // Inner slots stay until reused; clearing the header keeps listPages (leak checks) exact.
      const zero = new Uint8Array(PAGE_HEADER_BYTES);
      for (const id of ids) if (id < top) await writeAll(this.pages!, zero, this.slotOffset(id));
    } catch (e) {
      // The commit that freed these slots is durable; what is not released is reclaimed by `recover`.
      throw ioError('cannot release pages', e);
    }
  }

  private async slotCleared(id: number): Promise<boolean> {
    const head = new Uint8Array(4);
    const { bytesRead } = await this.pages!.read(head, 0, 4, this.slotOffset(id));
    return bytesRead < 4 || (head[0] | head[1] | head[2] | head[3]) === 0;
  }

  async listPages(): Promise<number[]> {
    if (!this.pages) return [];
    try {
      const { size } = await this.pages.stat();
      const slot = PAGE_HEADER_BYTES + this.pageSize;
      const ids: number[] = [];
      for (let id = 0; id * slot < size; id++) if (!(await this.slotCleared(id))) ids.push(id);
      return ids;
    } catch (e) {
      throw ioError('cannot list pages', e);
    }
  }

  /** Identity, size and mtime of the catalog files: any commit or checkpoint (by any process) changes one. */
  async commitStamp(): Promise<string> {
    return (await Promise.all([this.snapStamp(), this.fileStamp('catalog.log')])).join('/');
  }

  async close(): Promise<void> {
    await this.settleEarlySync();
    await this.pages?.close().catch(() => {});
    await this.log?.close().catch(() => {});
    await this.unlock?.();
  }
}

export class FilePageStore extends CheckedPageStore {
  private constructor(raw: FileBackend) {
    super(raw);
  }

  /** The store's folder. */
  get dir(): string {
    return (this.raw as FileBackend).dir;
  }

  static async open(dir: string, opts: FileStoreOptions = {}): Promise<FilePageStore> {
    return new FilePageStore(await FileBackend.open(dir, opts));
  }
}
