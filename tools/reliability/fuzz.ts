/**
 * Property-based fuzzing (fast-check) of everything that reads untrusted bytes: the ONNX reader
 * (`parseModel`) and the store's reading paths (catalog records and snapshots, sealed pages).
 * Every case must end in a value or a TesseraError — never another exception, never a hang
 * (each case is timed), never an unbounded allocation (RSS is sampled after every case).
 */
import fc from 'fast-check';
import { create, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, StringStringEntryProtoSchema, TensorProto_DataLocation, TensorProtoSchema, TensorProto_DataType } from 'onnx-buf';
import { parseModel } from '../../src/onnx/model.ts';
import { Catalog, decodeRecord } from '../../src/catalog/catalog.ts';
import { openPage, sealPage } from '../../src/store/page-format.ts';
import { MemoryPageStore } from '../../src/store/memory-store.ts';
import { TesseraStore } from '../../src/store/store.ts';
import { TesseraError } from '../../src/errors.ts';
import { allDtypesModel, constantModel, decode, floatTensor, functionModel, graph, ifModel, loopModel, mlp, modelProto, typedFieldsModel, valueInfo, FLOAT, withExternalData } from '../fixtures/onnx-builders.ts';
import { TILE } from './models.ts';

export interface FuzzFigures {
  cases: number;
  byTarget: Record<string, { cases: number; ok: number; errors: Record<string, number>; maxMs: number }>;
  /** Largest RSS growth over the baseline seen after any case, in MiB. */
  peakRssGrowthMiB: number;
  failures: string[];
  seconds: number;
}

const SEEDS = [
  mlp({ inputDim: 8, hidden: 6, outputDim: 3, seed: 1 }),
  mlp({ inputDim: 8, hidden: 6, outputDim: 3, seed: 2, encoding: 'typed' }),
  ifModel(1),
  loopModel(2),
  constantModel(3),
  typedFieldsModel(4),
  allDtypesModel(5),
  functionModel(6),
];

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** Raw protobuf: the key and length of length-delimited field `num` holding `length` bytes. */
const lenHead = (num: number, length: number) => [...varint((num << 3) | 2), ...varint(length)];

/**
 * A model whose graph nests `depth` If subgraphs, as raw protobuf (the encoder recurses too).
 * Each level is a prefix before the level inside it, so the bytes are the prefixes, outermost
 * first, then the innermost graph: built in time linear in depth.
 */
function nestedModel(depth: number): Uint8Array {
  const te = new TextEncoder();
  const leaf = toBinary(TensorProtoSchema, floatTensor('w', [2], [1, 2]));
  const name = [...lenHead(1, 11), ...te.encode('then_branch')];
  const op = [...lenHead(4, 2), ...te.encode('If')];
  const prefixes: number[][] = [];
  let inner = [...lenHead(5, leaf.length)].length + leaf.length;
  const leafHead = lenHead(5, leaf.length);
  for (let i = 0; i < depth; i++) {
    // GraphProto { node(1) { op_type(4), attribute(5) { name(1), g(6) = inner } } }
    const attrLen = name.length + lenHead(6, inner).length + inner;
    const nodeLen = op.length + lenHead(5, attrLen).length + attrLen;
    const prefix = [...lenHead(1, nodeLen), ...op, ...lenHead(5, attrLen), ...name, ...lenHead(6, inner)];
    prefixes.push(prefix);
    inner += prefix.length;
  }
  const head = [8, 8, ...lenHead(7, inner)];
  const tail = [...lenHead(8, 2), 16, 17];
  const out = new Uint8Array(head.length + inner + tail.length);
  let at = 0;
  out.set(head, at);
  at += head.length;
  for (let i = prefixes.length - 1; i >= 0; i--) {
    out.set(prefixes[i], at);
    at += prefixes[i].length;
  }
  out.set(leafHead, at);
  at += leafHead.length;
  out.set(leaf, at);
  at += leaf.length;
  out.set(tail, at);
  return out;
}

/** A model with one initializer of arbitrary dims, data size and (optionally) external data claims. */
function absurdModel(dims: bigint[], dataBytes: number, dataType: number, external: { offset: string; length: string; location: string } | null): Uint8Array {
  const t = create(TensorProtoSchema, { name: 'W', dataType, dims, rawData: new Uint8Array(dataBytes) });
  if (external) {
    t.dataLocation = TensorProto_DataLocation.EXTERNAL;
    t.rawData = new Uint8Array(0);
    t.externalData = Object.entries(external).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value }));
  }
  return toBinary(ModelProtoSchema, modelProto(graph({ nodes: [], inputs: [valueInfo('X', FLOAT, [1])], outputs: [valueInfo('X', FLOAT, [1])], initializers: [t] })));
}

interface Target {
  name: string;
  arb: fc.Arbitrary<() => Promise<unknown>>;
}

function mutate(base: Uint8Array, edits: { pos: number; kind: number; value: number }[]): Uint8Array {
  let b = base.slice();
  for (const e of edits) {
    const p = e.pos % Math.max(1, b.length);
    if (e.kind === 0) b[p] = e.value;
    else if (e.kind === 1) b[p] ^= 1 << (e.value & 7);
    else if (e.kind === 2) b = new Uint8Array([...b.subarray(0, p), e.value, ...b.subarray(p)]);
    else b = new Uint8Array([...b.subarray(0, p), ...b.subarray(p + 1)]);
  }
  return b;
}

