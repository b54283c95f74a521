import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildZoo, evaluationSplit, MIN_GAIN_POINTS, onnxLogits, taskClasses, taskLabel, type Manifest } from '../bench/zoo/build.ts';
import { parseEvalSet } from '../src/dedup/evaluate.ts';
import { readMlpOnnx } from '../bench/zoo/onnx-export.ts';
import type { Mlp } from '../bench/zoo/train.ts';

const dir = mkdtempSync(join(tmpdir(), 'tessera-zoo-'));
const log: string[] = [];
const manifest: Manifest = await buildZoo({ size: 'tiny', dir, onProgress: (m) => log.push(m) });
const fileBytes = (name: string) => new Uint8Array(readFileSync(join(dir, `${name}.onnx`)));
const model = (name: string): Mlp => readMlpOnnx(fileBytes(name));
const entry = (name: string) => manifest.models.find((m) => m.name === name)!;

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}
/** ||a - b|| / ||b|| over one weight tensor. */
function relDistance(a: Float32Array, b: Float32Array): number {
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return Math.sqrt(d / n);
}

test('tasks label digits as documented', () => {
  assert.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((d) => taskLabel('parity', d)), [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
  assert.equal([4, 5].map((d) => taskLabel('gt4', d)), [0, 1]);
  assert.equal([3, 7].map((d) => taskLabel('onevsrest-3', d)), [1, 0]);
  assert.equal([taskClasses('digit'), taskClasses('mod3'), taskClasses('onevsrest-9')], [10, 3, 2]);
  assert.throws(() => taskClasses('colour'));
});

test('tiny manifest lists the family with the documented fields', () => {
  assert.is(manifest.size, 'tiny');
  assert.is(manifest.inputName, 'input');
  assert.is(manifest.outputName, 'logits');
  const names = manifest.models.map((m) => m.name);
  for (const n of ['base-digit', 'head-parity', 'head-gt4', 'ft-noisy', 'ft-v2', 'ft-parity-shifted', 'scratch-seed2']) assert.ok(names.includes(n), n);
  for (const m of manifest.models) {
    assert.is(m.file, `${m.name}.onnx`);
    assert.is(m.classes, taskClasses(m.task));
    assert.ok(m.how.length > 10);
    const mlp = model(m.name);
    assert.equal(mlp.layers.map((l) => [l.inDim, l.outDim]), [[784, 64], [64, 32], [32, m.classes]]);
  }
  assert.is(entry('head-parity').derivedFrom, 'base-digit');
  assert.is(entry('ft-parity-shifted').derivedFrom, 'head-parity');
  assert.is(entry('scratch-seed2').derivedFrom, null);
});

test('frozen heads share fc1 and fc2 with the base bit-exactly, and have their own last layer', () => {
  const base = model('base-digit');
  for (const name of ['head-parity', 'head-gt4']) {
    const h = model(name);
    for (const i of [0, 1]) {
      assert.ok(bytesOf(h.layers[i].weight).equals(bytesOf(base.layers[i].weight)), `${name} fc${i + 1}.weight`);
      assert.ok(bytesOf(h.layers[i].bias).equals(bytesOf(base.layers[i].bias)), `${name} fc${i + 1}.bias`);
    }
    assert.is(h.layers[2].outDim, 2);
  }
});

test('fine-tunes stay close to their parent without being identical; scratch controls are far', () => {
  const base = model('base-digit');
  for (const [name, parent] of [['ft-noisy', 'base-digit'], ['ft-v2', 'base-digit'], ['ft-parity-shifted', 'head-parity']]) {
    const ft = model(name), p = model(parent);
    for (let i = 0; i < 3; i++) {
      const d = relDistance(ft.layers[i].weight, p.layers[i].weight);
      assert.ok(d > 0 && d < 0.25, `${name} fc${i + 1} vs ${parent}: relative distance ${d}`);
    }
  }
  const scratch = model('scratch-seed2');
  for (let i = 0; i < 3; i++) {
    const d = relDistance(scratch.layers[i].weight, base.layers[i].weight);
    assert.ok(d > 0.8, `scratch-seed2 fc${i + 1} vs base: relative distance ${d}`);
  }
});

test('every model is scored on its own task; kept fine-tunes beat their parent there by the margin', () => {
  assert.is(manifest.minGainPoints, MIN_GAIN_POINTS);
  assert.equal(entry('ft-noisy').domain, { task: 'digit', transform: { kind: 'noise', std: 0.6 } });
  assert.equal(entry('ft-parity-shifted').domain, { task: 'parity', transform: { kind: 'shift', max: 2 } });
  assert.equal(entry('head-gt4').domain, { task: 'gt4' });
  for (const m of manifest.models) {
    assert.is(m.evaluation.task, m.task);
    assert.ok(m.evaluation.validation.to <= m.evaluation.heldOut.from, `${m.name}: validation and held-out overlap`);
    if (m.kind === 'finetune') {
      assert.ok(m.parentAccuracy !== undefined && (m.testAccuracy - m.parentAccuracy) * 100 >= MIN_GAIN_POINTS, `${m.name}: ${m.testAccuracy} vs parent ${m.parentAccuracy}`);
    }
  }
  // The base is much worse than its noise fine-tune on noisy digits: the split is the fine-tune's own.
  assert.ok(entry('ft-noisy').parentAccuracy! < entry('base-digit').testAccuracy - 0.1);
  assert.ok(entry('base-digit').testAccuracy >= 0.85, `base ${entry('base-digit').testAccuracy}`);
  for (const m of manifest.models) assert.ok(m.testAccuracy >= 0.6, `${m.name}: ${m.testAccuracy}`);
});

test('evaluation data regenerates bit-identically from the recipe, and a subset domain keeps only its digits', () => {
  const r = entry('ft-noisy').evaluation;
  const a = evaluationSplit(r, 'heldOut'), b = evaluationSplit(r, 'heldOut');
  assert.ok(Buffer.from(a.pixels).equals(Buffer.from(b.pixels)));
  const v = evaluationSplit(r, 'validation');
  assert.is.not(Buffer.from(v.pixels.subarray(0, 784)).equals(Buffer.from(a.pixels.subarray(0, 784))), true);
  const subset = evaluationSplit({ ...entry('base-digit').evaluation, digits: [0, 1, 2, 3, 4] }, 'heldOut');
  assert.ok(subset.n > 0 && subset.n < a.n);
  assert.ok(Array.from(subset.labels).every((d) => d <= 4));
});

test('the evaluation file beside each model is its held-out split; onnxruntime-web on it agrees with the trainer', async () => {
  for (const name of ['base-digit', 'head-parity', 'ft-noisy', 'ft-parity-shifted']) {
    const e = entry(name);
    const set = parseEvalSet(JSON.parse(readFileSync(join(dir, e.evaluation.file), 'utf8')));
    const split = evaluationSplit(e.evaluation, 'heldOut');
    assert.equal(set.dims, [split.n, 784]);
    assert.ok(Buffer.from(set.data.buffer).equals(Buffer.from(split.images.buffer)), `${name}: file data differs from the regenerated split`);
    assert.equal(Array.from(set.labels!), Array.from(split.taskLabels));
    const { logits, classes } = await onnxLogits(fileBytes(name), set.data, split.n);
    let right = 0;
    for (let r = 0; r < split.n; r++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (logits[r * classes + c] > logits[r * classes + best]) best = c;
      if (best === set.labels![r]) right++;
    }
    // Float rounding may flip at most a rare near-tie sample.
    assert.ok(Math.abs(right / split.n - e.testAccuracy) <= 1 / split.n, `${name}: ort ${right / split.n} vs trainer ${e.testAccuracy}`);
  }
});

test('rebuild reuses unchanged models and retrains missing, corrupt or re-configured ones bit-identically', async () => {
  const before = new Map(manifest.models.map((m) => [m.name, fileBytes(m.name)]));
  unlinkSync(join(dir, 'base-digit.onnx'));
  writeFileSync(join(dir, 'head-gt4.onnx'), 'not a model');
  const edited = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  edited.models.find((m) => m.name === 'scratch-seed2')!.configHash = 'stale';
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(edited));
  const again: string[] = [];
  const m2 = await buildZoo({ size: 'tiny', dir, onProgress: (m) => again.push(m) });
  const trained = again.filter((l) => / trained in /.test(l)).map((l) => l.split(':')[0]).sort();
  assert.equal(trained, ['base-digit', 'head-gt4', 'scratch-seed2']);
  assert.equal(m2, manifest);
  for (const [name, bytes] of before) assert.ok(Buffer.from(fileBytes(name)).equals(Buffer.from(bytes)), `${name} differs after rebuild`);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
