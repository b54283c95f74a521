/** `tessera rm <store> <model...>`: removes models; pages no other model uses are freed. */
import type { Command } from 'commander';
import { print } from '../output.ts';
import { STORE_ARG, withStore } from '../store.ts';

export function register(program: Command): void {
  program
    .command('rm')
    .description('remove models; pages no other model uses are freed')
    .argument('<store>', STORE_ARG)
    .argument('<models...>', 'model names')
    .action(async (path: string, names: string[]) => {
      await withStore(path, async (store) => {
        for (const n of names) store.model(n); // all or nothing: check every name first
        for (const n of names) {
          const { freedPages } = await store.remove(n);
          print(`removed ${n} (${freedPages} pages freed)`);
        }
      });
    });
}
