/** `tessera verify <store> [--json]`: every page checksum and the catalog; exit 1 on damage. */
import type { Command } from 'commander';
import { print, printJson, progressBar } from '../output.ts';
import { STORE_ARG, withStore } from '../store.ts';

export function register(program: Command): void {
  program
    .command('verify')
    .description('check every page checksum and the catalog; exit 1 if anything is damaged')
    .argument('<store>', STORE_ARG)
    .option('--json', 'print JSON')
    .action(async (path: string, o: { json?: boolean }) => {
      await withStore(path, async (store) => {
        const bar = progressBar('verify');
        const r = await store.verify({ onProgress: (p) => bar.update(p) });
        bar.stop();
        if (o.json) printJson(r);
        else {
          print(`${r.pagesChecked} pages checked: ${r.damagedPages.length} damaged, ${r.catalogProblems.length} catalog problems, ${r.leakedPages.length} unreferenced page slots`);
          for (const d of r.damagedPages) print(`damaged page ${d.page} (models: ${d.models.join(', ') || 'none'}): ${d.error}`);
          for (const p of r.catalogProblems) print(`catalog: ${p}`);
        }
        if (!r.ok) process.exitCode = 1;
      }, { readOnly: true });
    });
}
