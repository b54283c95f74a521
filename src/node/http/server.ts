/**
 * `tessera serve`: an HTTP server speaking the KServe v2 / Open Inference Protocol REST API over
 * the runtime Server (fastify). One process = one node with its own memory budget; many nodes can
 * serve one store (PostgreSQL) and each follows the store's commits.
 *
 *   GET  /v2/health/live | /v2/health/ready | /v2 | /v2/models/{m} | /v2/models/{m}/ready
 *   POST /v2/models/{m}/infer          JSON tensors, or JSON + binary (binary tensor data extension)
 *   POST /v2/repository/index          the models this node serves
 *   GET  /metrics                      Prometheus text
 * Errors are `{"error": "..."}`: 400 bad request or tensor, 404 unknown model or route, 413 body or
 * tensor too large, 429 too many requests in flight (back-pressure: memory stays bounded because
 * at most `maxInflight` bodies of at most `maxBodyBytes` are held), 503 timed out, draining or
 * store unreachable, 500 anything else.
 *
 * Following commits: the node polls the store's commit stamp (PostgreSQL's commit sequence, the
 * file store's catalog files) and refreshes its catalog view in place. When the new catalog only
 * adds (every page, block and model the runtime may hold is unchanged) the runtime keeps serving
 * with its pools warm and serves the new models too. Otherwise (a model removed, pages moved by a
 * compact) new requests wait, the requests in flight finish, the runtime is closed and a new one is
 * made, so one budget's worth of memory is held at any time. A request that finds its model
 * missing, or a page changed under it, checks for commits and retries once.
 */
// Types only: start() imports fastify and prom-client, so CLI verbs other than `serve` never load them.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { TesseraError } from '../../errors.ts';
import type { TesseraStore } from '../../store/store.ts';
import type { ModelEntry } from '../../catalog/catalog.ts';
import { Server, type ServerOptions } from '../../runtime/server.ts';
import { ProtocolError, encodeInferResponse, parseInferRequest, tensorMetadata, unknownOutputs } from './kserve.ts';
import { NodeMetrics, type PromClient, type ServingFigures } from './metrics.ts';

export interface HttpServeOptions {
  /** Memory budget of this node's runtime (pages, sessions, scratch). */
  budgetBytes: number;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Largest request body (default 64 MiB). */
  maxBodyBytes?: number;
  /** Largest input tensor (default 16 MiB). */
  maxTensorBytes?: number;
  /** Inference requests admitted at once; more get 429 (default 64). */
  maxInflight?: number;
  /** An inference request not answered within this many ms gets 503 (default 30 s). */
  requestTimeoutMs?: number;
  /** A request that waits longer than this many ms for a runtime slot (behind other runs) gets 503
   * with Retry-After instead of running late (default 5 s). Runs go to the runtime at most
   * `server.concurrency` at a time (its own limit), oldest first. */
  queueTimeoutMs?: number;
  /** How often the store's commit stamp is checked, in ms (default 500). */
  refreshMs?: number;
  /** Passed to the runtime Server (onnxruntime module, mode, policy, concurrency). */
  server?: Omit<ServerOptions, 'budgetBytes'>;
  /** Node name in /v2 metadata (default tessera). */
  name?: string;
  log?: (line: string) => void;
}

/** The parts of a catalog a runtime may hold on to (the maps of one catalog state). */
interface CatalogMaps {
  pages: ReadonlyMap<number, { epoch: number }>;
  blocks: ReadonlyMap<number, { page: number; offset: number; length: number; base?: number; codec?: string }>;
  models: ReadonlyMap<string, ModelEntry>;
}

const mapsOf = (store: TesseraStore): CatalogMaps => ({ pages: store.catalog.pages, blocks: store.catalog.blocks, models: store.catalog.models });

interface Generation {
  store: TesseraStore;
  server: Server;
  stamp: string;
  /** The catalog state the runtime was made or last refreshed on (the store may refresh itself too). */
  seen: CatalogMaps;
  /** Set when the budget could not serve this catalog: the next change builds a runtime again. */
  unservable?: boolean;
  active: number;
  retired: boolean;
  drained?: () => void;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}
