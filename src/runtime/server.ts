/**
 * Server: many models served from one TesseraStore under ONE memory budget, kept by one ledger
 * (ledger.ts) that every holder draws on: the page pool (frames in the kernel's memory), the
 * pooled weight tensors (tensor-pool.ts), every kept session, the kernel scratch and in-flight
 * copies (a session's model bytes while it is built). A reservation that does not fit reclaims,
 * in this order: unpinned pages, unpinned tensors, idle own-weights sessions, idle weight-less
 * sessions. Requests take their memory one at a time in arrival order (memory-admission.ts): one
 * that does not fit waits for running requests to release theirs, and fails with CapacityError
 * only when nothing else is running or after `memoryWaitMs`. A model that can never fit is
 * refused on its first request, naming the sizes, before anything is evicted.
 *
 * Each model runs on one executor (executors/): block-native kernels (dense MLPs), a weight-less
 * session fed the shared pooled tensors, or a session with its own weights for a hot model when
 * memory allows; chosen by measured cost (executors/choose.ts), reported by metrics().
 */
import type * as OrtCommon from 'onnxruntime-common';
import { CapacityError, InferenceError, InvalidArgumentError, ModelNotFoundError } from '../errors.ts';
import type { TesseraStore } from '../store/store.ts';
import type { ModelEntry } from '../catalog/catalog.ts';
import { BufferPool, type PoolStats } from '../pool/buffer-pool.ts';
import { onRemoval, type EvictionPolicy } from '../pool/policy.ts';
import { createPolicy, type PolicyName } from '../pool/policies.ts';
import { tensorBytes, weightBytes } from '../store/catalog-view.ts';
import { assembleModel } from '../onnx/model.ts';
import { createDenseKernel, type DenseKernel } from '../kernels/dense.ts';
import { ModelSession, type Feed } from './session.ts';
import { defaultOrt, type OrtModule } from './ort.ts';
import { densePlanOf, type DensePlan } from './dense-plan.ts';
import { weightlessGraph, type WeightlessGraph } from './weightless-graph.ts';
import { LatencyHistogram, type LatencySummary } from './latency.ts';
import { SerialQueue } from './serial-queue.ts';
import { RequestGate } from './request-gate.ts';
import { SingleFlight } from './single-flight.ts';
import { MemoryLedger, type LedgerKind } from './ledger.ts';
import { MemoryAdmission } from './memory-admission.ts';
import { PageFrames } from './page-frames.ts';
import { PAGE_HEADER_BYTES } from '../store/page-format.ts';
import { StoreReader } from './store-reader.ts';
import { TensorPool, tensorKey } from './tensor-pool.ts';
import type { Executor, ExecutorKind } from './executors/executor.ts';
import { KernelExecutor, type KernelScratch } from './executors/kernel.ts';
import { SharedWeightsExecutor, type FedWeight } from './executors/shared-weights.ts';
import { OwnWeightsExecutor } from './executors/own-weights.ts';
import { SESSION_FIXED_BYTES, HOT_AFTER_REQUESTS, KERNEL_HOT_AFTER_REQUESTS, OWN_MIN_SPEEDUP, OWN_TRIAL_RUNS, OWN_TRIAL_WARMUP_RUNS, median, ownSessionBytes, sharedSessionBytes, type ExecutorChoice } from './executors/choose.ts';

export type { ExecutorKind } from './executors/executor.ts';
export type { ExecutorChoice } from './executors/choose.ts';

export interface ServerOptions {
  /** Bytes for everything the server holds: pages, pooled tensors, sessions, in-flight copies, kernel scratch. */
  budgetBytes: number;
  /** Eviction policy of the page and tensor pools (default 'dedup'). */
  policy?: PolicyName | (() => EvictionPolicy);
  /**
   * Executor for every model, or 'auto' (default): kernel for dense MLPs, else shared weights,
   * own weights for hot models when memory allows.
   */
  executor?: ExecutorKind | 'auto';
  /** onnxruntime module (default: the platform's, onnxruntime-node in Node; see loadOrt). */
  ort?: OrtModule;
  /** Session options for every onnxruntime session the server makes. */
  sessionOptions?: OrtCommon.InferenceSession.SessionOptions;
  /**
   * Fixed ledger bytes per onnxruntime session. Default: 2 MiB for a session holding its own
   * weights (measured with onnxruntime-node on PP-OCR), and for a weight-less session an estimate
   * from its graph's nodes and input size (executors/choose.ts). Given, it is used for both.
   */
  sessionOverheadBytes?: number;
  /** Rows per kernel call; larger batches are cut into chunks (default 64). */
  maxBatch?: number;
  /** Requests processed at once; the rest wait in a FIFO queue (default 2). */
  concurrency?: number;
  /**
   * How long a request may wait for memory held by running requests before it fails with
   * CapacityError BUDGET_EXCEEDED (default 30,000 ms, the HTTP server's request timeout).
   */
  memoryWaitMs?: number;
}

