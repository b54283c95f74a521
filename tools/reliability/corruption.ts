/**
 * Corruption injection on a file store at rest: single-bit flips, truncation and zeroed ranges in
 * pages.dat, bit flips and truncation in catalog.snap / catalog.log. For every injection:
 * - `verify` lists exactly the pages whose stored bytes changed, each with every model it affects,
 * - reading any affected model fails with CorruptionError('PAGE_CORRUPT') naming the model and page,
 * - no read returns bytes that differ from the source (no wrong weight reaches inference),
 * - a damaged catalog makes the open fail with CATALOG_CORRUPT, except a flip in the last log record,
 *   which cannot be told from a torn append and rolls the store back one commit (counted apart).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openStore } from '../../src/node/open.ts';
import { CorruptionError, TesseraError } from '../../src/errors.ts';
import { PAGE_HEADER_BYTES } from '../../src/store/page-format.ts';
import type { TesseraStore } from '../../src/store/store.ts';
import { mulberry32 as rng } from '../../src/random.ts'; // the project's seeded PRNG (test/helpers.ts's rng)
import { modelBytes, modelMatches, PAGE_SIZE, TILE, type ModelSpec } from './models.ts';

const SLOT = PAGE_HEADER_BYTES + PAGE_SIZE;

export interface CorruptionFigures {
  pageBitFlips: { injected: number; detected: number };
  pageTruncations: { injected: number; detected: number };
  pageZeroedRanges: { injected: number; detected: number; noChange: number };
  snapshotDamage: { injected: number; detected: number };
  /** Flips in the last record look like a torn append: the open drops that commit. */
  logBitFlips: { injected: number; detected: number; lastRecordRolledBack: number; rolledBackThenPageErrors: number };
  wrongBytesServed: number;
  failures: string[];
  seconds: number;
}

/** A store with shared pages, delta blocks, a snapshot and a log: every read path has data. */
export async function buildCorruptionStore(dir: string): Promise<Map<string, ModelSpec>> {
  const specs: [string, ModelSpec][] = [
    ['base', { kind: 'mlp', seed: 1 }],
    ['ft1', { kind: 'variant', base: 1, tensor: 2, seed: 11 }],
    ['ft2', { kind: 'variant', base: 1, tensor: 0, seed: 12 }],
    ['fam1', { kind: 'family', backbone: 2, head: 1 }],
    ['fam2', { kind: 'family', backbone: 2, head: 2 }],
    ['cond', { kind: 'if', seed: 3 }],
    ['types', { kind: 'dtypes', seed: 4 }],
  ];
  const store = await openStore(dir, { create: true, tile: TILE, pageSize: PAGE_SIZE });
  for (const [i, [name, spec]] of specs.entries()) {
    await store.add(name, await modelBytes(spec));
    if (i === 3) await store.checkpoint();
  }
  // ft2's perturbed blocks as deltas against base's (its bytes then depend on base's pages too).
  const a = store.model('ft2').tensors[0].blocks;
  const b = store.model('base').tensors[0].blocks;
  await store.storeDeltas('ft2', Array.from(a, (block, i) => ({ block, base: b[i] })), { minSaving: 0 });
  await store.close();
  return new Map(specs);
}

/** Pages whose stored bytes (header + used payload) differ between two images of pages.dat. */
function changedPages(store: TesseraStore, before: Uint8Array, after: Uint8Array): number[] {
  const out: number[] = [];
  for (const [id, p] of store.catalog.pages) {
    const start = id * SLOT;
    const end = start + PAGE_HEADER_BYTES + p.used;
    for (let i = start; i < end; i++) {
      if (before[i] !== (i < after.length ? after[i] : undefined)) {
        out.push(id);
        break;
      }
    }
  }
  return out.sort((x, y) => x - y);
}

