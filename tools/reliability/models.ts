/**
 * Models the reliability harnesses store, and the one bit-exact check they all use.
 *
 * Models come from the test builders and are described by a small JSON-able spec, so a worker
 * process and the checking process build the same bytes. 'variant' models are fine-tunes of an
 * 'mlp' base (one tensor perturbed, the rest bit-identical): they share blocks and pages with
 * their base, which is what makes rm, dedup and compact interesting.
 */
import { assembleModel, parseModel } from '../../src/onnx/model.ts';
import type { TesseraStore } from '../../src/store/store.ts';
import { allDtypesModel, ifModel, loopModel, mlp } from '../fixtures/onnx-builders.ts';
import { familyMember } from '../fixtures/family.ts';
import { mulberry32 as rng } from '../../src/random.ts'; // the project's seeded PRNG (test/helpers.ts's rng)

/** Small tiles and the smallest page, so even small models span many pages (more crash points). */
export const TILE = { rows: 16, cols: 16 };
export const PAGE_SIZE = 4096;

export type ModelSpec =
  | { kind: 'mlp'; seed: number }
  | { kind: 'variant'; base: number; tensor: number; seed: number }
  | { kind: 'family'; backbone: number; head: number }
  | { kind: 'if' | 'loop' | 'dtypes'; seed: number };

const BASE = (seed: number) => mlp({ inputDim: 64, hidden: 48, outputDim: 16, seed });

const bytesCache = new Map<string, Promise<Uint8Array>>();

/** The ONNX bytes of a spec (deterministic; cached per process). */
export function modelBytes(spec: ModelSpec): Promise<Uint8Array> {
  const key = JSON.stringify(spec);
  let p = bytesCache.get(key);
  if (!p) {
    p = build(spec);
    bytesCache.set(key, p);
  }
  return p;
}

async function build(spec: ModelSpec): Promise<Uint8Array> {
  switch (spec.kind) {
    case 'mlp':
      return BASE(spec.seed);
    case 'variant': {
      const p = await parseModel(BASE(spec.base));
      const data = p.tensors.map((t) => t.data.slice());
      const f = new Float32Array(data[spec.tensor].buffer);
      const r = rng(spec.seed);
      for (let i = 0; i < f.length; i++) f[i] += (r() - 0.5) * 1e-3;
      return assembleModel(p.skeleton, data);
    }
    case 'family':
      return familyMember({ inputDim: 48, hidden: 40, outputDim: 8, backboneSeed: spec.backbone, headSeed: spec.head });
    case 'if':
      return ifModel(spec.seed);
    case 'loop':
      return loopModel(spec.seed);
    case 'dtypes':
      return allDtypesModel(spec.seed);
  }
}

/** A random spec drawn from few bases, so later models share blocks with earlier ones. */
export function randomSpec(r: () => number): ModelSpec {
  const x = r();
  const small = 1 + Math.floor(r() * 3);
  if (x < 0.25) return { kind: 'mlp', seed: small };
  if (x < 0.6) return { kind: 'variant', base: small, tensor: Math.floor(r() * 4), seed: Math.floor(r() * 1e6) };
  if (x < 0.85) return { kind: 'family', backbone: small, head: Math.floor(r() * 1e6) };
  const kinds = ['if', 'loop', 'dtypes'] as const;
  return { kind: kinds[Math.floor(r() * 3)], seed: Math.floor(r() * 1e6) };
}

const tensorCache = new Map<string, Promise<Uint8Array[]>>();

/** The source tensors of a spec, as parseModel gives them. */
export function sourceTensors(spec: ModelSpec): Promise<Uint8Array[]> {
  const key = JSON.stringify(spec);
  let p = tensorCache.get(key);
  if (!p) {
    p = modelBytes(spec).then(async (b) => (await parseModel(b)).tensors.map((t) => t.data));
    tensorCache.set(key, p);
  }
  return p;
}

/** Whether `name` reads back (from pages) bit-identical to `spec`'s source; read errors propagate. */
export async function modelMatches(store: TesseraStore, name: string, spec: ModelSpec): Promise<boolean> {
  const src = await sourceTensors(spec);
  const got = await store.tensorData(name);
  return got.length === src.length && got.every((t, i) => sameBytes(t, src[i]));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

/**
 * Problems with `store` holding exactly `expected`: model set, and every model's tensors (read
 * from pages) and exported ONNX bit-identical to the source. Empty when all is well.
 */
export async function checkModels(store: TesseraStore, expected: ReadonlyMap<string, ModelSpec>, opts: { exportToo?: boolean } = {}): Promise<string[]> {
  const problems: string[] = [];
  const listed = store.listModels().sort();
  const want = [...expected.keys()].sort();
  if (listed.join('\n') !== want.join('\n')) problems.push(`models [${listed.join(', ')}], expected [${want.join(', ')}]`);
  for (const [name, spec] of expected) {
    if (!store.has(name)) continue;
    const src = await sourceTensors(spec);
    const got = await store.tensorData(name);
    if (got.length !== src.length || got.some((t, i) => !sameBytes(t, src[i]))) problems.push(`model ${name}: tensors differ from the source`);
    if (opts.exportToo) {
      const exported = (await parseModel(await store.exportModel(name))).tensors.map((t) => t.data);
      if (exported.length !== src.length || exported.some((t, i) => !sameBytes(t, src[i]))) problems.push(`model ${name}: export differs from the source`);
    }
  }
  return problems;
}
