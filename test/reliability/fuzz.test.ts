import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runFuzz } from '../../tools/reliability/fuzz.ts';

// Reduced CI run (the full run, 1,000 cases a target: `tsx bench/reliability/run.ts fuzz`).
test('fuzzing parseModel, catalog decoding and page reads: only typed errors, no hang, bounded memory', async () => {
  const f = await runFuzz({ seed: 11, casesPerTarget: 60 });
  assert.equal(f.failures, []);
  assert.ok(f.cases >= 600, `${f.cases} cases`);
  assert.ok(f.peakRssGrowthMiB < 512, `RSS grew by ${f.peakRssGrowthMiB} MiB`);
});

test.run();