/** Checks one damaged image of pages.dat; returns problems (empty: every damaged page caught). */
async function checkPages(dir: string, expected: ReadonlyMap<string, ModelSpec>, damaged: number[], figures: CorruptionFigures): Promise<string[]> {
  const problems: string[] = [];
  const store = await openStore(dir, { readOnly: true });
  try {
    const v = await store.verify();
    const got = v.damagedPages.map((d) => d.page).sort((x, y) => x - y);
    if (got.join() !== damaged.join()) problems.push(`verify lists pages [${got}], damaged are [${damaged}]`);
    const listed = new Map<string, number[]>();
    for (const d of v.damagedPages) for (const m of d.models) listed.set(m, [...(listed.get(m) ?? []), d.page]);
    for (const [name] of expected) {
      let error: unknown = null;
      try {
        if (!(await modelMatches(store, name, expected.get(name)!))) {
          figures.wrongBytesServed++;
          problems.push(`model ${name} was read with wrong bytes`);
        }
      } catch (e) {
        error = e;
      }
      const pages = listed.get(name);
      if (error === null && pages) problems.push(`verify says model ${name} is affected (pages ${pages}), but it reads fine`);
      if (error !== null) {
        if (!(error instanceof CorruptionError) || error.code !== 'PAGE_CORRUPT') problems.push(`model ${name}: ${error instanceof TesseraError ? error.code : String(error)}, not PAGE_CORRUPT`);
        else {
          if (!error.message.includes(`"${name}"`) || error.pageId === undefined || !error.message.includes(`page ${error.pageId}`)) problems.push(`model ${name}: the error does not name model and page: ${error.message}`);
          if (!damaged.includes(error.pageId!)) problems.push(`model ${name}: error names page ${error.pageId}, damaged are [${damaged}]`);
          if (!pages) problems.push(`model ${name} cannot be read (page ${error.pageId}) but verify does not list it as affected`);
        }
      }
    }
  } finally {
    await store.close();
  }
  return problems;
}

