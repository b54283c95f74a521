/** `tessera info` and `tessera run` with JSON, .npy and raw tensors, stdin and files. */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { dump, parse } from 'npyjs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode, float16Bits, graph, INT64, mlp, modelProto, node, randomFloats, valueInfo } from '../tools/fixtures/onnx-builders.ts';
import { tempDir } from './helpers.ts';
import { bin, cli } from './cli-helpers.ts';

const dir = await tempDir();
const store = join(dir.path, 's');
const x = randomFloats(2 * 8, 7);
const f = (n: string) => join(dir.path, n);

test.before(async () => {
  await writeFile(f('alpha.onnx'), mlp({ inputDim: 8, hidden: 8, outputDim: 3, seed: 1 }));
  await writeFile(f('twin.onnx'), mlp({ inputDim: 8, hidden: 8, outputDim: 3, seed: 1 }));
  await writeFile(f('other.onnx'), mlp({ inputDim: 8, hidden: 8, outputDim: 3, seed: 2 }));
  const r = await cli(['add', store, f('alpha.onnx'), f('twin.onnx'), f('other.onnx'), '--tile', '8x8']);
  assert.is(r.code, 0, r.stderr);
});
test.after(() => dir.cleanup());

/** Y from the JSON path: the reference every file format must match exactly. */
async function jsonRun(): Promise<{ dims: number[]; data: number[] }> {
  const r = await cli(['run', store, 'alpha', '--input', '-'], JSON.stringify({ X: { dims: [2, 8], data: Array.from(x) } }));
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).Y;
}

test('info lists inputs and outputs with dtypes and shapes, size, shared bytes and pages', async () => {
  const text = (await cli(['info', store, 'alpha'])).stdout;
  assert.match(text, /input\s+X\s+float32\s+\[N, 8\]/);
  assert.match(text, /output\s+Y\s+float32\s+\[N, 3\]/);
  assert.match(text, /^pages +\d+/m);
  const twin = JSON.parse((await cli(['info', store, 'twin', '--json'])).stdout);
  assert.is(twin.sharedBytes, twin.logicalBytes, 'a twin shares every byte');
  assert.equal(twin.sharedWith, ['alpha']);
  const other = JSON.parse((await cli(['info', store, 'other', '--json'])).stdout);
  assert.is(other.sharedBytes, 0, 'different weights are its own');
  assert.equal(other.sharedWith, []);
  assert.match(text, /shared +[0-9.]+ (B|KiB) \(100%\) with twin;/);
  assert.equal(other.inputs, [{ name: 'X', dtype: 'float32', shape: ['N', 8] }]);
  const ghost = await cli(['info', store, 'ghost']);
  assert.is(ghost.code, 1);
  assert.match(ghost.stderr, /model "ghost" is not in the store/);
});

test('a .npy input (written by npyjs) and a .npy output (read by npyjs) give the JSON result exactly', async () => {
  const ref = await jsonRun();
  await writeFile(f('x.npy'), new Uint8Array(dump(x, [2, 8])));
  const r = await cli(['run', store, 'alpha', '--input', `X=${f('x.npy')}`, '--output', `Y=${f('y.npy')}`]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /Y\s+float32\s+\[2, 3\]/);
  const y = parse((await readFile(f('y.npy'))).buffer as ArrayBuffer);
  assert.equal(y.shape, [2, 3]);
  assert.is(y.dtype, 'f4');
  assert.equal(Array.from(y.data as Float32Array), ref.data);
  // numpy's default float64 feeds a float32 input; a lone .npy feeds the only input.
  await writeFile(f('x64.npy'), new Uint8Array(dump(Float64Array.from(x), [2, 8])));
  const r64 = await cli(['run', store, 'alpha', '--input', f('x64.npy')]);
  assert.is(r64.code, 0, r64.stderr);
  assert.equal(JSON.parse(r64.stdout).Y.data, ref.data);
});

