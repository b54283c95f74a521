/**
 * A store folder that was tampered with, or a lock tessera cannot judge (issue 13, findings 5, 12
 * and 14): every case is a typed error with what to do, never "unexpected failure"; a lock naming
 * a live, unrelated process is refused at once (not waited on forever) and `--break-lock` takes
 * it; leaked slots are reclaimed by `tessera gc`.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openStore } from '../../src/node/open.ts';
import { FilePageStore } from '../../src/node/file-store.ts';
import { nodeFileIO } from '../../src/node/file-io.ts';
import { processStartTime } from '../../src/node/lock.ts';
import { mlp } from '../../tools/fixtures/onnx-builders.ts';
import { codeOf, tempDir } from '../helpers.ts';

const CLI = resolve('bin/tessera.js');
const tessera = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20000 });

async function store(dir: string): Promise<void> {
  const s = await openStore(dir, { create: true, pageSize: 4096, tile: { rows: 16, cols: 16 } });
  await s.add('a', mlp({ inputDim: 32, hidden: 16, outputDim: 4, seed: 1 }));
  await s.checkpoint();
  await s.add('b', mlp({ inputDim: 32, hidden: 16, outputDim: 4, seed: 2 }));
  await s.close();
}

for (const file of ['catalog.log', 'catalog.snap', 'LOCK', 'pages.dat']) {
  test(`${file} being a folder: a typed error from the library and the CLI, for readers and writers`, async () => {
    const tmp = await tempDir();
    try {
      const dir = join(tmp.path, 's');
      await store(dir);
      await rm(join(dir, file), { force: true });
      await mkdir(join(dir, file));
      const writer = await codeOf(openStore(dir));
      assert.ok(['IO_ERROR', 'CATALOG_CORRUPT'].includes(writer), `writer: ${writer}`);
      for (const args of [['ls', dir], ['rm', dir, 'a'], ['verify', dir]]) {
        const r = tessera(...args);
        if (file === 'LOCK' && args[0] !== 'rm') {
          assert.is(r.status, 0, `${args[0]} needs no lock: ${r.stderr}`);
          continue;
        }
        assert.is.not(r.status, 0, `tessera ${args[0]} with ${file} a folder`);
        assert.not.match(r.stderr, /unexpected failure/);
        assert.match(r.stderr, /\[(IO_ERROR|CATALOG_CORRUPT)\]/);
        assert.match(r.stderr, new RegExp(file.replace('.', '\\.')));
      }
    } finally {
      await tmp.cleanup();
    }
  });
}

test('EACCES on tessera.json is a permission error, not NOT_A_STORE', async () => {
  const tmp = await tempDir();
  try {
    const dir = join(tmp.path, 's');
    await store(dir);
    const io = { ...nodeFileIO, readFile: async (p: string) => (p.endsWith('tessera.json') ? Promise.reject(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })) : nodeFileIO.readFile(p)) };
    const err = await openStore(dir, { readOnly: true, io }).catch((e) => e);
    assert.is(err.code, 'IO_ERROR');
    assert.match(err.message, /permission denied/);
  } finally {
    await tmp.cleanup();
  }
});

test('a LOCK naming a live unrelated process (pid 1, an older tessera\'s bare pid) is refused at once, naming --break-lock; --break-lock takes it', async () => {
  const tmp = await tempDir();
  try {
    const dir = join(tmp.path, 's');
    await store(dir);
    await writeFile(join(dir, 'LOCK'), '1\n');
    const t0 = Date.now();
    const err = await openStore(dir).catch((e) => e);
    assert.is(err.code, 'STORE_LOCKED');
    assert.match(err.message, /--break-lock/);
    assert.ok(Date.now() - t0 < 2000, 'refused at once');
    const r = tessera('rm', dir, 'a');
    assert.is(r.status, 1);
    assert.match(r.stderr, /--break-lock/);
    const ok = tessera('rm', dir, 'a', '--break-lock');
    assert.is(ok.status, 0, ok.stderr);
    assert.equal(tessera('ls', dir, '--json').status, 0);
    const s = await openStore(dir, { readOnly: true });
    assert.equal(s.listModels(), ['b']);
    await s.close();
  } finally {
    await tmp.cleanup();
  }
});

test('a new-format LOCK whose pid now belongs to another process (start time differs) is taken over; a live holder is not', async () => {
  const tmp = await tempDir();
  try {
    const dir = join(tmp.path, 's');
    await store(dir);
    const reused = { token: 'b'.repeat(32), pid: 1, host: hostname(), bootId: null, startTime: '1', since: new Date(0).toISOString() };
    if (processStartTime(1) === '1') reused.startTime = '2';
    await writeFile(join(dir, 'LOCK'), JSON.stringify(reused));
    const s = await FilePageStore.open(dir);
    assert.is(JSON.parse(await readFile(join(dir, 'LOCK'), 'utf8')).pid, process.pid);
    await s.close();
    const live = { ...reused, pid: process.ppid, startTime: processStartTime(process.ppid) };
    await writeFile(join(dir, 'LOCK'), JSON.stringify(live));
    assert.is(await codeOf(FilePageStore.open(dir)), 'STORE_LOCKED');
    assert.ok(processStartTime(process.ppid), '/proc gives process start times here');
  } finally {
    await tmp.cleanup();
  }
});

test('tessera gc reclaims slots a killed writer left; the next writer open does too', async () => {
  const tmp = await tempDir();
  try {
    const dir = join(tmp.path, 's');
    await store(dir);
    const s = await FilePageStore.open(dir);
    const top = Math.max(...(await s.listPages())) + 1;
    await s.writePages([top, top + 1].map((id) => ({ id, epoch: 99, data: new Uint8Array(100).fill(1) })));
    await s.close(); // never committed: what a kill before the commit leaves
    const r = tessera('gc', dir);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`reclaimed 2 leaked page slot\\(s\\): ${top}, ${top + 1}`));
    assert.match(tessera('gc', dir).stdout, /no leaked page slots/);
    const v = await openStore(dir, { readOnly: true });
    assert.equal((await v.verify()).leakedPages, []);
    await v.close();
  } finally {
    await tmp.cleanup();
  }
});

test.run();
