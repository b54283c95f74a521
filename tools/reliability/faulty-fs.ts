/**
 * A fault-injecting file layer for the file backend (src/node/file-io.ts), after SQLite's I/O-error
 * tests: every call that changes the disk (open, write, fsync, truncate, rename, unlink, link,
 * mkdir) is counted, and the n-th can fail with ENOSPC, EIO or a short write.
 *   transient   only the n-th call fails (an I/O error that goes away)
 *   persistent  the n-th call fails and so does every later write: a disk that stays full. Like a
 *               real full disk, shrinking (truncate), fsync, rename and unlink still work.
 *   short       the n-th write stores a prefix and returns its length (what FileHandle.write does
 *               when a later chunk hits ENOSPC); every later write then fails with ENOSPC.
 * `readOnlyMedia` fails every mutating call with EROFS (or EACCES): a read-only open must not notice.
 */
import type { FileHandle } from 'node:fs/promises';
import { nodeFileIO, type FileIO } from '../../src/node/file-io.ts';

export type FaultKind = 'ENOSPC' | 'EIO' | 'short';
export interface Fault {
  nth: number;
  kind: FaultKind;
  persistent: boolean;
}

export interface FaultyIO {
  io: FileIO;
  /** Mutating calls made since the last `reset`, by name (`write`, `sync`, `rename`...). */
  calls: string[];
  /** Whether the armed fault has fired. */
  fired: boolean;
  arm(fault: Fault | null): void;
  reset(): void;
}

/** `h` with the methods named in `replaced` swapped for those functions; every other method bound to `h`. */
function interceptHandle(h: FileHandle, replaced: Record<string, (...args: any[]) => Promise<unknown>>): FileHandle {
  return new Proxy(h, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return typeof prop === 'string' && Object.hasOwn(replaced, prop) ? replaced[prop] : v.bind(target);
    },
  });
}

const errno = (code: string, what: string) => Object.assign(new Error(`${code}: injected fault, ${what}`), { code, errno: -1, syscall: what });

export function faultyIO(base: FileIO = nodeFileIO): FaultyIO {
  let fault: Fault | null = null;
  let full = false;
  const state: FaultyIO = {
    io: undefined as unknown as FileIO,
    calls: [],
    fired: false,
    arm(f) {
      fault = f;
      full = false;
      state.fired = false;
    },
    reset() {
      state.calls = [];
      full = false;
      state.fired = false;
    },
  };
  /** Counts a call; returns the fault to apply to it, if any. */
  const count = (name: string): FaultKind | 'full' | null => {
    state.calls.push(name);
    if (fault && state.calls.length === fault.nth) {
      state.fired = true;
      if (fault.persistent || fault.kind === 'short') full = true;
      return fault.kind;
    }
    if (full && name === 'write') return 'full';
    return null;
  };
  const fail = (kind: FaultKind | 'full', what: string): never => {
    throw errno(kind === 'EIO' ? 'EIO' : 'ENOSPC', what);
  };
  const wrapHandle = (h: FileHandle): FileHandle => {
    const counted = (name: 'sync' | 'truncate' | 'writeFile') => async (...args: unknown[]) => {
      const f = count(name);
      if (f && f !== 'full') fail(f, name);
      return (h[name] as (...a: unknown[]) => Promise<unknown>).apply(h, args);
    };
    return interceptHandle(h, {
      write: async (buf: Uint8Array, offset: number, length: number, position: number) => {
        const f = count('write');
        if (f === 'short' && length > 1) return h.write(buf, offset, length >> 1, position);
        if (f) fail(f, 'write');
        return h.write(buf, offset, length, position);
      },
      sync: counted('sync'),
      truncate: counted('truncate'),
      writeFile: counted('writeFile'),
    });
  };
  const mutating = <A extends unknown[], R>(name: string, call: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
    const f = count(name);
    if (f && f !== 'full') fail(f, name);
    return call(...a);
  };
  state.io = {
    open: async (path, flags, mode) => {
      const f = count('open');
      if (f && f !== 'full') fail(f, 'open');
      return wrapHandle(await base.open(path, flags, mode));
    },
    readFile: base.readFile,
    readdir: base.readdir,
    stat: base.stat,
    rename: mutating('rename', base.rename),
    unlink: mutating('unlink', base.unlink),
    link: mutating('link', base.link),
    mkdir: mutating('mkdir', base.mkdir),
  };
  return state;
}

/** A file layer over read-only media: every call that could change the disk fails with `code`. */
export function readOnlyMedia(code: 'EROFS' | 'EACCES' = 'EROFS', base: FileIO = nodeFileIO): { io: FileIO; refused: string[] } {
  const refused: string[] = [];
  const refuse = (what: string) => {
    refused.push(what);
    return Promise.reject(errno(code, what));
  };
  const handle = (h: FileHandle): FileHandle =>
    interceptHandle(h, Object.fromEntries(['write', 'truncate', 'writeFile', 'sync'].map((name) => [name, () => refuse(name)])));
  return {
    refused,
    io: {
      open: async (path, flags, mode) => {
        const f = typeof flags === 'number' ? flags : 0;
        const writes = typeof flags === 'string' ? /[wa+x]/.test(flags) : (f & 3) !== 0 || (f & 0o100) !== 0;
        if (writes) return refuse(`open ${path} ${String(flags)}`);
        return handle(await base.open(path, flags, mode));
      },
      readFile: base.readFile,
      readdir: base.readdir,
      stat: base.stat,
      rename: (a) => refuse(`rename ${a}`),
      unlink: (a) => refuse(`unlink ${a}`),
      link: (a) => refuse(`link ${a}`),
      mkdir: (a) => refuse(`mkdir ${a}`),
    },
  };
}

