/**
 * Pooled weight tensors: a tensor that several models hold (the same dtype, dims and block list)
 * is assembled once into one buffer and fed to every session that needs it. The buffers are
 * entries of a BufferPool drawing on the server's ledger, so they are kept and evicted through
 * the eviction policy, which sees every model that shares a tensor (a backbone tensor shared by
 * many models outranks one model's head). Assembly goes one page at a time: it pins a page in the
 * page pool, places that page's blocks straight into the tensor's final buffer (deltas decoded;
 * one copy from page to tensor, none to the runtime) and unpins it before the next, so a tensor
 * needs its own bytes and one page at once (two for a delta whose base lies on another page), not
 * all its pages: the CNN zoo's largest tensor spans 12 pages (3 MiB), which with the tensor and
 * a weight-less session did not fit a 25% budget. A page whose tensors are then all pooled is
 * dropped at once (unless a block-native model reads it in place): it would only hold their
 * bytes a second time, and the page frames it touched stay resident for good (wasm memory never
 * shrinks), so pages kept until pressure evicted them grew RSS by the most pages ever held
 * (26 MiB on the PP-OCRv4 rec family at a 100% budget) on top of the ledger.
 *
 * Tensor buffers come from a TensorArena (tensor-arena.ts) the size of the budget: an evicted
 * tensor's bytes go back to it and later tensors are assembled there, rather than left for the
 * garbage collector (V8 frees dead ArrayBuffers only after tens of MiB of them pile up, and that
 * pile is RSS the ledger does not see).
 */
import type { TensorEntry } from '../catalog/catalog.ts';
import type { DType } from '../onnx/dtypes.ts';
import { tensorBytes } from '../store/catalog-view.ts';
import { deltaChain, type BlockSource } from '../store/block-source.ts';
import { BufferPool } from '../pool/buffer-pool.ts';
import { onRemoval, type EvictionPolicy } from '../pool/policy.ts';
import type { MemoryLedger } from './ledger.ts';
import type { PageFrames } from './page-frames.ts';
import type { StoreReader } from './store-reader.ts';
import { SerialQueue } from './serial-queue.ts';
import { TensorArena } from './tensor-arena.ts';

interface PooledTensor {
  id: number;
  entry: TensorEntry;
  dtype: DType;
  dims: number[];
  blocks: Uint32Array;
  bytes: number;
  pages: number[];
  /** The pages pinned together while the tensor is assembled, and the blocks placed from them (computed on first assembly). */
  steps?: AssemblyStep[];
  models: Set<string>;
  modelList: string[];
}

/** One step of a tensor's assembly: pages pinned together, and the tiles (positions in the tensor's block list) placed from them. */
interface AssemblyStep {
  pages: number[];
  blocks: number[];
  /** Pages no later step of this tensor reads: let go after this one. */
  last: number[];
}

export class TensorPool {
  readonly pool: BufferPool;
  private readonly byKey = new Map<string, PooledTensor>();
  private readonly byId: PooledTensor[] = [];
  /** The pooled tensors that read each page. */
  private readonly tensorsOnPage = new Map<number, number[]>();
  /** Each pooled tensor's buffer (from the arena). */
  private readonly buffers = new Map<number, Uint8Array>();
  readonly arena: TensorArena;
  /** Tensors assembled (misses that read pages). */
  assembled = 0;
  /** Bytes assembled, and the time their assemblies took: what refilling an evicted tensor costs per byte. */
  assembledBytes = 0;
  assemblyMs = 0;
  /** One assembly at a time, so the pages pinned for assembly are one tensor's at most. */
  private readonly assembly = new SerialQueue();
  /** Blocks read from the pinned frames (deltas decoded). */
  private readonly framed: BlockSource;

  constructor(
    private readonly reader: StoreReader,
    private readonly pages: BufferPool,
    frames: PageFrames,
    ledger: MemoryLedger,
    policy: EvictionPolicy,
    /** Pages to keep resident after assembly (read in place by block-native models). */
    private readonly keepPage: (page: number) => boolean = () => false,
  ) {
    this.framed = reader.sourceOver((page) => frames.bytes(page, 0, frames.frameBytes));
    this.arena = new TensorArena(ledger.budgetBytes);
    this.pool = new BufferPool({
      budgetBytes: ledger.budgetBytes,
      // Not a reclaimer of its own: the server weighs its entries against idle sessions.
      account: { ledger, kind: 'tensors', reclaimer: false },
      policy: this.recycling(policy),
      fetch: (id) => this.assemble(this.byId[id]),
      sizeOf: (id) => this.byId[id].bytes,
      pageInfo: (id) => ({ sharers: this.byId[id].models.size, models: this.byId[id].modelList }),
    });
  }

