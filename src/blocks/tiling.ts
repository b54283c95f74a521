/**
 * Cutting tensors into blocks and putting them back.
 *
 * A tensor is viewed as a 2-D matrix: rows = first dim, cols = product of the rest (a scalar is
 * 1x1, a vector of n is n x 1, as netsDB does for biases). The matrix is covered by a grid of
 * fixed-shape tiles (one tile shape per store), row-major. Logically every tile is zero-padded to
 * the full shape (that is what similarity kernels see); physically a block stores only its
 * in-bounds h x w elements, row-major, so padding never costs storage or I/O.
 */
import { InvalidArgumentError } from '../errors.ts';

export interface TileShape {
  rows: number;
  cols: number;
}

export interface TileGrid {
  rows: number; // matrix rows
  cols: number; // matrix cols
  tileRows: number; // tiles down
  tileCols: number; // tiles across
  count: number;
}

export function validateTile(tile: TileShape): void {
  for (const k of ['rows', 'cols'] as const) {
    const v = tile[k];
    if (!Number.isInteger(v) || v < 1 || v > 1 << 16) throw new InvalidArgumentError(`tile ${k} must be an integer in [1, 65536], got ${v}`);
  }
}

export function matrixOf(dims: readonly number[]): { rows: number; cols: number } {
  if (dims.length === 0) return { rows: 1, cols: 1 };
  let cols = 1;
  for (let i = 1; i < dims.length; i++) cols *= dims[i];
  return { rows: dims[0], cols };
}

export function gridOf(dims: readonly number[], tile: TileShape): TileGrid {
  const { rows, cols } = matrixOf(dims);
  const tileRows = Math.ceil(rows / tile.rows);
  const tileCols = Math.ceil(cols / tile.cols);
  return { rows, cols, tileRows, tileCols, count: rows * cols === 0 ? 0 : tileRows * tileCols };
}

/** In-bounds extent of tile `index` (row-major in the grid). */
export function tileExtent(grid: TileGrid, tile: TileShape, index: number): { r0: number; c0: number; h: number; w: number } {
  const ti = Math.floor(index / grid.tileCols);
  const tj = index - ti * grid.tileCols;
  const r0 = ti * tile.rows;
  const c0 = tj * tile.cols;
  return { r0, c0, h: Math.min(tile.rows, grid.rows - r0), w: Math.min(tile.cols, grid.cols - c0) };
}

/**
 * Cuts `data` (row-major, `elemBytes` per element) into blocks. A block that covers whole rows of
 * the matrix is a view into `data` (no copy); others are copied out, into consecutive parts of
 * `scratch` when given (a buffer the caller reuses across tensors: fresh memory for every tile
 * made cutting 100 MB of 1024-wide float32 matrices take ~0.5 s, mostly page faults).
 */
export function cutTensor(data: Uint8Array, dims: readonly number[], elemBytes: number, tile: TileShape, scratch?: Uint8Array): Uint8Array[] {
  const grid = gridOf(dims, tile);
  if (data.length !== grid.rows * grid.cols * elemBytes) throw new InvalidArgumentError(`tensor data is ${data.length} bytes, dims [${dims.join(', ')}] need ${grid.rows * grid.cols * elemBytes}`);
  if (scratch && scratch.length < data.length) throw new InvalidArgumentError(`the scratch buffer holds ${scratch.length} bytes, the tensor needs ${data.length}`);
  const blocks: Uint8Array[] = new Array(grid.count);
  let used = 0;
  for (let i = 0; i < grid.count; i++) {
    if (!scratch) {
      blocks[i] = cutBlock(data, grid, elemBytes, tile, i);
      continue;
    }
    const { h, w } = tileExtent(grid, tile, i);
    const out = w === grid.cols ? undefined : scratch.subarray(used, (used += h * w * elemBytes));
    blocks[i] = cutBlock(data, grid, elemBytes, tile, i, out);
  }
  return blocks;
}

/**
 * Block `index` of a tensor as `cutTensor` cuts it: a view when it spans whole rows, else a copy
 * (into `out` when given, which must be exactly the block's size).
 */
