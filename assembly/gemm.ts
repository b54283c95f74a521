// Single-precision matrix product C = op(A)·op(B) + beta·C (row-major, op = identity or transpose),
// f32x4 SIMD, cache-blocked in the BLIS style: panels of A and B are packed into contiguous strips
// (which also absorbs the transposes and the ragged edges), and a 4x8 register-blocked micro-kernel
// streams through them. 4x8 keeps 8 accumulators + 2 B vectors + 1 A splat in registers (V8 has 15
// usable xmm registers on x64; 6x8 would spill).
// Reference twin: gemmRef in src/kernels/gemm.ts.

const MR: i32 = 4; // rows of C per micro-tile
const NR: i32 = 8; // columns of C per micro-tile (two f32x4)
const MC: i32 = 64; // rows of A per packed panel (MC*KC*4 = 64 KiB: L2)
const KC: i32 = 256; // depth per packed panel
const NC: i32 = 512; // columns of B per packed panel (KC*NC*4 = 512 KiB: L2/L3)

/** Start of free linear memory: callers place their data (and the workspace) above it. */
export function heapBase(): usize {
  return __heap_base;
}

/** Bytes of scratch `gemm` needs at its `work` pointer (packed A and B panels, one edge tile). */
export function gemmWorkspaceBytes(): i32 {
  return (MC * KC + KC * NC + MR * NR) * 4;
}

// Packs op(A)[i0..i0+mc, k0..k0+kc] as ceil(mc/MR) strips, each kc x MR (k-major), zero-padded.
function packA(transA: i32, a: usize, lda: i32, i0: i32, k0: i32, mc: i32, kc: i32, dst: usize): void {
  for (let ir = 0; ir < mc; ir += MR) {
    const rows = min(MR, mc - ir);
    const strip = dst + <usize>(ir * kc) * 4;
    if (transA) {
      // A stored K x M: the MR values of one k are contiguous.
      if (rows == MR) {
        for (let k = 0; k < kc; k++) {
          v128.store(strip + <usize>(k * MR) * 4, v128.load(a + (<usize>(k0 + k) * lda + i0 + ir) * 4));
        }
      } else {
        for (let k = 0; k < kc; k++) {
          const src = a + (<usize>(k0 + k) * lda + i0 + ir) * 4;
          const d = strip + <usize>(k * MR) * 4;
          for (let r = 0; r < MR; r++) store<f32>(d + <usize>r * 4, r < rows ? load<f32>(src + <usize>r * 4) : 0);
        }
      }
    } else {
      for (let r = 0; r < MR; r++) {
        if (r < rows) {
          const src = a + (<usize>(i0 + ir + r) * lda + k0) * 4;
          for (let k = 0; k < kc; k++) store<f32>(strip + <usize>(k * MR + r) * 4, load<f32>(src + <usize>k * 4));
        } else {
          for (let k = 0; k < kc; k++) store<f32>(strip + <usize>(k * MR + r) * 4, 0);
        }
      }
    }
  }
}

// Packs op(B)[k0..k0+kc, j0..j0+nc] as ceil(nc/NR) strips, each kc x NR (k-major), zero-padded.
function packB(transB: i32, b: usize, ldb: i32, k0: i32, j0: i32, kc: i32, nc: i32, dst: usize): void {
  for (let jr = 0; jr < nc; jr += NR) {
    const cols = min(NR, nc - jr);
    const strip = dst + <usize>(jr * kc) * 4;
    if (transB) {
      // B stored N x K: one column of op(B) is a contiguous row.
      for (let c = 0; c < NR; c++) {
        if (c < cols) {
          const src = b + (<usize>(j0 + jr + c) * ldb + k0) * 4;
          for (let k = 0; k < kc; k++) store<f32>(strip + <usize>(k * NR + c) * 4, load<f32>(src + <usize>k * 4));
        } else {
          for (let k = 0; k < kc; k++) store<f32>(strip + <usize>(k * NR + c) * 4, 0);
        }
      }
    } else if (cols == NR) {
      for (let k = 0; k < kc; k++) {
        const src = b + (<usize>(k0 + k) * ldb + j0 + jr) * 4;
        const d = strip + <usize>(k * NR) * 4;
        v128.store(d, v128.load(src));
        v128.store(d, v128.load(src, 16), 16);
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const src = b + (<usize>(k0 + k) * ldb + j0 + jr) * 4;
        const d = strip + <usize>(k * NR) * 4;
        for (let c = 0; c < NR; c++) store<f32>(d + <usize>c * 4, c < cols ? load<f32>(src + <usize>c * 4) : 0);
      }
    }
  }
}

