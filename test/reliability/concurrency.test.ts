import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from '../helpers.ts';
import { runConcurrency } from '../../tools/reliability/concurrency.ts';

test('one writer, three reader processes: readers see only committed states; second writer STORE_LOCKED; stale lock recovered', async () => {
  const dir = await tempDir('tessera-concurrent-');
  try {
    const f = await runConcurrency({ dir: dir.path, seed: 5, readers: 3, ms: 4000 });
    assert.equal(f.failures, []);
    assert.is(f.secondWriter, 'STORE_LOCKED');
    assert.ok(f.staleLockRecovered);
    assert.ok(f.reads > 20, `${f.reads} model reads`);
  } finally {
    await dir.cleanup();
  }
});

test.run();