  /** The pooled id of a model's tensor; models holding the same block list share one id. */
  register(model: string, t: TensorEntry): number {
    const key = tensorKey(t);
    let p = this.byKey.get(key);
    if (!p) {
      const bytes = tensorBytes(t);
      p = { id: this.byId.length, entry: t, dtype: t.dtype, dims: t.dims, blocks: t.blocks, bytes, pages: this.reader.pagesOfTensor(t), models: new Set(), modelList: [] };
      this.byKey.set(key, p);
      this.byId.push(p);
      for (const page of p.pages) {
        const on = this.tensorsOnPage.get(page);
        if (on) on.push(p.id);
        else this.tensorsOnPage.set(page, [p.id]);
      }
    }
    if (!p.models.has(model)) {
      p.models.add(model);
      p.modelList = [...p.models];
    }
    return p.id;
  }

  /** The pooled id of a tensor already registered (by any model) under `key` (tensorKey), without registering it. */
  idOfKey(key: string): number | undefined {
    return this.byKey.get(key)?.id;
  }

  bytesOf(id: number): number {
    return this.byId[id].bytes;
  }
  sharersOf(id: number): number {
    return this.byId[id].models.size;
  }
  /** The models registered as holding the tensor. */
  modelsOf(id: number): readonly string[] {
    return this.byId[id].modelList;
  }

  /** Pins the tensors (assembling the missing ones), runs fn with their bytes, unpins. */
  withTensors<T>(ids: readonly number[], model: string, fn: (data: Uint8Array[]) => Promise<T>): Promise<T> {
    return this.pool.withPages(ids, fn, { model });
  }

  /** Assemblies that wrote into arena bytes an evicted tensor had used. */
  get reused(): number {
    return this.arena.reused;
  }

  private assemble(t: PooledTensor): Promise<Uint8Array> {
    return this.assembly.run(() => this.assembleNow(t));
  }

  /** Pages held at once while the tensor is assembled: 1, or more for a delta whose base lies on another page. */
  assemblyPagesOf(id: number): number {
    return Math.max(0, ...this.stepsOf(this.byId[id]).map((step) => step.pages.length));
  }

  private async assembleNow(t: PooledTensor): Promise<Uint8Array> {
    const out = this.arena.alloc(t.bytes);
    const t0 = performance.now();
    try {
      for (const step of this.stepsOf(t)) {
        await this.pages.withPages(step.pages, () => this.framed.placeBlocks(t.entry, out, step.blocks));
        for (const page of step.last) this.dropIfSpent(page, t);
      }
    } catch (e) {
      this.arena.release(out);
      throw e;
    }
    this.assembled++;
    this.assembledBytes += t.bytes;
    this.assemblyMs += performance.now() - t0;
    this.buffers.set(t.id, out);
    return out;
  }

  /**
   * The tensor's assembly steps: its tiles grouped by the pages they need (a tile's own page and
   * those of its delta bases), in page order, so each page is pinned once and on its own.
   */
  private stepsOf(t: PooledTensor): AssemblyStep[] {
    if (t.steps) return t.steps;
    const blocks = this.reader.catalog.blocks;
    const byKey = new Map<string, { pages: number[]; blocks: number[]; own: number }>();
    t.blocks.forEach((id, index) => {
      // The tile's page, then its delta bases'.
      const pages: number[] = [];
      for (const bid of deltaChain(this.reader.catalog, id)) {
        const b = blocks.get(bid);
        if (!b) break;
        if (!pages.includes(b.page)) pages.push(b.page);
      }
      const own = pages[0] ?? 0;
      pages.sort((a, b) => a - b);
      const key = pages.join(',');
      const step = byKey.get(key);
      if (step) step.blocks.push(index);
      else byKey.set(key, { pages, blocks: [index], own });
    });
    const steps = [...byKey.values()].sort((a, b) => a.own - b.own || a.pages.length - b.pages.length);
    const lastStep = new Map<number, number>();
    steps.forEach((step, i) => step.pages.forEach((p) => lastStep.set(p, i)));
    t.steps = steps.map((step, i) => ({ pages: step.pages, blocks: step.blocks, last: step.pages.filter((p) => lastStep.get(p) === i) }));
    return t.steps;
  }

  /** The policy, with each evicted tensor's bytes given back to the arena. */
  private recycling(inner: EvictionPolicy): EvictionPolicy {
    return onRemoval(inner, (id, evicted) => {
      const buf = this.buffers.get(id);
      this.buffers.delete(id);
      // Evicted entries are unpinned: nobody reads the buffer any more. An invalidated one may
      // still be pinned by a reader, so its bytes are never handed out again.
      if (buf && evicted) this.arena.release(buf);
    });
  }

  /** Evicts a page t has finished with when no tensor still to be assembled reads it (t is pooled once its assembly returns). */
  private dropIfSpent(page: number, t: PooledTensor): void {
    if (this.keepPage(page)) return;
    if (this.tensorsOnPage.get(page)!.every((id) => id === t.id || this.pool.isResident(id))) this.pages.evictEntry(page);
  }
}

/** A tensor's identity in the pool: models holding the same dtype, dims and block list share it. */
export function tensorKey(t: TensorEntry): string {
  return `${t.dtype}|${t.dims.join('x')}|${t.blocks.join(',')}`;
}
