/**
 * Hostile published stores (issue 13, findings 8-12): tools to publish a genuine store, rewrite
 * its catalog, index or pages as an attacker would, and serve it over a local HTTP server that can
 * also stall, drip or send endless bodies. Used by hostile.test.ts.
 */
import { createServer, type Server } from 'node:http';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { Catalog } from '../../src/catalog/catalog.ts';
import { hash64Hex, loadSha256, sha256, sha256Hex } from '../../src/hash.ts';

await loadSha256();
import { blocksFile, catalogFile, encodeBlockHashes, INDEX_FILE, type PublishedIndex } from '../../src/store/published.ts';
import { openStore } from '../../src/node/open.ts';
import { publishStore } from '../../src/node/publish.ts';
import type { TesseraStore } from '../../src/store/store.ts';

export const TILE = { rows: 16, cols: 16 };

/** Publishes `models` into `<dir>/pub` from a store in `<dir>/store`; returns each model's export. */
export async function publishGenuine(dir: string, models: Record<string, Uint8Array>): Promise<{ pub: string; exports: Record<string, Uint8Array> }> {
  const store = await openStore(join(dir, 'store'), { create: true, pageSize: 8192, tile: TILE });
  const exports: Record<string, Uint8Array> = {};
  for (const [name, bytes] of Object.entries(models)) {
    await store.add(name, bytes);
    exports[name] = await store.exportModel(name);
  }
  await publishStore(store, join(dir, 'pub'));
  await store.close();
  return { pub: join(dir, 'pub'), exports };
}

export async function readIndex(pub: string): Promise<PublishedIndex> {
  return JSON.parse(await readFile(join(pub, INDEX_FILE), 'utf8')) as PublishedIndex;
}

export async function writeIndex(pub: string, index: unknown): Promise<void> {
  await writeFile(join(pub, INDEX_FILE), JSON.stringify(index));
}

/**
 * Copies a published store and lets `mutate` change its catalog as an attacker would; the copy's
 * catalog file, block table and index are rewritten consistently (so only the change is hostile).
 */
export async function tampered(pub: string, out: string, mutate: (cat: Catalog, index: PublishedIndex) => void | Promise<void>): Promise<string> {
  await cp(pub, out, { recursive: true });
  const index = await readIndex(out);
  const file = new Uint8Array(await readFile(join(out, index.catalog.file)));
  // Rewritten plain (a published catalog may also be deflated, PublishedIndex.catalog.encoding).
  const cat = Catalog.load(index.catalog.encoding ? new Uint8Array(inflateRawSync(file)) : file, []);
  const table = new Uint8Array(await readFile(join(out, index.blocks.file)));
  await mutate(cat, index);
  const snapshot = cat.snapshot();
  const xxh64 = hash64Hex(snapshot);
  index.catalog = { file: catalogFile(xxh64), bytes: snapshot.length, xxh64, sha256: sha256Hex(snapshot) };
  await writeFile(join(out, index.catalog.file), snapshot);
  // Keep the published hashes of blocks that still exist; new ones get the hash of what mutate says.
  const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const hashes = new Map<number, Uint8Array>();
  for (let at = 0; at < table.length; at += 36) hashes.set(view.getUint32(at, true), table.subarray(at + 4, at + 36));
  for (const id of cat.blocks.keys()) if (!hashes.has(id)) hashes.set(id, sha256(new Uint8Array(0)));
  const newTable = encodeBlockHashes(hashes);
  index.blocks = { file: blocksFile(newTable), bytes: newTable.length, sha256: sha256Hex(newTable) };
  await writeFile(join(out, index.blocks.file), newTable);
  await writeIndex(out, index);
  return out;
}

/** A page file's name in a published folder. */
export async function pageFiles(pub: string): Promise<string[]> {
  return (await readdir(join(pub, 'pages'))).sort();
}

export type Behaviour = 'stall' | 'stall-sized' | 'drip' | 'endless';

/** Serves folder `root` over HTTP on 127.0.0.1; paths matching `misbehave` get the behaviour. */
export async function serve(root: string, misbehave?: { path: RegExp; how: Behaviour }): Promise<{ url: string; origin: string; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = [];
  const open = new Set<import('node:net').Socket>();
  const server: Server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
    requests.push(path);
    if (misbehave && misbehave.path.test(path)) {
      if (misbehave.how === 'stall-sized') {
        // The file's true length announced, one byte sent, then nothing.
        const size = (await readFile(join(root, path.replace(/^\/pub\//, '')))).length;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
        res.write(new Uint8Array(1));
        return;
      }
      if (misbehave.how === 'stall') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(new Uint8Array(1)); // headers and one byte, then nothing
        return;
      }
      if (misbehave.how === 'drip') {
        res.writeHead(200);
        const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(new Uint8Array(1))), 50);
        res.on('close', () => clearInterval(t));
        return;
      }
      // endless: a body far larger than anything the index allows, in 1 MiB chunks.
      res.writeHead(200);
      const chunk = new Uint8Array(1 << 20).fill(0x5a);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
      return;
    }
    try {
      const body = await readFile(join(root, path.replace(/^\/pub\//, '')));
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  server.on('connection', (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/pub/`,
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Every model of `store` exported, by name: what must not change when an import is refused. */
export async function exportsOf(store: TesseraStore): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of store.listModels()) out[name] = sha256Hex(await store.exportModel(name));
  return out;
}
