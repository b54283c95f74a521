/** The PostgreSQL backend: the shared conformance suite, its lock, readers following commits, crashes. */
import { spawn } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openStore } from '../src/node/open.ts';
import pg from 'pg';
import { PgPageStore, parsePostgresUrl } from '../src/node/pg-store.ts';
import { pageStoreConformance, storeBehaviour } from './store-conformance.ts';
import type { PageStore } from '../src/store/page-store.ts';
import { freshStoreUrl, sql } from '../tools/fixtures/postgres.ts';
import { writerModel } from '../tools/fixtures/pg-writer.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
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
  const child = spawn(process.execPath, ['--import', 'tsx', 'tools/fixtures/pg-writer.ts', url, ...names], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Every `committed` line the writer printed, until its stdout closes (after a kill too).
  const committed: string[] = [];
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  child.stdout.on('data', (d) => {
    out += d;
    for (const m of out.matchAll(/committed (\S+)\n/g)) if (!committed.includes(m[1])) committed.push(m[1]);
  });
  const closed = new Promise<void>((r) => child.stdout.once('close', () => r()));
  const waitFor = async (line: RegExp) => {
    while (!line.test(out)) {
      if (child.exitCode !== null) throw new Error(`writer exited (${child.exitCode}) before ${line}: ${err}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { child, committed, waitFor, closed };
}

test('postgres: kill -9 of a writer inside its commit transaction loses nothing committed and commits nothing half; its lock is released', async () => {
  const { url, drop } = freshStoreUrl('kill');
  // The test holds the store row's table locked, so the writer's next commit transaction (catalog
  // row inserted, then `seq` bumped) blocks inside itself: the kill lands mid-commit whatever the timing.
  const { connectionString, schema } = parsePostgresUrl(url);
  const blocker = new pg.Client({ connectionString });
  await blocker.connect();
  try {
    const names = Array.from({ length: 12 }, (_, i) => `m${i}`);
    const w = writer(url, names);
    await w.waitFor(/committed m2\n/);
    await blocker.query('begin');
    await blocker.query(`lock table "${schema}".store in exclusive mode`);
    for (let i = 0; ; i++) {
      const { rows } = await blocker.query(`select count(*)::int as n from pg_locks l join pg_class c on c.oid = l.relation join pg_namespace s on s.oid = c.relnamespace where not l.granted and s.nspname = $1 and c.relname = 'store'`, [schema]);
      if (rows[0].n > 0) break;
      if (i > 1000) assert.unreachable(`the writer never reached a commit: ${w.committed}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    w.child.kill('SIGKILL');
    await new Promise((r) => w.child.once('exit', r));
    await w.closed;
    await blocker.query('rollback');
    // The dead writer's session ends with its socket, and the advisory lock with it.
    let store = null;
    for (let i = 0; i < 50 && !store; i++) {
      store = await openStore(url).catch((e) => (e.code === 'STORE_LOCKED' ? null : Promise.reject(e)));
      if (!store) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(store, 'the lock of the killed writer was not released');
    // Exactly the adds that returned: the one cut off inside its transaction left nothing behind.
    assert.ok(w.committed.length >= 3 && w.committed.length < names.length, `${w.committed}`);
    assert.equal(store!.listModels().sort(), [...w.committed].sort());
    for (const n of w.committed) {
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
    await blocker.end().catch(() => {});
    await drop();
  }
});

test.run();
