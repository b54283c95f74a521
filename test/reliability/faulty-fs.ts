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
  const wrapHandle = (h: FileHandle): FileHandle =>
    new Proxy(h, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        if (prop === 'write') {
          return async (buf: Uint8Array, offset: number, length: number, position: number) => {
            const f = count('write');
            if (f === 'short' && length > 1) return target.write(buf, offset, length >> 1, position);
            if (f) fail(f, 'write');
            return target.write(buf, offset, length, position);
          };
        }
        if (prop === 'sync' || prop === 'truncate' || prop === 'writeFile') {
          return async (...args: unknown[]) => {
            const f = count(String(prop));
            if (f && f !== 'full') fail(f, String(prop));
            return (v as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        return v.bind(target);
      },
    });
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
    new Proxy(h, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        if (prop === 'write' || prop === 'truncate' || prop === 'writeFile' || prop === 'sync') return () => refuse(`${String(prop)}`);
        return v.bind(target);
      },
    });
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
