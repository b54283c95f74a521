/**
 * A pass below the bound may stop early: the evaluator returns a value below the floor after part
 * of the set, while every passing score is exact (the planner uses only whether a state fails).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ModelEntry } from '../src/catalog/catalog.ts';
import { createEvaluator, type EvalSet, type SessionFactory } from '../src/dedup/evaluate.ts';

const N = 600;
const model = { name: 'm', inputs: [{ name: 'x', dtype: 'float32', shape: [] }], outputs: [{ name: 'y' }] } as unknown as ModelEntry;
/** Weights of one byte: samples from row `k` on are predicted wrong (class 1), k = byte * 4. */
const weightsWrongFrom = (k: number) => [Uint8Array.of(k / 4)];

function counting() {
  const calls = { batches: 0, samples: 0 };
  const factory: SessionFactory = async (_m, weights) => ({
    name: 'm',
    async run(feeds) {
      const x = feeds.x.data;
      calls.batches++;
      calls.samples += x.length;
      const wrongFrom = weights[0][0] * 4;
      const y = new Float32Array(x.length * 2);
      for (let i = 0; i < x.length; i++) y[i * 2 + (x[i] >= wrongFrom ? 1 : 0)] = 1;
      return { y: { data: y, dims: [x.length, 2] } };
    },
    async release() {},
  });
  return { calls, factory };
}

const rows = Float32Array.from({ length: N }, (_, i) => i);

for (const labelled of [true, false]) {
  test(`${labelled ? 'labelled' : 'agreement'}: a failing state stops after part of the set, a passing one is scored exactly`, async () => {
    const set: EvalSet = { input: 'x', dims: [N, 1], data: rows, labels: labelled ? new Int32Array(N) : undefined };
    const { calls, factory } = counting();
    const ev = await createEvaluator(model, weightsWrongFrom(N), set, factory);
    if (!labelled) await ev.score(weightsWrongFrom(N)); // the reference pass
    const floor = 0.9;
    // All wrong: the first batch (100 samples) already puts 0.9 out of reach.
    let before = { ...calls };
    const failing = await ev.score(weightsWrongFrom(0), { floor });
    assert.ok(failing < floor, `${failing}`);
    assert.is(calls.samples - before.samples, 100);
    // Without a floor the same state is scored exactly over the whole set.
    before = { ...calls };
    assert.is(await ev.score(weightsWrongFrom(0)), 0);
    assert.is(calls.samples - before.samples, N);
    // Just passing (552 of 600 right = 0.92) and just failing (528 = 0.88): decided as a full pass would.
    assert.is(await ev.score(weightsWrongFrom(552), { floor }), 552 / N);
    const nearMiss = await ev.score(weightsWrongFrom(528), { floor });
    assert.ok(nearMiss < floor && nearMiss >= 528 / N, `${nearMiss}`);
    // Exactly at the floor passes.
    assert.is(await ev.score(weightsWrongFrom(540), { floor: 540 / N }), 540 / N);
  });
}

test.run();
