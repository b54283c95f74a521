import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from '../helpers.ts';
import { runCrashTrials } from '../../tools/reliability/crash.ts';

// The reduced CI run of the crash harness (the full run: `tsx bench/reliability/run.ts crash`).
test('SIGKILL during add, rm, dedup, compact and checkpoint: the next open sees old or new state, bit-exact, no leaked pages', async () => {
  const dir = await tempDir('tessera-crash-');
  try {
    const s = await runCrashTrials({ dir: dir.path, seed: 7, trials: 16 });
    assert.equal(s.failures.map((f) => `${f.trial} ${f.op} ${JSON.stringify(f.inject)}: ${f.problems.join('; ')}`), []);
    assert.ok(s.kills >= 8, `only ${s.kills} of ${s.trials} trials were killed`);
    assert.ok(s.staleLocksRecovered >= 1, 'a killed writer\'s lock was taken over');
  } finally {
    await dir.cleanup();
  }
});

test.run();
