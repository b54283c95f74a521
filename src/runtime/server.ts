/**
 * Server: many models served from one TesseraStore under ONE memory budget that covers the
 * buffer pool's pages, the onnxruntime sessions it keeps, the transient copies made while a
 * session is built, and the block-native kernel's scratch.
 *
 * How one budget is kept: the BufferPool is the ledger. Its pages live in page frames inside the
 * dense kernel's WebAssembly memory (so kernels read weight tiles in place); a kept session, or a
 * transient buffer, is entered in the same pool as a pinned "reservation" entry of its size (ids
 * above RESERVATION_BASE, zero-cost views), so making room for a session evicts pages through the
 * pool's policy, and a pin that cannot fit fails with CapacityError before anything is evicted.
 * On that error the server evicts idle sessions (LRU), or waits for running requests to release
 * what they hold, or — when nothing else holds memory — reports that the budget is too small.
 *
 * Serving modes, per model (`modeOf`):
 * - 'kernel': dense MLP graphs run on src/kernels/dense.ts reading tiles straight from pooled
 *   frames: shared weights are held once, nothing is copied per run, a "session" is a plan.
 * - 'session': an onnxruntime session owning a copy of the weights (assembled from pooled pages).
 * - 'feeds': an onnxruntime session without weights; they are assembled and fed on every run.
 * 'auto' (default) picks 'kernel' where the graph allows it, else 'session' (README: why).
 */
import type * as OrtCommon from 'onnxruntime-common';
import { CapacityError, InferenceError, InvalidArgumentError, ModelNotFoundError, TesseraError } from '../errors.ts';
import type { TesseraStore } from '../store/store.ts';
import type { ModelEntry } from '../catalog/catalog.ts';
import { BlockSource } from '../store/block-source.ts';
import { tensorBytes, weightBytes } from '../store/catalog-view.ts';
import { BufferPool, type PoolStats } from '../pool/buffer-pool.ts';
import type { EvictionPolicy, PageRef } from '../pool/policy.ts';
import { createPolicy, type PolicyName } from '../pool/policies.ts';
import { DTYPES } from '../onnx/dtypes.ts';
import { createDenseKernel, type DenseKernel } from '../kernels/dense.ts';
import { ModelSession, type Feed } from './session.ts';
import { defaultOrt, type OrtModule } from './ort.ts';
import { biasSegments, denseFeed, densePlanOf, tileAddresses, type DensePlan } from './dense-plan.ts';
import { weightsAsInputs } from './feeds-model.ts';
import { LatencyHistogram, SerialQueue, type LatencySummary } from './latency.ts';

export type ServeMode = 'kernel' | 'session' | 'feeds';

export interface ServerOptions {
  /** Bytes for everything the server holds: pages, sessions, transient copies, kernel scratch. */
  budgetBytes: number;
  /** Page eviction policy of the buffer pool (default 'dedup'). */
  policy?: PolicyName | (() => EvictionPolicy);
  /** Serving mode for every model, or 'auto' (default): kernel where eligible, else session. */
  mode?: ServeMode | 'auto';
  /** onnxruntime module (default onnxruntime-web); see loadOrt for onnxruntime-node. */
  ort?: OrtModule;
  /** Rows per kernel call; larger batches are cut into chunks (default 64). */
  maxBatch?: number;
  /** Requests processed at once; the rest wait in a FIFO queue (default 2). */
  concurrency?: number;
}

export interface ServerMetrics {
  requests: number;
  /** Requests served without reading the store or building a session. */
  hits: number;
  misses: number;
  errors: number;
  sessionBuilds: number;
  sessionEvictions: number;
  /** Bytes read from the store (page reads). */
  bytesRead: number;
  latency: LatencySummary;
  /** Bytes of kept sessions (entered in the pool as reservations). */
  sessionBytes: number;
  scratchBytes: number;
  budgetBytes: number;
  /** Highest pages + sessions + transients + scratch ever held; never above budgetBytes. */
  peakBytes: number;
  pool: PoolStats;
  modes: Record<string, ServeMode>;
}

