/**
 * The hostile-store suite (issue 13, findings 8-12): an import trusts nothing a published store
 * sends. Each case runs over the folder source and over HTTP (a local server) where both apply;
 * after every refused import the local store holds exactly what it held, and verifies.
 */
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { deflateSync } from 'fflate';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { folderSource } from '../../src/node/publish.ts';
import { httpSource } from '../../src/browser/http-source.ts';
import { importModels, IMPORT_LIMITS, PublishedStore, type PublishedSource } from '../../src/store/published.ts';
import { MemoryPageStore } from '../../src/store/memory-store.ts';
import { TesseraStore } from '../../src/store/store.ts';
import { decodeDelta } from '../../src/codecs/delta.ts';
import { DTYPES } from '../../src/onnx/dtypes.ts';
import { gridOf, tileExtent } from '../../src/blocks/tiling.ts';
import { hash64Hex } from '../../src/hash.ts';
import { codeOf, tempDir } from '../helpers.ts';
import { mlp } from '../../tools/fixtures/onnx-builders.ts';
import { perturbed } from '../../tools/fixtures/family.ts';
import { exportsOf, publishGenuine, readIndex, serve, tampered, TILE, writeIndex } from './hostile.ts';

const genuineModel = mlp({ inputDim: 48, hidden: 32, outputDim: 8, seed: 21 });
const local = () => TesseraStore.open(new MemoryPageStore({ pageSize: 65536 }), { tile: TILE });

/** Runs `body` once with a folder source and once with an HTTP source over the same folder. */
async function overBothSources(pub: string, body: (src: PublishedSource, kind: string) => Promise<void>): Promise<void> {
  await body(folderSource(pub), 'folder');
  const server = await serve(pub);
  try {
    await body(httpSource(server.url, { retries: 0 }), 'http');
  } finally {
    await server.close();
  }
}

/** The import is refused with `code`, and the local store is as it was and verifies. */
async function refused(store: TesseraStore, attempt: Promise<unknown>, code: string | string[], what: string): Promise<void> {
  const before = await exportsOf(store);
  const got = await codeOf(attempt);
  assert.ok((Array.isArray(code) ? code : [code]).includes(got), `${what}: ${got}, expected ${code}`);
  assert.equal(await exportsOf(store), before, `${what}: the local store changed`);
  assert.ok((await store.verify()).ok, `${what}: the local store does not verify`);
}

test('import poisoning: a local block with a forged xxHash64 is not reused; the genuine model is fetched and exported bit-exact (finding 8)', async () => {
  const tmp = await tempDir();
  try {
    const { pub, exports } = await publishGenuine(tmp.path, { genuine: genuineModel });
    await overBothSources(pub, async (src, kind) => {
      const store = await local();
      // What a hostile store plants with a forged second preimage: blocks carrying the genuine
      // blocks' xxHash64 and length, with the attacker's bytes.
      const remote = await PublishedStore.open(src);
      const m = remote.catalog.models.get('genuine')!;
      await store.addBlocks(
        { name: 'evil', skeleton: m.skeleton, inputs: m.inputs, outputs: m.outputs, sourceBytes: m.sourceBytes },
        m.tensors.map((t) => {
          const grid = gridOf(t.dims, TILE);
          return {
            name: t.name, dtype: t.dtype, dims: t.dims, location: t.location,
            blocks: Array.from(t.blocks, (id, i) => {
              const { h, w } = tileExtent(grid, TILE, i);
              return { data: new Uint8Array(h * w * DTYPES[t.dtype].bytes).fill(0x41), hash: remote.catalog.blocks.get(id)!.hash };
            }),
          };
        }),
      );
      const [r] = await importModels(store, remote, ['genuine']);
      assert.is(r.status, 'imported');
      assert.ok(r.pagesFetched > 0, `${kind}: fetched ${r.pagesFetched} pages; the forged local blocks were trusted`);
      assert.equal(await store.exportModel('genuine'), exports.genuine, `${kind}: the attacker's weights were served`);
      assert.ok((await store.verify()).ok);
    });
  } finally {
    await tmp.cleanup();
  }
});

