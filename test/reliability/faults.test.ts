import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from '../helpers.ts';
import { runFaultSweep } from '../../tools/reliability/faults.ts';

// The reduced CI sweep: every disk-changing call of every operation fails once, with one of the
// three faults in turn (the full sweep, all three at every call: `npm run reliability:faults`).
test('an I/O fault at any call of add, a batched add, rm, compact, dedup (substitute, deltas, settle, undo) and checkpoint: a typed error and the old state, or done and the new state', async () => {
  const dir = await tempDir('tessera-faults-');
  try {
    const r = await runFaultSweep({ dir: dir.path, reduced: true });
    assert.equal(r.failures.map((f) => `${f.op} #${f.nth} ${f.fault}: ${f.problems.join('; ')}`), []);
    for (const op of ['add', 'add-batch', 'rm', 'compact', 'substitute', 'deltas', 'settle', 'undo', 'checkpoint']) assert.ok(r.ops[op] >= 2, `${op} made ${r.ops[op]} disk-changing calls`);
    assert.is(r.faultsFired, r.trials, 'every armed fault fired');
    assert.ok(r.failedTyped > r.trials / 2, `${r.failedTyped} of ${r.trials} trials failed with a typed error`);
  } finally {
    await dir.cleanup();
  }
});

test.run();