/** Reservation entries in the pool have ids from here on (page ids are far below). */
const RESERVATION_BASE = 2 ** 40;

interface Loaded {
  model: string;
  mode: ServeMode;
  /** Reservation held in the pool for the session's own memory (0: none). */
  reservation: number;
  bytes: number;
  session?: ModelSession;
  plan?: DensePlan;
  busy: number;
  lastUsed: number;
}

interface ModelInfo {
  entry: ModelEntry;
  pages: number[];
  weightBytes: number;
  mode: ServeMode;
  plan?: DensePlan;
}

/** Frames for pages inside the kernel's memory: a fixed set of pageSize slots, never grown. */
class FrameTable {
  private readonly free: number[] = [];
  private readonly byPage = new Map<number, number>();
  constructor(readonly base: number, readonly frameBytes: number, count: number) {
    for (let i = count - 1; i >= 0; i--) this.free.push(base + i * frameBytes);
  }
  take(page: number): number {
    const ptr = this.free.pop();
    // The pool reserved frameBytes for this page before fetching, so a frame is always free.
    if (ptr === undefined) throw new CapacityError('BUDGET_EXCEEDED', `no page frame free for page ${page}: the pool and the frame table disagree`);
    this.byPage.set(page, ptr);
    return ptr;
  }
  release(page: number): void {
    const ptr = this.byPage.get(page);
    if (ptr === undefined) return;
    this.byPage.delete(page);
    this.free.push(ptr);
  }
  of(page: number): number {
    const ptr = this.byPage.get(page);
    if (ptr === undefined) throw new InferenceError('INFERENCE_FAILED', `page ${page} is used but not resident (pin it first)`);
    return ptr;
  }
}

/** Forwards to the real policy; frees a page's frame when the page leaves the pool. */
function framedPolicy(inner: EvictionPolicy, onGone: (id: number) => void): EvictionPolicy {
  return {
    name: inner.name,
    setCapacity: (b) => inner.setCapacity?.(b),
    onRequest: (m) => inner.onRequest?.(m),
    onInsert: (p: PageRef) => inner.onInsert(p),
    onHit: (p: PageRef) => inner.onHit(p),
    onRemove: (id, evicted) => {
      inner.onRemove(id, evicted);
      onGone(id);
    },
    victim: (ok, incoming) => inner.victim(ok, incoming),
  };
}

export class Server {
  readonly budgetBytes: number;
  private readonly pool: BufferPool;
  private readonly frames: FrameTable;
  /** Reads pages for the pool (no cache of its own: the pool is the cache). */
  private readonly pageReader: BlockSource;
  private readonly infos = new Map<string, ModelInfo>();
  private readonly loaded = new Map<string, Loaded>();
  private readonly building = new Map<string, Promise<Loaded>>();
  private buildLock: Promise<void> = Promise.resolve();
  private readonly queue: (() => void)[] = [];
  private running = 0;
  /** Requests and builds currently holding pool memory (they will release it without waiting). */
  private holders = 0;
  private releaseWaiters: (() => void)[] = [];
  private nextReservation = RESERVATION_BASE;
  private readonly reservations = new Map<number, number>();
  private zeros = new ArrayBuffer(0);
  private readonly latency = new LatencyHistogram();
  private readonly ortCalls = new SerialQueue();
  private counters = { requests: 0, hits: 0, misses: 0, errors: 0, sessionBuilds: 0, sessionEvictions: 0, bytesRead: 0 };
  private readonly scratch: { x: number; a: number; b: number; table: number; rows: number; width: number; tableLen: number };
  private clock = 0;
  private closed = false;

