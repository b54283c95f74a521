/**
 * Readers (issue 13, findings 6 and 7): a read-only open creates and writes nothing, so it works
 * on read-only media and for users without write permission; a reader that meets a page changed
 * under it by a writer re-reads the catalog and retries, and reports corruption only when the
 * committed state it holds is really damaged.
 */
import { spawnSync } from 'node:child_process';
import { chmod, cp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openStore } from '../../src/node/open.ts';
import { FilePageStore } from '../../src/node/file-store.ts';
import { PAGE_HEADER_BYTES } from '../../src/store/page-format.ts';
import { mlp } from '../../tools/fixtures/onnx-builders.ts';
import { codeOf, tempDir } from '../helpers.ts';
import { readOnlyMedia } from '../../tools/reliability/faulty-fs.ts';

const TILE = { rows: 16, cols: 16 };
const PAGE = 4096;
const model = (seed: number) => mlp({ inputDim: 48, hidden: 40, outputDim: 8, seed });

async function library(dir: string): Promise<Record<string, Uint8Array>> {
  const s = await openStore(dir, { create: true, pageSize: PAGE, tile: TILE });
  const out: Record<string, Uint8Array> = {};
  for (const [name, seed] of [['a', 1], ['b', 2], ['c', 3]] as const) {
    await s.add(name, model(seed));
    out[name] = await s.exportModel(name);
  }
  await s.close();
  return out;
}

async function listing(dir: string): Promise<string> {
  const files = (await readdir(dir)).sort();
  return (await Promise.all(files.map(async (f) => `${f}:${(await stat(join(dir, f))).size}`))).join(' ');
}

for (const code of ['EROFS', 'EACCES'] as const) {
  test(`read-only open on media that refuses every write (${code}): ls, stats, verify, export work and nothing is attempted`, async () => {
    const tmp = await tempDir();
    try {
      const dir = join(tmp.path, 's');
      const exported = await library(dir);
      const before = await listing(dir);
      const media = readOnlyMedia(code);
      const s = await openStore(dir, { readOnly: true, io: media.io });
      assert.equal(s.listModels(), ['a', 'b', 'c']);
      assert.is(s.stats().models, 3);
      assert.ok((await s.verify()).ok);
      for (const [name, bytes] of Object.entries(exported)) assert.equal(await s.exportModel(name), bytes);
      await s.close();
      assert.equal(media.refused, [], 'a read-only open tried to change the disk');
      assert.is(await listing(dir), before);
      // A writer on the same media gets a typed error saying what to do, not NOT_A_STORE.
      const err = await openStore(dir, { io: readOnlyMedia(code).io }).catch((e) => e);
      assert.is(err.code, 'IO_ERROR');
      assert.match(err.message, /read-only|permission/);
    } finally {
      await tmp.cleanup();
    }
  });
}

test('a read-only open of a store without pages.dat creates nothing', async () => {
  const tmp = await tempDir();
  try {
    const dir = join(tmp.path, 's');
    const s = await FilePageStore.open(dir, { create: true, pageSize: PAGE });
    await s.close();
    await (await import('node:fs/promises')).rm(join(dir, 'pages.dat'));
    await (await import('node:fs/promises')).rm(join(dir, 'catalog.log'));
    const before = await listing(dir);
    const r = await FilePageStore.open(dir, { readOnly: true });
    assert.equal(await r.listPages(), []);
    assert.equal(await r.readCatalog(), { snapshot: null, records: [] });
    await r.close();
    assert.is(await listing(dir), before);
  } finally {
    await tmp.cleanup();
  }
});

test('a user without write permission (chmod -R a-w, runuser -u nobody) can ls, verify and export through the CLI', async () => {
  const uid = process.getuid?.();
  assert.ok(uid === 0 || uid !== undefined, 'needs a POSIX system');
  const tmp = await tempDir();
  try {
    await chmod(tmp.path, 0o755);
    const dir = join(tmp.path, 's');
    const exported = await library(dir);
    const out = join(tmp.path, 'out');
    await (await import('node:fs/promises')).mkdir(out, { mode: 0o777 });
    await chmod(out, 0o777);
    spawnSync('chmod', ['-R', 'a-w', dir]);
    const cli = resolve('bin/tessera.js');
    // As root, run as nobody (root ignores permissions); as another user, as that user.
    const as = (args: string[]) => (uid === 0 ? spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, cli, ...args], { encoding: 'utf8' }) : spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' }));
    const probe = as(['--version']);
    assert.is(probe.status, 0, `the CLI does not run as an unprivileged user (runuser missing?): ${probe.stderr}`);
    for (const verb of [['ls', dir], ['stats', dir], ['verify', dir], ['export', dir, 'b', join(out, 'b.onnx')]]) {
      const r = as(verb);
      assert.is(r.status, 0, `tessera ${verb.join(' ')}: ${r.stderr}`);
    }
    assert.equal(new Uint8Array(await readFile(join(out, 'b.onnx'))), exported.b);
    const w = as(['rm', dir, 'a']);
    assert.is.not(w.status, 0);
    assert.match(w.stderr, /permission|read-only/);
    assert.not.match(w.stderr, /unexpected/);
  } finally {
    spawnSync('chmod', ['-R', 'u+w', tmp.path]);
    await tmp.cleanup();
  }
});

test('a reader whose pages a writer removed and compacted away re-reads the catalog and reads bit-exact', async () => {
  const tmp = await tempDir();
  try {
    const dir = join(tmp.path, 's');
    const exported = await library(dir);
    const reader = await openStore(dir, { readOnly: true });
    const writer = await openStore(dir);
    await writer.remove('a');
    await writer.compact(); // every page rewritten into slots the reader's catalog knows under other epochs
    await writer.add('d', model(4));
    assert.equal(await reader.exportModel('c'), exported.c);
    assert.equal(await reader.exportModel('b'), exported.b);
    assert.is(await codeOf(reader.exportModel('a')), 'MODEL_NOT_FOUND');
    await writer.close();
    await reader.close();
  } finally {
    await tmp.cleanup();
  }
});

test('a reader reports PAGE_CORRUPT when the committed state it holds is really damaged', async () => {
  const tmp = await tempDir();
  try {
    const dir = join(tmp.path, 's');
    await library(dir);
    const reader = await openStore(dir, { readOnly: true });
    const page = reader.pagesOf('b')[0];
    const f = join(dir, 'pages.dat');
    const bytes = await readFile(f);
    bytes[page * (PAGE_HEADER_BYTES + PAGE) + PAGE_HEADER_BYTES + 5] ^= 1;
    await writeFile(f, bytes);
    assert.is(await codeOf(reader.exportModel('b')), 'PAGE_CORRUPT');
    await reader.close();
  } finally {
    await tmp.cleanup();
  }
});

test.run();