const deferred = (): Deferred => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};

const VERSION = '0.1.0';
const EXTENSIONS = ['binary_tensor_data', 'health', 'metadata', 'model_repository', 'metrics'];

export class InferenceHttpServer {
  readonly app: FastifyInstance;
  readonly metrics: NodeMetrics;
  private gen!: Generation;
  private gate: Deferred | null = null;
  private refreshing: Promise<void> | null = null;
  private nextCheck: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private inflight = 0;
  private idle: Deferred | null = null;
  private draining = false;
  private storeUp = true;
  private refreshes = 0;
  /** Runs handed to the runtime now, and the requests waiting for one of its slots (FIFO). */
  private running = 0;
  private readonly queue: { since: number; start: () => void; refuse: () => void }[] = [];
  private readonly past = { hits: 0, misses: 0, bytesRead: 0, errors: 0, peakBytes: 0 };
  private readonly opts: Required<Omit<HttpServeOptions, 'server' | 'log' | 'host' | 'port'>> & Pick<HttpServeOptions, 'server' | 'log'>;
  url = '';

  private constructor(private readonly store: TesseraStore, opts: HttpServeOptions, Fastify: typeof import('fastify').default, prom: PromClient) {
    this.opts = {
      budgetBytes: opts.budgetBytes,
      maxBodyBytes: opts.maxBodyBytes ?? 64 << 20,
      maxTensorBytes: opts.maxTensorBytes ?? 16 << 20,
      maxInflight: opts.maxInflight ?? 64,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
      queueTimeoutMs: opts.queueTimeoutMs ?? 5_000,
      refreshMs: opts.refreshMs ?? 500,
      name: opts.name ?? 'tessera',
      server: opts.server,
      log: opts.log,
    };
    this.metrics = new NodeMetrics(prom, () => this.figures());
    this.app = Fastify({
      bodyLimit: this.opts.maxBodyBytes,
      // A client that trickles its body is cut off rather than holding a slot forever.
      requestTimeout: this.opts.requestTimeoutMs + 5_000,
      forceCloseConnections: 'idle',
      return503OnClosing: true,
      logger: false,
    });
    this.routes();
  }

