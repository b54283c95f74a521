/**
 * Measures memory in a fresh process (the memory test spawns it):
 *   node --import tsx test/reliability/memory-worker.ts '{"dir":..,"mode":"export"|"pool","budget":N}'
 * 'export': exports and reads every model of the store once, one at a time.
 * 'pool':   serves every page of every model several times through a BufferPool of `budget` bytes.
 * Prints one JSON line: baseline RSS (store open, modules loaded, one warm-up read), peak RSS
 * growth over it (sampled after every page or model), the largest model's bytes, the pool's peak.
 */
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/node/open.ts';
import { BufferPool } from '../../src/pool/buffer-pool.ts';
import { Catalog } from '../../src/catalog/catalog.ts';

async function main(job: { dir: string; mode: 'export' | 'pool'; budget: number }) {
  const store = await openStore(job.dir, { readOnly: true });
  const names = store.listModels();
  const largest = Math.max(...names.map((n) => Catalog.logicalBytes(store.model(n))));
  await store.backend.readPage(store.pagesOf(names[0])[0]); // warm-up: page read path loaded
  globalThis.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
  let poolPeak = 0;
  if (job.mode === 'export') {
    for (const n of names) {
      await store.exportModel(n);
      sample();
      await store.tensorData(n);
      sample();
    }
  } else {
    const pool = new BufferPool({ budgetBytes: job.budget, policy: 'lru', fetch: (id) => store.backend.readPage(id), pageBytes: store.config.pageSize });
    for (let round = 0; round < 3; round++) {
      for (const n of names) {
        for (const id of store.pagesOf(n)) {
          const page = await pool.pin(id, { model: n });
          if (page.length > store.config.pageSize) throw new Error('page larger than the page size');
          pool.unpin(id);
          sample();
        }
      }
    }
    poolPeak = pool.stats().peakResidentBytes;
  }
  await store.close();
  process.stdout.write(JSON.stringify({ baseline, peakGrowth: peak - baseline, largestModelBytes: largest, poolPeak, maxRssKiB: process.resourceUsage().maxRSS }) + '\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(JSON.parse(process.argv[2])).catch((e) => {
    process.stderr.write(`memory worker failed: ${e?.stack ?? e}\n`);
    process.exit(3);
  });
}
