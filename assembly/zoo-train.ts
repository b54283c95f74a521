// The zoo's non-GEMM training ops that were most of a ViT step in plain TS (bench/zoo/vit.ts):
// GELU with its derivative, and multi-head attention (scores, softmax, weighted values and the
// backward pass) over a whole batch in one call. f32x4 SIMD; every loop has a fixed order, so
// results do not depend on anything but the inputs. Reference twins: the TS loops in
// bench/zoo/kernels.ts (test/zoo-kernels.test.ts compares them).
// Raw-pointer interface (runtime stub); every region is laid out by the caller.

export function heapBase(): usize {
  return __heap_base;
}

// exp on f32x4 for z <= 0 (what GELU needs): z = k·ln2 + r, |r| <= ln2/2, 2^k built from its
// exponent bits, e^r by a degree-6 Taylor polynomial (relative error < 2e-7). Below -87 it is 0.
@inline function expNonPositive(z: v128): v128 {
  const zc = f32x4.max(z, f32x4.splat(-87.0));
  const k = f32x4.nearest(f32x4.mul(zc, f32x4.splat(1.44269504)));
  let r = f32x4.sub(zc, f32x4.mul(k, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(k, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.0 / 720.0);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 120.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 24.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 6.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.5));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  const two = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(k), i32x4.splat(127)), 23);
  const e = f32x4.mul(p, two);
  return v128.bitselect(e, f32x4.splat(0), f32x4.gt(z, f32x4.splat(-87.0)));
}

/**
 * y = x·Φ(x) (exact GELU, erf by Abramowitz & Stegun 7.1.26, |error| < 1.5e-7) and
 * slope = dy/dx = Φ(x) + x·φ(x), which shares erf's exp(-x²/2). n is a multiple of 4.
 */
export function geluForward(x: usize, y: usize, slope: usize, n: i32): void {
  const invSqrt2 = f32x4.splat(0.70710678);
  const invSqrt2Pi = f32x4.splat(0.39894228);
  const one = f32x4.splat(1.0), half = f32x4.splat(0.5);
  for (let i: usize = 0; i < <usize>n * 4; i += 16) {
    const v = v128.load(x + i);
    const a = f32x4.mul(f32x4.abs(v), invSqrt2);
    const t = f32x4.div(one, f32x4.add(one, f32x4.mul(a, f32x4.splat(0.3275911))));
    const e = expNonPositive(f32x4.neg(f32x4.mul(a, a)));
    let p = f32x4.splat(1.061405429);
    p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-1.453152027));
    p = f32x4.add(f32x4.mul(p, t), f32x4.splat(1.421413741));
    p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-0.284496736));
    p = f32x4.add(f32x4.mul(p, t), f32x4.splat(0.254829592));
    const erfA = f32x4.sub(one, f32x4.mul(f32x4.mul(p, t), e));
    // erf(x/√2) has the sign of x.
    const erfX = v128.bitselect(f32x4.neg(erfA), erfA, f32x4.lt(v, f32x4.splat(0)));
    const cdf = f32x4.mul(half, f32x4.add(one, erfX));
    v128.store(y + i, f32x4.mul(v, cdf));
    v128.store(slope + i, f32x4.add(cdf, f32x4.mul(f32x4.mul(v, e), invSqrt2Pi)));
  }
}

// Dot product of two rows of dh floats (dh a multiple of 4), summed lane-wise then across lanes.
@inline function dot(a: usize, b: usize, dh: i32): f32 {
  let acc = f32x4.splat(0);
  for (let j: usize = 0; j < <usize>dh * 4; j += 16) acc = f32x4.add(acc, f32x4.mul(v128.load(a + j), v128.load(b + j)));
  return f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
}

// dst[0..dh) += s · src[0..dh)
@inline function axpy(dst: usize, src: usize, s: f32, dh: i32): void {
  const sv = f32x4.splat(s);
  for (let j: usize = 0; j < <usize>dh * 4; j += 16) v128.store(dst + j, f32x4.add(v128.load(dst + j), f32x4.mul(sv, v128.load(src + j))));
}

/**
 * Self-attention over a batch. qkv is [B, T, 3·H·dh] (each token's q, k, v, heads side by side,
 * as the fused in-projection gives them); out is [B, T, H·dh] (heads merged again), p is
 * [B, H, T, T] (the softmax, kept for backward). dh is a multiple of 4.
 */
