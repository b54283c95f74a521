import { TesseraError } from '../src/errors.ts';
import { mulberry32 } from '../src/random.ts';

/** Seeded floats in [0, 1): the project's PRNG. */
export const rng = mulberry32;
/** Small shared test helpers: seeded randomness and temp folders. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';


export async function tempDir(prefix = 'tessera-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** The `code` of the TesseraError a promise rejects with, or 'resolved'. Non-Tessera errors fail the test. */
export async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (!(e instanceof TesseraError)) throw new Error(`expected a TesseraError, got ${String(e)}`, { cause: e });
    return e.code;
  }
  return 'resolved';
}