  /** Builds the first generation and listens. */
  static async start(store: TesseraStore, opts: HttpServeOptions): Promise<InferenceHttpServer> {
    const [{ default: Fastify }, prom] = await Promise.all([import('fastify'), import('prom-client')]);
    const node = new InferenceHttpServer(store, opts, Fastify, prom);
    const stamp = await store.commitStamp();
    node.gen = { store, server: await Server.create(store, { ...opts.server, budgetBytes: opts.budgetBytes }), stamp, seen: mapsOf(store), active: 0, retired: false };
    node.url = await node.app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 8000 });
    node.timer = setInterval(() => void node.checkForCommits(), node.opts.refreshMs);
    node.timer.unref();
    return node;
  }

  /** Inference requests admitted and not finished. */
  get inflightRequests(): number {
    return this.inflight;
  }

  /** Models this node serves now. */
  models(): string[] {
    return this.gen.store.listModels();
  }

  private figures(): ServingFigures {
    const m = this.gen.server.metrics();
    const stamp = Number(this.gen.stamp);
    return {
      hits: this.past.hits + m.hits,
      misses: this.past.misses + m.misses,
      bytesRead: this.past.bytesRead + m.bytesRead,
      errors: this.past.errors + m.errors,
      heldBytes: Object.values(m.ledger).reduce((a, b) => a + b, 0),
      peakBytes: Math.max(this.past.peakBytes, m.peakBytes),
      budgetBytes: m.budgetBytes,
      inflight: this.inflight,
      models: this.gen.store.listModels().length,
      commitStamp: Number.isFinite(stamp) ? stamp : 0,
      storeUp: this.storeUp,
      catalogRefreshes: this.refreshes,
    };
  }

  /** Checks the store's commit stamp and, when it moved, swaps in a generation on a fresh catalog view. */
  checkForCommits(): Promise<void> {
    if (this.draining) return Promise.resolve();
    if (!this.refreshing) {
      this.refreshing = this.refresh().finally(() => (this.refreshing = null));
      return this.refreshing;
    }
    // The check in flight may have read the stamp before the caller's commit (a request for a model
    // just added elsewhere would get 404): one more check follows it, shared by everyone who asks meanwhile.
    this.nextCheck ??= this.refreshing.then(() => {
      this.nextCheck = null;
      return this.checkForCommits();
    });
    return this.nextCheck;
  }

  private async refresh(): Promise<void> {
    let stamp: string;
    try {
      stamp = await this.store.commitStamp();
      if (!this.storeUp) this.opts.log?.('store reachable again');
      this.storeUp = true;
    } catch (e) {
      if (this.storeUp) this.opts.log?.(`store unreachable: ${(e as Error).message}`);
      this.storeUp = false;
      return;
    }
    const g = this.gen;
    if (stamp === g.stamp) return;
    try {
      await g.store.refresh();
    } catch (e) {
      this.opts.log?.(`catalog refresh failed, still serving the previous view: ${(e as Error).message}`);
      return;
    }
    this.refreshes++;
    if (!g.unservable && onlyAdds(g.seen, mapsOf(g.store))) {
      // Models were added and nothing the server may hold changed: it serves them as they are, pools kept.
      g.stamp = stamp;
      g.seen = mapsOf(g.store);
      this.opts.log?.(`catalog at ${stamp}: ${g.store.listModels().length} models (added in place)`);
      return;
    }
    // Models removed or pages moved: pooled pages may be stale. New requests wait (the gate is set
    // before any await), those in flight finish (a page that moved fails its epoch check and is
    // retried), and the old Server is closed before the new one is made: one budget at a time.
    const gate = (this.gate = deferred());
    try {
      g.retired = true;
      if (g.active) await new Promise<void>((r) => (g.drained = r));
      const m = g.server.metrics();
      this.past.hits += m.hits;
      this.past.misses += m.misses;
      this.past.bytesRead += m.bytesRead;
      this.past.errors += m.errors;
      this.past.peakBytes = Math.max(this.past.peakBytes, m.peakBytes);
      await g.server.close();
      try {
        this.gen = { store: g.store, server: await Server.create(g.store, { ...this.opts.server, budgetBytes: this.opts.budgetBytes }), stamp, seen: mapsOf(g.store), active: 0, retired: false };
        this.opts.log?.(`catalog at ${stamp}: serving ${g.store.listModels().length} models (new runtime)`);
      } catch (e) {
        // This catalog cannot be served under the budget: requests get the reason (503); retried next poll.
        this.opts.log?.(`cannot serve the catalog at ${stamp}: ${(e as Error).message}`);
        this.gen = { store: g.store, server: unservable(e, this.opts.budgetBytes), stamp: 'unservable', seen: mapsOf(g.store), unservable: true, active: 0, retired: false };
      }
    } finally {
      this.gate = null;
      gate.resolve();
    }
  }

  private async acquire(): Promise<Generation> {
    while (this.gate) await this.gate.promise;
    const g = this.gen;
    g.active++;
    return g;
  }

  private release(g: Generation): void {
    g.active--;
    if (g.retired && g.active === 0) g.drained?.();
  }

  /** Waits for a runtime slot; rejects with 503 once the wait passes `limitMs`. */
  private startRun(model: string, limitMs: number): Promise<void> {
    const slots = this.opts.server?.concurrency ?? 2;
    if (this.running < slots && !this.queue.length) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const since = performance.now();
      const refuse = () => {
        clearTimeout(timer);
        reject(new QueueTimeout(model, Math.round(performance.now() - since)));
      };
      const timer = setTimeout(() => {
        const i = this.queue.indexOf(w);
        if (i >= 0) this.queue.splice(i, 1);
        refuse();
      }, limitMs);
      const w = {
        since,
        start: () => {
          clearTimeout(timer);
          this.running++;
          resolve();
        },
        refuse,
      };
      this.queue.push(w);
    });
  }

  private endRun(): void {
    this.running--;
    // Oldest first; one that already waited past its limit (its timer had no chance to fire while
    // the runtime computed) is refused now rather than run late.
    while (this.queue.length) {
      const w = this.queue.shift()!;
      if (performance.now() - w.since <= this.opts.queueTimeoutMs) {
        w.start();
        return;
      }
      w.refuse();
    }
  }

  private admit(): boolean {
    if (this.inflight >= this.opts.maxInflight) return false;
    this.inflight++;
    return true;
  }

  private finish(): void {
    this.inflight--;
    if (this.inflight === 0) this.idle?.resolve();
  }

  private routes(): void {
    const app = this.app;
    // Bodies are bytes: JSON alone, or JSON followed by binary tensor data.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

    app.setErrorHandler((thrown: Error & { statusCode?: number; code?: string }, _req, reply) => {
      const err: Error & { statusCode?: number; code?: string } = thrown instanceof ProtocolError || thrown instanceof HttpError || thrown instanceof TesseraError ? toHttpError(thrown) : thrown;
      const status = err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 413 : err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
      const message = status === 413 ? `the request body exceeds the limit of ${this.opts.maxBodyBytes} bytes: send smaller batches` : err.message;
      void reply.code(status).send({ error: message });
    });
    app.setNotFoundHandler((req, reply) => {
      void reply.code(404).send({ error: `no endpoint ${req.method} ${req.url.split('?')[0]}: see /v2 for the KServe v2 API` });
    });
    // While draining, every answer closes its connection so the server can stop once they are done.
    app.addHook('onSend', async (_req, reply) => {
      if (this.draining) reply.header('connection', 'close');
    });
    app.addHook('onResponse', async (req, reply) => {
      this.metrics.observe(req.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    });

    app.get('/v2/health/live', async () => ({ live: true }));
    app.get('/v2/health/ready', async (_req, reply) => (this.draining ? reply.code(400).send({ ready: false }) : { ready: true }));
    app.get('/v2', async () => ({ name: this.opts.name, version: VERSION, extensions: EXTENSIONS }));

    const modelMeta = async (req: FastifyRequest<{ Params: { model: string } }>, reply: FastifyReply) => {
      const store = await this.viewWith(req.params.model);
      if (!store) return reply.code(404).send({ error: notFound(req.params.model, this.models()) });
      const m = store.model(req.params.model);
      return {
        name: m.name,
        versions: ['1'],
        platform: 'onnx',
        inputs: m.inputs.map(tensorMetadata),
        outputs: m.outputs.map(tensorMetadata),
      };
    };
    const modelReady = async (req: FastifyRequest<{ Params: { model: string } }>, reply: FastifyReply) => {
      const store = await this.viewWith(req.params.model);
      if (!store) return reply.code(404).send({ error: notFound(req.params.model, this.models()) });
      return this.draining ? reply.code(400).send({ name: req.params.model, ready: false }) : { name: req.params.model, ready: true };
    };
    app.get('/v2/models/:model', modelMeta);
    app.get('/v2/models/:model/versions/:version', modelMeta);
    app.get('/v2/models/:model/ready', modelReady);
    app.get('/v2/models/:model/versions/:version/ready', modelReady);
    app.post('/v2/repository/index', async () => this.models().map((name) => ({ name, version: '1', state: 'READY' })));

    const inferOpts = {
      // Admission happens before the body is read, so refused requests cost no memory.
      onRequest: async (req: FastifyRequest, reply: FastifyReply) => {
        if (this.draining) {
          this.metrics.rejected.inc({ reason: 'draining' });
          return reply.code(503).header('Retry-After', '1').send({ error: 'the server is shutting down: send the request to another node' });
        }
        if (!this.admit()) {
          this.metrics.rejected.inc({ reason: 'overloaded' });
          return reply.code(429).header('Retry-After', '1').send({ error: `the server is at its limit of ${this.opts.maxInflight} requests in flight: retry shortly` });
        }
        slots.set(req, { handedOff: false, released: false, arrived: performance.now() });
      },
      onResponse: async (req: FastifyRequest) => this.releaseSlot(req, false),
      onRequestAbort: async (req: FastifyRequest) => this.releaseSlot(req, false),
    };
    const slots = new WeakMap<FastifyRequest, { handedOff: boolean; released: boolean; arrived: number }>();
    this.releaseSlot = (req, fromRun) => {
      const s = slots.get(req);
      if (!s || s.released || (s.handedOff && !fromRun)) return;
      s.released = true;
      this.finish();
    };
    const infer = async (req: FastifyRequest<{ Params: { model: string } }>, reply: FastifyReply) => {
      const model = req.params.model;
      const body = (req.body as Buffer | undefined) ?? Buffer.alloc(0);
      const parsed = parseInferRequest(body, req.headers['inference-header-content-length'] as string | undefined, { maxTensorBytes: this.opts.maxTensorBytes });
      const slot = slots.get(req)!;
      // The time limit counts from arrival: a body that was slow to come leaves less time to run.
      const left = this.opts.requestTimeoutMs - (performance.now() - slot.arrived);
      const late = () => new HttpError(503, `inference on model "${model}" did not finish within ${this.opts.requestTimeoutMs} ms: the server is overloaded, retry later`);
      if (left <= 0) {
        this.metrics.rejected.inc({ reason: 'timeout' });
        throw late();
      }
      slot.handedOff = true;
      // The slot is held until the run really ends, even if the client was answered on timeout.
      const run = (async () => {
        await this.startRun(model, Math.min(this.opts.queueTimeoutMs, left));
        try {
          return await this.run(model, parsed);
        } finally {
          this.endRun();
        }
      })().finally(() => this.releaseSlot(req, true));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(late()), left);
      });
      try {
        const { results, outputs } = await Promise.race([run, timeout]);
        const res = encodeInferResponse(model, parsed.id, results, { outputs: parsed.outputs ?? outputs.map((name) => ({ name, binary: parsed.binaryByDefault })), binaryByDefault: parsed.binaryByDefault });
        if (res.headerLength !== undefined) reply.header('Inference-Header-Content-Length', String(res.headerLength)).type('application/octet-stream');
        else reply.type('application/json');
        return reply.send(res.body);
      } catch (e) {
        if (e instanceof QueueTimeout) {
          this.metrics.rejected.inc({ reason: 'queue' });
          reply.header('Retry-After', '1');
        } else if (e instanceof HttpError && e.status === 503) this.metrics.rejected.inc({ reason: 'timeout' });
        run.catch(() => {});
        throw toHttpError(e);
      } finally {
        clearTimeout(timer);
      }
    };
    app.post<{ Params: { model: string } }>('/v2/models/:model/infer', inferOpts, infer);
    app.post<{ Params: { model: string } }>('/v2/models/:model/versions/:version/infer', inferOpts, infer);

    app.get('/metrics', async (_req, reply) => {
      reply.type(this.metrics.registry.contentType);
      return this.metrics.registry.metrics();
    });
  }

  private releaseSlot: (req: FastifyRequest, fromRun: boolean) => void = () => {};

  /** The current view if it has `model`; otherwise after checking for new commits. */
  private async viewWith(model: string): Promise<TesseraStore | null> {
    if (this.gen.store.has(model)) return this.gen.store;
    await this.checkForCommits();
    return this.gen.store.has(model) ? this.gen.store : null;
  }

  private async run(model: string, req: ReturnType<typeof parseInferRequest>): Promise<{ results: Record<string, { type: string; dims: readonly number[]; data: unknown }>; outputs: string[] }> {
    for (let attempt = 0; ; attempt++) {
      const g = await this.acquire();
      try {
        const entry = g.store.model(model);
        const unknown = unknownOutputs(req, entry.outputs);
        if (unknown.length) throw new ProtocolError(400, `model "${model}" has no output ${unknown.map((n) => `"${n}"`).join(', ')}; its outputs are: ${entry.outputs.map((o) => o.name).join(', ')}`);
        const results = await g.server.run(model, req.feeds);
        return { results, outputs: entry.outputs.map((o) => o.name).filter((n) => n in results) };
      } catch (e) {
        // Added on another node since our last poll, or its pages moved by a compact: look again once.
        const stale = e instanceof TesseraError && (e.code === 'MODEL_NOT_FOUND' || e.code === 'PAGE_CORRUPT');
        if (!stale || attempt > 0) throw e;
      } finally {
        this.release(g);
      }
      await this.checkForCommits();
    }
  }

  /** Stops taking requests, lets the ones in flight finish, then closes the runtime. */
  async close(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    if (this.timer) clearInterval(this.timer);
    await this.refreshing;
    await this.app.close();
    if (this.inflight) {
      this.idle = deferred();
      await this.idle.promise;
    }
    await this.gen.server.close();
  }
}

