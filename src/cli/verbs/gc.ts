/**
 * `tessera gc <store> [--json]`: reclaims page slots no committed model references (left by a
 * writer killed in the middle of add, rm, compact or dedup). Every writer open reclaims them too
 * (PageStore.recover); this verb does only that, and says how many there were.
 */
import type { Command } from 'commander';
import { print, printJson } from '../output.ts';
import { withStore } from '../store.ts';

export function register(program: Command): void {
  program
    .command('gc')
    .description('reclaim page slots no model references (left by a killed writer); every writer open does this too')
    .argument('<store>', 'store folder')
    .option('--json', 'print JSON')
    .action(async (path: string, o: { json?: boolean }) => {
      // Count what is leaked before the writer open reclaims it.
      const leaked = await withStore(path, async (store) => (await store.verify()).leakedPages, { readOnly: true });
      const more = await withStore(path, (store) => store.collectGarbage());
      const reclaimed = [...new Set([...leaked, ...more])].sort((a, b) => a - b);
      if (o.json) return printJson({ reclaimedPages: reclaimed });
      print(reclaimed.length ? `reclaimed ${reclaimed.length} leaked page slot(s): ${reclaimed.join(', ')}` : 'no leaked page slots');
    });
}
