/**
 * Prometheus metrics of one `tessera serve` node (prom-client, one registry per node so several
 * nodes can live in one process in tests). Request counters and latency are recorded as requests
 * end; the serving figures (pool hits and misses, bytes read from the store, memory held against the
 * budget) are read from the runtime Server at scrape time.
 */
// Types only: InferenceHttpServer.start imports prom-client and hands it in, so only `serve` loads it.
import type { Counter, Histogram, Registry } from 'prom-client';

export type PromClient = typeof import('prom-client');

/** What the node reports about its serving at scrape time (summed over every catalog generation). */
export interface ServingFigures {
  hits: number;
  misses: number;
  bytesRead: number;
  errors: number;
  heldBytes: number;
  peakBytes: number;
  budgetBytes: number;
  inflight: number;
  models: number;
  commitStamp: number;
  storeUp: boolean;
  catalogRefreshes: number;
}

export class NodeMetrics {
  readonly registry: Registry;
  private readonly requests: Counter<'route' | 'code'>;
  private readonly latency: Histogram<'route'>;
  readonly rejected: Counter<'reason'>;

  constructor(prom: PromClient, figures: () => ServingFigures) {
    const { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } = prom;
    const r = (this.registry = new Registry());
    collectDefaultMetrics({ register: r, prefix: 'tessera_' });
    this.requests = new Counter({ name: 'tessera_http_requests_total', help: 'HTTP requests by route and status code', labelNames: ['route', 'code'], registers: [r] });
    this.latency = new Histogram({
      name: 'tessera_http_request_duration_seconds',
      help: 'Time from request start to response end, by route',
      labelNames: ['route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    });
    this.rejected = new Counter({ name: 'tessera_http_rejected_total', help: 'Requests refused before running (overload, timeout, draining)', labelNames: ['reason'], registers: [r] });
    // Totals kept by the runtime: exposed as counters whose value is set at scrape time.
    const total = (name: string, help: string, pick: (f: ServingFigures) => number) =>
      new Counter({ name, help, registers: [r], collect() { this.reset(); this.inc(pick(figures())); } });
    const gauge = (name: string, help: string, pick: (f: ServingFigures) => number) =>
      new Gauge({ name, help, registers: [r], collect() { this.set(pick(figures())); } });
    total('tessera_pool_hits_total', 'Requests served without reading the store or building a session', (f) => f.hits);
    total('tessera_pool_misses_total', 'Requests that read pages from the store or built a session', (f) => f.misses);
    total('tessera_store_read_bytes_total', 'Bytes of pages read from the store', (f) => f.bytesRead);
    total('tessera_inference_errors_total', 'Inference requests that failed in the runtime', (f) => f.errors);
    total('tessera_catalog_refreshes_total', 'Catalog views rebuilt after another node or the CLI committed', (f) => f.catalogRefreshes);
    gauge('tessera_memory_held_bytes', 'Bytes the runtime holds now: pages, sessions, transients, kernel scratch', (f) => f.heldBytes);
    gauge('tessera_memory_peak_bytes', 'Highest bytes the runtime ever held (never above the budget)', (f) => f.peakBytes);
    gauge('tessera_memory_budget_bytes', 'The memory budget of this node', (f) => f.budgetBytes);
    gauge('tessera_inflight_requests', 'Inference requests admitted and not finished', (f) => f.inflight);
    gauge('tessera_models', 'Models in this node\'s catalog view', (f) => f.models);
    gauge('tessera_store_commit_stamp', 'The store commit sequence this node serves (PostgreSQL) or 0', (f) => f.commitStamp);
    gauge('tessera_store_up', '1 when the last check of the store succeeded', (f) => (f.storeUp ? 1 : 0));
  }

  observe(route: string, code: number, seconds: number): void {
    this.requests.inc({ route, code: String(code) });
    this.latency.observe({ route }, seconds);
  }
}
