/**
 * A fleet: three `tessera serve` processes with their own budgets on one PostgreSQL store.
 * Models added or removed through the CLI appear on / vanish from every node without a restart;
 * each node reads a page from PostgreSQL once and then serves it from its pool; a compact while
 * nodes serve, and a PostgreSQL restart, lose nothing (requests during the outage get a clear 503,
 * the nodes recover by themselves), and `tessera verify` passes after each.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ortNode from 'onnxruntime-node';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { freePort, metric, privatePostgres, startNode, tessera, type ServeNode } from '../tools/fixtures/fleet.ts';
import { postJson } from '../tools/fixtures/http.ts';
import { codeOf, rng, tempDir } from './helpers.ts';
import { openStore } from '../src/node/open.ts';
import type { TesseraStore } from '../src/store/store.ts';

const IN = 16;
const MODELS: Record<string, Uint8Array> = {
  base: mlp({ inputDim: IN, hidden: 64, outputDim: 8, seed: 1 }),
  twin: mlp({ inputDim: IN, hidden: 64, outputDim: 8, seed: 1 }), // every weight shared with base
  other: mlp({ inputDim: IN, hidden: 48, outputDim: 4, seed: 2 }),
  late: mlp({ inputDim: IN, hidden: 32, outputDim: 5, seed: 3 }),
  fresh: mlp({ inputDim: IN, hidden: 24, outputDim: 3, seed: 4 }),
};

/** One writer operation, as `tessera add/rm/compact` does it (in-process: CLI start-up is slow on 2 cores). */
async function write<T>(url: string, fn: (store: TesseraStore) => Promise<T>): Promise<T> {
  const store = await openStore(url, { create: true, pageSize: 16384, tile: { rows: 16, cols: 16 } });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

const x = (() => {
  const r = rng(5);
  return Float32Array.from({ length: 2 * IN }, () => r() * 2 - 1);
})();
const request = { inputs: [{ name: 'X', shape: [2, IN], datatype: 'FP32', data: Array.from(x) }] };

async function expected(model: string): Promise<Float32Array> {
  const s = await ortNode.InferenceSession.create(MODELS[model]);
  const y = (await s.run({ X: new ortNode.Tensor('float32', x, [2, IN]) })).Y.data as Float32Array;
  await s.release();
  return y;
}

async function infer(node: ServeNode, model: string): Promise<{ status: number; body: any }> {
  const res = await postJson(`${node.url}/v2/models/${model}/infer`, request);
  return { status: res.status, body: await res.json() };
}

function near(actual: number[], want: Float32Array, what: string): void {
  assert.is(actual.length, want.length, what);
  for (let i = 0; i < want.length; i++) if (Math.abs(actual[i] - want[i]) > 1e-5 * (1 + Math.abs(want[i]))) assert.unreachable(`${what}: element ${i} ${actual[i]} vs ${want[i]}`);
}

async function eventually(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.unreachable(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The store's commit sequence now (what a node that caught up reports as tessera_store_commit_stamp). */
async function storeSeq(url: string): Promise<number> {
  const store = await openStore(url, { readOnly: true });
  try {
    return Number(await store.commitStamp());
  } finally {
    await store.close();
  }
}

async function verifyOk(url: string): Promise<void> {
  const v = await tessera(['verify', url, '--json']);
  assert.is(v.code, 0, v.stdout + v.stderr);
  const report = JSON.parse(v.stdout);
  assert.ok(report.ok && !report.leakedPages.length, v.stdout);
}

test('three nodes on one PostgreSQL store: shared catalog, own pools, recovery from compact and a PostgreSQL restart', async () => {
  const pg = privatePostgres(await freePort());
  const dir = await tempDir();
  const nodes: ServeNode[] = [];
  try {
    const url = `${pg.url}?schema=fleet`;
    for (const name of Object.keys(MODELS)) await writeFile(join(dir.path, `${name}.onnx`), MODELS[name]);
    const added = await tessera(['add', url, ...['base', 'twin', 'other'].map((n) => join(dir.path, `${n}.onnx`)), '--page-size', '16384', '--tile', '16x16']);
    assert.is(added.code, 0, added.stderr);
    // Each node has its own budget.
    for (const budget of ['2MiB', '4MiB', '8MiB']) nodes.push(await startNode(url, ['--budget', budget, '--refresh', '100']));
    const want = Object.fromEntries(await Promise.all(Object.keys(MODELS).map(async (m) => [m, await expected(m)] as const)));

    // Every node serves every model, equal to onnxruntime on the original file.
    for (const [i, n] of nodes.entries()) {
      for (const m of ['base', 'twin', 'other']) {
        const r = await infer(n, m);
        assert.is(r.status, 200, JSON.stringify(r.body));
        near(r.body.outputs[0].data, want[m], `node ${i} ${m}`);
      }
    }
    // Pages come from PostgreSQL once per node; repeats are served from the pool.
    const texts = await Promise.all(nodes.map(async (n) => (await fetch(`${n.url}/metrics`)).text()));
    const readOnce = texts.map((t) => metric(t, 'tessera_store_read_bytes_total'));
    assert.equal(texts.map((t) => metric(t, 'tessera_memory_budget_bytes')), [2 << 20, 4 << 20, 8 << 20]);
    for (let k = 0; k < 5; k++) for (const n of nodes) for (const m of ['base', 'twin', 'other']) assert.is((await infer(n, m)).status, 200);
    const after = await Promise.all(nodes.map(async (n) => metric(await (await fetch(`${n.url}/metrics`)).text(), 'tessera_store_read_bytes_total')));
    assert.equal(after, readOnce, 'a node read pages again that its pool holds');
    assert.ok(readOnce.every((b) => b > 0));

    // A model added by a writer is served by every node without a restart; a removed one vanishes.
    await write(url, (s) => s.add('late', MODELS.late));
    for (const n of nodes) {
      const r = await infer(n, 'late');
      assert.is(r.status, 200, JSON.stringify(r.body));
      near(r.body.outputs[0].data, want.late, 'late');
    }
    await write(url, (s) => s.remove('other'));
    for (const n of nodes) await eventually('other gone', async () => (await fetch(`${n.url}/v2/models/other/ready`)).status === 404);
    assert.is((await infer(nodes[0], 'other')).status, 404);

    // A reader during compact: nodes keep answering correctly while pages move under them.
    let stop = false;
    const statuses: number[] = [];
    const load = Promise.all(nodes.map(async (n) => {
      while (!stop) {
        const r = await infer(n, 'base');
        statuses.push(r.status);
        if (r.status === 200) near(r.body.outputs[0].data, want.base, 'base during compact');
      }
    }));
    const compacted = await write(url, (s) => s.compact());
    stop = true;
    await load;
    assert.ok(compacted.pagesAfter > 0);
    assert.ok(statuses.length > 0 && statuses.every((s) => s === 200), `during compact: ${statuses.filter((s) => s !== 200)}`);
    for (const n of nodes) for (const m of ['base', 'twin', 'late']) near((await infer(n, m)).body.outputs[0].data, want[m], `${m} after compact`);
    await verifyOk(url);

    // PostgreSQL goes away: pages in a node's pool still serve; a request that must read the store
    // gets a clear 503; once PostgreSQL is back every node serves again without a restart.
    await write(url, (s) => s.add('fresh', MODELS.fresh));
    // Before PostgreSQL stops, every node must serve the last commit (a node still behind would
    // rebuild nothing while PostgreSQL is down, but one that rebuilt its runtime after the compact
    // holds a cold pool), and node 2's pool must hold base: a repeat reads no page from the store.
    const seq = await storeSeq(url);
    for (const n of nodes) await eventually(`node at commit ${seq}`, async () => metric(await (await fetch(`${n.url}/metrics`)).text(), 'tessera_store_commit_stamp') === seq);
    assert.is((await infer(nodes[2], 'base')).status, 200);
    const readBefore = metric(await (await fetch(`${nodes[2].url}/metrics`)).text(), 'tessera_store_read_bytes_total');
    assert.is((await infer(nodes[2], 'base')).status, 200);
    assert.is(metric(await (await fetch(`${nodes[2].url}/metrics`)).text(), 'tessera_store_read_bytes_total'), readBefore, 'base is not pooled on node 2');
    pg.stop();
    const hot = await infer(nodes[2], 'base');
    assert.is(hot.status, 200, `a model whose pages the pool holds is served while PostgreSQL is down: ${JSON.stringify(hot.body)}\n${nodes[2].stderr()}`);
    const cold = await infer(nodes[0], 'fresh'); // listed, but its pages were never read on this node
    assert.is(cold.status, 503, JSON.stringify(cold.body));
    assert.match(cold.body.error, /PostgreSQL is not reachable/);
    assert.is(await codeOf(openStore(url)), 'STORE_UNAVAILABLE');
    pg.start();
    for (const n of nodes) await eventually('fresh served after PostgreSQL is back', async () => (await infer(n, 'fresh')).status === 200);
    for (const n of nodes) for (const m of ['base', 'twin', 'late', 'fresh']) near((await infer(n, m)).body.outputs[0].data, want[m], `${m} after the restart`);
    await write(url, (s) => s.remove('late'));
    for (const n of nodes) await eventually('late gone after the restart', async () => (await fetch(`${n.url}/v2/models/late/ready`)).status === 404);
    await verifyOk(url);

    // Graceful stop of every node.
    assert.equal(await Promise.all(nodes.splice(0).map((n) => n.stop())), [0, 0, 0]);
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    pg.destroy();
    await dir.cleanup();
  }
});

test.run();
