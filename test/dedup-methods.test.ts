/**
 * The dedup methods registry: names say what each method is, the literature's names are aliases,
 * an unknown name is a typed error, every method runs through the same planner, and dedup
 * evaluates through the session factory it is given (it imports no runtime module).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { DEDUP_METHODS, DEFAULT_DEDUP_METHOD, dedupMethod, dedupModels } from '../src/dedup/planner.ts';
import { createEvaluator, syntheticEvalSet, type SessionFactory } from '../src/dedup/evaluate.ts';
import { weightsSessionFactory } from '../src/runtime/store-session.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { perturbed } from '../tools/fixtures/family.ts';
import { codeOf } from './helpers.ts';

test('registry: descriptive names, aliases for the literature, a typed error otherwise', async () => {
  assert.equal(Object.keys(DEDUP_METHODS).sort(), ['exact', 'minhash-stepwise', 'pstable-stepwise', 'simhash-l2-bisect']);
  assert.is(DEFAULT_DEDUP_METHOD, 'simhash-l2-bisect');
  assert.is(dedupMethod('netsdb').name, 'pstable-stepwise');
  assert.is(dedupMethod('mistique').name, 'minhash-stepwise');
  assert.is(dedupMethod('ours').name, 'simhash-l2-bisect');
  for (const m of Object.values(DEDUP_METHODS)) assert.ok(m.summary.length > 20, m.name);
  assert.is(await codeOf(() => dedupMethod('nearest')), 'INVALID_ARGUMENT');
});

test('every method runs through the planner on the session factory it is given; exact changes nothing', async () => {
  const base = mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 1 });
  const ft = await perturbed(base, { seed: 3, scale: 0.01 });
  const real = weightsSessionFactory();
  for (const name of Object.keys(DEDUP_METHODS)) {
    const store = await TesseraStore.open(new MemoryPageStore({ pageSize: 1 << 16 }), { tile: { rows: 16, cols: 16 } });
    await store.add('base', base);
    await store.add('ft', ft);
    let opened = 0;
    const counting: SessionFactory = (model, weights) => { opened++; return real(model, weights); };
    const [r] = await dedupModels(store, { method: name, maxDrop: 0.05, models: ['ft'], evaluator: (m, w) => createEvaluator(m, w, syntheticEvalSet(m, 32), counting) });
    assert.is(r.method, name);
    assert.is(opened, r.evaluations, `${name}: ${opened} sessions for ${r.evaluations} evaluations`);
    if (name === 'exact') assert.equal([r.blocksReplaced, r.evaluations], [0, 0], 'exact tries nothing, so evaluates nothing');
    else assert.ok(r.blocksReplaced > 0 && opened > 0, `${name} replaced nothing`);
    await store.close();
  }
});

test('dedup imports no runtime module (it evaluates through a session factory)', () => {
  const dir = join(import.meta.dirname, '..', 'src', 'dedup');
  const files = readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 8);
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    assert.not.match(text, /from '[^']*runtime\//, `${f} imports the runtime`);
  }
});

test.run();
