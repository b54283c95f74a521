/**
 * The baseline tessera is measured against: how Triton / SageMaker multi-model endpoints serve
 * many models. Each model's original .onnx file becomes its own onnxruntime session; sessions are
 * kept under the memory budget and evicted least-recently-used when a new one needs room. Nothing
 * is shared between models. Memory counted: each kept session (its file's bytes: the weights it
 * copies) and, while a session is built, the file bytes read for it. A benchmark tool, not part
 * of the product: it shares the server's request gate, single-flight builds and serial queue.
 */
import type * as OrtCommon from 'onnxruntime-common';
import { CapacityError, InferenceError, InvalidArgumentError, ModelNotFoundError } from '../../src/errors.ts';
import { defaultOrt, type OrtModule } from '../../src/runtime/ort.ts';
import type { Feed } from '../../src/runtime/session.ts';
import { LatencyHistogram } from '../../src/runtime/latency.ts';
import { SerialQueue } from '../../src/runtime/serial-queue.ts';
import { RequestGate } from '../../src/runtime/request-gate.ts';
import { SingleFlight } from '../../src/runtime/single-flight.ts';
import type { ServerMetrics } from '../../src/runtime/server.ts';

export interface BaselineOptions {
  budgetBytes: number;
  /** Model names served. */
  models: readonly string[];
  /** Bytes of a model's .onnx file (stat, or the manifest): known before reading it. */
  sizeOf: (model: string) => number;
  /** Reads a model's .onnx file. */
  load: (model: string) => Promise<Uint8Array>;
  ort?: OrtModule;
  sessionOptions?: OrtCommon.InferenceSession.SessionOptions;
  concurrency?: number;
}

/** The server's metrics that mean the same for the baseline (it has no pool, scratch or modes). */
export type BaselineMetrics = Pick<ServerMetrics, 'requests' | 'hits' | 'misses' | 'errors' | 'sessionBuilds' | 'sessionEvictions' | 'bytesRead' | 'latency' | 'sessionBytes' | 'budgetBytes' | 'peakBytes'>;

interface Kept {
  /** Built and not yet run: not evicted, or two requests in flight could evict each other's session forever. */
  fresh: boolean;
  session: OrtCommon.InferenceSession;
  bytes: number;
  busy: number;
  lastUsed: number;
}

export class BaselineServer {
  private readonly kept = new Map<string, Kept>();
  private readonly builds = new SingleFlight<string, Kept>();
  private buildLock: Promise<void> = Promise.resolve();
  private held = 0;
  private peak = 0;
  private clock = 0;
  private readonly gate: RequestGate;
  private waiters: (() => void)[] = [];
  private readonly latency = new LatencyHistogram();
  private readonly ortCalls = new SerialQueue();
  private counters = { requests: 0, hits: 0, misses: 0, errors: 0, sessionBuilds: 0, sessionEvictions: 0, bytesRead: 0 };
  private readonly known: Set<string>;

  private constructor(private readonly opts: BaselineOptions, private readonly ort: OrtModule) {
    this.known = new Set(opts.models);
    this.gate = new RequestGate(opts.concurrency ?? 2);
  }

  static async create(opts: BaselineOptions): Promise<BaselineServer> {
    if (!Number.isSafeInteger(opts.budgetBytes) || opts.budgetBytes <= 0) throw new InvalidArgumentError(`the baseline budget must be a positive whole number of bytes, got ${opts.budgetBytes}`);
    return new BaselineServer(opts, opts.ort ?? (await defaultOrt()));
  }

  get budgetBytes(): number {
    return this.opts.budgetBytes;
  }

  async run(model: string, feeds: Record<string, Feed>): Promise<Record<string, OrtCommon.Tensor>> {
    const t0 = performance.now();
    this.counters.requests++;
    return this.gate.run(() => this.serve(model, feeds, t0));
  }

