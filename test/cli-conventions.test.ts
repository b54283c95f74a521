/** The CLI's manners at the edges: version, typos, closed pipes, tables, units, failed commands. */
import { readdir, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pkg from '../package.json' with { type: 'json' };
import { parseSize } from '../src/cli/args.ts';
import { table } from '../src/cli/output.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { tempDir } from './helpers.ts';
import { cli, piped } from './cli-helpers.ts';

test('--version prints the package version', async () => {
  const r = await cli(['--version']);
  assert.is(r.code, 0);
  assert.is(r.stdout.trim(), pkg.version);
});

test('a typo gets one line with the suggestion and exit 2; a usage mistake one line too', async () => {
  const typo = await cli(['ad', 'store', 'x.onnx']);
  assert.is(typo.code, 2);
  assert.is(typo.stdout, '');
  assert.is(typo.stderr.trim(), "tessera: unknown command 'ad'. Did you mean add?");
  const missing = await cli(['info']);
  assert.is(missing.code, 2);
  assert.is(missing.stderr.trim().split('\n').length, 1, missing.stderr);
  assert.match(missing.stderr, /missing required argument 'store'/);
});

test('one size parser: binary and SI units, bare numbers, clear rejection', () => {
  assert.is(parseSize('1MiB'), 1 << 20);
  assert.is(parseSize('64MB'), 64e6);
  assert.is(parseSize('64m'), 64 << 20);
  assert.is(parseSize('65536'), 65536);
  assert.is(parseSize('1.5GiB'), 1.5 * 2 ** 30);
  for (const bad of ['', 'MiB', '1 parsec', '-1', '0']) assert.throws(() => parseSize(bad), /size/, bad);
});

test('tables are aligned under a header and a rule', () => {
  const t = table(['model', 'size'], [['a', '1 B'], ['longer-name', '12.5 KiB']]).split('\n');
  assert.equal(t[0], 'model            size');
  assert.equal(t[1], '-----------  --------');
  assert.equal(t[3], 'longer-name  12.5 KiB');
  assert.is(t[2].indexOf('1 B') + 3, t[3].length);
});

test('ls has a header; `ls | head -1` and `stats | true` end quietly with 0; --page-size takes 1MiB', async () => {
  const dir = await tempDir();
  try {
    const store = join(dir.path, 's');
    const files = [];
    for (let i = 0; i < 3; i++) {
      files.push(join(dir.path, `m${i}.onnx`));
      await writeFile(files[i], mlp({ inputDim: 8, hidden: 8, outputDim: 2, seed: i + 1 }));
    }
    const add = await cli(['add', store, ...files, '--page-size', '1MiB', '--tile', '8x8']);
    assert.is(add.code, 0, add.stderr);
    const stats = JSON.parse((await cli(['stats', store, '--json'])).stdout);
    assert.is(stats.pageSize, 1 << 20);
    const ls = (await cli(['ls', store])).stdout.split('\n');
    assert.match(ls[0], /^model\s+tensors\s+size\s+unique\s+added$/);
    assert.match(ls[1], /^-+( +-+)+$/);
    assert.match(ls[2], /^m0 /);
    for (const [args, reader] of [[['ls', store], 'head -1'], [['stats', store], 'true'], [['info', store, 'm0'], 'head -c1']] as const) {
      const r = await piped([...args], reader);
      assert.is(r.code, 0, `${args.join(' ')} | ${reader}: ${r.stderr}`);
      assert.is(r.stderr, '', `${args.join(' ')} | ${reader}`);
    }
  } finally {
    await dir.cleanup();
  }
});

test('a command that fails creates nothing: add of a missing or broken file leaves no store', async () => {
  const dir = await tempDir();
  try {
    const store = join(dir.path, 'new-store');
    const missing = await cli(['add', store, join(dir.path, 'missing.onnx')]);
    assert.is(missing.code, 1);
    assert.match(missing.stderr, /cannot read model file/);
    await writeFile(join(dir.path, 'junk.onnx'), 'not protobuf');
    const junk = await cli(['add', store, join(dir.path, 'junk.onnx')]);
    assert.is(junk.code, 1);
    assert.match(junk.stderr, /not a valid ONNX model/);
    assert.equal(await readdir(dir.path), ['junk.onnx']);
    // An empty folder given as the store is left empty, not half a store.
    await mkdir(join(dir.path, 'empty'));
    assert.is((await cli(['add', join(dir.path, 'empty'), join(dir.path, 'junk.onnx')])).code, 1);
    assert.equal(await readdir(join(dir.path, 'empty')), []);
  } finally {
    await dir.cleanup();
  }
});

test.run();
