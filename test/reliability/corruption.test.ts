import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from '../helpers.ts';
import { runCorruption } from '../../tools/reliability/corruption.ts';

// Reduced CI run (the full run: `tsx bench/reliability/run.ts corruption`).
test('bit flips, truncation and zeroed ranges in pages, damaged snapshot and log: detected, typed, every affected model named', async () => {
  const dir = await tempDir('tessera-corrupt-');
  try {
    const f = await runCorruption({ dir: dir.path, seed: 3, flips: 150, truncations: 15, zeroed: 25, catalogFlips: 30 });
    assert.equal(f.failures, []);
    assert.is(f.wrongBytesServed, 0);
    assert.is(f.pageBitFlips.detected, f.pageBitFlips.injected);
    assert.is(f.pageTruncations.detected, f.pageTruncations.injected);
    assert.is(f.pageZeroedRanges.detected, f.pageZeroedRanges.injected);
    assert.is(f.snapshotDamage.detected, f.snapshotDamage.injected);
    assert.is(f.logBitFlips.detected + f.logBitFlips.lastRecordRolledBack, f.logBitFlips.injected);
  } finally {
    await dir.cleanup();
  }
});

test.run();