export interface ServerMetrics {
  requests: number;
  /** Requests served without building a session or assembling a tensor. */
  hits: number;
  misses: number;
  errors: number;
  /** Times a request did not fit and waited for running requests to release memory. */
  memoryWaits: number;
  sessionBuilds: number;
  sessionEvictions: number;
  /** Bytes read from the store (page reads). */
  bytesRead: number;
  /** Weight tensors assembled from pages (pooled once, fed to every model that holds them). */
  tensorsAssembled: number;
  /** Assemblies written into arena bytes an evicted tensor had used, instead of a new buffer. */
  tensorBuffersReused: number;
  /** The pooled tensors' arena: its size, the bytes of it ever used (resident), allocations it could not fit (fragmentation). */
  tensorArena: { bytes: number; highWaterBytes: number; fallbacks: number };
  latency: LatencySummary;
  /** Ledger bytes of kept sessions. */
  sessionBytes: number;
  scratchBytes: number;
  budgetBytes: number;
  /** Ledger bytes held now, by kind. */
  ledger: Record<LedgerKind, number>;
  /** Highest total the ledger ever held; never above budgetBytes. */
  peakBytes: number;
  /** The page pool. */
  pool: PoolStats;
  /** The pooled weight tensors. */
  tensorPool: PoolStats;
  /** Per model: the executor it runs on now (or will, on its next request) and why. */
  executors: Record<string, ExecutorChoice>;
}

interface ModelState {
  entry: ModelEntry;
  weightBytes: number;
  pages: number[];
  plan?: DensePlan;
  choice: ExecutorChoice;
  /** Shared-weights layout (computed on first need). */
  weightless?: { skeleton: Uint8Array; fed: FedWeight[]; inlineIds: number[]; inlineBytes: number; sessionBytes: number; key: string };
  /** The weight-less session this model's shared-weights executor runs on. */
  graph?: GraphSession;
  tensorIds: number[];
  executor?: Executor;
  busy: number;
  requests: number;
  /** Requests decayed by age (half-life VALUE_HALF_LIFE requests), as of `heatAt` on the request clock: what its memory is worth. */
  heat: number;
  heatAt: number;
  /** The executor the model starts on and returns to (kernel or shared weights), and its run times. */
  base: ExecutorChoice;
  sharedMs: number[];
  ownMs: number[];
  /** Runs on own weights seen during the trial's warm-up (not measured). */
  ownWarmup: number;
  /** 'tried' once own weights were measured not faster; never tried again. */
  own: 'never' | 'trial' | 'kept' | 'rejected';
}

/**
 * One weight-less session per distinct weight-less graph: models that differ only in their fed
 * weights (fine-tunes of one architecture) have byte-identical graphs and share it, so its memory
 * is held, and entered in the ledger, once. It stays built while no model runs on it (its last
 * user promoted to own weights, say) until memory is wanted: the next model of its architecture
 * then finds it (the scale run's 96 variants rebuilt it when the first one was promoted).
 */
interface GraphSession {
  key: string;
  skeleton: Uint8Array;
  session: ModelSession;
  bytes: number;
  users: Set<ModelState>;
}

/** Half-life, in requests, of the request counts that value sessions and tensors for eviction. */
const VALUE_HALF_LIFE = 128;
/** Before anything is measured: a session build (PP-OCRv4 rec's weight-less graph: ~100 ms here) and an assembly (~200 MB/s). */
const SESSION_BUILD_MS = 100;
const ASSEMBLY_MS_PER_BYTE = 1 / 200_000;

const LEGACY_MODES: Record<string, ExecutorKind> = { kernel: 'kernel', session: 'own-weights', feeds: 'shared-weights' };

export class Server {
  readonly budgetBytes: number;
  private readonly ledger: MemoryLedger;
  private readonly reader: StoreReader;
  private readonly pages: BufferPool;
  private readonly frames: PageFrames;
  private readonly tensors: TensorPool;
  private readonly states = new Map<string, ModelState>();
  /** Pages block-native models read in place: kept resident after tensor assembly. */
  private readonly kernelPages = new Set<number>();
  private readonly builds = new SingleFlight<string, Executor>();
  private readonly graphs = new Map<string, GraphSession>();
  private readonly tensorKeys = new Map<string, { key: string; bytes: number }[]>();
  /** Weight-less rewrites by skeleton and slot sizes (weightlessOf). */
  private readonly weightlessGraphs = new Map<string, { source: Uint8Array; graph: WeightlessGraph }>();
  private readonly graphBuilds = new SingleFlight<string, GraphSession>();
  private readonly gate: RequestGate;
  private readonly ortCalls = new SerialQueue();
  private readonly latency = new LatencyHistogram();
  private counters = { requests: 0, hits: 0, misses: 0, errors: 0, sessionBuilds: 0, sessionEvictions: 0, bytesRead: 0 };
  private readonly admission: MemoryAdmission;
  private clock = 0;
  /** The last session builds' times (ms): what a session evicted costs to have again. */
  private readonly buildMs: number[] = [];
  private closed = false;