export function cutBlock(data: Uint8Array, grid: TileGrid, elemBytes: number, tile: TileShape, index: number, out?: Uint8Array): Uint8Array {
  const rowBytes = grid.cols * elemBytes;
  const { r0, c0, h, w } = tileExtent(grid, tile, index);
  if (w === grid.cols) return data.subarray(r0 * rowBytes, (r0 + h) * rowBytes);
  return copyTile(data, r0 * rowBytes + c0 * elemBytes, rowBytes, w * elemBytes, h, out ?? new Uint8Array(h * w * elemBytes));
}

/**
 * `h` rows of `wBytes` bytes, `rowBytes` apart from `start`, into `block`. Within one buffer by
 * `copyWithin` per row; between buffers with one 32-bit word loop when everything is 4-byte aligned: `set(subarray())` per row allocates a view
 * per row and made cutting 100 MB of 1024-wide float32 matrices take 0.6 s. (Integer words, never
 * Float64Array: a float view may canonicalise NaN bit patterns.)
 */
function copyTile(data: Uint8Array, start: number, rowBytes: number, wBytes: number, h: number, block: Uint8Array): Uint8Array {
  if (data.buffer === block.buffer) {
    // One buffer (ingest reads a weight beside the page it fills): a native move per row.
    const all = new Uint8Array(data.buffer);
    for (let r = 0, src = data.byteOffset + start, dst = block.byteOffset; r < h; r++, src += rowBytes, dst += wBytes) all.copyWithin(dst, src, src + wBytes);
    return block;
  }
  if ((data.byteOffset + start) % 4 === 0 && block.byteOffset % 4 === 0 && rowBytes % 4 === 0 && wBytes % 4 === 0) {
    const src = new Uint32Array(data.buffer, data.byteOffset - (data.byteOffset % 4), Math.floor((data.byteLength + (data.byteOffset % 4)) / 4));
    const dst = new Uint32Array(block.buffer, block.byteOffset, block.length / 4);
    const w = wBytes / 4;
    const stride = rowBytes / 4;
    for (let r = 0, s = (data.byteOffset % 4 + start) / 4, d = 0; r < h; r++, s += stride) for (let c = 0; c < w; c++) dst[d++] = src[s + c];
    return block;
  }
  for (let r = 0, src = start, dst = 0; r < h; r++, src += rowBytes, dst += wBytes) block.set(data.subarray(src, src + wBytes), dst);
  return block;
}

/** Writes block `index` (its stored in-bounds bytes) into the tensor buffer `out`. */
export function placeBlock(out: Uint8Array, grid: TileGrid, elemBytes: number, tile: TileShape, index: number, block: Uint8Array): void {
  const { r0, c0, h, w } = tileExtent(grid, tile, index);
  const rowBytes = grid.cols * elemBytes;
  const wBytes = w * elemBytes;
  if (block.length !== h * wBytes) throw new InvalidArgumentError(`block ${index} holds ${block.length} bytes, its tile needs ${h * wBytes}`);
  if (w === grid.cols) {
    out.set(block, r0 * rowBytes);
    return;
  }
  let dst = r0 * rowBytes + c0 * elemBytes;
  for (let r = 0, src = 0; r < h; r++, dst += rowBytes, src += wBytes) out.set(block.subarray(src, src + wBytes), dst);
}

/** Reassembles a tensor from its blocks (in grid order). */
export function assembleTensor(blocks: readonly Uint8Array[], dims: readonly number[], elemBytes: number, tile: TileShape): Uint8Array {
  const grid = gridOf(dims, tile);
  const out = new Uint8Array(grid.rows * grid.cols * elemBytes);
  if (blocks.length !== grid.count) throw new InvalidArgumentError(`tensor needs ${grid.count} blocks, got ${blocks.length}`);
  for (let i = 0; i < grid.count; i++) placeBlock(out, grid, elemBytes, tile, i, blocks[i]);
  return out;
}

/** The zero-padded float32 tile of a float32 block: what similarity kernels compare. */
export function paddedTile(block: Uint8Array, h: number, w: number, tile: TileShape, out = new Float32Array(tile.rows * tile.cols)): Float32Array {
  out.fill(0);
  const src = new Float32Array(block.buffer.slice(block.byteOffset, block.byteOffset + block.byteLength));
  for (let r = 0; r < h; r++) out.set(src.subarray(r * w, r * w + w), r * tile.cols);
  return out;
}