  private constructor(
    private readonly store: TesseraStore,
    private readonly kernel: DenseKernel,
    private readonly ort: OrtModule,
    private readonly opts: Required<Pick<ServerOptions, 'maxBatch' | 'concurrency'>> & { mode: ServeMode | 'auto' },
    budgetBytes: number,
    scratchBytes: number,
    policy: EvictionPolicy,
    layout: { rows: number; width: number; tableLen: number },
  ) {
    this.budgetBytes = budgetBytes;
    const pageSize = store.config.pageSize;
    const poolBudget = budgetBytes - scratchBytes;
    const frameBase = kernel.base + scratchBytes;
    this.frames = new FrameTable(frameBase, pageSize, Math.floor(poolBudget / pageSize));
    this.pool = new BufferPool({
      budgetBytes: poolBudget,
      policy: framedPolicy(policy, (id) => this.frames.release(id)),
      fetch: (id) => this.fetch(id),
      sizeOf: () => pageSize,
      pageInfo: (id) => (id >= RESERVATION_BASE ? { sharers: 1 } : this.pageInfo(id)),
    });
    const f = layout.rows * layout.width * 4;
    const base = kernel.base;
    this.scratch = { x: base, a: base + f, b: base + 2 * f, table: base + 3 * f, ...layout };
    this.pageReader = store.blockSource({ maxCachedPages: 0 });
  }

  /** A server over `store`. Fails with CapacityError when the budget cannot hold the largest tensor. */
  static async create(store: TesseraStore, options: ServerOptions): Promise<Server> {
    const { budgetBytes } = options;
    if (!Number.isSafeInteger(budgetBytes) || budgetBytes <= 0) throw new InvalidArgumentError(`the server budget must be a positive whole number of bytes, got ${budgetBytes}`);
    const mode = options.mode ?? 'auto';
    if (!['auto', 'kernel', 'session', 'feeds'].includes(mode)) throw new InvalidArgumentError(`unknown serving mode "${mode}": use auto, kernel, session or feeds`);
    const maxBatch = options.maxBatch ?? 64;
    const concurrency = options.concurrency ?? 2;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new InvalidArgumentError(`maxBatch must be a positive integer, got ${maxBatch}`);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError(`concurrency must be a positive integer, got ${concurrency}`);
    const { tile, pageSize } = store.config;
    // Size the kernel scratch for the widest dense model in the store (fixed: memory never grows).
    let width = 1;
    let tableLen = 1;
    let largestTensor = 0;
    let largestName = '';
    for (const name of store.listModels()) {
      const m = store.model(name);
      for (const t of m.tensors) {
        const bytes = tensorBytes(t);
        if (bytes > largestTensor) (largestTensor = bytes), (largestName = `${name}/${t.name}`);
      }
      if (mode === 'auto' || mode === 'kernel') {
        const plan = densePlanOf(m, store.catalog, tile);
        if ('steps' in plan) {
          width = Math.max(width, plan.maxWidth);
          tableLen = Math.max(tableLen, plan.maxTiles * 3);
        }
      }
    }
    const scratchBytes = align64(3 * maxBatch * width * 4 + tableLen * 4);
    const need = scratchBytes + Math.max(pageSize, largestTensor);
    if (budgetBytes < need) {
      throw new CapacityError('BUDGET_EXCEEDED', `a budget of ${budgetBytes} bytes cannot serve this store: its largest tensor (${largestName}) is ${largestTensor} bytes, a page frame ${pageSize} bytes and the kernel scratch ${scratchBytes} bytes (at least ${need} bytes needed). Raise the budget.`);
    }
    const kernel = await createDenseKernel(budgetBytes);
    const ort = options.ort ?? (await defaultOrt());
    const policy = typeof options.policy === 'function' ? options.policy() : createPolicy(options.policy ?? 'dedup');
    return new Server(store, kernel, ort, { maxBatch, concurrency, mode }, budgetBytes, scratchBytes, policy, { rows: maxBatch, width, tableLen });
  }

