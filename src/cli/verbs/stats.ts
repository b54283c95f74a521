/** `tessera stats <store> [--json]`: logical against stored bytes, pages, and a row per model. */
import type { Command } from 'commander';
import { formatBytes, print, printJson, table } from '../output.ts';
import { STORE_ARG, withStore } from '../store.ts';

export function register(program: Command): void {
  program
    .command('stats')
    .description('logical vs stored bytes, dedup ratio, pages, per model')
    .argument('<store>', STORE_ARG)
    .option('--json', 'print JSON')
    .action(async (path: string, o: { json?: boolean }) => {
      await withStore(path, async (store) => {
        const s = store.stats();
        if (o.json) return printJson(s);
        print(`models ${s.models}  tensors ${s.tensors}  blocks ${s.blocks} (tile ${s.tile.rows}x${s.tile.cols})`);
        print(`logical ${formatBytes(s.logicalBytes)}  stored ${formatBytes(s.storedBytes)}  dedup ${s.dedupRatio.toFixed(2)}x  pages ${s.pages} x ${formatBytes(s.pageSize)} (lower bound ${s.pageLowerBound})`);
        print('');
        print(table(
          ['model', 'tensors', 'logical', 'unique', 'pages read', 'read amp.', 'subst.'],
          s.perModel.map((m) => [m.name, String(m.tensors), formatBytes(m.logicalBytes), formatBytes(m.uniqueBytes), String(m.pages), m.readAmplification.toFixed(2), String(m.substitutions)]),
        ));
      }, { readOnly: true });
    });
}