/** True when `after` only adds to `before`: every page, block and model the server may hold is unchanged. */
function onlyAdds(before: CatalogMaps, after: CatalogMaps): boolean {
  for (const [id, p] of before.pages) if (after.pages.get(id)?.epoch !== p.epoch) return false;
  for (const [id, b] of before.blocks) {
    const n = after.blocks.get(id);
    if (!n || n.page !== b.page || n.offset !== b.offset || n.length !== b.length || n.base !== b.base || n.codec !== b.codec) return false;
  }
  for (const [name, m] of before.models) {
    const n = after.models.get(name);
    if (!n || n.addedAt !== m.addedAt || (n.substitutions?.length ?? 0) !== (m.substitutions?.length ?? 0) || n.tensors.length !== m.tensors.length) return false;
    for (let t = 0; t < m.tensors.length; t++) {
      const x = m.tensors[t].blocks;
      const y = n.tensors[t].blocks;
      if (x.length !== y.length) return false;
      for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    }
  }
  return true;
}

/** A stand-in runtime for a catalog the budget cannot serve: every request gets the reason. */
function unservable(reason: unknown, budgetBytes: number): Server {
  const fail = () => Promise.reject(reason);
  return { run: fail, close: async () => {}, metrics: () => ({ hits: 0, misses: 0, bytesRead: 0, errors: 0, peakBytes: 0, budgetBytes, ledger: {} }) } as unknown as Server;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** A request that waited too long behind other runs: refused (503, Retry-After) without running. */
class QueueTimeout extends HttpError {
  constructor(model: string, waitedMs: number) {
    super(503, `inference on model "${model}" waited ${waitedMs} ms behind other requests without starting (limit --queue-timeout): the server is overloaded, retry later or on another node`);
  }
}

function notFound(model: string, known: string[]): string {
  return `model "${model}" is not served here.${known.length ? ` Models: ${known.slice(0, 8).join(', ')}${known.length > 8 ? ', ...' : ''}.` : ' The store holds no models.'}`;
}

/** Status codes for tessera's error codes. */
const STATUS: Partial<Record<string, number>> = {
  MODEL_NOT_FOUND: 404,
  INVALID_FEEDS: 400,
  INVALID_ARGUMENT: 400,
  INVALID_NAME: 400,
  BUDGET_EXCEEDED: 503,
  STORE_UNAVAILABLE: 503,
  STORE_CLOSED: 503,
  STORE_LOCKED: 503,
};

function toHttpError(e: unknown): Error & { statusCode: number } {
  if (e instanceof ProtocolError || e instanceof HttpError) return Object.assign(new Error(e.message), { statusCode: e.status });
  if (e instanceof TesseraError) return Object.assign(new Error(e.message), { statusCode: STATUS[e.code] ?? 500 });
  return Object.assign(new Error(`inference failed: ${(e as Error)?.message ?? String(e)}`), { statusCode: 500 });
}
