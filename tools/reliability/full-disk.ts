/**
 * A real full disk (issue 13, findings 1-3): on a small tmpfs, the disk is filled to leave `free`
 * bytes, then add, compact and lossless dedup run; afterwards (space freed) the store must hold
 * exactly the state before (the operation failed with a typed error) or after (it succeeded),
 * verify, and export every model bit-exact. Unlike the injected faults of faults.ts, the kernel
 * decides here where the ENOSPC lands (a short write, a failed fsync, a failed create).
 *   npm run reliability -- disk   (mounts a tmpfs: needs root; or pass --fs <dir> of a small file system)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openStore } from '../../src/node/open.ts';
import type { TesseraStore } from '../../src/store/store.ts';
import { TesseraError } from '../../src/errors.ts';
import { mlp } from '../fixtures/onnx-builders.ts';
import { perturbed } from '../fixtures/family.ts';

const TILE = { rows: 16, cols: 16 };

async function stateOf(dir: string): Promise<string> {
  const s = await openStore(dir, { readOnly: true });
  try {
    const out: Record<string, string> = {};
    for (const n of [...s.listModels()].sort()) out[n] = createHash('sha256').update(await s.exportModel(n)).digest('hex');
    return JSON.stringify(out);
  } finally {
    await s.close();
  }
}

export interface FullDiskResult {
  trials: number;
  failedTyped: number;
  succeeded: number;
  codes: Record<string, number>;
  failures: string[];
}

const OPS: Record<string, (s: TesseraStore, m: Record<string, Uint8Array>) => Promise<unknown>> = {
  add: (s, m) => s.add('new', m.fresh),
  compact: (s) => s.compact(),
  'dedup-lossless': (s) => {
    const a = s.model('tuned').tensors;
    const b = s.model('base').tensors;
    const pairs = a.flatMap((t, ti) => Array.from(t.blocks, (id, i) => ({ block: id, base: b[ti].blocks[i] })).filter((p) => p.block !== p.base));
    return s.storeDeltas('tuned', pairs, { minSaving: 0 });
  },
};

/** Runs every op at free-space levels 0, step, 2*step... up to `maxFree` bytes, on file system `fsDir`. */
export async function runFullDisk(opts: { fsDir: string; maxFree: number; step: number }): Promise<FullDiskResult> {
  const base = mlp({ inputDim: 64, hidden: 48, outputDim: 8, seed: 31 });
  const m = {
    base,
    tuned: await perturbed(base, { seed: 2, scale: 1e-3 }),
    gone: mlp({ inputDim: 64, hidden: 48, outputDim: 8, seed: 32 }),
    fresh: mlp({ inputDim: 64, hidden: 48, outputDim: 8, seed: 33 }),
  };
  const res: FullDiskResult = { trials: 0, failedTyped: 0, succeeded: 0, codes: {}, failures: [] };
  for (const [op, run] of Object.entries(OPS)) {
    for (let free = 0; free <= opts.maxFree; free += opts.step) {
      for (const f of await readdir(opts.fsDir)) await rm(join(opts.fsDir, f), { recursive: true, force: true });
      const dir = join(opts.fsDir, 's');
      const setup = await openStore(dir, { create: true, pageSize: 4096, tile: TILE });
      await setup.add('base', m.base);
      await setup.add('gone', m.gone);
      await setup.add('tuned', m.tuned);
      await setup.remove('gone'); // holes for compact to close
      await setup.close();
      const before = await stateOf(dir);
      // Fill the disk to leave `free` bytes.
      const st = await statfs(opts.fsDir);
      const avail = Number(st.bavail) * Number(st.bsize);
      await mkdir(join(opts.fsDir, 'fill'), { recursive: true });
      if (avail > free) await writeFile(join(opts.fsDir, 'fill', 'x'), new Uint8Array(avail - free)).catch(() => {});
      let outcome = 'succeeded';
      let store: TesseraStore | undefined;
      try {
        store = await openStore(dir);
        await run(store, m);
      } catch (e) {
        if (!(e instanceof TesseraError)) res.failures.push(`${op} free=${free}: untyped ${(e as Error)?.stack ?? e}`);
        else res.codes[e.code] = (res.codes[e.code] ?? 0) + 1;
        outcome = 'failed';
      } finally {
        await store?.close().catch(() => {});
      }
      await rm(join(opts.fsDir, 'fill'), { recursive: true, force: true });
      res.trials++;
      if (outcome === 'failed') res.failedTyped++;
      else res.succeeded++;
      try {
        const after = await stateOf(dir);
        const s = await openStore(dir); // a writer open: recovers leaked slots
        const v = await s.verify();
        await s.close();
        if (!v.ok || v.leakedPages.length) res.failures.push(`${op} free=${free}: verify ${JSON.stringify(v)}`);
        if (outcome === 'failed' && after !== before) res.failures.push(`${op} free=${free}: failed, but the store changed`);
        if (outcome === 'succeeded' && op === 'add' && !JSON.parse(after).new) res.failures.push(`${op} free=${free}: reported added, but the model is absent`);
      } catch (e) {
        res.failures.push(`${op} free=${free}: after freeing space the store does not open or read: ${(e as Error)?.message ?? e}`);
      }
    }
  }
  return res;
}

/** Mounts a tmpfs of `bytes` at `dir` (root only); returns its unmount. */
export function mountTmpfs(dir: string, bytes: number): () => void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]);
  return () => execFileSync('umount', [dir]);
}
