/**
 * The file PageStore: one folder per store.
 *   tessera.json   marker + format + page size (written once, at creation)
 *   pages.dat      page slots, slot i at i * (header + pageSize); a page is written only into a slot
 *                  the committed catalog does not reference, so live pages are never overwritten
 *   catalog.snap   the last checkpoint (one framed record)
 *   catalog.log    framed records appended after it: u32 length | u64 xxHash64 | payload
 *   LOCK           the writer's pid; a second writer gets STORE_LOCKED, a dead writer's lock is taken over
 * Durability order: pages are fsynced before the catalog record that references them is appended,
 * and the log is fsynced before a commit returns. A torn last record fails its checksum and is
 * ignored (and cut off by the next writer), so a crash leaves the previous committed state.
 */
import { open, readFile, rename, rm, stat, writeFile, mkdir, readdir, type FileHandle } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { join, resolve } from 'node:path';
import { CorruptionError, InvalidArgumentError, StoreError, TesseraError } from '../errors.ts';
import { hash64 } from '../hash.ts';
import type { PageStore } from '../store/page-store.ts';
import { PAGE_HEADER_BYTES, openPage, sealPage } from '../store/page-format.ts';

const MARKER = 'tessera.json';
const FORMAT = 'tessera-store';
const FORMAT_VERSION = 1;
const FRAME_HEADER = 12;

