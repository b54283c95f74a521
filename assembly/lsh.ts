// LSH kernels over blocks (flat f32 vectors, zero padded). Raw pointers into memory the caller
// reserved once (src/kernels/lsh.ts). Every float operation here is mirrored, in the same order,
// by the plain-TS twin in src/kernels/lsh.ts, so both produce bit-identical hashes.

// Horizontal sum in a fixed order: (l0 + l1) + (l2 + l3).
@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

@inline function dot(x: usize, a: usize, bytes: usize): f32 {
  let s = f32x4.splat(0);
  for (let j: usize = 0; j < bytes; j += 16) s = f32x4.add(s, f32x4.mul(v128.load(a + j), v128.load(x + j)));
  return hsum(s);
}

/**
 * Dense projections: out[b * rows + r] = proj_r . vec_b for `count` vectors of `dPad` floats
 * (dPad % 4 == 0). Tiled 2 vectors x 4 rows so each load feeds several multiply-adds; every dot
 * product still accumulates lane-wise over j in steps of 4, then hsum.
 */
export function projectDense(vecs: usize, count: i32, dPad: i32, proj: usize, rows: i32, out: usize): void {
  // (Cache-blocking groups of vectors x rows was tried: no gain, the loop is bound by mul + add.)
  projectTile(vecs, 0, count, dPad, proj, 0, rows, rows, out);
}

function projectTile(vecs: usize, b0: i32, b1: i32, dPad: i32, proj: usize, r0: i32, r1: i32, rows: i32, out: usize): void {
  const bytes = <usize>dPad << 2;
  let b = b0;
  for (; b + 2 <= b1; b += 2) {
    const x0 = vecs + <usize>b * bytes;
    const x1 = x0 + bytes;
    const o0 = out + ((<usize>b * <usize>rows) << 2);
    const o1 = o0 + (<usize>rows << 2);
    let r = r0;
    for (; r + 4 <= r1; r += 4) {
      const a0 = proj + <usize>r * bytes;
      const a1 = a0 + bytes;
      const a2 = a1 + bytes;
      const a3 = a2 + bytes;
      let s00 = f32x4.splat(0), s01 = f32x4.splat(0), s02 = f32x4.splat(0), s03 = f32x4.splat(0);
      let s10 = f32x4.splat(0), s11 = f32x4.splat(0), s12 = f32x4.splat(0), s13 = f32x4.splat(0);
      for (let j: usize = 0; j < bytes; j += 16) {
        const v0 = v128.load(x0 + j);
        const v1 = v128.load(x1 + j);
        const p0 = v128.load(a0 + j);
        const p1 = v128.load(a1 + j);
        const p2 = v128.load(a2 + j);
        const p3 = v128.load(a3 + j);
        s00 = f32x4.add(s00, f32x4.mul(p0, v0));
        s01 = f32x4.add(s01, f32x4.mul(p1, v0));
        s02 = f32x4.add(s02, f32x4.mul(p2, v0));
        s03 = f32x4.add(s03, f32x4.mul(p3, v0));
        s10 = f32x4.add(s10, f32x4.mul(p0, v1));
        s11 = f32x4.add(s11, f32x4.mul(p1, v1));
        s12 = f32x4.add(s12, f32x4.mul(p2, v1));
        s13 = f32x4.add(s13, f32x4.mul(p3, v1));
      }
      const q0 = o0 + (<usize>r << 2);
      const q1 = o1 + (<usize>r << 2);
      store<f32>(q0, hsum(s00)); store<f32>(q0, hsum(s01), 4); store<f32>(q0, hsum(s02), 8); store<f32>(q0, hsum(s03), 12);
      store<f32>(q1, hsum(s10)); store<f32>(q1, hsum(s11), 4); store<f32>(q1, hsum(s12), 8); store<f32>(q1, hsum(s13), 12);
    }
    for (; r < r1; r++) {
      const a = proj + <usize>r * bytes;
      store<f32>(o0 + (<usize>r << 2), dot(x0, a, bytes));
      store<f32>(o1 + (<usize>r << 2), dot(x1, a, bytes));
    }
  }
  for (; b < b1; b++) {
    const x = vecs + <usize>b * bytes;
    const o = out + ((<usize>b * <usize>rows) << 2);
    for (let r = r0; r < r1; r++) store<f32>(o + (<usize>r << 2), dot(x, proj + <usize>r * bytes, bytes));
  }
}

