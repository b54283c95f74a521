/**
 * `npm run bench -- http [--quick]`: `tessera serve` under load from autocannon on 127.0.0.1.
 *
 * - throughput and p50/p99 at 1, 16 and 64 connections, one node on the file store (the baseline a
 *   user would run first) and one node on PostgreSQL;
 * - one node against three nodes on one PostgreSQL store at 64 connections in total (the machine's
 *   cores are shared by the nodes and the load generator: a fair split, not three machines);
 * - reading pages from PostgreSQL instead of the file store: every page read once, cold first
 *   requests per model;
 * - overload: 256 connections sending large batches to a node admitting 16 at a time — refused
 *   requests (429), errors, whether it stays up, and its peak RSS (VmHWM) against its budget;
 * - recovery: PostgreSQL stopped and started while a node serves, time until a request that must
 *   read the store is answered again.
 * Every phase is bounded in time (seconds per autocannon run: 5, quick 2).
 */
import { readFile, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchOptions } from './run.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { freePort, privatePostgres, startNode, metric, type ServeNode } from '../tools/fixtures/fleet.ts';
import { openStore } from '../src/node/open.ts';
import { FilePageStore } from '../src/node/file-store.ts';
import { PgPageStore } from '../src/node/pg-store.ts';
import { mulberry32 } from '../src/random.ts';

interface LoadResult {
  connections: number;
  seconds: number;
  requests: number;
  throughput: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  /** Connection errors (resets, refused) and client-side timeouts (autocannon's 10 s), apart. */
  errors: number;
  timeouts: number;
}

type Autocannon = (opts: Record<string, unknown>) => Promise<any>;
const autocannon: Autocannon = (await import('autocannon' as string)).default;

const IN = 784;
/** MNIST-sized MLPs: base, two fine-tune-like copies sharing every weight, two unrelated models. */
const MODELS: Record<string, Uint8Array> = {
  base: mlp({ inputDim: IN, hidden: 256, outputDim: 10, seed: 1 }),
  copy1: mlp({ inputDim: IN, hidden: 256, outputDim: 10, seed: 1 }),
  copy2: mlp({ inputDim: IN, hidden: 256, outputDim: 10, seed: 1 }),
  other: mlp({ inputDim: IN, hidden: 128, outputDim: 10, seed: 2 }),
  wide: mlp({ inputDim: IN, hidden: 512, outputDim: 10, seed: 3 }),
};

function inferBody(rows: number, seed: number): string {
  const r = mulberry32(seed);
  return JSON.stringify({ inputs: [{ name: 'X', shape: [rows, IN], datatype: 'FP32', data: Array.from({ length: rows * IN }, () => Math.round(r() * 1000) / 1000) }] });
}

async function load(urls: string[], connections: number, seconds: number, body: string, models = ['base', 'copy1', 'other']): Promise<LoadResult> {
  // One autocannon per node (connections split evenly), requests rotating over the models.
  const per = Math.max(1, Math.round(connections / urls.length));
  const runs = await Promise.all(urls.map((url) =>
    autocannon({
      url,
      connections: per,
      duration: seconds,
      requests: models.map((m) => ({ method: 'POST', path: `/v2/models/${m}/infer`, headers: { 'content-type': 'application/json' }, body })),
    }),
  ));
  const requests = runs.reduce((n, r) => n + r.requests.total, 0);
  return {
    connections: per * urls.length,
    seconds,
    requests,
    throughput: requests / seconds,
    meanMs: Math.round((runs.reduce((n, r) => n + r.latency.average * r.requests.total, 0) / Math.max(1, requests)) * 100) / 100,
    // Per-node percentiles (autocannon reports whole milliseconds): the median of the nodes' p50, the worst p99.
    p50Ms: runs.map((r) => r.latency.p50).sort((a, b) => a - b)[Math.floor(runs.length / 2)],
    p99Ms: Math.max(...runs.map((r) => r.latency.p99)),
    non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
    errors: runs.reduce((n, r) => n + r.errors - r.timeouts, 0),
    timeouts: runs.reduce((n, r) => n + r.timeouts, 0),
  };
}