export interface FileStoreOptions {
  /** Create the store if the folder has none (default false). */
  create?: boolean;
  /** Page size for a new store. */
  pageSize?: number;
  /** Open without taking the writer lock; writes are refused. */
  readOnly?: boolean;
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

function ioError(what: string, err: unknown): TesseraError {
  if (err instanceof TesseraError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOSPC') return new StoreError('QUOTA_EXCEEDED', `${what}: the disk is full. Free space and retry; the store is unchanged.`, { cause: err });
  return new StoreError('IO_ERROR', `${what}: ${e?.message ?? String(err)}`, { cause: err });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class FilePageStore implements PageStore {
  readonly kind = 'file';
  private pagesDirty = false;
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly pageSize: number,
    private readonly readOnly: boolean,
    private readonly pages: FileHandle,
    private readonly log: FileHandle | null,
  ) {}

  static async open(dir: string, opts: FileStoreOptions = {}): Promise<FilePageStore> {
    let marker: { format?: string; version?: number; pageSize?: number } | null = null;
    try {
      marker = JSON.parse(await readFile(join(dir, MARKER), 'utf8'));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') {
        if (code === 'ENOTDIR') throw new StoreError('NOT_A_STORE', `${dir} is a file, not a tessera store folder.`);
        throw new StoreError('NOT_A_STORE', `${dir} is not a tessera store: ${MARKER} cannot be read (${(e as Error).message}).`);
      }
    }
    if (!marker) {
      if (!opts.create) throw new StoreError('NOT_A_STORE', `${dir} is not a tessera store (no ${MARKER}). Create one with \`tessera add ${dir} model.onnx\`.`);
      const pageSize = opts.pageSize ?? 1 << 20;
      if (!Number.isInteger(pageSize) || pageSize < 4096 || pageSize > 1 << 30) throw new InvalidArgumentError(`page size must be an integer between 4096 and 2^30 bytes, got ${pageSize}`);
      try {
        await mkdir(dir, { recursive: true });
        const existing = (await readdir(dir)).filter((f) => !f.startsWith('.'));
        if (existing.length) throw new StoreError('NOT_A_STORE', `${dir} is not empty and not a tessera store: choose an empty or new folder.`);
        const tmp = join(dir, MARKER + '.tmp');
        await writeFile(tmp, JSON.stringify({ format: FORMAT, version: FORMAT_VERSION, pageSize }) + '\n');
        await rename(tmp, join(dir, MARKER));
      } catch (e) {
        throw ioError(`cannot create a store in ${dir}`, e);
      }
      marker = { format: FORMAT, version: FORMAT_VERSION, pageSize };
    }
    if (marker.format !== FORMAT || typeof marker.pageSize !== 'number') throw new StoreError('NOT_A_STORE', `${dir}/${MARKER} does not describe a tessera store.`);
    if (marker.version !== FORMAT_VERSION) throw new StoreError('NOT_A_STORE', `${dir} uses store format ${marker.version}; this tessera reads format ${FORMAT_VERSION}.`);
    const readOnly = !!opts.readOnly;
    if (!readOnly) await FilePageStore.lock(dir);
    try {
      const pages = await open(join(dir, 'pages.dat'), fsConstants.O_RDWR | fsConstants.O_CREAT);
      const log = readOnly ? null : await open(join(dir, 'catalog.log'), fsConstants.O_RDWR | fsConstants.O_CREAT);
      const store = new FilePageStore(dir, marker.pageSize, readOnly, pages, log);
      if (log) await store.cutTornTail();
      return store;
    } catch (e) {
      if (!readOnly) {
        await rm(join(dir, 'LOCK'), { force: true });
        heldLocks.delete(resolve(dir));
      }
      throw ioError(`cannot open the store in ${dir}`, e);
    }
  }

  private static async lock(dir: string): Promise<void> {
    const path = join(dir, 'LOCK');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const h = await open(path, 'wx');
        await h.writeFile(String(process.pid));
        await h.close();
        heldLocks.add(resolve(dir));
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`cannot lock ${dir}`, e);
        const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
        if (pid && (pid === process.pid ? heldLocks.has(resolve(dir)) : pidAlive(pid))) {
          throw new StoreError('STORE_LOCKED', `store ${dir} is locked by process ${pid}, which is writing to it: wait for it to finish, or open read-only.`);
        }
        // Stale lock from a killed writer: the catalog protocol makes its half-done work invisible.
        await rm(path, { force: true });
      }
    }
    throw new StoreError('STORE_LOCKED', `store ${dir} is locked by another writer.`);
  }

  private writable(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the store is closed: open it again');
    if (this.readOnly) throw new StoreError('STORE_LOCKED', `store ${this.dir} was opened read-only.`);
  }

  private async cutTornTail(): Promise<void> {
    const bytes = await readFile(join(this.dir, 'catalog.log'));
    const { validBytes } = unframe(bytes, join(this.dir, 'catalog.log'));
    if (validBytes < bytes.length) {
      await this.log!.truncate(validBytes);
      await this.log!.sync();
    }
  }

  private slotOffset(id: number): number {
    return id * (PAGE_HEADER_BYTES + this.pageSize);
  }

  async readPage(id: number, epoch?: number): Promise<Uint8Array> {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the store is closed: open it again');
    const buf = new Uint8Array(PAGE_HEADER_BYTES + this.pageSize);
    let n: number;
    try {
      ({ bytesRead: n } = await this.pages.read(buf, 0, buf.length, this.slotOffset(id)));
    } catch (e) {
      throw ioError(`cannot read page ${id}`, e);
    }
    return openPage(id, buf.subarray(0, n), this.pageSize, epoch);
  }

  async writePages(pages: ReadonlyArray<{ id: number; epoch: number; data: Uint8Array }>): Promise<void> {
    this.writable();
    for (const p of pages) {
      if (p.data.length > this.pageSize) throw new InvalidArgumentError(`page ${p.id}: ${p.data.length} bytes exceed the page size ${this.pageSize}`);
    }
    try {
      for (const p of pages) {
        const sealed = sealPage(p.id, p.epoch, p.data);
        await this.pages.write(sealed, 0, sealed.length, this.slotOffset(p.id));
      }
    } catch (e) {
      throw ioError('cannot write pages', e);
    }
    if (pages.length) this.pagesDirty = true;
  }

  async appendCatalog(record: Uint8Array): Promise<void> {
    this.writable();
    try {
      if (this.pagesDirty) {
        await this.pages.sync();
        this.pagesDirty = false;
      }
      const { size } = await this.log!.stat();
      const framed = frame(record);
      await this.log!.write(framed, 0, framed.length, size);
      await this.log!.sync();
    } catch (e) {
      // A partly written frame fails its checksum on the next read and is cut off.
      throw ioError('cannot commit to the catalog', e);
    }
  }

  async readCatalog(): Promise<{ snapshot: Uint8Array | null; records: Uint8Array[] }> {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the store is closed: open it again');
    // A checkpoint may replace the snapshot while a reader reads: retry until both files agree.
    for (let attempt = 0; attempt < 5; attempt++) {
      const before = await snapStamp(this.dir);
      let snapshot: Uint8Array | null = null;
      try {
        const bytes = new Uint8Array(await readFile(join(this.dir, 'catalog.snap')));
        const { records } = unframe(bytes, join(this.dir, 'catalog.snap'));
        if (records.length !== 1) throw new CorruptionError('CATALOG_CORRUPT', `${this.dir}/catalog.snap fails its checksum: the catalog is damaged.`);
        snapshot = records[0];
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      const log = await readFile(join(this.dir, 'catalog.log')).catch((e) => {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Uint8Array(0);
        throw e;
      });
      if ((await snapStamp(this.dir)) === before) return { snapshot, records: unframe(new Uint8Array(log), join(this.dir, 'catalog.log')).records };
    }
    throw new StoreError('STORE_LOCKED', `the catalog of ${this.dir} kept changing while being read: retry.`);
  }

  async checkpointCatalog(snapshot: Uint8Array): Promise<void> {
    this.writable();
    try {
      if (this.pagesDirty) {
        await this.pages.sync();
        this.pagesDirty = false;
      }
      const tmp = join(this.dir, 'catalog.snap.tmp');
      const h = await open(tmp, 'w');
      await h.writeFile(frame(snapshot));
      await h.sync();
      await h.close();
      await rename(tmp, join(this.dir, 'catalog.snap'));
      await syncDir(this.dir);
      // Records already folded into the snapshot are skipped by sequence number if this is cut short.
      await this.log!.truncate(0);
      await this.log!.sync();
    } catch (e) {
      throw ioError('cannot checkpoint the catalog', e);
    }
  }

  async releasePages(ids: readonly number[]): Promise<void> {
    this.writable();
    if (!ids.length) return;
    // Shrink the file when the highest slots are released; inner slots are reused by later writes.
    const { size } = await this.pages.stat();
    const slot = PAGE_HEADER_BYTES + this.pageSize;
    const released = new Set(ids);
    let top = Math.ceil(size / slot);
    try {
      // Slots released earlier have a cleared header: they may be cut too once on top.
      while (top > 0 && (released.has(top - 1) || (await this.slotCleared(top - 1)))) top--;
      if (top * slot < size) await this.pages.truncate(top * slot);
      // Inner slots stay until reused; clearing the header keeps listPages (leak checks) exact.
      const zero = new Uint8Array(PAGE_HEADER_BYTES);
      for (const id of ids) if (id < top) await this.pages.write(zero, 0, zero.length, this.slotOffset(id));
    } catch (e) {
      throw ioError('cannot release pages', e);
    }
  }

  private async slotCleared(id: number): Promise<boolean> {
    const head = new Uint8Array(4);
    const { bytesRead } = await this.pages.read(head, 0, 4, this.slotOffset(id));
    return bytesRead < 4 || (head[0] | head[1] | head[2] | head[3]) === 0;
  }

  /** Cuts page slots at or above `count` (never-committed writes left by a crash). */
  async truncatePages(count: number): Promise<void> {
    this.writable();
    const slot = PAGE_HEADER_BYTES + this.pageSize;
    const { size } = await this.pages.stat();
    if (size > count * slot) await this.pages.truncate(count * slot);
  }

  async listPages(): Promise<number[]> {
    const { size } = await this.pages.stat();
    const slot = PAGE_HEADER_BYTES + this.pageSize;
    const ids: number[] = [];
    for (let id = 0; id * slot < size; id++) if (!(await this.slotCleared(id))) ids.push(id);
    return ids;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pages.close();
    if (this.log) {
      await this.log.close();
      await rm(join(this.dir, 'LOCK'), { force: true });
      heldLocks.delete(resolve(this.dir));
    }
  }
}

/** Stores this process holds the writer lock of (a pid alone cannot tell two opens apart). */
const heldLocks = new Set<string>();

async function snapStamp(dir: string): Promise<string> {
  const s = await stat(join(dir, 'catalog.snap')).catch(() => null);
  return s ? `${s.ino}:${s.mtimeMs}:${s.size}` : 'none';
}

async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