/**
 * A power cut: the n-th disk-changing call and every later one never happen, and then everything
 * not made durable is lost. Durable means: a file's data once fsynced through a handle; a
 * folder's entries (files created, renamed, linked or removed in it) once the folder is fsynced.
 * `cut()` undoes the rest (in reverse order), leaving what a machine that lost power would find
 * on restart in the worst case (nothing unsynced survived).
 */
export interface PowerCutIO {
  io: FileIO;
  calls: number;
  /** True once the cut happened (the armed call was reached). */
  fired: boolean;
  arm(nth: number | null): void;
  /** Discards everything not durable. Call after the operation stopped. */
  cut(): Promise<void>;
}

type Undo = () => Promise<void>;

export function powerCutIO(base: FileIO = nodeFileIO): PowerCutIO {
  const fsp = import('node:fs/promises');
  let armed: number | null = null;
  const fileUndo = new Map<string, Undo[]>();
  const dirUndo = new Map<string, Undo[]>();
  const order: { kind: 'file' | 'dir'; key: string; undo: Undo }[] = [];
  const state: PowerCutIO = {
    io: undefined as unknown as FileIO,
    calls: 0,
    fired: false,
    arm(n) {
      armed = n;
      state.calls = 0;
      state.fired = false;
      fileUndo.clear();
      dirUndo.clear();
      order.length = 0;
    },
    async cut() {
      // Newest first, so each undo sees the state its operation left.
      for (let i = order.length - 1; i >= 0; i--) {
        const o = order[i];
        const list = (o.kind === 'file' ? fileUndo : dirUndo).get(o.key);
        if (list?.includes(o.undo)) await o.undo();
      }
      fileUndo.clear();
      dirUndo.clear();
      order.length = 0;
    },
  };
  const tick = (what: string) => {
    state.calls++;
    if (state.fired || (armed !== null && state.calls >= armed)) {
      state.fired = true;
      throw Object.assign(new Error(`EIO: power cut before ${what}`), { code: 'EIO' });
    }
  };
  const record = (kind: 'file' | 'dir', key: string, undo: Undo) => {
    const map = kind === 'file' ? fileUndo : dirUndo;
    if (!map.has(key)) map.set(key, []);
    map.get(key)!.push(undo);
    order.push({ kind, key, undo });
  };
  const dirOf = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';
  const exists = async (p: string) => !!(await (await fsp).stat(p).catch(() => null));
  const snapshotOf = async (p: string) => ((await exists(p)) ? new Uint8Array(await (await fsp).readFile(p)) : null);
  const restore = async (p: string, bytes: Uint8Array | null) => {
    const f = await fsp;
    if (bytes === null) await f.rm(p, { force: true });
    else await f.writeFile(p, bytes);
  };
  const wrap = (h: FileHandle, path: string): FileHandle => {
    // What the file holds now comes back on a cut unless a later fsync makes the change durable.
    const undoable = async () => {
      const before = await snapshotOf(path);
      record('file', path, () => restore(path, before));
    };
    return interceptHandle(h, {
      write: async (buf: Uint8Array, offset: number, length: number, position: number) => {
        tick('write');
        await undoable();
        return h.write(buf, offset, length, position);
      },
      truncate: async (len: number) => {
        tick('truncate');
        await undoable();
        return h.truncate(len);
      },
      sync: async () => {
        tick('sync');
        await h.sync();
        if (path.endsWith('/') || (await (await fsp).stat(path)).isDirectory()) dirUndo.delete(path.replace(/\/$/, ''));
        else fileUndo.delete(path);
      },
    });
  };
  const namespace = <A extends string[]>(what: string, touched: (...a: A) => string[], call: (...a: A) => Promise<void>) => async (...a: A): Promise<void> => {
    tick(what);
    const paths = touched(...a);
    const before = await Promise.all(paths.map(snapshotOf));
    for (const p of paths) record('dir', dirOf(p), async () => restore(p, before[paths.indexOf(p)]));
    return call(...a);
  };
  state.io = {
    open: async (path, flags, mode) => {
      tick('open');
      const creates = typeof flags === 'string' ? /[wax]/.test(flags) : (flags & 0o100) !== 0;
      if (creates && !(await exists(path))) record('dir', dirOf(path), () => restore(path, null));
      return wrap(await base.open(path, flags, mode), path);
    },
    readFile: base.readFile,
    readdir: base.readdir,
    stat: base.stat,
    rename: namespace('rename', (a, b) => [a, b], base.rename),
    unlink: namespace('unlink', (a) => [a], base.unlink),
    link: namespace('link', (_a, b) => [b], base.link),
    mkdir: async (p) => {
      tick('mkdir');
      return base.mkdir(p);
    },
  };
  return state;
}
