/** Verify (every page's checksum, the catalog's sums, leaked slots) and garbage collection. */
import { CorruptionError, TesseraError } from '../errors.ts';
import { checkCatalog } from '../catalog/catalog.ts';
import type { StoreCore, Progress } from './core.ts';

export interface VerifyReport {
  ok: boolean;
  pagesChecked: number;
  damagedPages: { page: number; error: string; models: string[] }[];
  catalogProblems: string[];
  leakedPages: number[];
}

/** Reads every page (checksums), checks the catalog adds up, and lists leaked page slots. */
export async function verifyStore(core: StoreCore, opts: { onProgress?: (p: Progress) => void } = {}): Promise<VerifyReport> {
  core.check();
  const cat = core.catalog;
  const catalogProblems = checkCatalog(cat);
  const damagedPages: VerifyReport['damagedPages'] = [];
  const pageIds = [...cat.pages.keys()].sort((a, b) => a - b);
  let done = 0;
  for (const id of pageIds) {
    const entry = cat.pages.get(id)!;
    try {
      const data = await core.backend.readPage(id, entry.epoch);
      if (data.length !== entry.used) throw new CorruptionError('PAGE_CORRUPT', `page ${id} holds ${data.length} bytes, the catalog expects ${entry.used}`, { pageId: id });
    } catch (e) {
      if (!(e instanceof TesseraError)) throw e;
      damagedPages.push({ page: id, error: e.message, models: cat.modelsOnPage(id) });
    }
    opts.onProgress?.({ phase: 'read', done: ++done, total: pageIds.length });
  }
  const stored = await core.backend.listPages();
  const leakedPages = stored.filter((id) => !cat.pages.has(id));
  return { ok: !damagedPages.length && !catalogProblems.length, pagesChecked: pageIds.length, damagedPages, catalogProblems, leakedPages };
}

/** Releases page slots that hold data no committed model references (left by a crash). */
export async function collectGarbage(core: StoreCore): Promise<number[]> {
  core.check();
  const stored = await core.backend.listPages();
  const leaked = stored.filter((id) => !core.catalog.pages.has(id));
  await core.backend.releasePages(leaked);
  return leaked;
}
