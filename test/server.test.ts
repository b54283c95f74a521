import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-web';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { Server, type ExecutorKind } from '../src/runtime/server.ts';
import { BaselineServer } from '../bench/lib/baseline-server.ts';
import { loadOrt } from '../src/runtime/ort.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { KERNEL_HOT_AFTER_REQUESTS, OWN_TRIAL_RUNS, OWN_TRIAL_WARMUP_RUNS } from '../src/runtime/executors/choose.ts';
import { codeOf, rng } from './helpers.ts';

ort.env.wasm.numThreads = 1;
const IN = 20;
// a/b share every weight (same seed): one copy in the store; c is unrelated; g uses Gemm.
const SPECS: Record<string, Parameters<typeof mlp>[0]> = {
  a: { inputDim: IN, hidden: 24, outputDim: 6, seed: 1 },
  b: { inputDim: IN, hidden: 24, outputDim: 6, seed: 1 },
  c: { inputDim: IN, hidden: 24, outputDim: 6, seed: 2 },
  d: { inputDim: IN, hidden: 40, outputDim: 5, seed: 3 },
  g: { inputDim: IN, hidden: 24, outputDim: 6, seed: 4, gemm: true, batch: 3 },
};
const ONNX = Object.fromEntries(Object.entries(SPECS).map(([k, v]) => [k, mlp(v)]));
const PAGE = 4096;

async function makeStore(): Promise<TesseraStore> {
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: PAGE }), { tile: { rows: 8, cols: 8 } });
  for (const [name, bytes] of Object.entries(ONNX)) await store.add(name, bytes);
  return store;
}

function input(batch: number, seed: number): ort.Tensor {
  const r = rng(seed);
  return new ort.Tensor('float32', Float32Array.from({ length: batch * IN }, () => r() * 2 - 1), [batch, IN]);
}

const expected = new Map<string, Promise<Float32Array>>();
const refSessions = new Map<string, Promise<ort.InferenceSession>>();
let refChain: Promise<unknown> = Promise.resolve();
/** The original model's output under plain onnxruntime-web (one reference run at a time). */
function reference(model: string, x: ort.Tensor): Promise<Float32Array> {
  const key = `${model}/${x.dims.join('x')}/${Array.from((x.data as Float32Array).subarray(0, 4)).join(',')}`;
  if (!expected.has(key)) {
    const data = (x.data as Float32Array).slice();
    const p = refChain.then(async () => {
      if (!refSessions.has(model)) refSessions.set(model, ort.InferenceSession.create(ONNX[model]));
      const s = await refSessions.get(model)!;
      return (await s.run({ X: new ort.Tensor('float32', data, x.dims) })).Y.data as Float32Array;
    });
    refChain = p.catch(() => undefined);
    expected.set(key, p);
  }
  return expected.get(key)!;
}

function close(a: Float32Array, b: Float32Array): void {
  assert.is(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - b[i]) > 1e-5 * (1 + Math.abs(b[i]))) assert.unreachable(`element ${i}: ${a[i]} vs ${b[i]}`);
}

test('every mode gives the original model\'s outputs; auto picks the kernel for dense MLPs', async () => {
  const store = await makeStore();
  for (const mode of ['kernel', 'own-weights', 'shared-weights', 'auto'] as const) {
    const server = await Server.create(store, { sessionOverheadBytes: 64 << 10, budgetBytes: 4 << 20, executor: mode });
    for (const model of ['a', 'b', 'c', 'd', 'g']) {
      const x = input(3, model.charCodeAt(0));
      const y = await server.run(model, { X: x });
      close(y.Y.data as Float32Array, await reference(model, x));
      assert.equal(y.Y.dims, [3, SPECS[model].outputDim]);
      assert.is(server.executorOf(model).kind, (mode === 'auto' ? 'kernel' : mode) as ExecutorKind);
    }
    // Plain-data feeds work too, and a batch larger than maxBatch is cut into chunks.
    const big = input(70, 9);
    const y = await server.run('a', { X: { data: Array.from(big.data as Float32Array), dims: [70, IN] } });
    close(y.Y.data as Float32Array, await reference('a', big));
    assert.equal(server.checkInvariants(), []);
    await server.close();
  }
});