export async function runCorruption(opts: { dir: string; seed: number; flips: number; truncations: number; zeroed: number; catalogFlips: number }): Promise<CorruptionFigures> {
  const t0 = performance.now();
  const r = rng(opts.seed);
  const dir = join(opts.dir, 'store');
  const expected = await buildCorruptionStore(dir);
  const f: CorruptionFigures = {
    pageBitFlips: { injected: 0, detected: 0 },
    pageTruncations: { injected: 0, detected: 0 },
    pageZeroedRanges: { injected: 0, detected: 0, noChange: 0 },
    snapshotDamage: { injected: 0, detected: 0 },
    logBitFlips: { injected: 0, detected: 0, lastRecordRolledBack: 0, rolledBackThenPageErrors: 0 },
    wrongBytesServed: 0,
    failures: [],
    seconds: 0,
  };
  const pagesFile = join(dir, 'pages.dat');
  const original = new Uint8Array(await readFile(pagesFile));
  const ref = await openStore(dir, { readOnly: true });
  const live = [...ref.catalog.pages].map(([id, p]) => ({ id, used: p.used }));
  const fullSeq = ref.catalog.seq;
  const ok = await ref.verify();
  if (!ok.ok) throw new Error('the corruption store does not verify before any damage');

  const trial = async (label: string, image: Uint8Array, counter: { injected: number; detected: number; noChange?: number }) => {
    const damaged = changedPages(ref, original, image);
    counter.injected++;
    if (!damaged.length) {
      if (counter.noChange !== undefined) counter.noChange++;
      counter.injected--;
      return;
    }
    await writeFile(pagesFile, image);
    const problems = await checkPages(dir, expected, damaged, f);
    if (problems.length) f.failures.push(`${label}: ${problems.join('; ')}`);
    else counter.detected++;
  };

  for (let i = 0; i < opts.flips; i++) {
    const p = live[Math.floor(r() * live.length)];
    const bit = Math.floor(r() * (PAGE_HEADER_BYTES + p.used) * 8);
    const image = original.slice();
    image[p.id * SLOT + (bit >> 3)] ^= 1 << (bit & 7);
    await trial(`flip page ${p.id} bit ${bit}`, image, f.pageBitFlips);
  }
  for (let i = 0; i < opts.truncations; i++) {
    const cut = Math.floor(r() * original.length);
    await trial(`truncate pages.dat at ${cut}`, original.slice(0, cut), f.pageTruncations);
  }
  for (let i = 0; i < opts.zeroed; i++) {
    const start = Math.floor(r() * original.length);
    const len = 1 + Math.floor(r() * SLOT * 2 * r());
    const image = original.slice();
    image.fill(0, start, start + len);
    await trial(`zero ${len} bytes at ${start}`, image, f.pageZeroedRanges);
  }
  await writeFile(pagesFile, original);
  await ref.close();

  // The catalog: the snapshot (flips and truncation) and the log (flips).
  for (const file of ['catalog.snap', 'catalog.log'] as const) {
    const path = join(dir, file);
    const bytes = new Uint8Array(await readFile(path));
    const lastFrame = file === 'catalog.log' ? lastFrameStart(bytes) : 0;
    for (let i = 0; i < opts.catalogFlips; i++) {
      const image = bytes.slice();
      let label: string;
      const truncate = file === 'catalog.snap' && i % 4 === 3;
      const bit = Math.floor(r() * bytes.length * 8);
      if (truncate) {
        label = `truncate ${file} at ${bit >> 3}`;
        await writeFile(path, image.subarray(0, bit >> 3));
      } else {
        label = `flip ${file} bit ${bit}`;
        image[bit >> 3] ^= 1 << (bit & 7);
        await writeFile(path, image);
      }
      const counter = file === 'catalog.snap' ? f.snapshotDamage : f.logBitFlips;
      counter.injected++;
      let store: TesseraStore | null = null;
      try {
        store = await openStore(dir, { readOnly: true });
      } catch (e) {
        if (e instanceof CorruptionError && e.code === 'CATALOG_CORRUPT') counter.detected++;
        else f.failures.push(`${label}: open failed with ${e instanceof TesseraError ? e.code : String(e)}, not CATALOG_CORRUPT`);
      }
      if (store) {
        // Opened: only a torn-looking last log record may be dropped (one commit back), and
        // whatever the store lists must read back bit-exact.
        // The dropped commit may have freed pages the older state still references: those reads
        // must fail typed (PAGE_CORRUPT) and verify must list them.
        const problems: string[] = [];
        let unreadable = 0;
        for (const name of store.listModels()) {
          const spec = expected.get(name);
          try {
            if (!spec || !(await modelMatches(store, name, spec))) {
              f.wrongBytesServed++;
              problems.push(`model ${name} reads wrong bytes`);
            }
          } catch (e) {
            if (e instanceof CorruptionError && e.code === 'PAGE_CORRUPT') unreadable++;
            else problems.push(`model ${name}: ${String(e)}`);
          }
        }
        const v = await store.verify();
        const seq = store.catalog.seq;
        await store.close();
        if (v.ok !== !unreadable) problems.push(`verify ok=${v.ok} while ${unreadable} models cannot be read`);
        const rolledBack = file === 'catalog.log' && (bit >> 3) >= lastFrame && seq === fullSeq - 1;
        if (rolledBack && !problems.length) {
          f.logBitFlips.lastRecordRolledBack++;
          if (unreadable) f.logBitFlips.rolledBackThenPageErrors++;
        }
        else f.failures.push(`${label}: the store opened without an error at seq ${seq} (of ${fullSeq}): ${problems.join('; ') || 'nothing detected'}`);
      }
    }
    await writeFile(path, bytes);
  }
  f.seconds = (performance.now() - t0) / 1000;
  return f;
}

/** Byte offset of the last frame of a catalog log (u32 length | u64 hash | payload). */
function lastFrameStart(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  let last = 0;
  while (pos + 12 <= bytes.length) {
    last = pos;
    pos += 12 + view.getUint32(pos, true);
  }
  return last;
}
