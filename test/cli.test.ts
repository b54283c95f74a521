import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseModel } from '../src/onnx/model.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { tempDir } from './helpers.ts';
import { cli } from './cli-helpers.ts';

test('add, ls, stats, export, run, rm, verify work end to end with --json', async () => {
  const dir = await tempDir();
  try {
    const store = join(dir.path, 'store');
    const a = mlp({ inputDim: 16, hidden: 8, outputDim: 3, seed: 1 });
    await writeFile(join(dir.path, 'alpha.onnx'), a);
    await writeFile(join(dir.path, 'beta.onnx'), mlp({ inputDim: 16, hidden: 8, outputDim: 3, seed: 2 }));
    const add = await cli(['add', store, join(dir.path, 'alpha.onnx'), join(dir.path, 'beta.onnx')]);
    assert.is(add.code, 0, add.stderr);
    assert.match(add.stdout, /added alpha/);

    const ls = JSON.parse((await cli(['ls', store, '--json'])).stdout);
    assert.equal(ls.map((m: any) => m.name), ['alpha', 'beta']);

    const stats = JSON.parse((await cli(['stats', store, '--json'])).stdout);
    for (const k of ['models', 'logicalBytes', 'storedBytes', 'pages', 'pageSize']) assert.type(stats[k], 'number', k);
    assert.is(stats.models, 2);

    const out = join(dir.path, 'alpha-out.onnx');
    assert.is((await cli(['export', store, 'alpha', out])).code, 0);
    const [p1, p2] = [await parseModel(a), await parseModel(new Uint8Array(await readFile(out)))];
    p1.tensors.forEach((t, i) => assert.ok(Buffer.from(t.data).equals(Buffer.from(p2.tensors[i].data))));

    const run = await cli(['run', store, 'alpha'], JSON.stringify({ X: { dims: [1, 16], data: new Array(16).fill(0.25) } }));
    assert.is(run.code, 0, run.stderr);
    const y = JSON.parse(run.stdout).Y;
    assert.equal(y.dims, [1, 3]);
    assert.is(y.data.length, 3);

    assert.is((await cli(['rm', store, 'beta'])).code, 0);
    const v = await cli(['verify', store, '--json']);
    assert.is(v.code, 0);
    assert.is(JSON.parse(v.stdout).ok, true);
  } finally {
    await dir.cleanup();
  }
});

test('errors exit non-zero with one clear line on stderr', async () => {
  const dir = await tempDir();
  try {
    const store = join(dir.path, 'store');
    const cases: [string[], RegExp, string?][] = [
      [['ls', join(dir.path, 'nope')], /not a tessera store/],
      [['add', store, join(dir.path, 'missing.onnx')], /cannot read model file/],
      [['export', store, 'ghost', join(dir.path, 'x.onnx')], /model "ghost" is not in the store/],
    ];
    await writeFile(join(dir.path, 'junk.onnx'), 'definitely not protobuf');
    await writeFile(join(dir.path, 'ok.onnx'), mlp({ inputDim: 4, hidden: 4, outputDim: 2, seed: 5 }));
    assert.is((await cli(['add', store, join(dir.path, 'ok.onnx')])).code, 0);
    cases.push([['run', store, 'ok'], /feeds are not valid JSON/, 'not json']);
    cases.push([['add', store, join(dir.path, 'junk.onnx')], /not a valid ONNX model/]);
    for (const [args, re, input] of cases) {
      const r = await cli(args, input);
      assert.is.not(r.code, 0, args.join(' '));
      assert.match(r.stderr, re);
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  } finally {
    await dir.cleanup();
  }
});

test.run();
