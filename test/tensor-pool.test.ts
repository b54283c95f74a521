/**
 * The server's pooled tensors on their own: a tensor is assembled one page at a time, so it needs
 * its own bytes and one page at once (two for a delta whose base is on another page), checked
 * against the ledger with a budget of exactly that much.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { BufferPool } from '../src/pool/buffer-pool.ts';
import { onRemoval } from '../src/pool/policy.ts';
import { createPolicy } from '../src/pool/policies.ts';
import { MemoryLedger } from '../src/runtime/ledger.ts';
import { PageFrames } from '../src/runtime/page-frames.ts';
import { StoreReader } from '../src/runtime/store-reader.ts';
import { TensorPool } from '../src/runtime/tensor-pool.ts';
import { tensorBytes } from '../src/store/catalog-view.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { perturbed } from '../tools/fixtures/family.ts';
import { codeOf } from './helpers.ts';

const PAGE = 4096;
const TILE = { rows: 16, cols: 16 };

async function makeStore(): Promise<TesseraStore> {
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: PAGE }), { tile: TILE });
  // W1 is 64 x 128 float32: 32 KiB, 32 tiles of 1 KiB, spread over 8 pages or more.
  const a = mlp({ inputDim: 64, hidden: 128, outputDim: 4, seed: 1 });
  await store.add('a', a);
  // A full fine-tune of a (every weight nudged): stored as deltas against a's blocks below.
  await store.add('b', await perturbed(a, { seed: 3, scale: 1e-4 }));
  return store;
}

/** A tensor pool and its page pool on one ledger of `budget` bytes, as the server wires them. */
function pools(store: TesseraStore, budget: number) {
  const reader = new StoreReader(store);
  const ledger = new MemoryLedger(budget);
  const count = Math.floor(budget / PAGE);
  const memory = new WebAssembly.Memory({ initial: Math.ceil(((count + 1) * PAGE) / 65536) });
  const frames = new PageFrames(memory, 0, PAGE, count);
  const pages = new BufferPool({
    budgetBytes: budget,
    account: { ledger, kind: 'pages' },
    policy: onRemoval(createPolicy('lru'), (id) => frames.release(id)),
    fetch: async (id) => frames.place(id, await reader.readPage(id)),
    sizeOf: () => PAGE,
  });
  const tensors = new TensorPool(reader, pages, frames, ledger, createPolicy('lru'));
  return { ledger, pages, frames, tensors };
}

test('a tensor spanning many pages assembles within its own bytes and one page', async () => {
  const store = await makeStore();
  const t = store.model('a').tensors[0];
  const bytes = tensorBytes(t);
  assert.is(bytes, 32768);
  assert.ok(store.catalog.pagesRead({ tensors: [t] } as never).length >= 8, 'the tensor spans several pages');
  const want = (await store.tensorData('a'))[0];
  // Exactly the tensor and one page: more than half the budget is the tensor.
  const { ledger, tensors, frames, pages } = pools(store, bytes + PAGE);
  const id = tensors.register('a', t);
  assert.is(tensors.assemblyPagesOf(id), 1);
  const got = await tensors.withTensors([id], 'a', async ([data]) => data.slice());
  assert.equal(got, want);
  assert.is(ledger.peakBytes, bytes + PAGE);
  assert.is(frames.highWater, 1, 'one page frame was ever in use');
  // The pages it read are all dropped: nothing else reads them.
  assert.is(pages.stats().residentPages, 0);
  assert.equal(ledger.byKind(), { pages: 0, tensors: bytes, sessions: 0, scratch: 0, inflight: 0 });
  assert.equal([...pages.checkInvariants(), ...tensors.pool.checkInvariants()], []);
  // One byte less and it cannot be assembled: refused, with the ledger as it was.
  const small = pools(store, bytes + PAGE - 1);
  const id2 = small.tensors.register('a', t);
  assert.is(await codeOf(small.tensors.withTensors([id2], 'a', async () => undefined)), 'BUDGET_EXCEEDED');
  assert.is(small.ledger.heldBytes, 0);
});

test('a delta tensor whose bases lie on other pages holds two pages at once, and equals the original', async () => {
  const store = await makeStore();
  const a = store.model('a').tensors[0];
  const b0 = store.model('b').tensors[0];
  const pairs = Array.from(b0.blocks, (block, i) => ({ tensor: 0, index: i, block, base: a.blocks[i] }));
  assert.ok((await store.storeDeltas('b', pairs, { minSaving: 0 })).replaced > 0);
  const t = store.model('b').tensors[0];
  const bytes = tensorBytes(t);
  const want = (await store.tensorData('b'))[0];
  const { ledger, tensors } = pools(store, bytes + 2 * PAGE);
  const id = tensors.register('b', t);
  assert.is(tensors.assemblyPagesOf(id), 2);
  const got = await tensors.withTensors([id], 'b', async ([data]) => data.slice());
  assert.equal(got, want);
  assert.ok(ledger.peakBytes <= bytes + 2 * PAGE);
  const small = pools(store, bytes + PAGE);
  assert.is(await codeOf(small.tensors.withTensors([small.tensors.register('b', t)], 'b', async () => undefined)), 'BUDGET_EXCEEDED');
  // The tensor's reservation is given back; a page read before the failing step may stay, unpinned.
  assert.is(small.ledger.byKind().tensors, 0);
  assert.is(small.pages.stats().pinnedBytes, 0);
  assert.equal(small.pages.checkInvariants(), []);
});

test.run();
