/**
 * `tessera serve` speaks the KServe v2 REST protocol: every endpoint over a real socket on
 * 127.0.0.1, good and bad requests, the binary tensor data extension, outputs equal to onnxruntime
 * (onnxruntime-node, an independent runtime) on the original files, back-pressure, timeouts,
 * graceful shutdown, and models added or removed by a writer appearing without a restart.
 */
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ortNode from 'onnxruntime-node';
import { openStore } from '../src/node/open.ts';
import { InferenceHttpServer, type HttpServeOptions } from '../src/node/http/server.ts';
import { encodeInferResponse, parseInferRequest } from '../src/node/http/kserve.ts';
import type { TesseraStore } from '../src/store/store.ts';
import { ifModel, mlp } from '../tools/fixtures/onnx-builders.ts';
import { binaryInferBody, postJson, readInferResponse } from '../tools/fixtures/http.ts';
import { startNode } from '../tools/fixtures/fleet.ts';
import { rng, tempDir } from './helpers.ts';

const IN = 20;
const MODELS: Record<string, Uint8Array> = {
  a: mlp({ inputDim: IN, hidden: 24, outputDim: 6, seed: 1 }),
  b: mlp({ inputDim: IN, hidden: 24, outputDim: 6, seed: 1 }), // shares every weight with a
  c: mlp({ inputDim: IN, hidden: 32, outputDim: 4, seed: 2 }),
  branchy: ifModel(3), // X float[2,3], cond bool scalar; If subgraphs: served by a session
};

let dir: Awaited<ReturnType<typeof tempDir>>;
let storePath: string;
let store: TesseraStore;

async function node(opts: Partial<HttpServeOptions> = {}): Promise<InferenceHttpServer> {
  return InferenceHttpServer.start(store, { budgetBytes: 8 << 20, port: 0, refreshMs: 100, ...opts });
}