  /** Runs `model` on `feeds`. Requests queue beyond `concurrency`; a failure touches nothing else. */
  async run(model: string, feeds: Record<string, Feed>): Promise<Record<string, OrtCommon.Tensor>> {
    if (this.closed) throw new InvalidArgumentError('the server is closed');
    const t0 = performance.now();
    this.counters.requests++;
    await this.slot();
    try {
      const out = await this.serve(model, feeds);
      this.latency.record(performance.now() - t0);
      return out;
    } catch (e) {
      this.counters.errors++;
      throw e;
    } finally {
      this.running--;
      this.queue.shift()?.();
    }
  }

  /** The mode `model` is served in (throws ModelNotFoundError for an unknown model). */
  modeOf(model: string): ServeMode {
    return this.info(model).mode;
  }

  /** Why a model is or is not served block-native. */
  kernelEligibility(model: string): { eligible: true } | { eligible: false; reason: string } {
    const plan = densePlanOf(this.info(model).entry, this.store.catalog, this.store.config.tile);
    return 'steps' in plan ? { eligible: true } : { eligible: false, reason: plan.reason };
  }

  metrics(): ServerMetrics {
    const pool = this.pool.stats();
    let sessionBytes = 0;
    for (const l of this.loaded.values()) sessionBytes += l.bytes;
    const scratchBytes = this.budgetBytes - this.pool.budgetBytes;
    const modes: Record<string, ServeMode> = {};
    for (const [name, i] of this.infos) modes[name] = i.mode;
    return {
      ...this.counters,
      latency: this.latency.summary(),
      sessionBytes,
      scratchBytes,
      budgetBytes: this.budgetBytes,
      peakBytes: pool.peakResidentBytes + scratchBytes,
      pool,
      modes,
    };
  }

