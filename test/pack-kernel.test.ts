import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { classifyRef, createClassifier } from '../src/kernels/pack.ts';
import { makeProblem } from '../src/pack/problem.ts';
import { modelFamily } from '../tools/packing-family.ts';
import { mulberry32 } from '../src/random.ts';

test('WASM class kernel equals its TS twin on random inputs', async () => {
  const wasm = await createClassifier();
  const rand = mulberry32(7);
  for (let seed = 1; seed <= 25; seed++) {
    const tensors = modelFamily(seed, { models: 1 + Math.floor(rand() * 12), groups: 1 + Math.floor(rand() * 60), meanGroup: 1 + Math.floor(rand() * 50), share: rand() });
    const p = makeProblem({ tensors, blocksPerPage: 8 });
    const a = wasm.classify(p.tensorStart, p.tensorBlocks, p.nBlocks);
    const b = classifyRef(p.tensorStart, p.tensorBlocks, p.nBlocks);
    assert.is(a.nClasses, b.nClasses, `seed ${seed}`);
    assert.equal(Array.from(a.classOf), Array.from(b.classOf), `seed ${seed}`);
  }
  // Unneeded ids (gaps) map to -1 in both.
  const gap = makeProblem({ tensors: [[1, 5], [5, 9]], blocksPerPage: 2 });
  const g = wasm.classify(gap.tensorStart, gap.tensorBlocks, gap.nBlocks);
  assert.equal(Array.from(g.classOf), [-1, 0, -1, -1, -1, 1, -1, -1, -1, 2]);
  assert.equal(Array.from(classifyRef(gap.tensorStart, gap.tensorBlocks, gap.nBlocks).classOf), Array.from(g.classOf));
});

test.run();
