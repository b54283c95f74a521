import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tempDir } from '../helpers.ts';
import { runLockRace, runLockRaceInProcess } from '../../tools/reliability/lock-race.ts';

// Reduced CI runs (the full run: `npm run reliability:locks`).
test('writers racing on a stale lock under injected delays: never two inside, one always wins (in process, 40 trials x 4)', async () => {
  const dir = await tempDir('tessera-lock-');
  try {
    const r = await runLockRaceInProcess({ dir: dir.path, trials: 40, writers: 4, seed: 1 });
    assert.equal(r.failures, []);
    assert.ok(r.won >= r.trials);
  } finally {
    await dir.cleanup();
  }
});

test('4 writer processes racing on a stale lock (2 trials: new-format and legacy lock)', async () => {
  const dir = await tempDir('tessera-lock-');
  try {
    const r = await runLockRace({ dir: dir.path, trials: 2, writers: 4, seed: 2 });
    assert.equal(r.failures, []);
    assert.ok(r.won >= r.trials);
  } finally {
    await dir.cleanup();
  }
});

test.run();