@inline function butterfly4(v: v128): v128 {
  // stages h = 1 and h = 2 inside one vector of 4 floats
  const y = f32x4.add(v128.shuffle<f32>(v, v, 0, 0, 2, 2), f32x4.mul(v128.shuffle<f32>(v, v, 1, 1, 3, 3), f32x4(1, -1, 1, -1)));
  return f32x4.add(v128.shuffle<f32>(y, y, 0, 1, 0, 1), f32x4.mul(v128.shuffle<f32>(y, y, 2, 3, 2, 3), f32x4(1, 1, -1, -1)));
}

/**
 * One round of the rotation: dst = H (src * signs), H the unnormalised Walsh-Hadamard transform
 * of n floats (n a power of two >= 4; src may equal dst). Stages run in the order h = 1, 2, 4, ...
 * with exactly the arithmetic of the stage-by-stage scalar twin (negation by multiplying with -1
 * is exact): the sign flip and stages 1-8 happen in registers over groups of 16 floats, the rest
 * two stages per pass (radix 4) to halve the passes over memory.
 */
function signedFht(dst: usize, src: usize, signs: usize, n: i32): void {
  const bytes = <usize>n << 2;
  let h: usize;
  if (n >= 16) {
    for (let i: usize = 0; i < bytes; i += 64) {
      const v0 = butterfly4(f32x4.mul(v128.load(src + i), v128.load(signs + i)));
      const v1 = butterfly4(f32x4.mul(v128.load(src + i, 16), v128.load(signs + i, 16)));
      const v2 = butterfly4(f32x4.mul(v128.load(src + i, 32), v128.load(signs + i, 32)));
      const v3 = butterfly4(f32x4.mul(v128.load(src + i, 48), v128.load(signs + i, 48)));
      const w0 = f32x4.add(v0, v1);
      const w1 = f32x4.sub(v0, v1);
      const w2 = f32x4.add(v2, v3);
      const w3 = f32x4.sub(v2, v3);
      v128.store(dst + i, f32x4.add(w0, w2));
      v128.store(dst + i, f32x4.add(w1, w3), 16);
      v128.store(dst + i, f32x4.sub(w0, w2), 32);
      v128.store(dst + i, f32x4.sub(w1, w3), 48);
    }
    h = 64;
  } else {
    for (let i: usize = 0; i < bytes; i += 16) v128.store(dst + i, butterfly4(f32x4.mul(v128.load(src + i), v128.load(signs + i))));
    h = 16;
  }
  const p = dst;
  while (h < bytes) {
    if (h * 4 <= bytes) {
      // stages h and 2h together over quartets (j, j+h, j+2h, j+3h)
      for (let i: usize = 0; i < bytes; i += h * 4) {
        for (let j = i; j < i + h; j += 16) {
          const x0 = v128.load(p + j);
          const x1 = v128.load(p + j + h);
          const x2 = v128.load(p + j + 2 * h);
          const x3 = v128.load(p + j + 3 * h);
          const y0 = f32x4.add(x0, x1);
          const y1 = f32x4.sub(x0, x1);
          const y2 = f32x4.add(x2, x3);
          const y3 = f32x4.sub(x2, x3);
          v128.store(p + j, f32x4.add(y0, y2));
          v128.store(p + j + 2 * h, f32x4.sub(y0, y2));
          v128.store(p + j + h, f32x4.add(y1, y3));
          v128.store(p + j + 3 * h, f32x4.sub(y1, y3));
        }
      }
      h <<= 2;
    } else {
      for (let i: usize = 0; i < bytes; i += h * 2) {
        for (let j = i; j < i + h; j += 16) {
          const a = v128.load(p + j);
          const b = v128.load(p + j + h);
          v128.store(p + j, f32x4.add(a, b));
          v128.store(p + j + h, f32x4.sub(a, b));
        }
      }
      h <<= 1;
    }
  }
}