test('a hostile store whose block bytes do not match their published hashes stores nothing (finding 8)', async () => {
  const tmp = await tempDir();
  try {
    const { pub } = await publishGenuine(tmp.path, { genuine: genuineModel });
    // Overwrite the payload of every page with other bytes, resealing it so the page checksum passes.
    const { sealPage, openPage } = await import('../../src/store/page-format.ts');
    const index = await readIndex(pub);
    for (const [id, epoch] of index.pages) {
      const f = join(pub, 'pages', `${id}.${epoch}.page`);
      const payload = openPage(id, new Uint8Array(await readFile(f)), index.pageSize, epoch).slice().fill(0x42);
      await writeFile(f, sealPage(id, epoch, payload));
    }
    await overBothSources(pub, async (src, kind) => {
      const store = await local();
      await refused(store, importModels(store, src), 'PAGE_CORRUPT', kind);
    });
  } finally {
    await tmp.cleanup();
  }
});

test('a delta cycle, or a chain longer than the limit, is refused at once, never a hang (finding 9)', async () => {
  const tmp = await tempDir();
  try {
    const tuned = await perturbed(genuineModel, { seed: 5, scale: 1e-3 });
    const { pub } = await publishGenuine(tmp.path, { genuine: genuineModel, tuned });
    const cycle = await tampered(pub, join(tmp.path, 'cycle'), (cat) => {
      const [a, b] = [...cat.blocks.keys()];
      cat.blocks.get(a)!.base = b;
      cat.blocks.get(b)!.base = a;
    });
    const chain = await tampered(pub, join(tmp.path, 'chain'), (cat) => {
      const ids = [...cat.blocks.keys()].slice(0, IMPORT_LIMITS.deltaChain + 2);
      ids.slice(0, -1).forEach((id, i) => (cat.blocks.get(id)!.base = ids[i + 1]));
    });
    // Coded blocks may be deltas too: a cycle through them (the catalog's check once stopped at
    // the first coded block, and the import's walks down the chain then never ended).
    const codedCycle = await tampered(pub, join(tmp.path, 'coded-cycle'), (cat) => {
      const [a, b] = [...cat.blocks.keys()];
      for (const [id, base] of [[a, b], [b, a]]) Object.assign(cat.blocks.get(id)!, { base, codec: 'zstd-planes', size: cat.blocks.get(id)!.length });
    });
    for (const dir of [cycle, chain, codedCycle]) {
      await overBothSources(dir, async (src, kind) => {
        const store = await local();
        const t0 = Date.now();
        await refused(store, importModels(store, src), 'CATALOG_CORRUPT', `${dir} ${kind}`);
        assert.ok(Date.now() - t0 < 5000);
      });
    }
  } finally {
    await tmp.cleanup();
  }
});