async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function scrape(node: ServeNode): Promise<string> {
  return (await fetch(`${node.url}/metrics`)).text();
}

/** Reads every page once through the backend: the raw cost of the store, no pool in between. */
async function pageReads(open: () => Promise<FilePageStore | PgPageStore>, ids: number[], epochs: Map<number, number>) {
  const store = await open();
  try {
    const t0 = performance.now();
    let bytes = 0;
    for (const id of ids) bytes += (await store.readPage(id, epochs.get(id))).length;
    const ms = performance.now() - t0;
    return { pages: ids.length, bytes, ms, msPerPage: ms / ids.length, mbPerSecond: bytes / 1e6 / (ms / 1000) };
  } finally {
    await store.close();
  }
}

async function coldFirstRequests(node: ServeNode, body: string): Promise<number[]> {
  const out: number[] = [];
  for (const m of Object.keys(MODELS)) {
    const t0 = performance.now();
    const r = await fetch(`${node.url}/v2/models/${m}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    if (r.status !== 200) throw new Error(`cold request for ${m}: ${r.status} ${await r.text()}`);
    await r.arrayBuffer();
    out.push(performance.now() - t0);
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

export async function run(opts: BenchOptions): Promise<object> {
  const seconds = opts.quick ? 2 : 5;
  const dir = await mkdtemp(join(tmpdir(), 'tessera-bench-http-'));
  const pg = privatePostgres(await freePort());
  const nodes: ServeNode[] = [];
  const stopAll = async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  };
  try {
    const filePath = join(dir, 'store');
    const pgUrl = `${pg.url}?schema=bench_http`;
    for (const location of [filePath, pgUrl]) {
      const w = await openStore(location, { create: true, pageSize: 1 << 16 });
      for (const [name, bytes] of Object.entries(MODELS)) if (!w.has(name)) await w.add(name, bytes);
      await w.close();
    }
    const small = inferBody(1, 1);
    const budget = '32MiB';

    // Raw page reads: file store vs PostgreSQL.
    const reader = await openStore(filePath, { readOnly: true });
    const ids = [...reader.catalog.pages.keys()].sort((a, b) => a - b);
    const epochs = new Map(ids.map((id) => [id, reader.catalog.pages.get(id)!.epoch]));
    await reader.close();
    const pgReader = await openStore(pgUrl, { readOnly: true });
    const pgIds = [...pgReader.catalog.pages.keys()].sort((a, b) => a - b);
    const pgEpochs = new Map(pgIds.map((id) => [id, pgReader.catalog.pages.get(id)!.epoch]));
    await pgReader.close();
    const pages = {
      file: await pageReads(() => FilePageStore.open(filePath, { readOnly: true }), ids, epochs),
      postgres: await pageReads(() => PgPageStore.open(pgUrl, { readOnly: true }), pgIds, pgEpochs),
    };
    console.error(`pages: file ${pages.file.msPerPage.toFixed(3)} ms/page, postgres ${pages.postgres.msPerPage.toFixed(3)} ms/page`);

    // One node per backend: cold first requests, then 1, 16 and 64 connections.
    const single: Record<string, { coldFirstRequestMs: number[]; bytesRead: number; runs: LoadResult[]; rssBytes: number }> = {};
    for (const [backend, location] of [['file', filePath], ['postgres', pgUrl]] as const) {
      const node = await startNode(location, ['--budget', budget]);
      nodes.push(node);
      const coldFirstRequestMs = (await coldFirstRequests(node, small)).map((x) => round(x));
      const runs: LoadResult[] = [];
      for (const c of opts.quick ? [1, 16, 64] : [1, 16, 64]) {
        runs.push(await load([node.url], c, seconds, small));
        console.error(`${backend} 1 node, ${c} connections: ${runs.at(-1)!.throughput.toFixed(0)} req/s, p50 ${runs.at(-1)!.p50Ms} ms, p99 ${runs.at(-1)!.p99Ms} ms`);
      }
      const text = await scrape(node);
      single[backend] = { coldFirstRequestMs, bytesRead: metric(text, 'tessera_store_read_bytes_total'), runs, rssBytes: await rss(node.process.pid!) };
      await stopAll();
    }

    // Binary tensor data at 16 connections on the file store (a batch of 32 rows, binary in and out).
    const x = new Float32Array(32 * IN).map((_, i) => (i % 97) / 97);
    const head = Buffer.from(JSON.stringify({ inputs: [{ name: 'X', shape: [32, IN], datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }], outputs: [{ name: 'Y', parameters: { binary_data: true } }] }));
    const json32 = inferBody(32, 2);
    const node = await startNode(filePath, ['--budget', budget]);
    nodes.push(node);
    await coldFirstRequests(node, small);
    const binaryRun = await autocannon({
      url: node.url,
      connections: 16,
      duration: seconds,
      requests: [{ method: 'POST', path: '/v2/models/base/infer', headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(head.length) }, body: Buffer.concat([head, Buffer.from(x.buffer)]) }],
    });
    const json32Run = await load([node.url], 16, seconds, json32, ['base']);
    const binary = {
      rows: 32,
      binaryThroughput: binaryRun.requests.total / seconds,
      binaryP50Ms: binaryRun.latency.p50,
      binaryP99Ms: binaryRun.latency.p99,
      jsonThroughput: json32Run.throughput,
      jsonP50Ms: json32Run.p50Ms,
      jsonP99Ms: json32Run.p99Ms,
      binaryOverJson: binaryRun.requests.total / seconds / json32Run.throughput,
    };
    console.error(`32-row batches at 16 connections: binary ${binary.binaryThroughput.toFixed(0)} req/s vs JSON ${binary.jsonThroughput.toFixed(0)} req/s`);
    await stopAll();

    // One node against three nodes on one PostgreSQL store, 64 connections in total.
    const one = await startNode(pgUrl, ['--budget', budget]);
    nodes.push(one);
    await coldFirstRequests(one, small);
    const oneNode = await load([one.url], 64, seconds, small);
    await stopAll();
    for (let i = 0; i < 3; i++) nodes.push(await startNode(pgUrl, ['--budget', budget]));
    for (const n of nodes) await coldFirstRequests(n, small);
    const threeNodes = await load(nodes.map((n) => n.url), 64, seconds, small);
    const perNodeBytesRead = await Promise.all(nodes.map(async (n) => metric(await scrape(n), 'tessera_store_read_bytes_total')));
    const fleet = { oneNode, threeNodes, ratio: threeNodes.throughput / oneNode.throughput, perNodeBytesRead };
    console.error(`64 connections on PostgreSQL: 1 node ${oneNode.throughput.toFixed(0)} req/s, 3 nodes ${threeNodes.throughput.toFixed(0)} req/s`);
    await stopAll();

    // Overload: large batches from 256 connections against 16 admitted at a time.
    // The baseline is the same node without a bound on queue wait (--queue-timeout 30 s = --timeout).
    const big = inferBody(256, 3);
    const unbounded = await startNode(filePath, ['--budget', budget, '--max-inflight', '16', '--queue-timeout', '30000']);
    nodes.push(unbounded);
    await coldFirstRequests(unbounded, small);
    const overloadUnbounded = await load([unbounded.url], 256, seconds * 2, big);
    console.error(`overload without a queue bound: ${overloadUnbounded.requests} answered, p50 ${overloadUnbounded.p50Ms} ms, p99 ${overloadUnbounded.p99Ms} ms`);
    await stopAll();
    const over = await startNode(filePath, ['--budget', budget, '--max-inflight', '16', '--queue-timeout', '5000']);
    nodes.push(over);
    await coldFirstRequests(over, small);
    const idleRss = await rss(over.process.pid!);
    const overload = await load([over.url], 256, seconds * 2, big);
    const alive = (await fetch(`${over.url}/v2/health/live`)).status === 200;
    const text = await scrape(over);
    const overloadResult = {
      ...overload,
      rows: 256,
      maxInflight: 16,
      queueTimeoutMs: 5000,
      refused429: metric(text, 'tessera_http_rejected_total{reason="overloaded"}'),
      refused503Queue: metric(text, 'tessera_http_rejected_total{reason="queue"}') || 0, // absent until one is refused
      unbounded: overloadUnbounded,
      alive,
      budgetBytes: 32 << 20,
      idleRssBytes: idleRss,
      peakRssBytes: await peakRss(over.process.pid!),
      runtimePeakBytes: metric(text, 'tessera_memory_peak_bytes'),
    };
    console.error(`overload: ${overload.requests} answered (p50 ${overload.p50Ms} ms, p99 ${overload.p99Ms} ms), ${overloadResult.refused429} refused (429), ${overloadResult.refused503Queue} refused after 5 s in the queue (503), alive ${alive}, peak RSS ${(overloadResult.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
    await stopAll();

    // Recovery: PostgreSQL stopped while a node serves, then started.
    const rec = await startNode(pgUrl, ['--budget', budget, '--refresh', '100']);
    nodes.push(rec);
    await fetch(`${rec.url}/v2/models/base/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: small });
    pg.stop();
    const whileDown = { pooled: 0, cold: 0, coldError: '' };
    whileDown.pooled = (await fetch(`${rec.url}/v2/models/base/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: small })).status;
    const coldRes = await fetch(`${rec.url}/v2/models/wide/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: small });
    whileDown.cold = coldRes.status;
    whileDown.coldError = (await coldRes.json()).error ?? '';
    const t0 = performance.now();
    pg.start();
    const startedMs = performance.now() - t0;
    let status = 0;
    while (status !== 200 && performance.now() - t0 < 30_000) {
      status = (await fetch(`${rec.url}/v2/models/wide/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: small })).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 20));
    }
    const recovery = { whileDown, postgresStartMs: round(startedMs), servedAgainAfterStartMs: round(performance.now() - t0 - startedMs), finalStatus: status };
    console.error(`recovery: while down pooled ${whileDown.pooled}, cold ${whileDown.cold}; served again ${recovery.servedAgainAfterStartMs.toFixed(0)} ms after PostgreSQL was up`);
    await stopAll();

    const fileAt64 = single.file.runs.find((r) => r.connections === 64)!;
    const pgAt64 = single.postgres.runs.find((r) => r.connections === 64)!;
    const table = [
      '| store | nodes | connections | req/s | mean ms | p50 ms | p99 ms | non-2xx |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      ...(['file', 'postgres'] as const).flatMap((b) => single[b].runs.map((r) => `| ${b} | 1 | ${r.connections} | ${r.throughput.toFixed(0)} | ${r.meanMs} | ${r.p50Ms} | ${r.p99Ms} | ${r.non2xx} |`)),
      `| postgres | 3 | ${threeNodes.connections} | ${threeNodes.throughput.toFixed(0)} | ${threeNodes.meanMs} | ${threeNodes.p50Ms} | ${threeNodes.p99Ms} | ${threeNodes.non2xx} |`,
    ].join('\n');
    process.stdout.write(table + '\n');
    return {
      seconds,
      models: Object.keys(MODELS).length,
      budget,
      pages,
      pageReadCostRatio: pages.postgres.msPerPage / pages.file.msPerPage,
      single,
      postgresOverFileThroughputAt64: pgAt64.throughput / fileAt64.throughput,
      binary,
      fleet,
      overload: overloadResult,
      recovery,
    };
  } finally {
    await stopAll();
    pg.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}