  private constructor(
    store: TesseraStore,
    private readonly kernel: DenseKernel,
    private readonly ort: OrtModule,
    private readonly opts: { maxBatch: number; executor: ExecutorKind | 'auto'; sessionOptions?: OrtCommon.InferenceSession.SessionOptions; sessionFixed: number; sessionOverride?: number; memoryWaitMs: number },
    concurrency: number,
    budgetBytes: number,
    private readonly scratchBytes: number,
    policy: () => EvictionPolicy,
    private readonly scratch: KernelScratch,
  ) {
    this.budgetBytes = budgetBytes;
    this.reader = new StoreReader(store);
    this.gate = new RequestGate(concurrency);
    this.admission = new MemoryAdmission(opts.memoryWaitMs);
    this.ledger = new MemoryLedger(budgetBytes);
    this.ledger.reserve('scratch', scratchBytes, 'the kernel scratch');
    const pageSize = this.reader.config.pageSize;
    const frameBase = kernel.base + scratchBytes;
    // Frames with room for a sealed page's header: pages are read straight into them (fetchPage).
    this.frames = new PageFrames(kernel.memory, frameBase, pageSize, frameCount(budgetBytes, scratchBytes, pageSize), PAGE_HEADER_BYTES);
    // Reclaim order = order added: pages (refetched cheaply), then tensors and idle sessions weighed together.
    this.pages = new BufferPool({
      budgetBytes,
      account: { ledger: this.ledger, kind: 'pages' },
      policy: onRemoval(policy(), (id) => this.frames.release(id)),
      fetch: (id) => this.fetchPage(id),
      sizeOf: () => pageSize,
      pageInfo: (id) => this.pageInfo(id),
    });
    this.tensors = new TensorPool(this.reader, this.pages, this.frames, this.ledger, policy(), (page) => this.kernelPages.has(page));
    this.ledger.addReclaimer({
      name: 'pooled tensors and idle sessions',
      reclaimable: () => this.tensors.pool.reclaimableBytes() + this.idleSessionBytes(),
      reclaim: (b) => this.reclaimTensorsAndSessions(b),
    });
  }