test('the budget covers pages and sessions and is never exceeded under concurrent load', async () => {
  const store = await makeStore();
  for (const [mode, budgetBytes] of [['kernel', 16 * 1024], ['shared-weights', 160 * 1024], ['own-weights', 160 * 1024]] as const) {
    // Tight: a few pages, or about two sessions plus their build transients.
    const server = await Server.create(store, { sessionOverheadBytes: 64 << 10, budgetBytes, executor: mode, concurrency: 3, maxBatch: 2 });
    const r = rng(3);
    const names = ['a', 'b', 'c', 'd'];
    const jobs = Array.from({ length: 40 }, (_, i) => {
      const model = names[Math.floor(r() * names.length)];
      const x = input(2, i);
      return server.run(model, { X: x }).then(async (y) => close(y.Y.data as Float32Array, await reference(model, x)));
    });
    await Promise.all(jobs);
    const m = server.metrics();
    assert.equal(server.checkInvariants(), []);
    assert.ok(m.peakBytes <= m.budgetBytes, `peak ${m.peakBytes} > budget ${m.budgetBytes}`);
    assert.is(m.requests, 40);
    assert.is(m.hits + m.misses, 40);
    assert.ok(m.misses > 0 && m.hits > 0, mode);
    assert.ok(m.pool.evictions + m.tensorPool.evictions + m.sessionEvictions > 0, `${mode}: a budget of a few pages or sessions must evict`);
    assert.ok(m.latency.count === 40 && m.latency.p99Ms >= m.latency.p50Ms);
    await server.close();
  }
});

test('a budget that holds one model at a time serves concurrent requests for different models (no deadlock)', async () => {
  const store = await makeStore();
  const server = await Server.create(store, { sessionOverheadBytes: 64 << 10, budgetBytes: 3 * PAGE + 2048, executor: 'kernel', concurrency: 4, maxBatch: 1 });
  const jobs = ['c', 'd', 'c', 'd', 'a', 'd'].map((model, i) => server.run(model, { X: input(1, i) }).then(async (y) => close(y.Y.data as Float32Array, await reference(model, input(1, i)))));
  await Promise.all(jobs);
  assert.equal(server.checkInvariants(), []);
  // The baseline, too small for any model, fails every concurrent request instead of hanging.
  const base = await BaselineServer.create({ budgetBytes: ONNX.a.length, models: ['a', 'c'], sizeOf: (m) => ONNX[m].length, load: async (m) => ONNX[m], concurrency: 2 });
  const codes = await Promise.all(['a', 'c', 'a'].map((m) => codeOf(base.run(m, { X: input(1, 1) }))));
  assert.equal(codes, ['BUDGET_EXCEEDED', 'BUDGET_EXCEEDED', 'BUDGET_EXCEEDED']);
});

test('concurrent requests for one model build its session once', async () => {
  const store = await makeStore();
  const server = await Server.create(store, { sessionOverheadBytes: 64 << 10, budgetBytes: 4 << 20, executor: 'own-weights', concurrency: 4 });
  await Promise.all(Array.from({ length: 6 }, (_, i) => server.run('c', { X: input(1, i) })));
  assert.is(server.metrics().sessionBuilds, 1);
  assert.is(server.metrics().misses, 6 - server.metrics().hits);
  await server.close();
});

test('queued requests beyond concurrency wait their turn', async () => {
  const store = await makeStore();
  const server = await Server.create(store, { sessionOverheadBytes: 64 << 10, budgetBytes: 4 << 20, executor: 'own-weights', concurrency: 1 });
  const order: number[] = [];
  await Promise.all([0, 1, 2, 3].map((i) => server.run(i % 2 ? 'a' : 'c', { X: input(1, i) }).then(() => order.push(i))));
  assert.equal(order, [0, 1, 2, 3]);
  await server.close();
});

