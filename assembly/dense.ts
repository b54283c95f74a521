// Block-native dense layers: y = x·W (+ bias, activations) where W is NOT one contiguous matrix but
// the store's tiles, each read in place from a page frame in this module's linear memory (the
// buffer pool's pages live here, see src/runtime/page-arena.ts). `tiles` is a table of i32 byte
// pointers, one per tile, in the tensor's tile-grid order (row-major); tile t holds its in-bounds
// h x w elements row-major (src/blocks/tiling.ts). f32x4 SIMD; unaligned loads are fine in wasm.
// Reference twin: src/kernels/dense.ts (denseTiledRef, addBiasRef, reluRef, softmaxRowsRef).

/** Start of free linear memory: callers place their data above it. */
export function heapBase(): usize {
  return __heap_base;
}

// y[m x n] = x[m x k] · W. transB = 0: W logical [k x n] (MatMul's layout); transB = 1: W logical
// [n x k] used transposed (Gemm transB=1). Grid over W's rows x cols with tileRows x tileCols tiles.
export function denseTiled(x: usize, m: i32, k: i32, n: i32, tiles: usize, tileRows: i32, tileCols: i32, transB: i32, y: usize): void {
  memory.fill(y, 0, <usize>(m * n) * 4);
  const wRows = transB ? n : k;
  const wCols = transB ? k : n;
  const gridCols = (wCols + tileCols - 1) / tileCols;
  const gridRows = (wRows + tileRows - 1) / tileRows;
  for (let ti = 0; ti < gridRows; ti++) {
    const r0 = ti * tileRows;
    const h = min(tileRows, wRows - r0);
    for (let tj = 0; tj < gridCols; tj++) {
      const c0 = tj * tileCols;
      const w = min(tileCols, wCols - c0);
      const t = <usize>load<i32>(tiles + <usize>(ti * gridCols + tj) * 4);
      if (transB) tileDot(x, m, k, n, t, h, w, r0, c0, y);
      else tileAxpy(x, m, k, n, t, h, w, r0, c0, y);
    }
  }
}

// y[i, c0..c0+w] += Σ_a x[i, r0+a] · tile[a, 0..w]
function tileAxpy(x: usize, m: i32, k: i32, n: i32, t: usize, h: i32, w: i32, r0: i32, c0: i32, y: usize): void {
  const rowBytes = <usize>w * 4;
  for (let i = 0; i < m; i++) {
    const xr = x + (<usize>i * k + r0) * 4;
    const yr = y + (<usize>i * n + c0) * 4;
    let j = 0;
    for (; j + 16 <= w; j += 16) {
      const yp = yr + <usize>j * 4;
      let a0 = v128.load(yp), a1 = v128.load(yp, 16), a2 = v128.load(yp, 32), a3 = v128.load(yp, 48);
      let tp = t + <usize>j * 4;
      for (let a = 0; a < h; a++) {
        const xs = v128.load32_splat(xr + <usize>a * 4);
        a0 = f32x4.add(a0, f32x4.mul(xs, v128.load(tp)));
        a1 = f32x4.add(a1, f32x4.mul(xs, v128.load(tp, 16)));
        a2 = f32x4.add(a2, f32x4.mul(xs, v128.load(tp, 32)));
        a3 = f32x4.add(a3, f32x4.mul(xs, v128.load(tp, 48)));
        tp += rowBytes;
      }
      v128.store(yp, a0); v128.store(yp, a1, 16); v128.store(yp, a2, 32); v128.store(yp, a3, 48);
    }
    for (; j + 4 <= w; j += 4) {
      const yp = yr + <usize>j * 4;
      let a0 = v128.load(yp);
      let tp = t + <usize>j * 4;
      for (let a = 0; a < h; a++) {
        a0 = f32x4.add(a0, f32x4.mul(v128.load32_splat(xr + <usize>a * 4), v128.load(tp)));
        tp += rowBytes;
      }
      v128.store(yp, a0);
    }
    for (; j < w; j++) {
      const yp = yr + <usize>j * 4;
      let s = load<f32>(yp);
      for (let a = 0; a < h; a++) s += load<f32>(xr + <usize>a * 4) * load<f32>(t + (<usize>a * w + j) * 4);
      store<f32>(yp, s);
    }
  }
}

// y[i, r0+a] += Σ_b x[i, c0+b] · tile[a, b]   (W stored [n x k], used transposed)
function tileDot(x: usize, m: i32, k: i32, n: i32, t: usize, h: i32, w: i32, r0: i32, c0: i32, y: usize): void {
  for (let i = 0; i < m; i++) {
    const xr = x + (<usize>i * k + c0) * 4;
    const yr = y + (<usize>i * n + r0) * 4;
    for (let a = 0; a < h; a++) {
      const tr = t + <usize>(a * w) * 4;
      let acc = f32x4.splat(0);
      let b = 0;
      for (; b + 4 <= w; b += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(xr + <usize>b * 4), v128.load(tr + <usize>b * 4)));
      let s = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
      for (; b < w; b++) s += load<f32>(xr + <usize>b * 4) * load<f32>(tr + <usize>b * 4);
      const yp = yr + <usize>a * 4;
      store<f32>(yp, load<f32>(yp) + s);
    }
  }
}

// y[i, start..start+len] += seg for each segment; `segs` holds nsegs triples of i32
// (byte pointer, first column, length): a bias vector cut into tiles is a few contiguous runs.
export function addBias(y: usize, m: i32, n: i32, segs: usize, nsegs: i32): void {
  for (let s = 0; s < nsegs; s++) {
    const p = <usize>load<i32>(segs + <usize>(s * 3) * 4);
    const start = load<i32>(segs + <usize>(s * 3 + 1) * 4);
    const len = load<i32>(segs + <usize>(s * 3 + 2) * 4);
    for (let i = 0; i < m; i++) {
      const yr = y + (<usize>i * n + start) * 4;
      let j = 0;
      for (; j + 4 <= len; j += 4) v128.store(yr + <usize>j * 4, f32x4.add(v128.load(yr + <usize>j * 4), v128.load(p + <usize>j * 4)));
      for (; j < len; j++) store<f32>(yr + <usize>j * 4, load<f32>(yr + <usize>j * 4) + load<f32>(p + <usize>j * 4));
    }
  }
}

export function relu(y: usize, len: i32): void {
  const zero = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= len; j += 4) v128.store(y + <usize>j * 4, f32x4.max(v128.load(y + <usize>j * 4), zero));
  for (; j < len; j++) store<f32>(y + <usize>j * 4, max(load<f32>(y + <usize>j * 4), 0));
}

// Softmax over each row of y[m x n] (max-subtracted, as onnxruntime does).
export function softmaxRows(y: usize, m: i32, n: i32): void {
  for (let i = 0; i < m; i++) {
    const r = y + <usize>(i * n) * 4;
    let mx: f32 = -Infinity;
    for (let j = 0; j < n; j++) mx = max(mx, load<f32>(r + <usize>j * 4));
    let sum: f32 = 0;
    for (let j = 0; j < n; j++) {
      const e = Mathf.exp(load<f32>(r + <usize>j * 4) - mx);
      store<f32>(r + <usize>j * 4, e);
      sum += e;
    }
    const inv: f32 = 1 / sum;
    for (let j = 0; j < n; j++) store<f32>(r + <usize>j * 4, load<f32>(r + <usize>j * 4) * inv);
  }
}