const editsArb = fc.array(fc.record({ pos: fc.nat(), kind: fc.integer({ min: 0, max: 3 }), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 });

/** The catalog of a small store (snapshot + records), as the reading paths see it. */
async function catalogBytes(): Promise<{ snapshot: Uint8Array; records: Uint8Array[]; page: Uint8Array }> {
  const backend = new MemoryPageStore({ pageSize: 4096 });
  const store = await TesseraStore.open(backend, { tile: TILE });
  await store.add('a', SEEDS[0]);
  await store.add('b', SEEDS[2]);
  await store.checkpoint();
  await store.add('c', SEEDS[6]);
  await store.remove('b');
  const { snapshot, records } = await backend.readCatalog();
  return { snapshot: snapshot!, records, page: sealPage(0, 1, await backend.readPage(0)) };
}

async function targets(): Promise<Target[]> {
  const cat = await catalogBytes();
  const seed = fc.integer({ min: 0, max: SEEDS.length - 1 });
  const readExternal = async (loc: string) => (loc === 'model.data' ? new Uint8Array(64) : Promise.reject(new Error('no such file')));
  return [
    { name: 'parseModel: random bytes', arb: fc.uint8Array({ maxLength: 4096 }).map((b) => () => parseModel(b)) },
    { name: 'parseModel: truncated real models', arb: fc.tuple(seed, fc.double({ min: 0, max: 1, noNaN: true })).map(([i, f]) => () => parseModel(SEEDS[i].subarray(0, Math.floor(SEEDS[i].length * f)))) },
    { name: 'parseModel: mutated real models', arb: fc.tuple(seed, editsArb).map(([i, e]) => () => parseModel(mutate(SEEDS[i], e), { readExternal })) },
    {
      name: 'parseModel: absurd dims and huge declared sizes',
      arb: fc
        .tuple(
          fc.array(fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.bigInt({ min: 0n, max: 70000n })), { maxLength: 6 }),
          fc.integer({ min: 0, max: 4096 }),
          fc.oneof(fc.constant(TensorProto_DataType.FLOAT), fc.integer({ min: 0, max: 40 })),
          fc.option(fc.record({ offset: fc.oneof(fc.constant('0'), fc.string(), fc.bigInt({ min: 0n, max: 2n ** 70n }).map(String)), length: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 70n }).map(String), fc.string()), location: fc.constantFrom('model.data', '../x', '/etc/passwd', 'a/../../b', 'C:\\x', 'missing.bin', '') })),
        )
        .map(([dims, n, dt, ext]) => () => parseModel(absurdModel(dims, n, dt, ext), { readExternal })),
    },
    {
      name: 'parseModel: external data with mutated locations',
      arb: fc.tuple(seed, editsArb).map(([i, e]) => () => {
        const { model, files } = withExternalData(SEEDS[i], { minBytes: 1 });
        return parseModel(mutate(model, e), { readExternal: async (loc) => files.get(loc) ?? Promise.reject(new Error('no such file')) });
      }),
    },
    { name: 'parseModel: deeply nested subgraphs', arb: fc.integer({ min: 1, max: 3000 }).map((d) => () => parseModel(nestedModel(d))) },
    { name: 'catalog: random record bytes', arb: fc.uint8Array({ maxLength: 2048 }).map((b) => async () => decodeRecord(b)) },
    {
      name: 'catalog: mutated snapshot and records',
      arb: fc.tuple(fc.integer({ min: -1, max: cat.records.length - 1 }), editsArb).map(([which, e]) => async () => {
        const snap = which === -1 ? mutate(cat.snapshot, e) : cat.snapshot;
        const recs = cat.records.map((r, i) => (i === which ? mutate(r, e) : r));
        return Catalog.load(snap, recs);
      }),
    },
    { name: 'page: mutated sealed pages', arb: fc.tuple(editsArb, fc.option(fc.nat())).map(([e, ep]) => async () => openPage(0, mutate(cat.page, e), 4096, ep ?? undefined)) },
    { name: 'page: random bytes', arb: fc.tuple(fc.uint8Array({ maxLength: 256 }), fc.nat({ max: 5 })).map(([b, id]) => async () => openPage(id, b, 4096)) },
  ];
}

export async function runFuzz(opts: { seed: number; casesPerTarget: number; caseTimeoutMs?: number }): Promise<FuzzFigures> {
  const t0 = performance.now();
  const limitMs = opts.caseTimeoutMs ?? 5000;
  const figures: FuzzFigures = { cases: 0, byTarget: {}, peakRssGrowthMiB: 0, failures: [], seconds: 0 };
  const list = await targets();
  const baseline = process.memoryUsage().rss;
  for (const [k, target] of list.entries()) {
    let lastError = '';
    const stats = (figures.byTarget[target.name] = { cases: 0, ok: 0, errors: {} as Record<string, number>, maxMs: 0 });
    const result = await fc.check(
      fc.asyncProperty(target.arb, async (run) => {
        stats.cases++;
        const start = performance.now();
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([run(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`hang: over ${limitMs} ms`)), limitMs)))]);
          stats.ok++;
        } catch (e) {
          if (!(e instanceof TesseraError)) {
            lastError = `${(e as Error)?.stack?.split('\n').slice(0, 4).join(' | ') ?? e}`;
            throw e;
          }
          stats.errors[e.code] = (stats.errors[e.code] ?? 0) + 1;
        } finally {
          clearTimeout(timer);
          stats.maxMs = Math.max(stats.maxMs, performance.now() - start);
          figures.peakRssGrowthMiB = Math.max(figures.peakRssGrowthMiB, (process.memoryUsage().rss - baseline) / 2 ** 20);
        }
      }),
      { numRuns: opts.casesPerTarget, seed: opts.seed + k, endOnFailure: true },
    );
    figures.cases += stats.cases;
    if (result.failed) figures.failures.push(`${target.name} (seed ${opts.seed + k}, case ${stats.cases}): ${lastError || String(result.errorInstance)}`);
  }
  figures.seconds = (performance.now() - t0) / 1000;
  return figures;
}
