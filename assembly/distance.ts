// One-vs-many block distances for verifying LSH candidates. A query block is compared with
// `count` candidate blocks laid out every `stride` floats; only the query's valid region counts:
// `rows` rows of `rowLen` floats, row r starting at r * rowStride (a full-width partial block is
// one row). The plain-TS twin in src/kernels/distance.ts mirrors the accumulation order exactly:
// two 4-lane accumulators over steps of 8, one more step of 4 into the first, a scalar tail.

@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** out[c] = sqrt(sum (q - c)^2) over the valid region. */
export function l2Many(query: usize, cands: usize, count: i32, stride: i32, rows: i32, rowLen: i32, rowStride: i32, out: usize): void {
  for (let c = 0; c < count; c++) {
    const cb = cands + ((<usize>c * <usize>stride) << 2);
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
    let tail: f32 = 0;
    for (let r = 0; r < rows; r++) {
      const off = <usize>(r * rowStride) << 2;
      const q = query + off;
      const x = cb + off;
      let j = 0;
      for (; j + 8 <= rowLen; j += 8) {
        const o = <usize>j << 2;
        const d0 = f32x4.sub(v128.load(q + o), v128.load(x + o));
        const d1 = f32x4.sub(v128.load(q + o, 16), v128.load(x + o, 16));
        a0 = f32x4.add(a0, f32x4.mul(d0, d0));
        a1 = f32x4.add(a1, f32x4.mul(d1, d1));
      }
      if (j + 4 <= rowLen) {
        const o = <usize>j << 2;
        const d0 = f32x4.sub(v128.load(q + o), v128.load(x + o));
        a0 = f32x4.add(a0, f32x4.mul(d0, d0));
        j += 4;
      }
      for (; j < rowLen; j++) {
        const d = load<f32>(q + (<usize>j << 2)) - load<f32>(x + (<usize>j << 2));
        tail += d * d;
      }
    }
    store<f32>(out + (<usize>c << 2), Mathf.sqrt(hsum(f32x4.add(a0, a1)) + tail));
  }
}

// Pseudo-max (a < b ? b : a): one machine instruction in SIMD, unlike NaN-propagating max. A NaN
// difference is therefore skipped by max-abs (L2 and similarity still expose it).
@inline function pmax(a: f32, b: f32): f32 {
  return a < b ? b : a;
}

/** out[c] = max |q - c| over the valid region. */
export function maxAbsMany(query: usize, cands: usize, count: i32, stride: i32, rows: i32, rowLen: i32, rowStride: i32, out: usize): void {
  for (let c = 0; c < count; c++) {
    const cb = cands + ((<usize>c * <usize>stride) << 2);
    let m0 = f32x4.splat(0), m1 = f32x4.splat(0);
    let tail: f32 = 0;
    for (let r = 0; r < rows; r++) {
      const off = <usize>(r * rowStride) << 2;
      const q = query + off;
      const x = cb + off;
      let j = 0;
      for (; j + 8 <= rowLen; j += 8) {
        const o = <usize>j << 2;
        m0 = f32x4.pmax(m0, f32x4.abs(f32x4.sub(v128.load(q + o), v128.load(x + o))));
        m1 = f32x4.pmax(m1, f32x4.abs(f32x4.sub(v128.load(q + o, 16), v128.load(x + o, 16))));
      }
      if (j + 4 <= rowLen) {
        const o = <usize>j << 2;
        m0 = f32x4.pmax(m0, f32x4.abs(f32x4.sub(v128.load(q + o), v128.load(x + o))));
        j += 4;
      }
      for (; j < rowLen; j++) tail = Mathf.max(tail, Mathf.abs(load<f32>(q + (<usize>j << 2)) - load<f32>(x + (<usize>j << 2))));
    }
    const m = f32x4.pmax(m0, m1);
    const v = Mathf.max(Mathf.max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), Mathf.max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    store<f32>(out + (<usize>c << 2), Mathf.max(v, tail));
  }
}

/** out[c] = fraction of valid elements with |q - c| <= eps (netsDB's block similarity). */
export function similarityMany(query: usize, cands: usize, count: i32, stride: i32, rows: i32, rowLen: i32, rowStride: i32, eps: f32, out: usize): void {
  const e = f32x4.splat(eps);
  const valid = <f32>(rows * rowLen);
  for (let c = 0; c < count; c++) {
    const cb = cands + ((<usize>c * <usize>stride) << 2);
    let n0 = i32x4.splat(0), n1 = i32x4.splat(0);
    let tail: i32 = 0;
    for (let r = 0; r < rows; r++) {
      const off = <usize>(r * rowStride) << 2;
      const q = query + off;
      const x = cb + off;
      let j = 0;
      for (; j + 8 <= rowLen; j += 8) {
        const o = <usize>j << 2;
        // comparison lanes are -1 where within eps: subtracting counts them
        n0 = i32x4.sub(n0, f32x4.le(f32x4.abs(f32x4.sub(v128.load(q + o), v128.load(x + o))), e));
        n1 = i32x4.sub(n1, f32x4.le(f32x4.abs(f32x4.sub(v128.load(q + o, 16), v128.load(x + o, 16))), e));
      }
      if (j + 4 <= rowLen) {
        const o = <usize>j << 2;
        n0 = i32x4.sub(n0, f32x4.le(f32x4.abs(f32x4.sub(v128.load(q + o), v128.load(x + o))), e));
        j += 4;
      }
      for (; j < rowLen; j++) tail += <i32>(Mathf.abs(load<f32>(q + (<usize>j << 2)) - load<f32>(x + (<usize>j << 2))) <= eps);
    }
    const n = i32x4.add(n0, n1);
    const total = i32x4.extract_lane(n, 0) + i32x4.extract_lane(n, 1) + i32x4.extract_lane(n, 2) + i32x4.extract_lane(n, 3) + tail;
    store<f32>(out + (<usize>c << 2), <f32>total / valid);
  }
}