  /** Accounting problems (empty when consistent); for tests. */
  checkInvariants(): string[] {
    const problems = this.pool.checkInvariants();
    const m = this.metrics();
    if (m.peakBytes > this.budgetBytes) problems.push(`peak ${m.peakBytes} bytes exceeds the budget ${this.budgetBytes}`);
    return problems;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const l of [...this.loaded.values()]) await this.drop(l);
  }

  // ---- request path ----

  private slot(): Promise<void> {
    if (this.running < this.opts.concurrency) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push(() => (this.running++, resolve())));
  }

  private info(model: string): ModelInfo {
    let info = this.infos.get(model);
    if (info) return info;
    if (typeof model !== 'string' || !this.store.has(model)) throw new ModelNotFoundError(String(model), this.store.listModels());
    const entry = this.store.model(model);
    const cat = this.store.catalog;
    const plan = densePlanOf(entry, cat, this.store.config.tile);
    const fits = 'steps' in plan && plan.maxWidth <= this.scratch.width && plan.maxTiles * 3 <= this.scratch.tableLen;
    let mode: ServeMode;
    if (this.opts.mode === 'auto') mode = fits ? 'kernel' : 'session';
    else if (this.opts.mode === 'kernel') {
      if (!fits) throw new InferenceError('INFERENCE_FAILED', `model "${model}" cannot run block-native (${'reason' in plan ? plan.reason : 'added after the server was sized'}): use mode 'auto' or 'session'`);
      mode = 'kernel';
    } else mode = this.opts.mode;
    info = { entry, pages: cat.pagesRead(entry), weightBytes: weightBytes(entry), mode, plan: fits ? (plan as DensePlan) : undefined };
    this.infos.set(model, info);
    return info;
  }

  private async serve(model: string, feeds: Record<string, Feed>): Promise<Record<string, OrtCommon.Tensor>> {
    const info = this.info(model);
    if (feeds === null || typeof feeds !== 'object') throw new InferenceError('INVALID_FEEDS', `feeds for model "${model}" must be an object of named inputs`);
    this.clock++;
    const wasLoaded = this.loaded.has(model);
    const allResident = info.mode === 'session' || info.pages.every((p) => this.pool.isResident(p));
    // Validate before touching memory: a bad request costs nothing and changes nothing.
    const denseInput = info.mode === 'kernel' ? denseFeed(model, info.plan!, feeds as Record<string, unknown>) : undefined;
    let l = await this.load(model, info);
    // A session evicted between its build and this request's turn is built again.
    while (this.loaded.get(model) !== l) l = await this.load(model, info);
    l.busy++;
    l.lastUsed = this.clock;
    // A busy session holds memory (its reservation) until this request ends; a kernel plan holds none.
    const holds = l.reservation ? 1 : 0;
    this.holders += holds;
    try {
      const tensors = info.mode === 'kernel' ? undefined : l.session!.toTensors(feeds);
      if (wasLoaded && allResident) this.counters.hits++;
      else this.counters.misses++;
      if (info.mode === 'session') return await this.ortCalls.run(() => l.session!.runTensors(tensors!));
      return await this.withModelPages(info, async (pages) => {
        if (info.mode === 'kernel') return this.runKernel(info, denseInput!);
        return this.runFeeds(info, l.session!, tensors!, pages);
      }, holds);
    } finally {
      l.busy--;
      this.holders -= holds;
      this.notifyRelease();
    }
  }

  /** The kept session or plan for a model, built once however many requests ask at once. */
  private load(model: string, info: ModelInfo): Promise<Loaded> {
    const l = this.loaded.get(model);
    if (l) return Promise.resolve(l);
    let p = this.building.get(model);
    if (!p) {
      p = this.build(model, info).finally(() => this.building.delete(model));
      this.building.set(model, p);
    }
    return p;
  }

  private async build(model: string, info: ModelInfo): Promise<Loaded> {
    if (info.mode === 'kernel') {
      const l: Loaded = { model, mode: 'kernel', reservation: 0, bytes: 0, plan: info.plan, busy: 0, lastUsed: this.clock };
      this.loaded.set(model, l);
      return l;
    }
    // One session build at a time: builds hold memory while waiting for more, so two of them
    // could otherwise wait on each other.
    const prev = this.buildLock;
    let unlock!: () => void;
    this.buildLock = new Promise((r) => (unlock = r));
    await prev;
    let held = 0;
    const transients: number[] = [];
    try {
      this.counters.sessionBuilds++;
      const { entry } = info;
      if (info.mode === 'feeds') {
        const skeleton = weightsAsInputs(entry.skeleton, new Set(entry.tensors.filter((t) => t.location === 'graph').map((t) => t.name)));
        const bytes = skeleton.length;
        const reservation = await this.reserve(bytes, `the session of "${model}"`);
        this.holders++, held++;
        try {
          const session = await this.ortCalls.run(() => ModelSession.create(model, skeleton, [], entry, { ort: this.ort, mode: 'inline' }));
          return this.keep({ model, mode: 'feeds', reservation, bytes, session, busy: 0, lastUsed: this.clock });
        } catch (e) {
          this.unreserve(reservation);
          throw e;
        }
      }
      // Session mode: weights assembled from pooled pages (transient W), pages released, then the
      // external-data buffer (transient W) and the session's own copy (W, kept).
      transients.push(await this.reserve(info.weightBytes, `assembling the weights of "${model}"`));
      this.holders++, held++;
      const weights = await this.withModelPages(info, async () => this.assemble(info.entry), 1);
      const reservation = await this.reserve(info.weightBytes, `the session of "${model}"`, 1);
      try {
        transients.push(await this.reserve(info.weightBytes, `the external data of "${model}"`, 1));
        const session = await this.ortCalls.run(() => ModelSession.create(model, entry.skeleton, weights, entry, { ort: this.ort, mode: 'external' }));
        return this.keep({ model, mode: 'session', reservation, bytes: info.weightBytes, session, busy: 0, lastUsed: this.clock });
      } catch (e) {
        this.unreserve(reservation);
        throw e;
      }
    } finally {
      for (const r of transients) this.unreserve(r);
      this.holders -= held;
      this.notifyRelease();
      unlock();
    }
  }

  private keep(l: Loaded): Loaded {
    this.loaded.set(l.model, l);
    return l;
  }

  private async drop(l: Loaded): Promise<void> {
    this.loaded.delete(l.model);
    if (l.reservation) this.unreserve(l.reservation);
    this.counters.sessionEvictions += l.reservation ? 1 : 0;
    const s = l.session;
    if (s) await this.ortCalls.run(() => s.release()).catch(() => undefined);
  }

  /** Evicts the least recently used idle session holding memory; false when there is none. */
  private evictIdleSession(): boolean {
    let victim: Loaded | undefined;
    for (const l of this.loaded.values()) if (l.busy === 0 && l.reservation && (!victim || l.lastUsed < victim.lastUsed)) victim = l;
    if (!victim) return false;
    void this.drop(victim);
    return true;
  }

  /** Retries `attempt` while the pool is full: evict idle sessions, else wait for holders. */
  private async withRoom<T>(what: string, attempt: () => Promise<T>, selfHeld = 0): Promise<T> {
    let triedAlone = false;
    for (;;) {
      try {
        return await attempt();
      } catch (e) {
        if (!(e instanceof CapacityError)) throw e;
        if (this.evictIdleSession()) continue;
        if (this.holders - selfHeld <= 0) {
          // Others may have released while this attempt's own pins settled: one more try alone.
          if (!triedAlone) {
            triedAlone = true;
            continue;
          }
          // Nothing else holds memory that it will release: waiting could only deadlock.
          throw new CapacityError('BUDGET_EXCEEDED', `${what} does not fit the server budget of ${this.budgetBytes} bytes even with every other page and session evicted (${e.message})`);
        }
        // While waiting this request releases nothing, so it must not count as a holder for others.
        this.holders -= selfHeld;
        this.notifyRelease();
        try {
          await new Promise<void>((r) => this.releaseWaiters.push(r));
        } finally {
          this.holders += selfHeld;
        }
        triedAlone = false;
      }
    }
  }

  private notifyRelease(): void {
    const w = this.releaseWaiters;
    this.releaseWaiters = [];
    for (const r of w) r();
  }

  private reserve(bytes: number, what: string, selfHeld = 0): Promise<number> {
    const id = this.nextReservation++;
    this.reservations.set(id, bytes);
    return this.withRoom(what, async () => {
      await this.pool.pin(id, { bytes });
      return id;
    }, selfHeld).catch((e) => {
      this.reservations.delete(id);
      throw e;
    });
  }

  private unreserve(id: number): void {
    this.pool.unpin(id);
    this.pool.invalidate(id);
    this.reservations.delete(id);
    this.notifyRelease();
  }

  /** A zero-cost view standing for a reservation's bytes (never written, never read). */
  private reservationView(bytes: number): Uint8Array {
    if (this.zeros.byteLength < bytes) this.zeros = new ArrayBuffer(bytes);
    return new Uint8Array(this.zeros, 0, bytes);
  }

  /** Pins every page of the model (one holder), runs fn, releases. */
  private async withModelPages<T>(info: ModelInfo, fn: (pages: Uint8Array[]) => Promise<T>, selfHeld = 0): Promise<T> {
    const name = info.entry.name;
    return this.withRoom(`model "${name}" (${info.pages.length} pages)`, async () => {
      let entered = false;
      try {
        return await this.pool.withPages(info.pages, async (pages) => {
          entered = true;
          this.holders++;
          return fn(pages);
        }, { model: name });
      } finally {
        if (entered) {
          this.holders--;
          this.notifyRelease();
        }
      }
    }, selfHeld);
  }

  private async fetch(id: number): Promise<Uint8Array> {
    if (id >= RESERVATION_BASE) return this.reservationView(this.reservations.get(id)!);
    const data = await this.pageReader.page(id);
    this.counters.bytesRead += data.length;
    const frameBytes = this.frames.frameBytes;
    if (data.length > frameBytes) throw new CapacityError('BUDGET_EXCEEDED', `page ${id} holds ${data.length} bytes, more than a ${frameBytes}-byte frame`);
    const ptr = this.frames.take(id);
    const frame = new Uint8Array(this.kernel.memory.buffer, ptr, frameBytes);
    frame.set(data);
    return frame;
  }

  private pageInfo(id: number): { sharers: number; models: string[] } {
    const models: string[] = [];
    for (const [name, info] of this.infos) if (info.pages.includes(id)) models.push(name);
    return { sharers: Math.max(1, models.length), models };
  }

  /** A model's tensors assembled from its pinned frames (delta blocks decoded against their bases). */
  private assemble(entry: ModelEntry): Promise<Uint8Array[]> {
    const frames = new BlockSource(this.store.catalog, this.store.config.tile, async (page) => new Uint8Array(this.kernel.memory.buffer, this.frames.of(page), this.frames.frameBytes));
    return frames.tensors(entry);
  }

  private async runFeeds(info: ModelInfo, session: ModelSession, inputs: Record<string, OrtCommon.Tensor>, _pages: Uint8Array[]): Promise<Record<string, OrtCommon.Tensor>> {
    // The weights are copied out of the frames into fresh arrays (a transient W, reserved).
    const r = await this.reserve(info.weightBytes, `the weight feeds of "${info.entry.name}"`, 2); // the busy session + the pinned pages
    try {
      const data = await this.assemble(info.entry);
      const feeds: Record<string, OrtCommon.Tensor> = { ...inputs };
      info.entry.tensors.forEach((t, i) => {
        if (t.location !== 'graph') return;
        const d = data[i];
        const Ctor: any = t.dtype === 'float32' ? Float32Array : t.dtype === 'int64' ? BigInt64Array : t.dtype === 'int32' ? Int32Array : Uint8Array;
        feeds[t.name] = new this.ort.Tensor(t.dtype as any, new Ctor(d.buffer, d.byteOffset, d.length / DTYPES[t.dtype].bytes), t.dims);
      });
      return await this.ortCalls.run(() => session.runTensors(feeds));
    } finally {
      this.unreserve(r);
    }
  }

  private runKernel(info: ModelInfo, input: { data: Float32Array; batch: number }): Record<string, OrtCommon.Tensor> {
    const plan = info.plan!;
    const cat = this.store.catalog;
    const { tile } = this.store.config;
    const k = this.kernel.exports;
    const buf = this.kernel.memory.buffer;
    const s = this.scratch;
    const table = new Int32Array(buf, s.table, s.tableLen);
    const frameOf = (p: number) => this.frames.of(p);
    const out = new Float32Array(input.batch * plan.outFeatures);
    for (let r0 = 0; r0 < input.batch; r0 += s.rows) {
      const m = Math.min(s.rows, input.batch - r0);
      new Float32Array(buf, s.x, m * plan.inFeatures).set(input.data.subarray(r0 * plan.inFeatures, (r0 + m) * plan.inFeatures));
      let cur = s.x;
      let width = plan.inFeatures;
      let spare = [s.a, s.b];
      for (const step of plan.steps) {
        if (step.op === 'dense') {
          tileAddresses(info.entry.tensors[step.tensor], cat, frameOf, table);
          const next = spare[0] === cur ? spare[1] : spare[0];
          k.denseTiled(cur, m, step.k, step.n, s.table, tile.rows, tile.cols, step.transB ? 1 : 0, next);
          if (cur === s.x) spare = [s.a, s.b];
          cur = next;
          width = step.n;
        } else if (step.op === 'bias') {
          const n = biasSegments(info.entry.tensors[step.tensor], cat, tile, frameOf, table);
          k.addBias(cur, m, width, s.table, n);
        } else if (step.op === 'relu') {
          k.relu(cur, m * width);
        } else {
          k.softmaxRows(cur, m, width);
        }
      }
      out.set(new Float32Array(buf, cur, m * width), r0 * plan.outFeatures);
    }
    return { [plan.output]: new this.ort.Tensor('float32', out, [input.batch, plan.outFeatures]) as OrtCommon.Tensor };
  }
}

function align64(n: number): number {
  return Math.ceil(n / 64) * 64;
}
