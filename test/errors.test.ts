/**
 * Error codes (issue 11, item 5): every code is raised, through the public API, by the class
 * that owns it. RAISE is typed over every code, so a new code without a raiser here does not
 * type-check, and a code no code path raises any more cannot stay. The sources raise codes only
 * through the classes of src/errors.ts (no `new TesseraError(...)`, no error classes elsewhere).
 */
import 'fake-indexeddb/auto';
import { IDBObjectStore as FDBObjectStore } from 'fake-indexeddb';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ERROR_CLASS, ERROR_CODES, TesseraError, type ErrorCode } from '../src/errors.ts';
import * as errors from '../src/errors.ts';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { openStore, externalDataReader } from '../src/node/open.ts';
import { folderSource } from '../src/node/publish.ts';
import { IdbPageStore } from '../src/browser/idb-store.ts';
import { Catalog } from '../src/catalog/catalog.ts';
import { planPages } from '../src/pack/plan.ts';
import { Server } from '../src/runtime/server.ts';
import { openSession } from '../src/runtime/store-session.ts';
import { instantiateKernel } from '../src/kernels/wasm-runtime.ts';
import { encode, graph, mlp, modelProto, node, tensorProto, valueInfo, FLOAT } from '../tools/fixtures/onnx-builders.ts';
import { tempDir } from './helpers.ts';

const TILE = { rows: 16, cols: 16 };
const small = () => mlp({ inputDim: 16, hidden: 8, outputDim: 4, seed: 1 });

async function memoryStoreWith(name = 'm'): Promise<TesseraStore> {
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: 1 << 14 }), { tile: TILE });
  await store.add(name, small());
  return store;
}

async function inTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await tempDir();
  try {
    return await fn(dir.path);
  } finally {
    await dir.cleanup();
  }
}

/** A wasm module whose exported `run` calls the `env.abort` import, as AssemblyScript does on a failed assertion. */
const ABORTING_WASM = Buffer.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x0b, 0x02, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x00, 0x60, 0x00, 0x00, // types
  0x02, 0x0d, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x05, 0x61, 0x62, 0x6f, 0x72, 0x74, 0x00, 0x00, // import env.abort
  0x03, 0x02, 0x01, 0x01, // one function of type 1
  0x05, 0x03, 0x01, 0x00, 0x01, // one memory page
  0x07, 0x10, 0x02, 0x03, 0x72, 0x75, 0x6e, 0x00, 0x01, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, // exports
  0x0a, 0x0e, 0x01, 0x0c, 0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x01, 0x41, 0x02, 0x10, 0x00, 0x0b, // run: abort(0, 0, 1, 2)
]).toString('base64');

