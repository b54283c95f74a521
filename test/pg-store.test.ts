/** The PostgreSQL backend: the shared conformance suite, its lock, readers following commits, crashes. */
import { spawn } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openStore } from '../src/node/open.ts';
import { PgPageStore } from '../src/node/pg-store.ts';
import { pageStoreConformance, storeBehaviour } from './store-conformance.ts';
import type { PageStore } from '../src/store/page-store.ts';
import { freshStoreUrl, sql } from './fixtures/postgres.ts';
import { writerModel } from './fixtures/pg-writer.ts';
import { mlp } from './fixtures/onnx-builders.ts';
import { codeOf } from './helpers.ts';
import { parseModel } from '../src/onnx/model.ts';

pageStoreConformance('postgres', async (pageSize) => {
  const { url, drop } = freshStoreUrl('conf');
  let store = await PgPageStore.open(url, { create: true, pageSize });
  return {
    store,
    reopen: async () => {
      await store.close();
      store = await PgPageStore.open(url);
      return store;
    },
    openWriter: () => PgPageStore.open(url),
    openReader: () => PgPageStore.open(url, { readOnly: true }),
    flipBit: async (id, bit) => {
      const [{ n }] = await sql<{ n: number }>(url, 'select length(sealed) as n from pages where id = $1', [id]);
      const b = bit % (n * 8);
      await sql(url, 'update pages set sealed = set_bit(sealed, $2, 1 - get_bit(sealed, $2)) where id = $1', [id, b]);
    },
    cleanup: async () => {
      await store.close();
      await drop();
    },
  };
});

storeBehaviour('postgres', async () => {
  const { url, drop } = freshStoreUrl('behave');
  const h = {
    backend: (await PgPageStore.open(url, { create: true, pageSize: 8192 })) as PageStore,
    reopen: async () => {
      await h.backend.close();
      return PgPageStore.open(url);
    },
    cleanup: async () => {
      await h.backend.close();
      await drop();
    },
  };
  return h;
});

const TILE = { rows: 16, cols: 16 };
const model = (seed: number) => mlp({ inputDim: 24, hidden: 40, outputDim: 6, seed });

test('postgres: a second writer gets STORE_LOCKED; readers open; the lock is free after close', async () => {
  const { url, drop } = freshStoreUrl('lock');
  try {
    const a = await PgPageStore.open(url, { create: true, pageSize: 4096 });
    assert.is(await codeOf(PgPageStore.open(url)), 'STORE_LOCKED');
    const r = await PgPageStore.open(url, { readOnly: true });
    assert.is(await codeOf(r.writePages([{ id: 0, epoch: 1, data: new Uint8Array(1) }])), 'STORE_LOCKED');
    await r.close();
    await a.close();
    const b = await PgPageStore.open(url);
    await b.close();
    assert.is(await codeOf(PgPageStore.open(freshStoreUrl('none').url, { readOnly: true })), 'NOT_A_STORE');
  } finally {
    await drop();
  }
});

test('postgres: models round-trip bit-exact; a reader follows commits without reopening', async () => {
  const { url, drop } = freshStoreUrl('store');
  try {
    const w = await openStore(url, { create: true, pageSize: 16384, tile: TILE });
    const reader = await openStore(url, { readOnly: true });
    const seq = () => (reader.backend as unknown as PgPageStore).commitSeq();
    const before = await seq();
    await w.add('a', model(1));
    await w.add('b', model(1)); // identical weights: stored once
    assert.ok((await seq()) > before);
    assert.equal(reader.listModels(), []);
    await reader.refresh();
    assert.equal(reader.listModels().sort(), ['a', 'b']);
    assert.equal(await reader.exportModel('b'), await w.exportModel('b'));
    assert.is(w.stats().dedupRatio > 1.9, true);
    await w.add('c', model(2));
    await w.checkpoint();
    await w.remove('a');
    await w.compact();
    await reader.refresh();
    assert.equal(reader.listModels().sort(), ['b', 'c']);
    const v = await reader.verify();
    assert.ok(v.ok, JSON.stringify(v));
    assert.equal(v.leakedPages, []);
    await w.close();
    const again = await openStore(url, { readOnly: true });
    assert.equal(again.listModels().sort(), ['b', 'c']);
    assert.ok(Buffer.from(await again.exportModel('c')).equals(Buffer.from(await reader.exportModel('c'))));
    await again.close();
    await reader.close();
  } finally {
    await drop();
  }
});

function writer(url: string, names: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/pg-writer.ts', url, ...names], { stdio: ['ignore', 'pipe', 'pipe'] });
  const committed: string[] = [];
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const waitFor = (line: RegExp) => new Promise<void>((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d;
      for (const m of buf.matchAll(/committed (\S+)\n/g)) if (!committed.includes(m[1])) committed.push(m[1]);
      if (line.test(buf)) (child.stdout.off('data', onData), resolve());
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`writer exited (${code}) before ${line}: ${err}`)));
  });
  return { child, committed, waitFor };
}

test('postgres: kill -9 of a writer mid-commit loses nothing committed; its lock is released by PostgreSQL', async () => {
  const { url, drop } = freshStoreUrl('kill');
  try {
    const names = Array.from({ length: 12 }, (_, i) => `m${i}`);
    const w = writer(url, names);
    await w.waitFor(/committed m2\n/);
    await new Promise((r) => setTimeout(r, 15)); // land inside a later add: pages written, commit in flight
    w.child.kill('SIGKILL');
    await new Promise((r) => w.child.once('exit', r));
    // The dead writer's session ends with its socket, and the advisory lock with it.
    let store = null;
    for (let i = 0; i < 50 && !store; i++) {
      store = await openStore(url).catch((e) => (e.code === 'STORE_LOCKED' ? null : Promise.reject(e)));
      if (!store) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(store, 'the lock of the killed writer was not released');
    const listed = store!.listModels();
    for (const n of w.committed) assert.ok(listed.includes(n), `committed model ${n} lost`);
    assert.ok(listed.length >= 3);
    for (const n of listed) {
      // Every model the store lists is exactly the one the writer added (tensor bytes compared).
      const original = await parseModel(writerModel(names.indexOf(n)));
      const stored = await parseModel(await store!.exportModel(n));
      original.tensors.forEach((t, k) => assert.ok(Buffer.from(t.data).equals(Buffer.from(stored.tensors[k].data)), `${n}/${t.name}`));
    }
    const v = await store!.verify();
    assert.ok(v.ok, JSON.stringify(v));
    assert.equal(v.leakedPages, [], 'pages of the cut-off add were not reclaimed by the next writer');
    await store!.close();
  } finally {
    await drop();
  }
});

test.run();
