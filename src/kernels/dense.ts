/**
 * Block-native dense layers over tiled weights (assembly/dense.ts) and their plain-TS reference.
 *
 * The weight W of a dense layer is given as its store tiles (src/blocks/tiling.ts), each a
 * row-major h x w run of floats, in tile-grid order. The WASM kernel reads tiles by pointer from
 * its own linear memory, where the buffer pool's page frames live (src/runtime/page-arena.ts), so
 * weights shared by several models are held once and never copied per request.
 */
import { InvalidArgumentError } from '../errors.ts';
import { instantiateKernel } from './wasm-runtime.ts';
import { wasmBase64 } from './wasm/dense.ts';

export interface TileGridShape {
  /** Rows and cols of the weight matrix as stored (W [k x n], or [n x k] when transB). */
  rows: number;
  cols: number;
  tileRows: number;
  tileCols: number;
}

/** A contiguous run of a bias vector: `len` floats for output columns start..start+len. */
export interface BiasSegment {
  data: Float32Array;
  start: number;
}

/** y[m x n] = x[m x k] · W (transB: W stored [n x k]). `tiles[t]` holds tile t's in-bounds floats. */
export function denseTiledRef(x: Float32Array, m: number, k: number, n: number, tiles: readonly Float32Array[], tileRows: number, tileCols: number, transB: boolean, y: Float32Array): void {
  y.fill(0, 0, m * n);
  const wRows = transB ? n : k;
  const wCols = transB ? k : n;
  const gridCols = Math.ceil(wCols / tileCols);
  const gridRows = Math.ceil(wRows / tileRows);
  if (tiles.length !== gridCols * gridRows) throw new InvalidArgumentError(`dense: ${tiles.length} tiles given, the grid has ${gridCols * gridRows}`);
  for (let ti = 0; ti < gridRows; ti++) {
    const r0 = ti * tileRows;
    const h = Math.min(tileRows, wRows - r0);
    for (let tj = 0; tj < gridCols; tj++) {
      const c0 = tj * tileCols;
      const w = Math.min(tileCols, wCols - c0);
      const t = tiles[ti * gridCols + tj];
      for (let i = 0; i < m; i++) {
        for (let a = 0; a < h; a++) {
          for (let b = 0; b < w; b++) {
            const v = t[a * w + b];
            if (transB) y[i * n + r0 + a] += x[i * k + c0 + b] * v;
            else y[i * n + c0 + b] += x[i * k + r0 + a] * v;
          }
        }
      }
    }
  }
}

export function addBiasRef(y: Float32Array, m: number, n: number, segs: readonly BiasSegment[]): void {
  for (const s of segs) for (let i = 0; i < m; i++) for (let j = 0; j < s.data.length; j++) y[i * n + s.start + j] += s.data[j];
}

export function reluRef(y: Float32Array, len: number): void {
  for (let j = 0; j < len; j++) if (!(y[j] > 0)) y[j] = 0;
}

export function softmaxRowsRef(y: Float32Array, m: number, n: number): void {
  for (let i = 0; i < m; i++) {
    let mx = -Infinity;
    for (let j = 0; j < n; j++) mx = Math.max(mx, y[i * n + j]);
    let sum = 0;
    for (let j = 0; j < n; j++) sum += y[i * n + j] = Math.exp(y[i * n + j] - mx);
    for (let j = 0; j < n; j++) y[i * n + j] /= sum;
  }
}

export interface DenseExports {
  heapBase(): number;
  denseTiled(x: number, m: number, k: number, n: number, tiles: number, tileRows: number, tileCols: number, transB: number, y: number): void;
  addBias(y: number, m: number, n: number, segs: number, nsegs: number): void;
  relu(y: number, len: number): void;
  softmaxRows(y: number, m: number, n: number): void;
}

/**
 * One instance of the dense kernel with its linear memory grown once to `bytes` above the heap
 * base. Memory never grows after that: views of page frames handed to the buffer pool stay valid.
 */
export interface DenseKernel {
  readonly exports: DenseExports;
  readonly memory: WebAssembly.Memory;
  /** First free byte (64-aligned); everything from here to `end` belongs to the caller. */
  readonly base: number;
  readonly end: number;
}

const WASM_PAGE = 65536;
/** wasm32 addresses at most 4 GiB; keep a margin for the module's own data. */
export const MAX_KERNEL_BYTES = 4 * 1024 ** 3 - 16 * WASM_PAGE;

export async function createDenseKernel(bytes: number): Promise<DenseKernel> {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new InvalidArgumentError(`dense kernel memory must be a non-negative byte count, got ${bytes}`);
  const { exports, memory } = await instantiateKernel<DenseExports>('dense', wasmBase64);
  const base = (exports.heapBase() + 63) & ~63;
  const end = base + bytes;
  if (end > MAX_KERNEL_BYTES) throw new InvalidArgumentError(`dense kernel memory of ${bytes} bytes exceeds what 32-bit WebAssembly addresses (${MAX_KERNEL_BYTES} bytes): lower the budget or serve with onnxruntime sessions`);
  const have = memory.buffer.byteLength;
  if (end > have) memory.grow(Math.ceil((end - have) / WASM_PAGE));
  return { exports, memory, base, end };
}
