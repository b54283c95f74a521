/**
 * `tessera publish <store> <dir>`: writes the store as static files a browser can import from
 * (format: src/store/published.ts). Registered on the main program by `registerPublish`.
 */
import type { Command } from 'commander';
import { openStore } from '../node/open.ts';
import { publishStore } from '../node/publish.ts';
import { formatBytes } from './format.ts';

export function registerPublish(program: Command): void {
  program
    .command('publish')
    .description('write the store as static files (index, catalog, one file per page) for browsers to import from over HTTP')
    .argument('<store>', 'store folder')
    .argument('<dir>', 'output folder (created; republishing into it writes only new pages and removes stale ones)')
    .option('--json', 'print the report as JSON')
    .action(async (path: string, dir: string, o: { json?: boolean }) => {
      const store = await openStore(path, { readOnly: true });
      try {
        const r = await publishStore(store, dir);
        if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
        else {
          process.stdout.write(
            `published ${r.models} models to ${dir}: ${r.pages} pages (${r.pagesWritten} written), ${formatBytes(r.bytes)} in all vs ${formatBytes(r.wholeFileBytes)} as whole files` +
              (r.staleFilesRemoved ? `; removed ${r.staleFilesRemoved} stale files` : '') +
              '\n',
          );
        }
      } finally {
        await store.close();
      }
    });
}
