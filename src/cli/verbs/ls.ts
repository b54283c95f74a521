/** `tessera ls <store> [--json]`: the models in a store, one row each. */
import type { Command } from 'commander';
import { formatBytes, print, printJson, table } from '../output.ts';
import { STORE_ARG, withStore } from '../store.ts';

export function register(program: Command): void {
  program
    .command('ls')
    .description('list the models in a store')
    .argument('<store>', STORE_ARG)
    .option('--json', 'print JSON')
    .action(async (path: string, o: { json?: boolean }) => {
      await withStore(path, async (store) => {
        const models = store.stats().perModel;
        if (o.json) return printJson(models.map(({ name, tensors, logicalBytes, addedAt }) => ({ name, tensors, logicalBytes, addedAt })));
        print(table(
          ['model', 'tensors', 'size', 'unique', 'added'],
          models.map((m) => [m.name, String(m.tensors), formatBytes(m.logicalBytes), formatBytes(m.uniqueBytes), m.addedAt.replace(/\.\d+Z$/, 'Z')]),
        ));
      }, { readOnly: true });
    });
}