test('a block longer than its tile, a garbage skeleton, a dtype "bogus", an index without a catalog: typed refusals, nothing stored (findings 11, 12)', async () => {
  const tmp = await tempDir();
  try {
    const { pub } = await publishGenuine(tmp.path, { genuine: genuineModel });
    const longer = await tampered(pub, join(tmp.path, 'longer'), (cat) => {
      const b = [...cat.blocks.values()][0];
      b.length += 4;
      cat.pages.get(b.page)!.used = Math.max(cat.pages.get(b.page)!.used, b.offset + b.length);
    });
    const skeleton = await tampered(pub, join(tmp.path, 'skeleton'), (cat) => {
      cat.models.get('genuine')!.skeleton = new Uint8Array(64).fill(0xff);
    });
    const bogus = await tampered(pub, join(tmp.path, 'bogus'), (cat) => {
      (cat.models.get('genuine')!.tensors[0] as { dtype: string }).dtype = 'bogus';
    });
    const cases: [string, string | string[]][] = [[longer, ['CATALOG_CORRUPT', 'NOT_A_STORE']], [skeleton, 'CATALOG_CORRUPT'], [bogus, 'CATALOG_CORRUPT']];
    for (const [dir, code] of cases) {
      await overBothSources(dir, async (src, kind) => {
        const store = await local();
        await refused(store, importModels(store, src), code, `${dir} ${kind}`);
      });
    }
    const noCatalog = join(tmp.path, 'nocatalog');
    await tampered(pub, noCatalog, () => {});
    const index = (await readIndex(noCatalog)) as unknown as Record<string, unknown>;
    delete index.catalog;
    await writeIndex(noCatalog, index);
    await overBothSources(noCatalog, async (src) => assert.is(await codeOf(PublishedStore.open(src)), 'NOT_A_STORE'));
  } finally {
    await tmp.cleanup();
  }
});

test('catalog.file on another origin, or outside the store, is refused; so is any path out of the base URL (finding 10)', async () => {
  const tmp = await tempDir();
  try {
    const { pub } = await publishGenuine(tmp.path, { genuine: genuineModel });
    const elsewhere = await serve(pub);
    try {
      for (const file of [`${elsewhere.origin}/pub/x.msgpack`, '../catalog.0000000000000000.msgpack', '/etc/passwd', '//evil.example/c.msgpack']) {
        const dir = join(tmp.path, `origin-${Math.random().toString(36).slice(2)}`);
        await tampered(pub, dir, () => {});
        const index = await readIndex(dir);
        index.catalog.file = file;
        await writeIndex(dir, index);
        await overBothSources(dir, async (src, kind) => assert.is(await codeOf(PublishedStore.open(src)), 'NOT_A_STORE', `${file} ${kind}`));
      }
      assert.equal(elsewhere.requests, [], 'the other origin was contacted');
      const src = httpSource(elsewhere.url, { retries: 0 });
      for (const path of ['../secret', 'http://127.0.0.2/x', '//127.0.0.2/x', '/other/x']) assert.is(await codeOf(src.get(path)), 'IO_ERROR', path);
      const folder = folderSource(pub);
      for (const path of ['../store/tessera.json', '/etc/passwd', 'pages/../../store/tessera.json']) assert.is(await codeOf(folder.get(path)), 'IO_ERROR', path);
    } finally {
      await elsewhere.close();
    }
  } finally {
    await tmp.cleanup();
  }
});

test('a huge page, a huge index, a stalled and a dripping server: refused within the limits, memory bounded, nothing stored (finding 10)', async () => {
  const tmp = await tempDir();
  try {
    const { pub } = await publishGenuine(tmp.path, { genuine: genuineModel });
    const rss0 = process.memoryUsage().rss;
    for (const [path, how] of [[/\.page$/, 'endless'], [/tessera-index\.json$/, 'endless'], [/\.page$/, 'stall'], [/\.page$/, 'drip']] as const) {
      const server = await serve(pub, { path, how });
      try {
        const store = await local();
        const t0 = Date.now();
        const src = httpSource(server.url, { retries: 0, stallMs: 300, timeoutMs: 1500 });
        await refused(store, importModels(store, src), 'IO_ERROR', `${how} ${path}`);
        assert.ok(Date.now() - t0 < 8000, `${how}: took ${Date.now() - t0} ms`);
      } finally {
        await server.close();
      }
    }
    const grown = process.memoryUsage().rss - rss0;
    assert.ok(grown < 256 << 20, `RSS grew by ${grown >> 20} MiB serving endless bodies`);
    // An index that declares pages larger than its page size, or a page size over the limit.
    const dir = join(tmp.path, 'huge');
    await tampered(pub, dir, () => {});
    const index = await readIndex(dir);
    index.pages[0][2] = 1 << 30;
    await writeIndex(dir, index);
    await overBothSources(dir, async (src) => assert.is(await codeOf(PublishedStore.open(src)), 'NOT_A_STORE'));
    index.pageSize = 1 << 30;
    await writeIndex(dir, index);
    await overBothSources(dir, async (src) => assert.is(await codeOf(PublishedStore.open(src)), 'NOT_A_STORE'));
  } finally {
    await tmp.cleanup();
  }
});

