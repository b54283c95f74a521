/**
 * The file store's writer lock: at most one writer per store folder, across processes.
 *
 * Taking it: the writer writes its identity (random token, pid, host, boot id and process start
 * time) into a file of its own, `LOCK.<token>.tmp`, and hard-links it to `LOCK`. link(2) fails
 * with EEXIST when `LOCK` exists, so taking it is one atomic step and two takers cannot both win.
 *
 * A stale lock (its writer was killed) is taken over without a race: the taker judges the holder
 * dead (same boot and host, and the pid is gone or now belongs to a process started at another
 * time), then must create `LOCK.break.<holder token>` exclusively. Only the one that creates it
 * may unlink `LOCK`, and only after reading it again and finding the same holder (same bytes,
 * same inode). No other process can replace that holder's `LOCK` meanwhile (that needs the same
 * break file), so a taker never removes a lock it did not judge; after unlinking it takes the lock
 * by link like everyone else. Two takers of one stale lock: one unlinks it, both link, one wins.
 *
 * A holder that cannot be judged (a lock written by an older tessera holding only a pid that is
 * alive, e.g. pid 1 in a container; another host; a takeover interrupted by a kill) is never
 * taken silently: the writer gets STORE_LOCKED naming the holder and `--break-lock`
 * (`breakLock: true`), with which a human who knows no writer is running removes it.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CapacityError, StoreError, TesseraError } from '../errors.ts';
import { hash64Hex } from '../hash.ts';
import { writeAll, type FileIO } from './file-io.ts';

export const LOCK_FILE = 'LOCK';

export interface LockOwner {
  token: string;
  pid: number;
  host: string;
  bootId: string | null;
  /** Start time of the process (clock ticks since boot, /proc/<pid>/stat field 22), null where unknown. */
  startTime: string | null;
  since: string;
}

export interface LockOptions {
  /** Remove whatever holds the lock (the human has checked no writer is running). */
  breakLock?: boolean;
  /** Test hook: awaited at named points of the protocol, to widen race windows. */
  delay?: (point: 'judged' | 'break-file' | 'before-unlink' | 'linked') => Promise<void>;
}

/**
 * Tokens of locks this process holds or is taking (registered before the link, so a concurrent
 * open in this process never judges a lock this process just took as an earlier process's).
 */
const held = new Set<string>();

