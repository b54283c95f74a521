/**
 * The process the crash harness kills: opens the file store, runs one operation, exits.
 *   node --import tsx tools/reliability/crash-worker.ts '<WorkerJob JSON>'
 * Prints "ready" once the store is open and "done <ms>" once the operation has returned. With an
 * injection point it SIGKILLs itself at that point of the backend protocol (before, during or
 * after the n-th call of a PageStore method); "during" leaves what a crash mid-call leaves on disk:
 * a partly written page, a torn catalog frame, a snapshot renamed in but the log not emptied, or
 * only some pages released.
 */
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/node/open.ts';
import type { FilePageStore } from '../../src/node/file-store.ts';
import { hash64 } from '../../src/hash.ts';
import { PAGE_HEADER_BYTES, sealPage } from '../../src/store/page-format.ts';
import { CRASH_OPS, type CrashOp, type CrashOpName } from './crash-ops.ts';

export type InjectMethod = 'writePages' | 'appendCatalog' | 'checkpointCatalog' | 'releasePages';

export type Injection =
  | { kind: 'none' }
  /** The parent kills the worker this many ms after "ready". */
  | { kind: 'delay'; ms: number }
  /** The worker kills itself at the n-th call (1-based) of `method`; `cut` in (0, 1) sizes a partial write. */
  | { kind: 'point'; method: InjectMethod; nth: number; when: 'before' | 'during' | 'after'; cut: number };

export interface WorkerJob {
  dir: string;
  op: CrashOpName;
  args: unknown;
  inject: Injection;
}

function die(): never {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
}

/** What a crash in the middle of `method` leaves behind. */
async function partial(backend: FilePageStore, method: InjectMethod, args: any[], cut: number, call: (...a: any[]) => Promise<void>): Promise<void> {
  const dir = backend.dir;
  const writeAt = async (file: string, bytes: Uint8Array, at: number | 'end') => {
    const h = await open(join(dir, file), 'r+');
    const pos = at === 'end' ? (await h.stat()).size : at;
    await h.write(bytes, 0, bytes.length, pos);
    await h.sync();
    await h.close();
  };
  const prefix = (b: Uint8Array) => b.subarray(0, Math.max(1, Math.min(b.length - 1, Math.floor(b.length * cut))));
  const frame = (payload: Uint8Array) => {
    const out = new Uint8Array(12 + payload.length);
    const v = new DataView(out.buffer);
    v.setUint32(0, payload.length, true);
    v.setBigUint64(4, hash64(payload), true);
    out.set(payload, 12);
    return out;
  };
  switch (method) {
    case 'writePages': {
      const pages = args[0] as { id: number; epoch: number; data: Uint8Array }[];
      if (pages.length > 1) await call(pages.slice(0, pages.length >> 1));
      const p = pages[pages.length >> 1];
      await writeAt('pages.dat', prefix(sealPage(p.id, p.epoch, p.data)), p.id * (PAGE_HEADER_BYTES + backend.pageSize));
      break;
    }
    case 'appendCatalog':
      await writeAt('catalog.log', prefix(frame(args[0])), 'end');
      break;
    case 'checkpointCatalog': {
      const tmp = join(dir, 'catalog.snap.tmp');
      const h = await open(tmp, 'w');
      const framed = frame(args[0]);
      // Below one half: the temporary snapshot is cut short; above: renamed in, log not yet emptied.
      await h.writeFile(cut < 0.5 ? prefix(framed) : framed);
      await h.sync();
      await h.close();
      if (cut >= 0.5) await rename(tmp, join(dir, 'catalog.snap'));
      break;
    }
    case 'releasePages': {
      const ids = args[0] as number[];
      if (ids.length > 1) await call(ids.slice(0, ids.length >> 1));
      break;
    }
  }
}

async function main(job: WorkerJob): Promise<void> {
  const store = await openStore(job.dir, {});
  const backend = store.backend as FilePageStore;
  const inj = job.inject;
  if (inj.kind === 'point') {
    let calls = 0;
    const original = (backend[inj.method] as (...a: any[]) => Promise<void>).bind(backend);
    (backend as any)[inj.method] = async (...args: any[]) => {
      if (++calls !== inj.nth) return original(...args);
      if (inj.when === 'before') die();
      if (inj.when === 'during') {
        await partial(backend, inj.method, args, inj.cut, original);
        die();
      }
      await original(...args);
      die();
    };
  }
  process.stdout.write('ready\n');
  const t0 = performance.now();
  await (CRASH_OPS[job.op] as CrashOp<unknown>).run(store, job.args);
  const ms = performance.now() - t0;
  await store.close();
  process.stdout.write(`done ${ms.toFixed(2)}\n`);
}

// Only when run as a script (it lived under test/, where uvu imported every .ts file).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(JSON.parse(process.argv[2]) as WorkerJob).catch((e) => {
    process.stderr.write(`worker failed: ${e?.stack ?? e}\n`);
    process.exit(3);
  });
}