async function reference(model: string, feeds: Record<string, ortNode.Tensor>): Promise<Record<string, ortNode.Tensor>> {
  const s = await ortNode.InferenceSession.create(MODELS[model]);
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

function floats(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

function near(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  assert.is(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (Math.abs(actual[i] - expected[i]) > 1e-5 * (1 + Math.abs(expected[i]))) assert.unreachable(`element ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

/** Requests whose bodies stall after a few bytes: admitted by the node, held open until `finish`. */
function stalledRequests(url: string, body: string, count: number) {
  const reqs = Array.from({ length: count }, () => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
    const done = new Promise<number>((resolve, reject) => req.on('response', (r) => (r.resume(), resolve(r.statusCode!))).on('error', reject));
    req.write(body.slice(0, 10));
    return { req, done };
  });
  return {
    finish: () => Promise.all(reqs.map((r) => (r.req.end(body.slice(10)), r.done))),
  };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

test.before(async () => {
  dir = await tempDir();
  storePath = join(dir.path, 'store');
  const w = await openStore(storePath, { create: true, pageSize: 16384, tile: { rows: 16, cols: 16 } });
  for (const [name, bytes] of Object.entries(MODELS)) await w.add(name, bytes);
  await w.close();
  store = await openStore(storePath, { readOnly: true });
});

test.after(async () => {
  await store.close();
  await dir.cleanup();
});

test('health, server metadata, model metadata and readiness', async () => {
  const n = await node();
  try {
    assert.equal(await (await fetch(`${n.url}/v2/health/live`)).json(), { live: true });
    assert.equal(await (await fetch(`${n.url}/v2/health/ready`)).json(), { ready: true });
    const meta = await (await fetch(`${n.url}/v2`)).json();
    assert.is(meta.name, 'tessera');
    assert.ok(meta.extensions.includes('binary_tensor_data'));
    const a = await (await fetch(`${n.url}/v2/models/a`)).json();
    assert.equal(a.inputs, [{ name: 'X', datatype: 'FP32', shape: [-1, IN] }]);
    assert.equal(a.outputs, [{ name: 'Y', datatype: 'FP32', shape: [-1, 6] }]);
    assert.equal((await (await fetch(`${n.url}/v2/models/branchy`)).json()).inputs.map((i: any) => i.datatype).sort(), ['BOOL', 'FP32']);
    assert.equal(await (await fetch(`${n.url}/v2/models/a/ready`)).json(), { name: 'a', ready: true });
    assert.is((await fetch(`${n.url}/v2/models/a/versions/1/ready`)).status, 200);
    for (const path of ['/v2/models/nope', '/v2/models/nope/ready', '/v2/nothing']) {
      const r = await fetch(n.url + path);
      assert.is(r.status, 404, path);
      assert.type((await r.json()).error, 'string');
    }
    const index = await (await fetch(`${n.url}/v2/repository/index`, { method: 'POST' })).json();
    assert.equal(index.map((m: any) => m.name).sort(), ['a', 'b', 'branchy', 'c']);
  } finally {
    await n.close();
  }
});

test('JSON inference equals onnxruntime on the original files (flat and nested data, BOOL inputs)', async () => {
  const n = await node();
  try {
    for (const model of ['a', 'b', 'c']) {
      const x = floats(3 * IN, model.charCodeAt(0));
      const res = await postJson(`${n.url}/v2/models/${model}/infer`, { id: 'r1', inputs: [{ name: 'X', shape: [3, IN], datatype: 'FP32', data: Array.from(x) }] });
      assert.is(res.status, 200);
      const body = await res.json();
      const ref = await reference(model, { X: new ortNode.Tensor('float32', x, [3, IN]) });
      assert.is(body.model_name, model);
      assert.is(body.id, 'r1');
      assert.is(body.outputs[0].name, 'Y');
      assert.is(body.outputs[0].datatype, 'FP32');
      assert.equal(body.outputs[0].shape, [...ref.Y.dims]);
      near(body.outputs[0].data, ref.Y.data as Float32Array);
    }
    // Nested row-major data is the same tensor.
    const x = floats(2 * IN, 9);
    const nested = [Array.from(x.subarray(0, IN)), Array.from(x.subarray(IN))];
    const body = await (await postJson(`${n.url}/v2/models/a/infer`, { inputs: [{ name: 'X', shape: [2, IN], datatype: 'FP32', data: nested }] })).json();
    near(body.outputs[0].data, (await reference('a', { X: new ortNode.Tensor('float32', x, [2, IN]) })).Y.data as Float32Array);
    // BOOL input (an If graph).
    for (const cond of [true, false]) {
      const bx = floats(6, 4);
      const r = await postJson(`${n.url}/v2/models/branchy/infer`, { inputs: [{ name: 'X', shape: [2, 3], datatype: 'FP32', data: Array.from(bx) }, { name: 'cond', shape: [], datatype: 'BOOL', data: [cond] }] });
      assert.is(r.status, 200, await r.clone().text());
      const out = (await r.json()).outputs[0];
      const ref = await reference('branchy', { X: new ortNode.Tensor('float32', bx, [2, 3]), cond: new ortNode.Tensor('bool', Uint8Array.of(cond ? 1 : 0), []) });
      near(out.data, ref.Y.data as Float32Array);
    }
  } finally {
    await n.close();
  }
});

test('JSON values keep exact meanings: NaN and infinities as strings, INT64 exact past 2^53 (numbers or decimal strings)', async () => {
  // Over the socket: a NaN input gives NaN outputs, written "NaN" (JSON has no NaN; null would read as missing).
  const n = await node();
  try {
    const data = Array.from(floats(IN, 3), (v, i) => (i === 0 ? 'NaN' : v));
    const res = await postJson(`${n.url}/v2/models/a/infer`, { inputs: [{ name: 'X', shape: [1, IN], datatype: 'FP32', data }] });
    assert.is(res.status, 200);
    const out = (await res.json()).outputs[0].data;
    assert.ok(out.length > 0 && out.every((v: unknown) => v === 'NaN'), JSON.stringify(out));
    const bad = await postJson(`${n.url}/v2/models/a/infer`, { inputs: [{ name: 'X', shape: [1, IN], datatype: 'FP32', data: [null, ...data.slice(1)] }] });
    assert.is(bad.status, 400);
    assert.match((await bad.json()).error, /input "X": element 0 is null/);
  } finally {
    await n.close();
  }
  // The codec itself, for the types no test model takes.
  const body = Buffer.from(JSON.stringify({ inputs: [
    { name: 'i', shape: [3], datatype: 'INT64', data: ['9007199254740993', 5, '-9223372036854775808'] },
    { name: 'u', shape: [1], datatype: 'UINT64', data: ['18446744073709551615'] },
    { name: 'f', shape: [4], datatype: 'FP64', data: ['NaN', 'Infinity', '-Infinity', 0.25] },
  ] }));
  const parsed = parseInferRequest(body, undefined, { maxTensorBytes: 1 << 20 });
  assert.equal([...(parsed.feeds.i.data as BigInt64Array)], [9007199254740993n, 5n, -(2n ** 63n)]);
  assert.equal([...(parsed.feeds.u.data as BigUint64Array)], [2n ** 64n - 1n]);
  assert.equal([...(parsed.feeds.f.data as Float64Array)], [NaN, Infinity, -Infinity, 0.25]);
  const tooBig = Buffer.from(JSON.stringify({ inputs: [{ name: 'i', shape: [1], datatype: 'INT64', data: [2 ** 60] }] }));
  assert.throws(() => parseInferRequest(tooBig, undefined, { maxTensorBytes: 1 << 20 }), (e: any) => e.status === 400 && /decimal strings/.test(e.message));
  const encoded = encodeInferResponse('m', undefined, {
    i: { type: 'int64', dims: [3], data: BigInt64Array.of(2n ** 60n + 1n, -7n, -(2n ** 53n)) },
    f: { type: 'float32', dims: [4], data: Float32Array.of(NaN, Infinity, -Infinity, 0.5) },
  }, { outputs: null, binaryByDefault: false });
  const outputs = JSON.parse(encoded.body.toString()).outputs;
  assert.equal(outputs[0].data, ['1152921504606846977', -7, '-9007199254740992']);
  assert.equal(outputs[1].data, ['NaN', 'Infinity', '-Infinity', 0.5]);
});

test('binary tensor data extension: binary inputs, binary outputs on request, mixed', async () => {
  const n = await node();
  try {
    const x = floats(4 * IN, 21);
    const ref = (await reference('c', { X: new ortNode.Tensor('float32', x, [4, IN]) })).Y;
    // Binary in, JSON out.
    let req = binaryInferBody({ inputs: [{ name: 'X', shape: [4, IN], datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }] }, [x]);
    let res = await fetch(`${n.url}/v2/models/c/infer`, { method: 'POST', ...req });
    assert.is(res.status, 200);
    assert.is(res.headers.get('inference-header-content-length'), null);
    near((await res.json()).outputs[0].data, ref.data as Float32Array);
    // Binary in, binary out (per output).
    req = binaryInferBody({ inputs: [{ name: 'X', shape: [4, IN], datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }], outputs: [{ name: 'Y', parameters: { binary_data: true } }] }, [x]);
    res = await fetch(`${n.url}/v2/models/c/infer`, { method: 'POST', ...req });
    let { json, binary } = await readInferResponse(res);
    assert.is(res.headers.get('content-type'), 'application/octet-stream');
    assert.equal(json.outputs[0].parameters, { binary_data_size: 4 * 4 * 4 });
    assert.is(json.outputs[0].data, undefined);
    near(new Float32Array(binary.buffer.slice(binary.byteOffset, binary.byteOffset + binary.length)), ref.data as Float32Array);
    // JSON in, every output binary (request parameter binary_data_output).
    res = await postJson(`${n.url}/v2/models/c/infer`, { parameters: { binary_data_output: true }, inputs: [{ name: 'X', shape: [4, IN], datatype: 'FP32', data: Array.from(x) }] });
    ({ json, binary } = await readInferResponse(res));
    assert.is(json.outputs[0].parameters.binary_data_size, binary.length);
    near(new Float32Array(binary.buffer.slice(binary.byteOffset, binary.byteOffset + binary.length)), ref.data as Float32Array);
    // Binary and JSON inputs in one request (BOOL as one byte).
    const bx = floats(6, 5);
    req = binaryInferBody({ inputs: [{ name: 'X', shape: [2, 3], datatype: 'FP32', parameters: { binary_data_size: 24 } }, { name: 'cond', shape: [], datatype: 'BOOL', data: [false] }] }, [bx]);
    res = await fetch(`${n.url}/v2/models/branchy/infer`, { method: 'POST', ...req });
    const bref = await reference('branchy', { X: new ortNode.Tensor('float32', bx, [2, 3]), cond: new ortNode.Tensor('bool', Uint8Array.of(0), []) });
    near((await res.json()).outputs[0].data, bref.Y.data as Float32Array);
  } finally {
    await n.close();
  }
});

test('bad requests get {"error"} with 400, 404 or 413 and change nothing', async () => {
  const n = await node({ maxBodyBytes: 1 << 20, maxTensorBytes: 64 << 10 });
  try {
    const url = `${n.url}/v2/models/a/infer`;
    const good = { name: 'X', shape: [1, IN], datatype: 'FP32', data: Array.from(floats(IN, 1)) };
    const cases: [string, () => Promise<Response>, number, RegExp][] = [
      ['not JSON', () => postJson(url, '{"inputs": ['), 400, /not valid JSON/],
      ['no inputs', () => postJson(url, { inputs: [] }), 400, /inputs/],
      ['unknown datatype', () => postJson(url, { inputs: [{ ...good, datatype: 'FP33' }] }), 400, /datatype/],
      ['BYTES', () => postJson(url, { inputs: [{ ...good, datatype: 'BYTES' }] }), 400, /BYTES/],
      ['wrong datatype for the model', () => postJson(url, { inputs: [{ ...good, datatype: 'INT32', data: new Array(IN).fill(1) }] }), 400, /X/],
      ['too few elements', () => postJson(url, { inputs: [{ ...good, data: [1, 2, 3] }] }), 400, /elements/],
      ['non-numeric element', () => postJson(url, { inputs: [{ ...good, data: ['x', ...good.data.slice(1)] }] }), 400, /element 0/],
      ['negative dim', () => postJson(url, { inputs: [{ ...good, shape: [-1, IN] }] }), 400, /shape/],
      ['wrong static dim', () => postJson(url, { inputs: [{ ...good, shape: [IN, 1] }] }), 400, /X/],
      ['unknown input', () => postJson(url, { inputs: [{ ...good, name: 'Z' }] }), 400, /Z/],
      ['unknown output', () => postJson(url, { inputs: [good], outputs: [{ name: 'nope' }] }), 400, /nope/],
      ['unknown model', () => postJson(`${n.url}/v2/models/nope/infer`, { inputs: [good] }), 404, /nope/],
      ['binary size mismatch', () => fetch(url, { method: 'POST', ...binaryInferBody({ inputs: [{ ...good, data: undefined, parameters: { binary_data_size: 12 } }] }, [new Float32Array(3)]) }), 400, /binary_data_size/],
      ['binary data missing', () => fetch(url, { method: 'POST', ...binaryInferBody({ inputs: [{ ...good, data: undefined, parameters: { binary_data_size: IN * 4 } }] }, [new Float32Array(2)]) }), 400, /binary/],
      ['header length past the body', () => fetch(url, { method: 'POST', body: '{}', headers: { 'inference-header-content-length': '99' } }), 400, /Inference-Header-Content-Length/],
      ['tensor too large', () => postJson(url, { inputs: [{ ...good, shape: [100_000, IN] }] }), 413, /limit/],
      ['body too large', () => fetch(url, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(2 << 20) }), 413, /limit/],
    ];
    for (const [what, send, status, message] of cases) {
      const res = await send();
      const body = await res.json();
      assert.is(res.status, status, `${what}: ${JSON.stringify(body)}`);
      assert.match(body.error, message, what);
    }
    // The server is unharmed: a good request still works, and errors were counted.
    assert.is((await postJson(url, { inputs: [good] })).status, 200);
    const metrics = await (await fetch(`${n.url}/metrics`)).text();
    assert.match(metrics, /tessera_http_requests_total\{route="\/v2\/models\/:model\/infer",code="400"\} 1[0-9]/);
  } finally {
    await n.close();
  }
});

test('overload is refused with 429 before bodies are read; timeouts give 503; the node stays healthy', async () => {
  const n = await node({ maxInflight: 2 });
  try {
    const body = JSON.stringify({ inputs: [{ name: 'X', shape: [2, IN], datatype: 'FP32', data: Array.from(floats(2 * IN, 3)) }] });
    // Two clients that send a few bytes of their body and stall hold both slots: the node
    // admitted them when their headers came, before reading any body.
    const stalled = stalledRequests(`${n.url}/v2/models/a/infer`, body, 2);
    await until(() => n.inflightRequests === 2, '2 requests in flight');
    const refused = await postJson(`${n.url}/v2/models/c/infer`, body);
    assert.is(refused.status, 429);
    assert.is(refused.headers.get('retry-after'), '1');
    assert.match((await refused.json()).error, /limit of 2/);
    assert.equal(await stalled.finish(), [200, 200]);
    assert.is((await postJson(`${n.url}/v2/models/c/infer`, body)).status, 200);
    assert.match(await (await fetch(`${n.url}/metrics`)).text(), /tessera_http_rejected_total\{reason="overloaded"\} 1/);
  } finally {
    await n.close();
  }
  const slow = await node({ requestTimeoutMs: 50 });
  try {
    // The limit counts from arrival: a body that takes 120 ms to come is answered 503 at once.
    const body = JSON.stringify({ inputs: [{ name: 'X', shape: [1, IN], datatype: 'FP32', data: Array.from(floats(IN, 1)) }] });
    const req = request(`${slow.url}/v2/models/a/infer`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
    const res = new Promise<{ status: number; text: string }>((resolve, reject) => req.on('response', (r) => { let t = ''; r.on('data', (d) => (t += d)).on('end', () => resolve({ status: r.statusCode!, text: t })); }).on('error', reject));
    req.write(body.slice(0, 10));
    await until(() => slow.inflightRequests === 1, 'the request to arrive');
    await new Promise((r) => setTimeout(r, 120));
    req.end(body.slice(10));
    const answer = await res;
    const r = { status: answer.status, json: async () => JSON.parse(answer.text) };
    assert.is(r.status, 503);
    assert.match((await r.json()).error, /did not finish within 50 ms/);
    assert.match(await (await fetch(`${slow.url}/metrics`)).text(), /tessera_http_rejected_total\{reason="timeout"\} 1/);
  } finally {
    await slow.close();
  }
});

test('a request that waits past --queue-timeout behind other runs gets 503 with Retry-After and does not run', async () => {
  // One runtime slot and a 1 ms queue limit. The first request's run is held inside the runtime
  // until the others have been answered, so they queue behind it whatever the machine's speed
  // (sending them together was not enough: on an idle machine each run ended before the next body
  // was parsed, and nothing queued).
  const n = await node({ queueTimeoutMs: 1, server: { concurrency: 1 } });
  const inner = n as unknown as { running: number; run: (...args: unknown[]) => Promise<unknown> };
  const run = inner.run.bind(n);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let runs = 0;
  inner.run = async (...args: unknown[]) => {
    if (runs++ === 0) await held;
    return run(...args);
  };
  try {
    const rows = 4096;
    const x = floats(rows * IN, 21);
    const body = { inputs: [{ name: 'X', shape: [rows, IN], datatype: 'FP32', data: Array.from(x) }] };
    const first = postJson(`${n.url}/v2/models/c/infer`, body);
    while (inner.running === 0) await new Promise((r) => setTimeout(r, 5));
    const queued = await Promise.all(Array.from({ length: 3 }, () => postJson(`${n.url}/v2/models/c/infer`, body)));
    release();
    const answers = [await first, ...queued];
    const statuses = answers.map((r) => r.status);
    assert.equal(statuses, [200, 503, 503, 503]);
    assert.is(runs, 1, 'a refused request never reaches the runtime');
    const ref = (await reference('c', { X: new ortNode.Tensor('float32', x, [rows, IN]) })).Y.data as Float32Array;
    for (const r of answers) {
      const json = await r.json();
      if (r.status === 200) near(json.outputs[0].data, ref);
      else {
        assert.is(r.headers.get('retry-after'), '1');
        assert.match(json.error, /waited \d+ ms behind other requests without starting/);
      }
    }
    assert.match(await (await fetch(`${n.url}/metrics`)).text(), /tessera_http_rejected_total\{reason="queue"\} 3/);
    assert.is((await postJson(`${n.url}/v2/models/c/infer`, body)).status, 200, 'an idle node runs at once');
  } finally {
    await n.close();
  }
});

test('/metrics is Prometheus text with requests, latency, pool hits and misses, bytes read, memory vs budget', async () => {
  const n = await node();
  try {
    const body = { inputs: [{ name: 'X', shape: [1, IN], datatype: 'FP32', data: Array.from(floats(IN, 2)) }] };
    for (let i = 0; i < 3; i++) assert.is((await postJson(`${n.url}/v2/models/a/infer`, body)).status, 200);
    const text = await (await fetch(`${n.url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    assert.match(text, /# TYPE tessera_http_request_duration_seconds histogram/);
    assert.match(text, /tessera_http_request_duration_seconds_count\{route="\/v2\/models\/:model\/infer"\} 3/);
    assert.is(value('tessera_pool_misses_total'), 1);
    assert.is(value('tessera_pool_hits_total'), 2);
    assert.ok(value('tessera_store_read_bytes_total') > 0);
    assert.is(value('tessera_memory_budget_bytes'), 8 << 20);
    assert.ok(value('tessera_memory_held_bytes') > 0 && value('tessera_memory_held_bytes') <= 8 << 20);
    assert.ok(value('tessera_process_resident_memory_bytes') > 0);
  } finally {
    await n.close();
  }
});

test('graceful shutdown: requests in flight finish, later ones are refused', async () => {
  const n = await node();
  const body = JSON.stringify({ inputs: [{ name: 'X', shape: [64, IN], datatype: 'FP32', data: Array.from(floats(64 * IN, 8)) }] });
  const inflight = stalledRequests(`${n.url}/v2/models/c/infer`, body, 3);
  await until(() => n.inflightRequests === 3, '3 requests in flight');
  const closing = n.close();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(await inflight.finish(), [200, 200, 200]);
  await closing;
  const after = await fetch(`${n.url}/v2/health/live`).then((r) => r.status, () => 'refused');
  assert.is(after, 'refused');
});

test('a model added or removed by a writer is served or gone without a restart', async () => {
  const n = await node();
  try {
    const late = mlp({ inputDim: IN, hidden: 16, outputDim: 3, seed: 7 });
    MODELS.late = late;
    const w = await openStore(storePath);
    await w.add('late', late);
    const x = floats(IN, 11);
    // Served at once: a request for a model this node has not seen checks for new commits.
    const res = await postJson(`${n.url}/v2/models/late/infer`, { inputs: [{ name: 'X', shape: [1, IN], datatype: 'FP32', data: Array.from(x) }] });
    assert.is(res.status, 200);
    near((await res.json()).outputs[0].data, (await reference('late', { X: new ortNode.Tensor('float32', x, [1, IN]) })).Y.data as Float32Array);
    await w.remove('late');
    await w.close();
    await n.checkForCommits(); // what the next poll does (a fixed sleep would race the poll under load)
    assert.is((await fetch(`${n.url}/v2/models/late/ready`)).status, 404);
    assert.ok(!n.models().includes('late'));
    assert.is((await postJson(`${n.url}/v2/models/a/infer`, { inputs: [{ name: 'X', shape: [1, IN], datatype: 'FP32', data: Array.from(x) }] })).status, 200);
  } finally {
    await n.close();
  }
});

test('the `tessera serve` command on the file store answers the protocol and stops on SIGTERM', async () => {
  const n = await startNode(storePath, ['--budget', '8MiB']);
  try {
    assert.equal(await (await fetch(`${n.url}/v2/health/ready`)).json(), { ready: true });
    const x = floats(IN, 31);
    const res = await postJson(`${n.url}/v2/models/c/infer`, { inputs: [{ name: 'X', shape: [1, IN], datatype: 'FP32', data: Array.from(x) }] });
    assert.is(res.status, 200);
    near((await res.json()).outputs[0].data, (await reference('c', { X: new ortNode.Tensor('float32', x, [1, IN]) })).Y.data as Float32Array);
  } finally {
    assert.is(await n.stop(), 0, n.stderr());
  }
});

test('fastify, prom-client and pg are imported only where used (so `tessera ls` does not load them)', async () => {
  // A static import would be hoisted to the top of the esbuild CLI bundle and loaded by every verb
  // (+13-18 MB RSS, 0.05-0.25 s each): only type imports and dynamic import() are allowed.
  const { readdir, readFile } = await import('node:fs/promises');
  const root = new URL('../src/', import.meta.url);
  const files = (await readdir(root, { recursive: true })).filter((f) => f.endsWith('.ts'));
  const offenders: string[] = [];
  for (const f of files) {
    const text = await readFile(new URL(f, root), 'utf8');
    for (const m of text.matchAll(/^import\s+(?!type\b)[^;]*?from\s+'(pg|fastify|prom-client)'/gm)) offenders.push(`src/${f}: ${m[0]}`);
  }
  assert.equal(offenders, []);
});

test.run();