function readProc(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

const bootId = (): string | null => readProc('/proc/sys/kernel/random/boot_id')?.trim() || null;

/** A process's start time, which together with its pid names it uniquely within one boot. */
export function processStartTime(pid: number): string | null {
  const stat = readProc(`/proc/${pid}/stat`);
  if (!stat) return null;
  // Fields after the parenthesised command name (which may itself hold spaces or ')').
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] ?? null;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function me(): LockOwner {
  return { token: randomBytes(16).toString('hex'), pid: process.pid, host: hostname(), bootId: bootId(), startTime: processStartTime(process.pid), since: new Date().toISOString() };
}

/** What a LOCK file holds: the owner, or (older tessera) a bare pid. */
function parseOwner(raw: string): { owner: LockOwner | null; pid: number | null } {
  try {
    const o = JSON.parse(raw) as LockOwner;
    if (o && typeof o.token === 'string' && Number.isInteger(o.pid)) return { owner: o, pid: o.pid };
  } catch {
    // not JSON: a bare pid from an older tessera, or garbage
  }
  const pid = Number(raw.trim());
  return { owner: null, pid: Number.isInteger(pid) && pid > 0 ? pid : null };
}

type Verdict = { state: 'live' | 'stale' | 'unknown'; why: string };

function judge(raw: string): Verdict {
  const { owner, pid } = parseOwner(raw);
  if (!owner) {
    if (pid === null) return { state: 'unknown', why: 'LOCK holds no owner tessera can read' };
    if (!pidAlive(pid)) return { state: 'stale', why: `process ${pid} is gone` };
    return { state: 'unknown', why: `process ${pid} is alive, but the lock (written by an older tessera) does not say whether it is the writer or a later process with the same pid` };
  }
  const desc = `process ${owner.pid} on ${owner.host} since ${owner.since}`;
  if (owner.host !== hostname()) return { state: 'unknown', why: `${desc}: another machine, whose processes this one cannot see` };
  const boot = bootId();
  if (owner.bootId && boot && owner.bootId !== boot) return { state: 'stale', why: `${desc}: written before the machine restarted` };
  if (owner.pid === process.pid) return held.has(owner.token) ? { state: 'live', why: `${desc}: this process has the store open for writing` } : { state: 'stale', why: `${desc}: an earlier process with this pid` };
  if (!pidAlive(owner.pid)) return { state: 'stale', why: `${desc}: the process is gone` };
  const start = processStartTime(owner.pid);
  if (owner.startTime && start && owner.startTime !== start) return { state: 'stale', why: `${desc}: pid ${owner.pid} now belongs to another process` };
  return { state: 'live', why: desc };
}

function lockError(dir: string, why: string, hint: string): StoreError {
  return new StoreError('STORE_LOCKED', `store ${dir} is locked for writing (${why}). ${hint}`);
}

const BREAK_HINT = 'Wait for that writer to finish, or open read-only. If you are sure no tessera writer is running, run the command again with --break-lock.';

/** Takes the writer lock of store folder `dir`; returns its release. */
export async function acquireLock(io: FileIO, dir: string, opts: LockOptions = {}): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE);
  const owner = me();
  const mine = JSON.stringify(owner) + '\n';
  const tmp = join(dir, `${LOCK_FILE}.${owner.token}.tmp`);
  const delay = opts.delay ?? (async () => {});
  const fail = (what: string, e: unknown): TesseraError => {
    if (e instanceof TesseraError) return e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') return new StoreError('IO_ERROR', `${path} is a folder, not a lock file: remove it (no writer is using it) and retry.`);
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new StoreError('IO_ERROR', `cannot ${what} ${path} (${code}): a writer needs write permission on the store folder; open read-only to read it.`, { cause: e });
    if (code === 'ENOSPC') return new CapacityError('QUOTA_EXCEEDED', `cannot ${what} ${path}: the disk is full. Free space and retry; the store is unchanged.`, { cause: e });
    return new StoreError('IO_ERROR', `cannot ${what} ${path}: ${(e as Error).message}`, { cause: e });
  };
  try {
    const h = await io.open(tmp, 'wx');
    try {
      await writeAll(h, new TextEncoder().encode(mine), 0);
      await h.sync();
    } finally {
      await h.close();
    }
  } catch (e) {
    await io.unlink(tmp).catch(() => {});
    throw fail('write', e);
  }
  held.add(owner.token);
  let taken = false;
  try {
    let breakAttempts = 0;
    for (let attempt = 0; attempt < 200; attempt++) {
      try {
        await io.link(tmp, path);
        taken = true;
        await delay('linked');
        // No folder fsync: the lock need not survive a power loss (its writer does not either;
        // a LOCK that does survive is judged stale by its boot id). It cost every writer open one.
        return async () => {
          held.delete(owner.token);
          // Only our own lock: after a --break-lock the file may be someone else's.
          const raw = await readText(io, path);
          if (raw === mine) await io.unlink(path).catch(() => {});
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fail('create', e);
      }
      const seen = await readHolder(io, path).catch((e) => {
        throw fail('read', e);
      });
      if (!seen) continue; // released meanwhile: take it
      const verdict = opts.breakLock ? { state: 'stale' as const, why: 'broken by --break-lock' } : judge(seen.raw);
      if (verdict.state === 'live') throw lockError(dir, verdict.why, BREAK_HINT);
      if (verdict.state === 'unknown') throw lockError(dir, verdict.why, BREAK_HINT);
      await delay('judged');
      // Take over this holder, and only this one.
      const breakFile = join(dir, `${LOCK_FILE}.break.${holderKey(seen)}`);
      try {
        const b = await io.open(breakFile, 'wx');
        await b.close();
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fail('create', e);
        if (opts.breakLock) {
          await io.unlink(breakFile).catch(() => {});
          continue;
        }
        // Another process is taking over the same holder: wait for it, then judge what LOCK holds.
        if (++breakAttempts > 100) throw lockError(dir, `a takeover of a stale lock is in progress or was interrupted (${breakFile} exists)`, BREAK_HINT);
        await sleep(10 + Math.random() * 20);
        continue;
      }
      await delay('break-file');
      const again = await readHolder(io, path).catch(() => null);
      if (again && again.raw === seen.raw && again.ino === seen.ino) {
        await delay('before-unlink');
        await io.unlink(path).catch((e) => {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fail('remove', e);
        });
      }
      await io.unlink(breakFile).catch(() => {});
    }
    throw lockError(dir, 'the lock kept changing hands', BREAK_HINT);
  } finally {
    if (!taken) held.delete(owner.token);
    await io.unlink(tmp).catch(() => {});
  }
}

function holderKey(h: { raw: string; ino: number }): string {
  const { owner } = parseOwner(h.raw);
  return owner && /^[0-9a-f]{32}$/.test(owner.token) ? owner.token : `${hash64Hex(new TextEncoder().encode(h.raw))}-${h.ino}`;
}

async function readText(io: FileIO, path: string): Promise<string | null> {
  try {
    return new TextDecoder().decode(await io.readFile(path));
  } catch {
    return null;
  }
}

/** The LOCK file's bytes and inode, or null when there is none. */
async function readHolder(io: FileIO, path: string): Promise<{ raw: string; ino: number } | null> {
  try {
    const st = await io.stat(path);
    if (st.isDirectory()) throw Object.assign(new Error(`${path} is a directory`), { code: 'EISDIR' });
    const raw = new TextDecoder().decode(await io.readFile(path));
    return { raw, ino: st.ino };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