export function attentionForward(qkv: usize, out: usize, p: usize, batch: i32, tokens: i32, heads: i32, dh: i32, scale: f32): void {
  const D = heads * dh, row = <usize>(3 * D) * 4, outRow = <usize>D * 4;
  for (let b = 0; b < batch; b++) {
    const base = qkv + <usize>(b * tokens) * row;
    const outBase = out + <usize>(b * tokens) * outRow;
    for (let h = 0; h < heads; h++) {
      const hq = <usize>(h * dh) * 4, hk = <usize>(D + h * dh) * 4, hv = <usize>(2 * D + h * dh) * 4;
      const ps = p + <usize>((b * heads + h) * tokens * tokens) * 4;
      for (let i = 0; i < tokens; i++) {
        const q = base + <usize>i * row + hq;
        const pr = ps + <usize>(i * tokens) * 4;
        let max: f32 = -Infinity;
        for (let j = 0; j < tokens; j++) {
          const s = dot(q, base + <usize>j * row + hk, dh) * scale;
          store<f32>(pr + <usize>j * 4, s);
          if (s > max) max = s;
        }
        let sum: f32 = 0;
        for (let j = 0; j < tokens; j++) {
          const e = Mathf.exp(load<f32>(pr + <usize>j * 4) - max);
          store<f32>(pr + <usize>j * 4, e);
          sum += e;
        }
        const inv: f32 = 1 / sum;
        const o = outBase + <usize>i * outRow + hq;
        for (let j: usize = 0; j < <usize>dh * 4; j += 16) v128.store(o + j, f32x4.splat(0));
        for (let j = 0; j < tokens; j++) {
          const pij = load<f32>(pr + <usize>j * 4) * inv;
          store<f32>(pr + <usize>j * 4, pij);
          axpy(o, base + <usize>j * row + hv, pij, dh);
        }
      }
    }
  }
}

/**
 * Backward of attentionForward: dOut [B, T, H·dh] -> dqkv [B, T, 3·H·dh] (overwritten), from the
 * forward's qkv and p. work holds T floats.
 */
export function attentionBackward(dOut: usize, qkv: usize, p: usize, dqkv: usize, batch: i32, tokens: i32, heads: i32, dh: i32, scale: f32, work: usize): void {
  const D = heads * dh, row = <usize>(3 * D) * 4, outRow = <usize>D * 4;
  memory.fill(dqkv, 0, <usize>(batch * tokens) * row);
  for (let b = 0; b < batch; b++) {
    const base = qkv + <usize>(b * tokens) * row;
    const dBase = dqkv + <usize>(b * tokens) * row;
    const doBase = dOut + <usize>(b * tokens) * outRow;
    for (let h = 0; h < heads; h++) {
      const hq = <usize>(h * dh) * 4, hk = <usize>(D + h * dh) * 4, hv = <usize>(2 * D + h * dh) * 4;
      const ps = p + <usize>((b * heads + h) * tokens * tokens) * 4;
      for (let i = 0; i < tokens; i++) {
        const dOi = doBase + <usize>i * outRow + hq;
        const pr = ps + <usize>(i * tokens) * 4;
        // dP_ij = dO_i · v_j; dS_ij = P_ij (dP_ij - Σ_j' P_ij' dP_ij') · scale.
        let s: f32 = 0;
        for (let j = 0; j < tokens; j++) {
          const dp = dot(dOi, base + <usize>j * row + hv, dh);
          store<f32>(work + <usize>j * 4, dp);
          s += dp * load<f32>(pr + <usize>j * 4);
        }
        const dQi = dBase + <usize>i * row + hq;
        const qi = base + <usize>i * row + hq;
        for (let j = 0; j < tokens; j++) {
          const pij = load<f32>(pr + <usize>j * 4);
          const ds = pij * (load<f32>(work + <usize>j * 4) - s) * scale;
          axpy(dBase + <usize>j * row + hv, dOi, pij, dh); // dV_j += P_ij dO_i
          axpy(dQi, base + <usize>j * row + hk, ds, dh); // dQ_i += dS_ij k_j
          axpy(dBase + <usize>j * row + hk, qi, ds, dh); // dK_j += dS_ij q_i
        }
      }
    }
  }
}