  private async serve(model: string, feeds: Record<string, Feed>, t0: number): Promise<Record<string, OrtCommon.Tensor>> {
    try {
      if (!this.known.has(model)) throw new ModelNotFoundError(String(model), [...this.known]);
      this.clock++;
      let k = this.kept.get(model);
      if (k) this.counters.hits++;
      else {
        this.counters.misses++;
        k = await this.load(model);
        while (this.kept.get(model) !== k) k = await this.load(model);
      }
      k.busy++;
      k.fresh = false;
      k.lastUsed = this.clock;
      try {
        const session = k.session;
        const out = (await this.ortCalls.run(() => session.run(feeds as Record<string, OrtCommon.Tensor>))) as Record<string, OrtCommon.Tensor>;
        this.latency.record(performance.now() - t0);
        return out;
      } catch (e) {
        throw new InferenceError('INVALID_FEEDS', `model "${model}" rejected its feeds or failed to run: ${(e as Error).message}`, { cause: e });
      } finally {
        k.busy--;
        this.notify();
      }
    } catch (e) {
      this.counters.errors++;
      throw e;
    }
  }

  metrics(): BaselineMetrics {
    let sessionBytes = 0;
    for (const k of this.kept.values()) sessionBytes += k.bytes;
    return { ...this.counters, latency: this.latency.summary(), sessionBytes, budgetBytes: this.opts.budgetBytes, peakBytes: this.peak };
  }

  async close(): Promise<void> {
    for (const [name, k] of [...this.kept]) {
      this.kept.delete(name);
      const s = k.session;
      await this.ortCalls.run(() => s.release()).catch(() => undefined);
    }
  }

  private load(model: string): Promise<Kept> {
    const k = this.kept.get(model);
    if (k) return Promise.resolve(k);
    return this.builds.run(model, () => this.build(model));
  }

  private async build(model: string): Promise<Kept> {
    const prev = this.buildLock;
    let unlock!: () => void;
    this.buildLock = new Promise((r) => (unlock = r));
    await prev;
    const bytes = this.opts.sizeOf(model);
    try {
      // The file read for the session and the session's copy: 2x while building, 1x kept.
      await this.makeRoom(2 * bytes, model);
    } catch (e) {
      unlock();
      throw e;
    }
    this.take(2 * bytes);
    let keptIt = false;
    try {
      const file = await this.opts.load(model);
      this.counters.bytesRead += file.length;
      this.counters.sessionBuilds++;
      let session: OrtCommon.InferenceSession;
      try {
        session = await this.ortCalls.run(() => this.ort.InferenceSession.create(file, this.opts.sessionOptions ?? {}));
      } catch (e) {
        throw new InferenceError('INFERENCE_FAILED', `onnxruntime cannot load model "${model}": ${(e as Error).message}`, { cause: e });
      }
      const k: Kept = { fresh: true, session, bytes, busy: 0, lastUsed: this.clock };
      this.kept.set(model, k);
      keptIt = true;
      return k;
    } finally {
      this.held -= keptIt ? bytes : 2 * bytes;
      this.notify();
      unlock();
    }
  }

  private take(bytes: number): void {
    this.held += bytes;
    this.peak = Math.max(this.peak, this.held);
  }

  private async makeRoom(bytes: number, model: string): Promise<void> {
    if (bytes > this.opts.budgetBytes) throw new CapacityError('BUDGET_EXCEEDED', `model "${model}" needs ${bytes} bytes to load (file + session), more than the budget of ${this.opts.budgetBytes}`);
    while (this.held + bytes > this.opts.budgetBytes) {
      let victim: string | undefined;
      let oldest = Infinity;
      for (const [name, k] of this.kept) if (k.busy === 0 && !k.fresh && k.lastUsed < oldest) (oldest = k.lastUsed), (victim = name);
      if (victim !== undefined) {
        const k = this.kept.get(victim)!;
        this.kept.delete(victim);
        this.held -= k.bytes;
        this.counters.sessionEvictions++;
        const s = k.session;
        void this.ortCalls.run(() => s.release()).catch(() => undefined);
        continue;
      }
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }
}