  /**
   * A server over `store`. Fails with CapacityError when the budget cannot hold the largest
   * tensor (with a page frame and the kernel scratch).
   */
  static async create(store: TesseraStore, options: ServerOptions): Promise<Server> {
    const { budgetBytes } = options;
    if (!Number.isSafeInteger(budgetBytes) || budgetBytes <= 0) throw new InvalidArgumentError(`the server budget must be a positive whole number of bytes, got ${budgetBytes}`);
    const legacy = (options as { mode?: string }).mode;
    const executor = options.executor ?? (legacy === undefined || legacy === 'auto' ? 'auto' : LEGACY_MODES[legacy] ?? (legacy as ExecutorKind));
    if (!['auto', 'kernel', 'shared-weights', 'own-weights'].includes(executor)) throw new InvalidArgumentError(`unknown executor "${executor}": use auto, kernel, shared-weights or own-weights`);
    const maxBatch = options.maxBatch ?? 64;
    const concurrency = options.concurrency ?? 2;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new InvalidArgumentError(`maxBatch must be a positive integer, got ${maxBatch}`);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError(`concurrency must be a positive integer, got ${concurrency}`);
    const memoryWaitMs = options.memoryWaitMs ?? 30_000;
    if (!(memoryWaitMs > 0)) throw new InvalidArgumentError(`memoryWaitMs must be a positive number of milliseconds, got ${memoryWaitMs}`);
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
      if (executor === 'auto' || executor === 'kernel') {
        const plan = densePlanOf(m, store.catalog, tile);
        if ('steps' in plan) {
          width = Math.max(width, plan.maxWidth);
          tableLen = Math.max(tableLen, plan.maxTiles * 3);
        }
      }
    }
    const scratchBytes = align64(3 * maxBatch * width * 4 + tableLen * 4);
    const need = scratchBytes + pageSize + largestTensor;
    if (budgetBytes < need) {
      throw new CapacityError('BUDGET_EXCEEDED', `a budget of ${budgetBytes} bytes cannot serve this store: its largest tensor (${largestName}) is ${largestTensor} bytes, a page frame ${pageSize} bytes and the kernel scratch ${scratchBytes} bytes (at least ${need} bytes needed). Raise the budget.`);
    }
    const kernel = await createDenseKernel(scratchBytes + PageFrames.bytesFor(frameCount(budgetBytes, scratchBytes, pageSize), pageSize, PAGE_HEADER_BYTES));
    const ort = options.ort ?? (await defaultOrt());
    const policy = typeof options.policy === 'function' ? options.policy : () => createPolicy((options.policy as PolicyName) ?? 'dedup');
    const f = maxBatch * width * 4;
    const base = kernel.base;
    const scratch: KernelScratch = { x: base, a: base + f, b: base + 2 * f, table: base + 3 * f, rows: maxBatch, width, tableLen };
    return new Server(store, kernel, ort, { maxBatch, executor, sessionOptions: options.sessionOptions, sessionFixed: options.sessionOverheadBytes ?? SESSION_FIXED_BYTES, sessionOverride: options.sessionOverheadBytes, memoryWaitMs }, concurrency, budgetBytes, scratchBytes, policy, scratch);
  }

  /** Runs `model` on `feeds`. Requests queue beyond `concurrency`; a failure touches nothing else. */
  async run(model: string, feeds: Record<string, Feed>): Promise<Record<string, OrtCommon.Tensor>> {
    if (this.closed) throw new InvalidArgumentError('the server is closed');
    const t0 = performance.now();
    this.counters.requests++;
    try {
      const out = await this.gate.run(() => this.serve(model, feeds));
      this.latency.record(performance.now() - t0);
      return out;
    } catch (e) {
      this.counters.errors++;
      throw e;
    }
  }

  /** The executor `model` runs on now, or will on its next request (ModelNotFoundError for an unknown model). */
  executorOf(model: string): ExecutorChoice {
    return { ...this.state(model).choice };
  }

  /** Why a model is or is not served block-native. */
  kernelEligibility(model: string): { eligible: true } | { eligible: false; reason: string } {
    const plan = densePlanOf(this.state(model).entry, this.reader.catalog, this.reader.config.tile);
    return 'steps' in plan ? { eligible: true } : { eligible: false, reason: plan.reason };
  }

  metrics(): ServerMetrics {
    const executors: Record<string, ExecutorChoice> = {};
    for (const [name, s] of this.states) executors[name] = { ...s.choice };
    const ledger = this.ledger.byKind();
    return {
      ...this.counters,
      memoryWaits: this.admission.waits,
      tensorsAssembled: this.tensors.assembled,
      tensorBuffersReused: this.tensors.reused,
      tensorArena: { bytes: this.tensors.arena.bytes, highWaterBytes: this.tensors.arena.highWater, fallbacks: this.tensors.arena.fallbacks },
      latency: this.latency.summary(),
      sessionBytes: ledger.sessions,
      scratchBytes: this.scratchBytes,
      budgetBytes: this.budgetBytes,
      ledger,
      peakBytes: this.ledger.peakBytes,
      pool: this.pages.stats(),
      tensorPool: this.tensors.pool.stats(),
      executors,
    };
  }

  /** Sessions kept now (for leak checks). */
  keptSessions(): number {
    let n = this.graphs.size;
    for (const s of this.states.values()) if (s.executor?.kind === 'own-weights') n++;
    return n;
  }

  /** Accounting problems (empty when consistent); for tests. */
  checkInvariants(): string[] {
    const problems = [...this.pages.checkInvariants(), ...this.tensors.pool.checkInvariants()];
    const k = this.ledger.byKind();
    const pagesHeld = this.pages.stats().residentBytes;
    const tensorsHeld = this.tensors.pool.stats().residentBytes;
    if (k.pages !== pagesHeld) problems.push(`ledger pages ${k.pages} but the page pool holds ${pagesHeld}`);
    if (k.tensors !== tensorsHeld) problems.push(`ledger tensors ${k.tensors} but the tensor pool holds ${tensorsHeld}`);
    let sessions = 0;
    for (const s of this.states.values()) sessions += s.executor?.keptBytes ?? 0;
    for (const g of this.graphs.values()) sessions += g.bytes;
    if (k.sessions !== sessions) problems.push(`ledger sessions ${k.sessions} but kept executors hold ${sessions}`);
    if (k.inflight !== 0 && this.admission.running === 0 && this.admission.queued === 0) problems.push(`ledger in-flight ${k.inflight} with nothing running`);
    if (this.ledger.peakBytes > this.budgetBytes) problems.push(`peak ${this.ledger.peakBytes} bytes exceeds the budget ${this.budgetBytes}`);
    return problems;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.states.values()) if (s.executor) await this.drop(s);
    for (const g of [...this.graphs.values()]) await this.releaseGraph(g);
    this.tensors.pool.clear();
    this.pages.clear();
  }

  // ---- models ----

  private state(model: string): ModelState {
    let s = this.states.get(model);
    if (s) return s;
    if (typeof model !== 'string' || !this.reader.has(model)) throw new ModelNotFoundError(String(model), this.reader.models());
    const entry = this.reader.model(model);
    const modelWeightBytes = weightBytes(entry);
    const plan = densePlanOf(entry, this.reader.catalog, this.reader.config.tile);
    const s0 = this.scratch;
    const fits = 'steps' in plan && plan.maxWidth <= s0.width && plan.maxTiles * 3 <= s0.tableLen;
    const pages = this.reader.pagesOfModel(entry);
    const tensorIds = entry.tensors.map((t) => this.tensors.register(model, t));
    let choice: ExecutorChoice;
    const asked = this.opts.executor;
    if (asked === 'kernel' && !fits) {
      throw new InferenceError('INFERENCE_FAILED', `model "${model}" cannot run block-native (${'reason' in plan ? plan.reason : 'added after the server was sized'}): use executor 'auto' or 'shared-weights'`);
    }
    if (asked !== 'auto') choice = { kind: asked, reason: 'asked for by the server options' };
    else if (fits) choice = { kind: 'kernel', reason: 'dense MLP chain: block-native kernels read the shared tiles in place' };
    else choice = { kind: 'shared-weights', reason: `weights fed from the shared pool (${'reason' in plan ? `not block-native: ${plan.reason}` : 'not block-native'})` };
    s = { entry, weightBytes: modelWeightBytes, pages, plan: fits ? (plan as DensePlan) : undefined, choice, base: choice, tensorIds, busy: 0, requests: 0, heat: 0, heatAt: 0, sharedMs: [], ownMs: [], ownWarmup: 0, own: 'never' };
    this.checkFits(s);
    this.states.set(model, s);
    if (choice.kind === 'kernel') for (const p of pages) this.kernelPages.add(p);
    return s;
  }

  /** Refuses, before anything is evicted, a model whose executor and working set exceed the budget. */
  private checkFits(s: ModelState): void {
    const room = this.budgetBytes - this.scratchBytes;
    const pageSize = this.reader.config.pageSize;
    const name = s.entry.name;
    if (s.choice.kind === 'kernel') {
      const need = s.pages.length * pageSize;
      if (need > room) throw new CapacityError('BUDGET_EXCEEDED', `model "${name}" needs its ${s.pages.length} pages (${need} bytes) resident at once to run block-native, more than the ${room} bytes the budget of ${this.budgetBytes} leaves after the kernel scratch (${this.scratchBytes}). Raise the budget.`);
      return;
    }
    if (s.choice.kind === 'own-weights') {
      // The pooled tensors and the model bytes assembled from them while the session is built.
      const cost = ownSessionBytes(s.entry.skeleton.length, s.weightBytes, this.opts.sessionFixed);
      const need = cost + 2 * s.weightBytes + pageSize;
      if (need > room) throw new CapacityError('BUDGET_EXCEEDED', `model "${name}" needs ${need} bytes to build a session holding its own weights: the session (${cost}), its ${s.weightBytes} bytes of weights pooled and once more as model bytes, a page; the budget of ${this.budgetBytes} leaves ${room} after the kernel scratch. Use the shared-weights executor or raise the budget.`);
      return;
    }
    const w = this.weightlessOf(s);
    const fedBytes = w.fed.reduce((n, f) => n + this.tensors.bytesOf(f.tensor), 0);
    // A tensor is assembled one page at a time (two for a delta whose base is on another page).
    const assemblyPages = Math.max(0, ...w.fed.map((f) => this.tensors.assemblyPagesOf(f.tensor))) * pageSize;
    const need = w.sessionBytes + fedBytes + assemblyPages;
    if (need > room) {
      throw new CapacityError('BUDGET_EXCEEDED', `model "${name}" needs ${need} bytes at once: its weight tensors (${fedBytes}), its weight-less session (${w.sessionBytes}) and the pages a tensor holds while it is assembled (${assemblyPages}); the budget of ${this.budgetBytes} leaves ${room} after the kernel scratch. Raise the budget.`);
    }
  }

  private weightlessOf(s: ModelState): NonNullable<ModelState['weightless']> {
    if (s.weightless) return s.weightless;
    const slots = s.entry.tensors.map((t) => ({ name: t.name, location: t.location, dtype: t.dtype, bytes: this.tensors.bytesOf(this.tensors.register(s.entry.name, t)) }));
    // Variants of one architecture store byte-identical skeletons: rewritten once, not once per
    // model (decoding PP-OCRv4 rec's graph made MiBs of garbage each: the scale run's 96 variants
    // grew the JS heap by ~70 MiB).
    const sig = `${fnv1a(s.entry.skeleton)}:${s.entry.skeleton.length}:${slots.map((x) => `${x.dtype}/${x.bytes}`).join(',')}`;
    let cached = this.weightlessGraphs.get(sig);
    if (!cached || !bytesEqual(cached.source, s.entry.skeleton)) {
      cached = { source: s.entry.skeleton, graph: weightlessGraph(s.entry.skeleton, slots) };
      this.weightlessGraphs.set(sig, cached);
    }
    const g = cached.graph;
    const fed = g.fed.map(({ slot, input }) => ({ input, tensor: s.tensorIds[slot], dtype: s.entry.tensors[slot].dtype, dims: s.entry.tensors[slot].dims }));
    const inlineIds = g.inline.map((i) => s.tensorIds[i]);
    const inlineBytes = g.inline.reduce((n, i) => n + slots[i].bytes, 0);
    const key = `${fnv1a(g.skeleton)}:${g.skeleton.length}:${inlineIds.join(',')}`;
    s.weightless = { skeleton: g.skeleton, fed, inlineIds, inlineBytes, sessionBytes: sharedSessionBytes({ graphBytes: g.skeleton.length, inlineBytes, nodes: g.nodes, inputElements: g.inputElements, dynamicInputs: g.dynamicInputs }, this.opts.sessionOverride), key };
    return s.weightless;
  }

  // ---- request path ----

  private async serve(model: string, feeds: Record<string, Feed>): Promise<Record<string, OrtCommon.Tensor>> {
    const s = this.state(model);
    if (feeds === null || typeof feeds !== 'object') throw new InferenceError('INVALID_FEEDS', `feeds for model "${model}" must be an object of named inputs`);
    s.requests++;
    s.heat = this.heatOf(s) + 1;
    s.heatAt = this.clock;
    this.maybePromote(s);
    const built = s.executor !== undefined;
    const resident = s.choice.kind === 'kernel' ? s.pages.every((p) => this.pages.isResident(p)) : s.tensorIds.every((id) => this.tensors.pool.isResident(id));
    let counted = false;
    return this.admission.run(`a run of "${model}"`, async (admitted) => {
      let ex = await this.load(s);
      // An executor evicted between its build and this request's turn is built again.
      while (s.executor !== ex) ex = await this.load(s);
      // Busy: its session is not reclaimable while the request pins its weights and runs.
      s.busy++;
      this.clock++;
      try {
        // Checked before any memory is pinned: a bad request costs nothing and changes nothing.
        const checked = ex.check(feeds);
        if (!counted) {
          counted = true;
          if (built && (resident || ex.kind === 'own-weights')) this.counters.hits++;
          else this.counters.misses++;
        }
        const t0 = performance.now();
        const out = await ex.run(checked, admitted);
        this.measured(s, ex.kind, performance.now() - t0);
        return out;
      } finally {
        s.busy--;
      }
    });
  }

  private measured(s: ModelState, kind: ExecutorKind, ms: number): void {
    if (kind === s.base.kind) {
      s.sharedMs.push(ms);
      if (s.sharedMs.length > 16) s.sharedMs.shift();
    } else if (kind === 'own-weights' && s.own === 'trial') {
      // A new session's first runs pay its warm-up (allocations, prepacking): 1.90 ms against a
      // settled 0.08 for the zoo's MLP, which lost it the trial. They are not what it would cost.
      if (++s.ownWarmup <= OWN_TRIAL_WARMUP_RUNS) return;
      s.ownMs.push(ms);
      if (s.ownMs.length >= OWN_TRIAL_RUNS) {
        const shared = median(s.sharedMs);
        const own = median(s.ownMs);
        if (shared >= OWN_MIN_SPEEDUP * own) {
          s.own = 'kept';
          s.choice = { kind: 'own-weights', reason: `hot, and spare memory holds its own weights: ${own.toFixed(2)} ms a run vs ${shared.toFixed(2)} ms on ${s.base.kind}` };
        } else {
          s.own = 'rejected';
          s.choice = { kind: s.base.kind, reason: `own weights measured no faster (${own.toFixed(2)} vs ${shared.toFixed(2)} ms a run on ${s.base.kind})` };
          if (s.busy <= 1 && s.executor?.kind === 'own-weights') void this.drop(s);
        }
      }
    }
  }

  /**
   * Gives a hot model its own weights when the memory left after every other model's working set
   * (sessions and distinct tensors of shared-weights models, pages of block-native ones, and the
   * distinct tensors of the store's models not requested yet) covers the session's cost and its
   * build copy. A block-native MLP is tried too: for a resident model onnxruntime-node's native
   * run can beat the WASM kernel (bench serving, resident check). Models not requested yet count
   * because their first requests will want their weights: with only those seen counted, the scale
   * run (96 variants at 5%) promoted the first variant at its third request, one model seen, and
   * evicted its session 12 requests later, its build copies left as garbage.
   */
  private maybePromote(s: ModelState): void {
    if (this.opts.executor !== 'auto' || s.choice.kind !== s.base.kind || s.own !== 'never') return;
    if (s.requests < (s.base.kind === 'kernel' ? KERNEL_HOT_AFTER_REQUESTS : HOT_AFTER_REQUESTS) || s.sharedMs.length < 2) return;
    const cost = ownSessionBytes(s.entry.skeleton.length, s.weightBytes, this.opts.sessionFixed);
    const committed = new Set<number>();
    const otherKernelPages = new Set<number>();
    const graphs = new Map<string, number>();
    let sessions = 0;
    for (const o of this.states.values()) {
      if (o === s) continue;
      if (o.executor?.kind === 'own-weights' || o.choice.kind === 'own-weights') sessions += o.executor?.keptBytes ?? ownSessionBytes(o.entry.skeleton.length, o.weightBytes, this.opts.sessionFixed);
      else if (o.choice.kind === 'shared-weights') {
        if (o.weightless) graphs.set(o.weightless.key, o.weightless.sessionBytes);
        for (const id of o.tensorIds) committed.add(id);
      } else if (o.choice.kind === 'kernel') for (const p of o.pages) otherKernelPages.add(p);
    }
    for (const b of graphs.values()) sessions += b;
    const unseen = new Map<string, number>();
    for (const name of this.reader.models()) {
      if (this.states.has(name)) continue;
      for (const { key, bytes } of this.tensorKeysOf(name)) {
        const id = this.tensors.idOfKey(key);
        if (id !== undefined) committed.add(id);
        else unseen.set(key, bytes);
      }
    }
    let committedBytes = 0;
    for (const id of committed) committedBytes += this.tensors.bytesOf(id);
    for (const b of unseen.values()) committedBytes += b;
    const pageSize = this.reader.config.pageSize;
    const largestPages = Math.max(0, ...s.tensorIds.map((id) => this.tensors.assemblyPagesOf(id))) * pageSize;
    const spare = this.budgetBytes - this.scratchBytes - sessions - committedBytes - otherKernelPages.size * pageSize - largestPages;
    if (spare < cost + s.weightBytes) return;
    s.own = 'trial';
    s.choice = { kind: 'own-weights', reason: `on trial: hot (${s.requests} requests) and ${spare} spare bytes cover its own-weights session (${cost})` };
    // The base executor is dropped once idle; the next request builds the own one.
    if (s.busy === 0 && s.executor) void this.drop(s);
  }

  /** A model's tensors' pool keys and sizes, made once (maybePromote reads them on every hot request). */
  private tensorKeysOf(model: string): { key: string; bytes: number }[] {
    let keys = this.tensorKeys.get(model);
    if (!keys) this.tensorKeys.set(model, (keys = this.reader.model(model).tensors.map((t) => ({ key: tensorKey(t), bytes: tensorBytes(t) }))));
    return keys;
  }

  /** The model's executor, built once however many requests ask at once. */
  private load(s: ModelState): Promise<Executor> {
    const want = s.choice.kind;
    if (s.executor && s.executor.kind === want) return Promise.resolve(s.executor);
    if (s.executor && s.busy === 0) void this.drop(s);
    else if (s.executor) return Promise.resolve(s.executor); // still busy on the old one: keep using it
    return this.builds.run(s.entry.name, async () => {
      if (s.executor) return s.executor;
      const ex = await this.build(s, want);
      s.executor = ex;
      return ex;
    });
  }

  private async build(s: ModelState, kind: ExecutorKind): Promise<Executor> {
    const name = s.entry.name;
    if (kind === 'kernel') {
      return new KernelExecutor(s.entry, s.plan!, s.pages, { kernel: this.kernel, scratch: this.scratch, frames: this.frames, pagePool: this.pages, reader: this.reader, ort: this.ort });
    }
    if (kind === 'shared-weights') {
      const w = this.weightlessOf(s);
      let g = this.graphs.get(w.key);
      if (!g || !bytesEqual(g.skeleton, w.skeleton)) {
        g = await this.graphBuilds.run(w.key, async () => {
          const session = await this.buildSession(name, w.sessionBytes, w.inlineIds, (inline) => assembleModel(w.skeleton, inline), w.skeleton.length + w.inlineBytes);
          // The builder is its first user at once: a graph is reclaimable only while all its users are idle.
          const built: GraphSession = { key: w.key, skeleton: w.skeleton, session, bytes: w.sessionBytes, users: new Set([s]) };
          this.graphs.set(w.key, built);
          return built;
        });
      }
      g.users.add(s);
      s.graph = g;
      return new SharedWeightsExecutor(name, g.session, w.fed, 0, { tensors: this.tensors, ortCalls: this.ortCalls, ort: this.ort });
    }
    const cost = ownSessionBytes(s.entry.skeleton.length, s.weightBytes, this.opts.sessionFixed);
    const session = await this.buildSession(name, cost, s.tensorIds, (all) => assembleModel(s.entry.skeleton, all), s.entry.skeleton.length + s.weightBytes);
    this.dropCoveredTensors(s);
    return new OwnWeightsExecutor(session, cost, this.ortCalls);
  }

  /**
   * Evicts the pooled tensors that only own-weights models hold, now that `s`'s session holds its
   * copy: they would otherwise sit in the pool, charged twice, until pressure reclaimed them.
   */
  private dropCoveredTensors(s: ModelState): void {
    for (const id of new Set(s.tensorIds)) {
      const own = this.tensors.modelsOf(id).every((m) => m === s.entry.name || this.states.get(m)?.executor?.kind === 'own-weights');
      if (own) this.tensors.pool.evictEntry(id);
    }
  }

  /**
   * Reserves the session's memory and its model bytes (in flight while onnxruntime parses them),
   * assembles the model from pooled tensors, builds the session; on failure gives everything back.
   */
  private async buildSession(name: string, keptBytes: number, ids: number[], assemble: (data: Uint8Array[]) => Uint8Array, modelBytes: number): Promise<ModelSession> {
    const entry = this.states.get(name)!.entry;
    // Built in the request's memory turn: a reservation that fails gives everything back, and the
    // request waits for a release and tries again (memory-admission.ts).
    this.ledger.reserve('sessions', keptBytes, `the session of "${name}"`);
    let kept = false;
    try {
      this.ledger.reserve('inflight', modelBytes, `the model bytes of "${name}"`);
      try {
        const session = await this.tensors.withTensors(ids, name, (data) => {
          const bytes = assemble(data);
          return this.ortCalls.run(async () => {
            const t0 = performance.now();
            const built = await ModelSession.create(name, bytes, [], entry, { ort: this.ort, mode: 'inline', sessionOptions: this.opts.sessionOptions });
            this.buildMs.push(performance.now() - t0);
            if (this.buildMs.length > 16) this.buildMs.shift();
            return built;
          });
        });
        kept = true;
        this.counters.sessionBuilds++;
        return session;
      } finally {
        this.ledger.release('inflight', modelBytes);
      }
    } finally {
      if (!kept) this.ledger.release('sessions', keptBytes);
    }
  }

  private async drop(s: ModelState): Promise<void> {
    const ex = s.executor;
    if (!ex) return;
    s.executor = undefined;
    const g = s.graph;
    if (g) {
      // The graph stays built (reclaimable once idle) for the other models of its architecture.
      s.graph = undefined;
      g.users.delete(s);
      return;
    }
    if (ex.keptBytes) this.ledger.release('sessions', ex.keptBytes);
    if (ex.kind !== 'kernel') this.counters.sessionEvictions++;
    await ex.release().catch(() => undefined);
  }

  private async releaseGraph(g: GraphSession): Promise<void> {
    if (this.graphs.get(g.key) !== g) return;
    this.graphs.delete(g.key);
    this.ledger.release('sessions', g.bytes);
    this.counters.sessionEvictions++;
    await this.ortCalls.run(() => g.session.release()).catch(() => undefined);
  }

  /** A graph session can go when every model on it is idle. */
  private graphIdle(g: GraphSession): boolean {
    for (const u of g.users) if (u.busy > 0) return false;
    return true;
  }

  /** A model's decayed request count now. */
  private heatOf(s: ModelState): number {
    return s.heat * Math.pow(0.5, (this.clock - s.heatAt) / VALUE_HALF_LIFE);
  }

  /**
   * What a weight-less session is worth: the requests of every model whose shared-weights executor
   * runs on it (on it now or when it next runs shared), so a graph that many models share outranks
   * one model's session or tensors.
   */
  private graphValue(g: GraphSession): number {
    let v = 0;
    for (const s of this.states.values()) if (s.weightless?.key === g.key && (s.graph === g || s.choice.kind === 'shared-weights')) v += this.heatOf(s);
    return v;
  }

  /** What a pooled tensor is worth: the requests of the models holding it. */
  private tensorValue(id: number): number {
    let v = 0;
    for (const m of this.tensors.modelsOf(id)) {
      const s = this.states.get(m);
      if (s) v += this.heatOf(s);
    }
    return v;
  }

  /**
   * What evicting a thing costs per byte it frees: its value (the requests that will want it
   * back) times what having it back costs, per byte. A tensor is assembled again at the measured
   * assembly rate (so per byte it costs the same whatever its size); a session is built again in
   * the measured build time, whatever its size, so a small session many models run on is the
   * dearest to lose, and a large own-weights session of one model goes before the tensors the
   * other models share.
   */
  private tensorCost(id: number): number {
    const msPerByte = this.tensors.assembledBytes > 0 ? this.tensors.assemblyMs / this.tensors.assembledBytes : ASSEMBLY_MS_PER_BYTE;
    return this.tensorValue(id) * msPerByte;
  }

  private sessionCost(value: number, bytes: number): number {
    return (value * (this.buildMs.length ? median(this.buildMs) : SESSION_BUILD_MS)) / Math.max(1, bytes);
  }

  private idleSessionBytes(): number {
    let n = 0;
    for (const s of this.states.values()) if (s.executor && s.busy === 0) n += s.executor.keptBytes;
    for (const g of this.graphs.values()) if (this.graphIdle(g)) n += g.bytes;
    return n;
  }

  /**
   * Frees `bytes` from pooled tensors and idle sessions, the cheapest to lose per byte first
   * (tensorCost, sessionCost). Value is the decayed requests of the models that use a thing: the
   * tensor pool's policy names its candidate tensor (worth the requests of every model sharing
   * it), an own-weights session is worth its model's requests and a weight-less session the
   * requests of every model running on it. So a cold model's session and its own tensors leave
   * before the hot models' weights, and the shared backbone and the graph session all variants
   * share, used by every request, stay (ties: the tensor goes first).
   */
  private reclaimTensorsAndSessions(bytes: number): number {
    let freed = 0;
    while (freed < bytes) {
      const tensor = this.tensors.pool.nextVictim();
      let session: ModelState | undefined;
      let sessionLoss = Infinity;
      for (const s of this.states.values()) {
        if (!s.executor || s.executor.keptBytes === 0 || s.busy > 0) continue;
        const v = this.sessionCost(this.heatOf(s), s.executor.keptBytes);
        if (v < sessionLoss) (session = s), (sessionLoss = v);
      }
      let graph: GraphSession | undefined;
      let graphLoss = Infinity;
      for (const g of this.graphs.values()) {
        if (!this.graphIdle(g)) continue;
        const v = this.sessionCost(this.graphValue(g), g.bytes);
        if (v < graphLoss) (graph = g), (graphLoss = v);
      }
      if (tensor === undefined && !session && !graph) break;
      if (tensor !== undefined && this.tensorCost(tensor) <= Math.min(sessionLoss, graphLoss)) {
        const got = this.tensors.pool.evictEntry(tensor);
        if (got === 0) break;
        freed += got;
        continue;
      }
      if (graph && graphLoss < sessionLoss) {
        freed += graph.bytes;
        for (const u of graph.users) (u.executor = undefined), (u.graph = undefined);
        graph.users.clear();
        void this.releaseGraph(graph);
        continue;
      }
      const victim = session!;
      freed += victim.executor!.keptBytes;
      if (victim.own === 'kept' || victim.own === 'trial') {
        // Back to shared weights; promoted again only when memory allows.
        victim.own = 'never';
        victim.choice = { kind: victim.base.kind, reason: `own-weights session evicted for memory; back on ${victim.base.kind}` };
      }
      void this.drop(victim);
    }
    return freed;
  }

  /** Reads a page straight into a free frame (no buffer per read); the frame is given back if the read fails. */
  private async fetchPage(id: number): Promise<Uint8Array> {
    const slot = this.frames.take(id);
    try {
      const data = await this.reader.readPageInto(id, slot);
      this.counters.bytesRead += data.length;
      // The whole frame, as the pool charges a frame per page (a short last page included).
      return slot.subarray(PAGE_HEADER_BYTES);
    } catch (e) {
      this.frames.release(id);
      throw e;
    }
  }

  private pageInfo(id: number): { sharers: number; models: string[] } {
    const models: string[] = [];
    for (const [name, s] of this.states) if (s.pages.includes(id)) models.push(name);
    return { sharers: Math.max(1, models.length), models };
  }
}

/** Page frames the budget holds after the kernel scratch. */
function frameCount(budgetBytes: number, scratchBytes: number, pageSize: number): number {
  return Math.floor((budgetBytes - scratchBytes) / pageSize);
}

function align64(n: number): number {
  return Math.ceil(n / 64) * 64;
}

/** FNV-1a over bytes: a cheap key for graph identity (equal keys are byte-compared before sharing). */
function fnv1a(b: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return (h >>> 0).toString(16);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
