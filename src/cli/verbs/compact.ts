/** `tessera compact <store> [--json]`: repacks every block onto as few pages as it can (atomic). */
import type { Command } from 'commander';
import { print, printJson, progressBar } from '../output.ts';
import { STORE_ARG, withStore } from '../store.ts';

export function register(program: Command): void {
  program
    .command('compact')
    .description('settle pending substitutions, repack every block onto as few pages as possible and free the rest (atomic)')
    .argument('<store>', STORE_ARG)
    .option('--json', 'print JSON')
    .action(async (path: string, o: { json?: boolean }) => {
      await withStore(path, async (store) => {
        const bar = progressBar('compact');
        const r = await store.compact({ onProgress: (p) => bar.update(p) });
        bar.stop();
        const s = store.stats();
        if (o.json) return printJson({ ...r, lowerBound: s.pageLowerBound, storedBytes: s.storedBytes });
        print(`compacted: ${r.pagesBefore} -> ${r.pagesAfter} pages (lower bound ${s.pageLowerBound}); ${r.settled} substitutions settled`);
      });
    });
}