test('bad input gives typed errors and leaves the pool and other models intact', async () => {
  const store = await makeStore();
  assert.is(await codeOf(Server.create(store, { sessionOverheadBytes: 64 << 10, budgetBytes: 1000 })), 'BUDGET_EXCEEDED');
  assert.is(await codeOf(Server.create(store, { sessionOverheadBytes: 64 << 10, budgetBytes: 4 << 20, executor: 'fast' as any })), 'INVALID_ARGUMENT');
  for (const mode of ['kernel', 'own-weights', 'shared-weights'] as const) {
    const server = await Server.create(store, { sessionOverheadBytes: 64 << 10, budgetBytes: 8 << 20, executor: mode });
    const good = input(2, 5);
    await server.run('a', { X: good });
    assert.is(await codeOf(server.run('nope', { X: good })), 'MODEL_NOT_FOUND');
    assert.is(await codeOf(server.run('a', { X: input(1, 1), extra: good })), 'INVALID_FEEDS');
    assert.is(await codeOf(server.run('a', {})), 'INVALID_FEEDS');
    assert.is(await codeOf(server.run('a', { X: new ort.Tensor('float32', new Float32Array(2 * 7), [2, 7]) })), 'INVALID_FEEDS');
    assert.is(await codeOf(server.run('a', { X: new ort.Tensor('int32', new Int32Array(2 * IN), [2, IN]) })), 'INVALID_FEEDS');
    assert.is(await codeOf(server.run('a', { X: { data: [1, 2, 3], dims: [1, IN] } })), 'INVALID_FEEDS');
    // Interleave failing and good requests: the good ones are unaffected.
    const mixed = await Promise.allSettled([
      server.run('c', { X: input(2, 8) }),
      server.run('c', { X: input(2, 8).reshape([1, 2 * IN]) as ort.Tensor }),
      server.run('a', { X: good }),
    ]);
    assert.equal(mixed.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled']);
    close((mixed[0] as PromiseFulfilledResult<any>).value.Y.data, await reference('c', input(2, 8)));
    close((mixed[2] as PromiseFulfilledResult<any>).value.Y.data, await reference('a', good));
    assert.equal(server.checkInvariants(), []);
    // No request left a pin behind.
    assert.is(server.metrics().pool.pinnedBytes, 0, mode);
    assert.is(server.metrics().tensorPool.pinnedBytes, 0, mode);
    assert.ok(server.metrics().errors >= 7);
    await server.close();
  }
});

test('a model whose pages cannot fit the budget fails with BUDGET_EXCEEDED, others still serve', async () => {
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: PAGE }), { tile: { rows: 8, cols: 8 } });
  await store.add('small', ONNX.a);
  await store.add('wide', mlp({ inputDim: IN, hidden: 400, outputDim: 6, seed: 9 })); // ~40 KB of weights
  const server = await Server.create(store, { sessionOverheadBytes: 64 << 10, budgetBytes: 44 * 1024, executor: 'kernel', maxBatch: 1 });
  assert.is(await codeOf(server.run('wide', { X: input(1, 1) })), 'BUDGET_EXCEEDED');
  close((await server.run('small', { X: input(1, 2) })).Y.data as Float32Array, await reference('a', input(1, 2)));
  assert.equal(server.checkInvariants(), []);
});

test('baseline: original files, LRU sessions under the same budget, same outputs', async () => {
  const sizes = Object.fromEntries(Object.entries(ONNX).map(([k, v]) => [k, v.length]));
  const largest = Math.max(...Object.values(sizes));
  const base = await BaselineServer.create({ budgetBytes: 3 * largest, models: Object.keys(ONNX), sizeOf: (m) => sizes[m], load: async (m) => ONNX[m] });
  const r = rng(4);
  for (let i = 0; i < 20; i++) {
    const model = ['a', 'b', 'c', 'd'][Math.floor(r() * 4)];
    const x = input(2, i);
    close((await base.run(model, { X: x })).Y.data as Float32Array, await reference(model, x));
  }
  const m = base.metrics();
  assert.ok(m.peakBytes <= m.budgetBytes);
  assert.ok(m.sessionEvictions > 0);
  assert.is(m.hits + m.misses, 20);
  assert.is(await codeOf(base.run('nope', { X: input(1, 1) })), 'MODEL_NOT_FOUND');
  const tiny = await BaselineServer.create({ budgetBytes: largest, models: ['a'], sizeOf: (m) => sizes[m], load: async (m) => ONNX[m] });
  assert.is(await codeOf(tiny.run('a', { X: input(1, 1) })), 'BUDGET_EXCEEDED');
});

test('onnxruntime-node loads on request, or fails with a typed error saying how to install it', async () => {
  let loaded: unknown;
  try {
    loaded = await loadOrt('node');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'INFERENCE_FAILED');
    assert.match((e as Error).message, /ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node/);
    return;
  }
  assert.ok(typeof (loaded as { InferenceSession?: unknown }).InferenceSession === 'function');
});

test('auto tries a model that stays hot on block-native kernels with its own weights, keeps the faster, same outputs', async () => {
  const store = await makeStore();
  const server = await Server.create(store, { sessionOverheadBytes: 64 << 10, budgetBytes: 4 << 20, executor: 'auto' });
  const x = input(2, 5);
  const want = await reference('a', x);
  assert.is(server.executorOf('a').kind, 'kernel');
  for (let i = 0; i < KERNEL_HOT_AFTER_REQUESTS + OWN_TRIAL_WARMUP_RUNS + OWN_TRIAL_RUNS + 4; i++) close((await server.run('a', { X: x })).Y.data as Float32Array, want);
  const { kind, reason } = server.metrics().executors.a;
  // The trial ran and was decided on measured run times, whichever way they went.
  if (kind === 'own-weights') assert.match(reason, /hot, and spare memory holds its own weights: .* ms on kernel/);
  else {
    assert.is(kind, 'kernel');
    assert.match(reason, /own weights measured no faster/);
  }
  assert.ok(server.metrics().sessionBuilds >= 1, 'its own-weights session was built');
  assert.equal(server.checkInvariants(), []);
  await server.close();
});

test.run();