// C tile (mr x nr at c, row stride ldc) = packed A strip · packed B strip + beta·C.
// @ts-ignore: decorator
@inline
function microKernel(kc: i32, ap: usize, bp: usize, c: usize, ldc: i32, beta: f32, mr: i32, nr: i32, tile: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c00 = f32x4.add(c00, f32x4.mul(a, b0));
    c01 = f32x4.add(c01, f32x4.mul(a, b1));
    a = v128.load32_splat(ap, 4);
    c10 = f32x4.add(c10, f32x4.mul(a, b0));
    c11 = f32x4.add(c11, f32x4.mul(a, b1));
    a = v128.load32_splat(ap, 8);
    c20 = f32x4.add(c20, f32x4.mul(a, b0));
    c21 = f32x4.add(c21, f32x4.mul(a, b1));
    a = v128.load32_splat(ap, 12);
    c30 = f32x4.add(c30, f32x4.mul(a, b0));
    c31 = f32x4.add(c31, f32x4.mul(a, b1));
    ap += MR * 4;
    bp += NR * 4;
  }
  const stride = <usize>ldc * 4;
  if (mr == MR && nr == NR) {
    const r0 = c, r1 = c + stride, r2 = c + 2 * stride, r3 = c + 3 * stride;
    if (beta != 0) {
      const bv = f32x4.splat(beta);
      c00 = f32x4.add(c00, f32x4.mul(bv, v128.load(r0)));
      c01 = f32x4.add(c01, f32x4.mul(bv, v128.load(r0, 16)));
      c10 = f32x4.add(c10, f32x4.mul(bv, v128.load(r1)));
      c11 = f32x4.add(c11, f32x4.mul(bv, v128.load(r1, 16)));
      c20 = f32x4.add(c20, f32x4.mul(bv, v128.load(r2)));
      c21 = f32x4.add(c21, f32x4.mul(bv, v128.load(r2, 16)));
      c30 = f32x4.add(c30, f32x4.mul(bv, v128.load(r3)));
      c31 = f32x4.add(c31, f32x4.mul(bv, v128.load(r3, 16)));
    }
    v128.store(r0, c00); v128.store(r0, c01, 16);
    v128.store(r1, c10); v128.store(r1, c11, 16);
    v128.store(r2, c20); v128.store(r2, c21, 16);
    v128.store(r3, c30); v128.store(r3, c31, 16);
    return;
  }
  // Ragged edge: spill the tile, then write only the mr x nr part that exists.
  v128.store(tile, c00); v128.store(tile, c01, 16);
  v128.store(tile, c10, 32); v128.store(tile, c11, 48);
  v128.store(tile, c20, 64); v128.store(tile, c21, 80);
  v128.store(tile, c30, 96); v128.store(tile, c31, 112);
  for (let r = 0; r < mr; r++) {
    const row = c + <usize>r * stride;
    for (let j = 0; j < nr; j++) {
      const v = load<f32>(tile + <usize>(r * NR + j) * 4);
      const p = row + <usize>j * 4;
      // beta == 0 must overwrite (C may hold garbage or NaN), not multiply.
      store<f32>(p, beta != 0 ? v + beta * load<f32>(p) : v);
    }
  }
}

/**
 * C[m x n] = op(A)[m x k] · op(B)[k x n] + beta·C. op(A) is A (stored m x k, row stride lda) or,
 * with transA, Aᵀ (A stored k x m); likewise for B. Pointers are byte addresses of f32 data;
 * `work` points at gemmWorkspaceBytes() bytes of scratch (16-byte aligned).
 */
export function gemm(
  transA: i32, transB: i32, m: i32, n: i32, k: i32,
  a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32, beta: f32, work: usize,
): void {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        const p = c + (<usize>i * ldc + j) * 4;
        store<f32>(p, beta != 0 ? beta * load<f32>(p) : 0);
      }
    }
    return;
  }
  const ap = work;
  const bp = work + <usize>(MC * KC) * 4;
  const tile = bp + <usize>(KC * NC) * 4;
  for (let jc = 0; jc < n; jc += NC) {
    const nc = min(NC, n - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = min(KC, k - pc);
      packB(transB, b, ldb, pc, jc, kc, nc, bp);
      const betaHere: f32 = pc == 0 ? beta : 1;
      for (let ic = 0; ic < m; ic += MC) {
        const mc = min(MC, m - ic);
        packA(transA, a, lda, ic, pc, mc, kc, ap);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const bStrip = bp + <usize>(jr * kc) * 4;
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = min(MR, mc - ir);
            microKernel(
              kc, ap + <usize>(ir * kc) * 4, bStrip,
              c + (<usize>(ic + ir) * ldc + jc + jr) * 4, ldc, betaHere, mr, nr, tile,
            );
          }
        }
      }
    }
  }
}