/**
 * Structured random projections: for each vector and each rotation t, y = H D_R ... H D_1 x
 * (x zero-padded from dPad to n floats, D_i diagonal +-1 given as floats in `signs`, rotation t
 * using signs[(t * rounds + i) * n ...]). The first `used` coordinates of the concatenated
 * rotations go to out[b * used ...]. O(n log n) per rotation instead of O(n) per projection.
 */
export function projectFht(
  vecs: usize, count: i32, dPad: i32, n: i32, rounds: i32, rotations: i32, signs: usize,
  scratch: usize, used: i32, out: usize,
): void {
  const vbytes = <usize>dPad << 2;
  const nbytes = <usize>n << 2;
  for (let b = 0; b < count; b++) {
    const x = vecs + <usize>b * vbytes;
    let o = out + ((<usize>b * <usize>used) << 2);
    let left = used;
    for (let t = 0; t < rotations && left > 0; t++) {
      let s = signs + <usize>(t * rounds) * nbytes;
      if (nbytes > vbytes) {
        memory.copy(scratch, x, vbytes);
        memory.fill(scratch + vbytes, 0, nbytes - vbytes);
        signedFht(scratch, scratch, s, n);
      } else {
        signedFht(scratch, x, s, n);
      }
      for (let r = 1; r < rounds; r++) {
        s += nbytes;
        signedFht(scratch, scratch, s, n);
      }
      const take = left < n ? left : n;
      memory.copy(o, scratch, <usize>take << 2);
      o += <usize>take << 2;
      left -= take;
    }
  }
}

// Largest f32 below 2^31: keeps the f32 -> i32 conversion in range (and identical in the twin).
const I32_MAX_F32: f32 = 2147483520;
const I32_MIN_F32: f32 = -2147483648;

/**
 * p-stable quantisation: v = floor((p * scale + offset) / width) per projection; a band combines
 * `k` consecutive values as h = h * 0x9E3779B1 + v (i32 wrap-around). out[b * bands + band].
 */
export function quantizePStable(
  proj: usize, count: i32, used: i32, k: i32, offsets: usize, scale: f32, width: f32, out: usize,
): void {
  const bands = used / k;
  for (let b = 0; b < count; b++) {
    const p = proj + ((<usize>b * <usize>used) << 2);
    const o = out + ((<usize>b * <usize>bands) << 2);
    for (let band = 0; band < bands; band++) {
      let h: i32 = 0;
      for (let i = 0; i < k; i++) {
        const idx = <usize>(band * k + i) << 2;
        const t: f32 = load<f32>(p + idx) * scale;
        let q: f32 = Mathf.floor((t + load<f32>(offsets + idx)) / width);
        if (q != q) q = 0;
        q = q < I32_MIN_F32 ? I32_MIN_F32 : q > I32_MAX_F32 ? I32_MAX_F32 : q;
        const v = <i32>q;
        h = i == 0 ? v : h * -1640531535 + v;
      }
      store<i32>(o + (<usize>band << 2), h);
    }
  }
}

/** Sign bits: band value = sum over i < k of (p[band * k + i] > 0) << i (k <= 32). */
export function quantizeSign(proj: usize, count: i32, used: i32, k: i32, out: usize): void {
  const bands = used / k;
  for (let b = 0; b < count; b++) {
    const p = proj + ((<usize>b * <usize>used) << 2);
    const o = out + ((<usize>b * <usize>bands) << 2);
    for (let band = 0; band < bands; band++) {
      let h: u32 = 0;
      const q = p + (<usize>(band * k) << 2);
      let i = 0;
      for (; i + 4 <= k; i += 4) {
        const m = <u32>i32x4.bitmask(f32x4.gt(v128.load(q + (<usize>i << 2)), f32x4.splat(0)));
        h |= m << <u32>i;
      }
      for (; i < k; i++) if (load<f32>(q + (<usize>i << 2)) > 0) h |= (<u32>1) << <u32>i;
      store<u32>(o + (<usize>band << 2), h);
    }
  }
}