test('pipe (pages streamed to storage unread) refuses an endless, a stalled, a dripping and a short page within the limits, and hands an exact one on untouched', async () => {
  const tmp = await tempDir();
  try {
    const { pub } = await publishGenuine(tmp.path, { genuine: genuineModel });
    const index = await readIndex(pub);
    const [id, epoch, bytes] = index.pages[0];
    const path = `pages/${id}.${epoch}.page`;
    // What a sink sees: the body read to its end (as cache.put reads it).
    const consume = (got: number[]) => async (res: Response) => {
      got.push(new Uint8Array(await res.arrayBuffer()).length);
    };
    // stall-sized: the length announced right, so the body goes on unread; the deadline is then
    // the stall time plus the page at 64 KiB/s, far below the file's 30 s.
    for (const how of ['endless', 'stall', 'stall-sized', 'drip'] as const) {
      const server = await serve(pub, { path: /\.page$/, how });
      try {
        const t0 = Date.now();
        const got: number[] = [];
        // An endless body is cut at the stated length, not by the deadline (set far off for it).
        const src = httpSource(server.url, { retries: 0, stallMs: 300, timeoutMs: how === 'endless' || how === 'stall-sized' ? 30_000 : 1500 });
        assert.is(await codeOf(src.pipe!(path, bytes, consume(got))), 'IO_ERROR', how);
        assert.ok(Date.now() - t0 < 4000, `${how}: took ${Date.now() - t0} ms`);
        assert.equal(got, [], `${how}: the sink saw no complete body`);
      } finally {
        await server.close();
      }
    }
    const server = await serve(pub);
    try {
      const got: number[] = [];
      const src = httpSource(server.url, { retries: 0 });
      await src.pipe!(path, bytes, consume(got));
      assert.equal(got, [bytes]);
      assert.is(src.bytesFetched, bytes);
      // The index states another length: refused, the sink never sees the body complete.
      const short: number[] = [];
      assert.is(await codeOf(src.pipe!(path, bytes + 1, consume(short))), 'IO_ERROR');
      assert.equal(short, []);
    } finally {
      await server.close();
    }
  } finally {
    await tmp.cleanup();
  }
});

const withHeader = (packed: Uint8Array) => {
  const out = new Uint8Array(packed.length + 1);
  out[0] = 4;
  out.set(packed, 1);
  return out;
};

test('a deflate bomb and an over-long inflate stream in a delta are refused fast, not inflated or truncated (finding 10)', async () => {
  const base = new Uint8Array(16384);
  const bomb = deflateSync(new Uint8Array(64 << 20)); // ~64 KB that inflates to 64 MiB
  const t0 = performance.now();
  assert.is(await codeOf(() => decodeDelta(withHeader(bomb), base)), 'PAGE_CORRUPT');
  const ms = performance.now() - t0;
  assert.ok(ms < 500, `a bomb cost ${ms.toFixed(0)} ms`);
  const long = deflateSync(new Uint8Array(base.length + 100));
  assert.is(await codeOf(() => decodeDelta(withHeader(long), base)), 'PAGE_CORRUPT');
  const short = deflateSync(new Uint8Array(base.length - 100));
  assert.is(await codeOf(() => decodeDelta(withHeader(short), base)), 'PAGE_CORRUPT');
  const exact = deflateSync(new Uint8Array(base.length));
  assert.equal(decodeDelta(withHeader(exact), base), base);
  assert.ok(hash64Hex(base));
});

test.run();
