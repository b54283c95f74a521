/**
 * The layer order (issue 11, item 3): the table in the README's "Architecture" section is the
 * law; this test parses the imports of every file under src/ and fails on an edge it does not
 * allow. A module may import modules of lower layers only (never its own layer's other modules:
 * runtime and dedup sit side by side and neither imports the other). docs/design.md carries the
 * same table.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = join(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');

/**
 * Known back-edges, to be removed by their owners, each named `file -> module` with why. None
 * now: the last (dedup/evaluate.ts -> runtime/) went when the evaluator took a session factory.
 */
const KNOWN_BACK_EDGES = new Set<string>([]);

/** Module of a path under src/: its top folder (`store/`), or the file at the top (`core.ts`). */
function moduleOf(path: string): string {
  const rel = relative(SRC, path);
  const i = rel.indexOf('/');
  return i < 0 ? rel : rel.slice(0, i + 1);
}

/** Layers from the README's Architecture table: rows `| N name | `module`, ... | ... |`. */
function layerTable(markdown: string, where: string): Map<string, number> {
  const section = markdown.split(/^## /m).find((s) => s.startsWith('Architecture'));
  assert.ok(section, `${where} has no "## Architecture" section`);
  const layers = new Map<string, number>();
  for (const line of section!.split('\n')) {
    const row = /^\|\s*(\d+)\s[^|]*\|([^|]*)\|/.exec(line);
    if (!row) continue;
    for (const m of row[2].matchAll(/`([^`]+)`/g)) layers.set(m[1], Number(row[1]));
  }
  assert.ok(layers.size > 5, `${where}: the Architecture section has no layer table`);
  return layers;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (f.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative imports and re-exports of a file (static, dynamic, type-only alike). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s(?:[^'";]*?\sfrom\s)?['"](\.{1,2}\/[^'"]+)['"]/g)) out.push(m[1]);
  for (const m of text.matchAll(/import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g)) out.push(m[1]);
  return out;
}

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const LAYERS = layerTable(readme, 'README.md');

test('every module under src/ has a layer in the README table', () => {
  const modules = new Set(sourceFiles(SRC).map(moduleOf));
  const missing = [...modules].filter((m) => !LAYERS.has(m));
  assert.equal(missing, [], `add them to the README's Architecture table: ${missing.join(', ')}`);
});

test('imports under src/ only point down the layers', () => {
  const bad: string[] = [];
  const used = new Set<string>();
  for (const file of sourceFiles(SRC)) {
    const from = moduleOf(file);
    for (const spec of importsOf(file)) {
      const target = normalize(join(dirname(file), spec));
      if (!target.startsWith(SRC + '/')) continue; // package.json and the like
      const to = moduleOf(target);
      if (to === from) continue;
      const edge = `${relative(SRC, file)} -> ${to}`;
      if (LAYERS.get(to)! < LAYERS.get(from)!) continue;
      if (KNOWN_BACK_EDGES.has(edge)) {
        used.add(edge);
        continue;
      }
      bad.push(`${edge} (layer ${LAYERS.get(from)} imports layer ${LAYERS.get(to)})`);
    }
  }
  assert.equal(bad, []);
  const stale = [...KNOWN_BACK_EDGES].filter((e) => !used.has(e));
  assert.equal(stale, [], 'known back-edges that no longer exist: remove them from the allowance');
});

test('src/ never imports the tools (bench/, test/, demo/, build/)', () => {
  const bad: string[] = [];
  for (const file of sourceFiles(SRC)) {
    for (const spec of importsOf(file)) {
      const target = relative(ROOT, normalize(join(dirname(file), spec)));
      if (/^(bench|test|demo|build)\//.test(target)) bad.push(`${relative(SRC, file)} -> ${target}`);
    }
  }
  assert.equal(bad, []);
});

/**
 * test/ files that still import bench/: each is benchmark code the tests check (the zoo builder,
 * the baseline server, the report builder, the packing data), to move to tools/ with its owner.
 */
const KNOWN_TEST_TO_BENCH = new Set<string>([
  'bench/data/netsdb-page-packing.json', 'bench/lib/baseline-server.ts', 'bench/report/build.ts',
  'bench/zoo/build.ts', 'bench/zoo/cnn.ts', 'bench/zoo/family.ts', 'bench/zoo/kernels.ts', 'bench/zoo/nn.ts', 'bench/zoo/onnx-export.ts',
  'bench/zoo/onnx-graph.ts', 'bench/zoo/tasks.ts', 'bench/zoo/train.ts', 'bench/zoo/vit.ts',
]);

test('bench/ and test/ never import each other; what both use lives in tools/, which imports neither', () => {
  const bad: string[] = [];
  const edges = (from: string, forbidden: RegExp, allowed: Set<string> = new Set()) => {
    for (const file of sourceFiles(join(ROOT, from))) {
      for (const spec of importsOf(file)) {
        const target = relative(ROOT, normalize(join(dirname(file), spec)));
        if (forbidden.test(target) && !allowed.has(target)) bad.push(`${relative(ROOT, file)} -> ${target}`);
      }
    }
  };
  edges('bench', /^test\//);
  edges('test', /^bench\//, KNOWN_TEST_TO_BENCH);
  edges('tools', /^(test|bench)\//);
  assert.equal(bad, []);
});

test('core code is isomorphic: node: modules only in node/ and cli/', () => {
  const bad: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const mod = moduleOf(file);
    if (mod === 'node/' || mod === 'cli/') continue;
    if (/(?:from\s+|import\(\s*|require\(\s*)['"]node:/.test(readFileSync(file, 'utf8'))) bad.push(relative(SRC, file));
  }
  assert.equal(bad, []);
});

/** The code of a file with its comments blanked (a `.backend` in a comment is prose, not a read). */
function codeOf(file: string): string {
  return readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

/** Reads of a store's raw backend (`x.backend`) in some code. */
const backendReads = (code: string): string[] => [...code.matchAll(/[\w$)\]]\s*\??\.\s*backend\b/g)].map((m) => m[0]);

test('nothing outside src/store/ reads a store\'s raw backend or live catalog state', async () => {
  // The store's public face is `catalog` (read-only), `blockSource()`, `kind`, `commitStamp()`
  // and `refresh()`; `backend` stays for tests that reopen a store through their own handle.
  const bad: string[] = [];
  for (const file of sourceFiles(SRC)) {
    if (moduleOf(file) === 'store/') continue;
    for (const read of backendReads(codeOf(file))) bad.push(`${relative(SRC, file)}: ${read}`);
  }
  assert.equal(bad, [], 'use the store\'s public API (catalog, blockSource(), kind, commitStamp(), refresh())');
  const { TesseraStore } = await import('../src/store/store.ts');
  const members = Object.getOwnPropertyNames(TesseraStore.prototype);
  assert.not.ok(members.includes('state'), 'TesseraStore hands out no live catalog state');
  for (const m of ['catalog', 'kind', 'commitStamp', 'refresh', 'blockSource']) assert.ok(members.includes(m), `TesseraStore.${m}`);
  // The scan itself finds the reads it is meant to forbid.
  assert.equal(backendReads('const k = store.backend.kind; this.store?.backend; // x'), ['e.backend', 'e?.backend']);
  assert.equal(backendReads(codeOf(join(SRC, 'store', 'store.ts'))).length > 0, true, 'store.ts itself reads its backend');
});

test('the test catches an edge that points up', () => {
  // store (layer 4) importing runtime (layer 5) is exactly what the order forbids.
  assert.ok(LAYERS.get('runtime/')! > LAYERS.get('store/')!);
  assert.ok(LAYERS.get('dedup/') === LAYERS.get('runtime/'), 'dedup and runtime sit side by side');
  assert.equal(importsOf(join(SRC, 'core.ts')).filter((s) => s.includes('node/') || s.includes('browser/')), [], 'core.ts stays isomorphic');
});

test('docs/design.md carries the same layer table', () => {
  const design = layerTable(readFileSync(join(ROOT, 'docs/design.md'), 'utf8'), 'docs/design.md');
  assert.equal([...design].sort(), [...LAYERS].sort());
});

test.run();
