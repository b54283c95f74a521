/**
 * `tessera publish <store> <dir>`: writes the store as static files a browser can import from
 * (format: src/store/published.ts). 
 */
import type { Command } from 'commander';
import { publishStore } from '../../node/publish.ts';
import { formatBytes, print, printJson } from '../output.ts';
import { STORE_ARG, withStore } from '../store.ts';

export function register(program: Command): void {
  program
    .command('publish')
    .description('write the store as static files (index, catalog, one file per page) for browsers to import from over HTTP')
    .argument('<store>', STORE_ARG)
    .argument('<dir>', 'output folder (created; republishing into it writes only new pages and removes stale ones)')
    .option('--json', 'print the report as JSON')
    .action(async (path: string, dir: string, o: { json?: boolean }) => {
      await withStore(path, async (store) => {
        const r = await publishStore(store, dir);
        if (o.json) printJson(r);
        else {
          print(
            `published ${r.models} models to ${dir}: ${r.pages} pages (${r.pagesWritten} written), ${formatBytes(r.bytes)} in all vs ${formatBytes(r.wholeFileBytes)} as whole files` +
              (r.staleFilesRemoved ? `; removed ${r.staleFilesRemoved} stale files` : ''),
          );
        }
      }, { readOnly: true });
    });
}
