/**
 * The zoo's WASM training kernels (assembly/zoo-train.ts) against their plain-TS twins, and both
 * against finite differences: GELU's slope is its derivative, attention's backward is the
 * gradient of its forward.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createZooKernels, zooKernelsRef } from '../bench/zoo/kernels.ts';
import { Rng } from '../bench/zoo/train.ts';

const wasm = await createZooKernels();
const ref = zooKernelsRef();

function randn(n: number, seed: number, std = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * std);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('GELU: WASM equals the TS twin, and the slope is the derivative', () => {
  const n = 1030; // not a multiple of 4: the tail is handled
  const x = randn(n, 1, 3);
  x[0] = -20; x[1] = 0; x[2] = 12; x[3] = -1e-8;
  const [yw, sw, yr, sr] = [0, 0, 0, 0].map(() => new Float32Array(n));
  wasm.gelu(x, yw, sw);
  ref.gelu(x, yr, sr);
  assert.ok(maxDiff(yw, yr) < 1e-5, `y differs by ${maxDiff(yw, yr)}`);
  assert.ok(maxDiff(sw, sr) < 1e-5, `slope differs by ${maxDiff(sw, sr)}`);
  // Exact GELU at a few points (erf from a 20-term series).
  const erf = (z: number) => { let s = 0, t = z; for (let k = 0; k < 60; k++) { s += t / (2 * k + 1); t *= -z * z / (k + 1); } return (2 / Math.sqrt(Math.PI)) * s; };
  for (const i of [1, 4, 5, 6, 7]) assert.ok(Math.abs(yw[i] - 0.5 * x[i] * (1 + erf(x[i] / Math.SQRT2))) < 1e-5, `GELU(${x[i]})`);
  assert.is(yw[0], -0);
  assert.ok(Math.abs(yw[2] - 12) < 1e-5);
  const h = 1e-3, xs = Float64Array.from(x.subarray(4, 40));
  const one = new Float32Array(1), s1 = new Float32Array(1);
  const g = (v: number) => { ref.gelu(Float32Array.of(v), one, s1); return one[0]; };
  xs.forEach((v, i) => assert.ok(Math.abs((g(v + h) - g(v - h)) / (2 * h) - sw[4 + i]) < 2e-3, `slope at ${v}`));
});

test('attention: WASM equals the TS twin; backward is the gradient of forward', () => {
  const B = 2, T = 5, H = 2, dh = 8, D = H * dh, scale = 1 / Math.sqrt(dh);
  const qkv = randn(B * T * 3 * D, 2);
  const ow = new Float32Array(B * T * D), pw = new Float32Array(B * H * T * T);
  const or = new Float32Array(B * T * D), pr = new Float32Array(B * H * T * T);
  wasm.attentionForward(qkv, ow, pw, B, T, H, dh, scale);
  ref.attentionForward(qkv, or, pr, B, T, H, dh, scale);
  assert.ok(maxDiff(ow, or) < 1e-5, `out differs by ${maxDiff(ow, or)}`);
  assert.ok(maxDiff(pw, pr) < 1e-6);
  for (let r = 0; r < B * H * T; r++) assert.ok(Math.abs(pw.subarray(r * T, (r + 1) * T).reduce((a, b) => a + b, 0) - 1) < 1e-5, 'softmax rows sum to 1');
  // Loss = Σ out·w: dOut = w.
  const w = randn(B * T * D, 3);
  const gw = new Float32Array(qkv.length), gr = new Float32Array(qkv.length);
  wasm.attentionBackward(w, qkv, pw, gw, B, T, H, dh, scale);
  ref.attentionBackward(w, qkv, pr, gr, B, T, H, dh, scale);
  assert.ok(maxDiff(gw, gr) < 1e-5, `dqkv differs by ${maxDiff(gw, gr)}`);
  const loss = (x: Float32Array) => {
    const o = new Float32Array(B * T * D), p = new Float32Array(B * H * T * T);
    ref.attentionForward(x, o, p, B, T, H, dh, scale);
    let s = 0;
    for (let i = 0; i < o.length; i++) s += o[i] * w[i];
    return s;
  };
  const h = 1e-2;
  for (let i = 0; i < qkv.length; i += 7) {
    const x = qkv.slice();
    x[i] += h;
    const up = loss(x);
    x[i] -= 2 * h;
    const fd = (up - loss(x)) / (2 * h);
    assert.ok(Math.abs(fd - gw[i]) < 2e-2 * Math.max(1, Math.abs(fd)), `d/dqkv[${i}]: finite difference ${fd}, backward ${gw[i]}`);
  }
});

test.run();