/** One way to raise each code through the API. */
const RAISE: Record<ErrorCode, () => Promise<unknown>> = {
  ONNX_MALFORMED: async () => (await memoryStoreWith()).add('bad', new Uint8Array([1, 2, 3, 4, 5])),
  ONNX_UNSUPPORTED_DTYPE: async () => {
    const t = tensorProto('s', 'float32', [2], new Uint8Array(8));
    t.dataType = 17; // FLOAT8E4M3FN: a packing byte-addressed blocks do not hold
    return (await memoryStoreWith()).add('strings', encode(modelProto(graph({ nodes: [], inputs: [], outputs: [], initializers: [t] }))));
  },
  ONNX_EXTERNAL_DATA: () => externalDataReader('/tmp/model.onnx')('../outside.bin'),
  MODEL_NOT_FOUND: async () => (await memoryStoreWith()).exportModel('missing'),
  MODEL_EXISTS: async () => (await memoryStoreWith('m')).add('m', small()),
  INVALID_NAME: async () => (await memoryStoreWith()).add('../escape', small()),
  NOT_A_STORE: () => inTemp(async (dir) => {
    await writeFile(join(dir, 'file'), 'not a store');
    return openStore(join(dir, 'file'));
  }),
  STORE_LOCKED: () => inTemp(async (dir) => {
    const first = await openStore(join(dir, 's'), { create: true });
    try {
      return await openStore(join(dir, 's'));
    } finally {
      await first.close();
    }
  }),
  STORE_CLOSED: async () => {
    const store = await memoryStoreWith();
    await store.close();
    return store.add('after', small());
  },
  STORE_UNAVAILABLE: () => openStore('postgres://tessera@127.0.0.1:1/tessera'),
  IO_ERROR: () => inTemp(async (dir) => folderSource(dir).get('tessera-index.json')),
  PAGE_CORRUPT: () => inTemp(async (dir) => {
    const path = join(dir, 's');
    const store = await openStore(path, { create: true, tile: TILE, pageSize: 1 << 14 });
    await store.add('m', small());
    await store.close();
    const bytes = await readFile(join(path, 'pages.dat'));
    bytes[40] ^= 0x01;
    await writeFile(join(path, 'pages.dat'), bytes);
    const reopened = await openStore(path, { readOnly: true });
    try {
      return await reopened.exportModel('m');
    } finally {
      await reopened.close();
    }
  }),
  CATALOG_CORRUPT: async () => Catalog.load(null, [new Uint8Array([0xc1, 0xc1, 0xc1])]),
  INVALID_ARGUMENT: async () => Server.create(await memoryStoreWith(), { budgetBytes: -1 }),
  BUDGET_EXCEEDED: async () => Server.create(await memoryStoreWith(), { budgetBytes: 1000 }),
  QUOTA_EXCEEDED: async () => {
    const store = await TesseraStore.open(await IdbPageStore.open(`errors-${Date.now()}`, { pageSize: 1 << 14 }), { tile: TILE });
    const put = FDBObjectStore.prototype.put;
    FDBObjectStore.prototype.put = function () {
      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    };
    try {
      return await store.add('m', small());
    } finally {
      FDBObjectStore.prototype.put = put;
    }
  },
  INVALID_FEEDS: async () => (await openSession(await memoryStoreWith(), 'm')).run({ nope: { data: [1], dims: [1] } }),
  INFERENCE_FAILED: async () => {
    const store = await memoryStoreWith();
    const g = graph({ nodes: [node('NoSuchOperator', ['X'], ['Y'])], inputs: [valueInfo('X', FLOAT, [1])], outputs: [valueInfo('Y', FLOAT, [1])] });
    await store.add('unknown-op', encode(modelProto(g)));
    return openSession(store, 'unknown-op');
  },
  PACKING_INPUT: async () => planPages([], [], 4096),
  INTERNAL: async () => (await instantiateKernel<{ run(): void }>('probe', ABORTING_WASM)).exports.run(),
};

for (const [code, raise] of Object.entries(RAISE) as [ErrorCode, () => Promise<unknown>][]) {
  test(`${code} is raised, by ${ERROR_CLASS[code]}`, async () => {
    let err: unknown;
    try {
      await raise();
    } catch (e) {
      err = e;
    }
    assert.ok(err, `${code}: nothing was thrown`);
    assert.instance(err, TesseraError, `${code}: ${String(err)}`);
    assert.is((err as TesseraError).code, code, (err as Error).message);
    assert.instance(err, (errors as unknown as Record<string, new (...a: never[]) => Error>)[ERROR_CLASS[code]]);
    assert.ok((err as Error).message.length > 20, `${code}: the message says what to do: "${(err as Error).message}"`);
  });
}

test('every code belongs to exactly one class, and every class is in src/errors.ts', () => {
  const all = Object.values(ERROR_CODES).flat();
  assert.is(new Set(all).size, all.length);
  for (const cls of Object.keys(ERROR_CODES)) assert.type((errors as Record<string, unknown>)[cls], 'function', cls);
});

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (f.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('sources raise codes only through the classes of src/errors.ts', () => {
  const src = join(import.meta.dirname, '..', 'src');
  const problems: string[] = [];
  for (const file of sources(src)) {
    if (file === join(src, 'errors.ts')) continue;
    const text = readFileSync(file, 'utf8');
    if (/new TesseraError\s*[(<]/.test(text)) problems.push(`${file}: new TesseraError(...) (use the class that owns the code)`);
    if (/class \w+ extends (TesseraError|\w+Error)\b/.test(text) && !/extends (Error|TypeError)\b/.test(text)) problems.push(`${file}: an error class outside src/errors.ts`);
  }
  assert.equal(problems, []);
});

test.run();
