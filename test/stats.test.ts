/**
 * Store statistics per model: unique and shared bytes follow which blocks other models reference
 * (a frozen-backbone family shares its backbone; a model of its own shares nothing).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { TesseraStore } from '../src/store/store.ts';
import { familyMember } from '../tools/fixtures/family.ts';

// Seeds are apart so that no two tensors draw the same random stream (familyMember seeds 2s+1, 2s+2).
const dims = { inputDim: 16, hidden: 24, outputDim: 8 };
/** Bytes of W1 [16, 24] and b1 [24] as float32: the backbone. */
const BACKBONE = (16 * 24 + 24) * 4;

test('sharedBytes counts the weights in blocks another model references, and follows removals', async () => {
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: 16384 }), { tile: { rows: 8, cols: 8 } });
  await store.add('a', familyMember({ ...dims, backboneSeed: 1, headSeed: 10 }));
  await store.add('b', familyMember({ ...dims, backboneSeed: 1, headSeed: 11 }));
  await store.add('c', familyMember({ ...dims, backboneSeed: 20, headSeed: 21 }));
  const of = (name: string) => store.stats().perModel.find((m) => m.name === name)!;
  for (const name of ['a', 'b']) {
    const m = of(name);
    assert.is(m.sharedBytes, BACKBONE, `${name} shares its backbone`);
    assert.is(m.sharedBytes + m.uniqueBytes, m.logicalBytes, `${name}: every byte is shared or its own`);
  }
  assert.is(of('c').sharedBytes, 0, 'c shares nothing');
  assert.is(of('c').uniqueBytes, of('c').logicalBytes);
  await store.remove('b');
  assert.is(of('a').sharedBytes, 0, 'with b gone, a holds its backbone alone');
  assert.is(of('a').uniqueBytes, of('a').logicalBytes);
});

test.run();