test('raw little-endian input with --shape, raw output and a folder of .npy outputs', async () => {
  const ref = await jsonRun();
  await writeFile(f('x.bin'), new Uint8Array(x.buffer));
  const noShape = await cli(['run', store, 'alpha', '--input', `X=${f('x.bin')}`]);
  assert.is(noShape.code, 1);
  assert.match(noShape.stderr, /pass --shape X=1x8/);
  const wrong = await cli(['run', store, 'alpha', '--input', `X=${f('x.bin')}`, '--shape', 'X=3x8']);
  assert.match(wrong.stderr, /has 64 bytes, but float32 \[3, 8\] needs 96/);
  const r = await cli(['run', store, 'alpha', '--input', `X=${f('x.bin')}`, '--shape', 'X=2x8', '--output', f('y.bin'), '--output', f('outs') + '/']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(Array.from(new Float32Array((await readFile(f('y.bin'))).buffer.slice(0))), ref.data);
  const y = parse((await readFile(join(f('outs'), 'Y.npy'))).buffer as ArrayBuffer);
  assert.equal(Array.from(y.data as Float32Array), ref.data);
  const unknown = await cli(['run', store, 'alpha', '--input', `Z=${f('x.bin')}`]);
  assert.match(unknown.stderr, /has no input "Z"; it takes X/);
});

test('--output FILE.json writes what stdout would have shown', async () => {
  const ref = await jsonRun();
  await writeFile(f('feeds.json'), JSON.stringify({ X: { dims: [2, 8], data: Array.from(x) } }));
  const r = await cli(['run', store, 'alpha', '--input', f('feeds.json'), '--output', f('out.json')]);
  assert.is(r.code, 0, r.stderr);
  assert.equal(JSON.parse(await readFile(f('out.json'), 'utf8')).Y.data, ref.data);
});

test('an empty stdin says what to pass', async () => {
  const r = await cli(['run', store, 'alpha'], '');
  assert.is(r.code, 1);
  assert.match(r.stderr, /stdin was empty: model "alpha" takes X \(float32 \[N, 8\]\)\. Pass --input/);
});

test('no --input on a terminal: an immediate message naming the inputs, not a silent wait', async () => {
  // `script` gives the command a terminal as stdin; a wait would hit the timeout.
  const cmd = `"${process.execPath}" "${bin}" run "${store}" alpha`;
  const { stdout } = await promisify(execFile)('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 15000 }).catch((e) => e);
  assert.match(stdout, /no input given: model "alpha" takes X \(float32 \[N, 8\]\)\. Pass --input FEEDS\.json, --input X=FILE\.npy/);
});

test('float16 and int64 tensors cross .npy files bit for bit, and JSON shows their values', async () => {
  const FLOAT16 = 10;
  const ident = encode(modelProto(graph({
    name: 'ident',
    nodes: [node('Identity', ['H'], ['H2']), node('Identity', ['L'], ['L2'])],
    inputs: [valueInfo('H', FLOAT16, [3]), valueInfo('L', INT64, [2])],
    outputs: [valueInfo('H2', FLOAT16, [3]), valueInfo('L2', INT64, [2])],
  })));
  await writeFile(f('ident.onnx'), ident);
  assert.is((await cli(['add', store, f('ident.onnx')])).code, 0);
  // .npy files as numpy writes them: a '<f2' file holds half-precision bits.
  const halves = Uint16Array.from([0.5, -1, 65504].map(float16Bits));
  const npy = (descr: string, shape: string, body: Uint8Array) => {
    let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
    h += ' '.repeat(63 - ((10 + h.length) % 64)) + '\n';
    return Buffer.concat([Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length, 0]), Buffer.from(h), body]);
  };
  await writeFile(f('h.npy'), npy('<f2', '(3,)', new Uint8Array(halves.buffer)));
  const big = BigInt64Array.from([2n ** 62n + 1n, -7n]);
  await writeFile(f('l.npy'), npy('<i8', '(2,)', new Uint8Array(big.buffer)));
  const r = await cli(['run', store, 'ident', '--input', `H=${f('h.npy')}`, '--input', `L=${f('l.npy')}`, '--output', `H2=${f('h2.npy')}`, '--output', `L2=${f('l2.npy')}`]);
  assert.is(r.code, 0, r.stderr);
  const h2 = parse((await readFile(f('h2.npy'))).buffer as ArrayBuffer, { convertFloat16: false });
  assert.is(h2.dtype, 'f2');
  assert.equal(Array.from(h2.data as Uint16Array), Array.from(halves));
  const l2 = parse((await readFile(f('l2.npy'))).buffer as ArrayBuffer);
  assert.equal(Array.from(l2.data as BigInt64Array), Array.from(big));
  const json = JSON.parse((await cli(['run', store, 'ident', '--input', `H=${f('h.npy')}`, '--input', `L=${f('l.npy')}`])).stdout);
  assert.equal(json.H2.data, [0.5, -1, 65504]);
  assert.equal(json.L2.data, ['4611686018427387905', '-7']);
});

test.run();
