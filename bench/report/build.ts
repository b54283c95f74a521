/**
 * `npm run report [-- --out FILE]`: charts of the latest benchmark results (bench/results/*.json)
 * in one self-contained page, bench/report/index.html (vega, vega-lite and vega-embed inlined from
 * node_modules, so it opens offline from disk). A result that is missing, or whose shape changed,
 * shows as a note naming the command that makes it, never as an empty chart.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const results = join(here, '..', 'results');
const nodeModules = join(here, '..', '..', 'node_modules');

type Spec = Record<string, unknown>;
interface Chart {
  id: string;
  title: string;
  /** What the chart shows and how to read it. */
  caption: string;
  bench: string;
  spec: (r: any) => Spec;
}

const pct = (x: number) => +(x * 100).toFixed(2);

const CHARTS: Chart[] = [
  {
    id: 'dedup',
    title: 'Dedup: bytes saved against the accuracy bound',
    caption: "Each point is one dedup method on one zoo family (MLP, CNN, ViT): the share of logical bytes it saves and the worst accuracy it costs on a model's own held-out task (points). Up and left is better.",
    bench: 'dedup',
    spec: (r) => ({
      data: { values: (r.families ?? [{ family: 'zoo', methods: r.methods }]).flatMap((f: any) => f.methods.map((m: any) => ({ method: m.method, family: f.family, saved: pct(m.savedBytes / m.logicalBytes), drop: m.accuracyDrop }))) },
      mark: { type: 'point', filled: true, size: 100 },
      encoding: {
        x: { field: 'drop', type: 'quantitative', title: 'accuracy drop (points)' },
        y: { field: 'saved', type: 'quantitative', title: 'bytes saved (% of logical)', scale: { zero: true } },
        color: { field: 'method', type: 'nominal' },
        shape: { field: 'family', type: 'nominal' },
        tooltip: [{ field: 'family' }, { field: 'method' }, { field: 'saved' }, { field: 'drop' }],
      },
      width: 520,
      height: 300,
    }),
  },
  {
    id: 'serving',
    title: 'Serving: throughput and p99 latency against the memory budget',
    caption: "Many models under one budget (fraction of the family's .onnx bytes), one panel per family (PP-OCRv4 rec variants, the zoo's MLP, CNN and ViT, the 1 GB scale run): tessera against onnxruntime-node sessions made from the files, kept with LRU by bytes (baseline), and the same on onnxruntime-web (baseline-web). Runs that failed are left out.",
    bench: 'serving',
    spec: (r) => {
      // serving.json lists one row per (system, budget) run; older results named them `systems`.
      const runs: any[] = r.rows ?? r.systems ?? [];
      const values = runs.filter((s) => !s.error && s.throughput > 0).map((s) => ({ system: s.system ?? s.name, family: s.family, budget: s.budgetFraction, throughput: s.throughput, p99: s.p99Ms }));
      const panel = (field: string, title: string, log: boolean) => ({
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'budget', type: 'quantitative', title: 'budget (fraction of model bytes)', axis: { format: '%' } },
          y: { field, type: 'quantitative', title, scale: log ? { type: 'log' } : {} },
          color: { field: 'system', type: 'nominal' },
        },
        width: 140,
        height: 150,
      });
      // Families differ by 50x in requests/s (MLP vs PP-OCR): each panel has its own y scale.
      const facet = (spec: Spec) => ({ facet: { field: 'family', type: 'nominal', title: null }, columns: 5, resolve: { scale: { y: 'independent' } }, spec });
      return {
        data: { values },
        vconcat: [facet(panel('throughput', 'requests/s', false)), facet(panel('p99', 'p99 latency (ms, log)', true))],
      };
    },
  },
  {
    id: 'pool',
    title: 'Buffer pool: hit ratio per eviction policy',
    caption: 'Page hit ratio against the pool budget (fraction of distinct page bytes), per request stream; "shared" streams run over a family that shares pages, "unshared" over the same models with nothing shared.',
    bench: 'pool',
    spec: (r) => {
      const values = [];
      for (const [trace, t] of Object.entries<any>(r.traces)) {
        for (const [policy, byBudget] of Object.entries<any>(t.hitRatio)) {
          for (const [budget, hit] of Object.entries<any>(byBudget)) values.push({ trace, policy, budget: Number(budget), hit });
        }
      }
      return {
        data: { values },
        facet: { field: 'trace', type: 'nominal', title: null },
        columns: 3,
        spec: {
          mark: { type: 'line', point: { size: 20 } },
          encoding: {
            x: { field: 'budget', type: 'quantitative', title: 'budget', axis: { format: '%' } },
            y: { field: 'hit', type: 'quantitative', title: 'hit ratio', scale: { zero: false } },
            color: { field: 'policy', type: 'nominal' },
            strokeWidth: { condition: { test: "datum.policy === 'dedup'", value: 3 }, value: 1.2 },
          },
          width: 200,
          height: 150,
        },
      };
    },
  },
  {
    id: 'packing',
    title: 'Page packing: pages per algorithm',
    caption: "Pages each packing algorithm needs under netsDB's rule on netsDB's real inputs and the zoo; the black tick is the lower bound (no layout needs fewer). Lower is better.",
    bench: 'packing',
    spec: (r) => {
      const values = [];
      for (const c of r.cases) for (const [algorithm, pages] of Object.entries<any>(c.pages)) values.push({ case: c.name, algorithm, pages, lowerBound: c.lowerBound });
      return {
        data: { values },
        facet: { field: 'case', type: 'nominal', title: null },
        columns: 3,
        resolve: { scale: { y: 'independent' } },
        spec: {
          layer: [
            { mark: 'bar', encoding: { x: { field: 'algorithm', type: 'nominal', title: null, sort: null }, y: { field: 'pages', type: 'quantitative', title: 'pages' }, color: { field: 'algorithm', type: 'nominal', legend: null } } },
            { mark: { type: 'rule', color: 'black', strokeWidth: 2 }, encoding: { y: { aggregate: 'min', field: 'lowerBound', type: 'quantitative' } } },
          ],
          width: 200,
          height: 150,
        },
      };
    },
  },
  {
    id: 'browser',
    title: 'In the browser: bytes fetched and stored, time to ready',
    caption: 'Each zoo family (MLP, CNN, ViT) loaded into Chromium: tessera importing published pages into IndexedDB (as added, and published after lossless dedup) against whole .onnx files kept in the Cache API. Bytes as a share of the whole files; times are medians of the runs, import = every model stored. Lower is better.',
    bench: 'browser',
    spec: (r) => {
      const systems: [string, string][] = [['tessera', 'tessera'], ['tessera lossless', 'tesseraLossless'], ['whole files (Cache API)', 'cacheApi']];
      const rows = r.families.flatMap((f: any) => systems.map(([system, key]) => ({ family: f.family, system, s: f[key], whole: f.cacheApi.bytesFetched })));
      const bytes = rows.flatMap(({ family, system, s, whole }: any) => [{ family, system, what: 'fetched', value: pct(s.bytesFetched / whole) }, { family, system, what: 'stored', value: pct(s.bytesStored / whole) }]);
      const times = rows.flatMap(({ family, system, s }: any) => [{ family, system, what: 'import', value: s.importMs }, { family, system, what: 'first inference', value: s.firstInferenceMs }]);
      const bars = (values: unknown[], title: string) => ({
        data: { values },
        facet: { row: { field: 'family', type: 'nominal', title: null } },
        spec: {
          mark: 'bar',
          encoding: {
            y: { field: 'system', type: 'nominal', title: null },
            yOffset: { field: 'what' },
            x: { field: 'value', type: 'quantitative', title },
            color: { field: 'what', type: 'nominal', title: null },
          },
          width: 240,
          height: 90,
        },
        resolve: { scale: { x: 'independent' } },
      });
      return { hconcat: [bars(bytes, '% of the whole files'), bars(times, 'ms')], resolve: { scale: { color: 'independent' } } };
    },
  },
];

async function loadResult(bench: string): Promise<{ result: any; file: string } | null> {
  for (const name of [`${bench}.json`, `${bench}.quick.json`]) {
    const file = join(results, name);
    if (existsSync(file)) return { result: JSON.parse(await readFile(file, 'utf8')), file: `bench/results/${name}` };
  }
  return null;
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export async function buildReport(out: string): Promise<{ charts: string[]; missing: string[] }> {
  const sections: string[] = [];
  const specs: Record<string, Spec> = {};
  const missing: string[] = [];
  for (const c of CHARTS) {
    const loaded = await loadResult(c.bench);
    let note = '';
    if (!loaded) note = `No results yet: run <code>npm run bench -- ${c.bench}</code>.`;
    else {
      try {
        specs[c.id] = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', ...c.spec(loaded.result) };
      } catch (e) {
        note = `${escape(loaded.file)} does not have the fields this chart reads (${escape((e as Error).message)}): rerun <code>npm run bench -- ${c.bench}</code>, or update bench/report/build.ts.`;
      }
    }
    if (note) missing.push(c.id);
    const source = loaded ? `${escape(loaded.file)}, ${escape(String(loaded.result.date ?? ''))}${loaded.result.quick ? ' (quick run)' : ''}` : '';
    sections.push(`<section><h2>${escape(c.title)}</h2><p>${escape(c.caption)}</p>${note ? `<p class="note">${note}</p>` : `<div class="chart" id="chart-${c.id}"></div><p class="src">${source} · <code>npm run bench -- ${c.bench}</code></p>`}</section>`);
  }
  const lib = await Promise.all(['vega/build/vega.min.js', 'vega-lite/build/vega-lite.min.js', 'vega-embed/build/vega-embed.min.js'].map((p) => readFile(join(nodeModules, p), 'utf8')));
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tessera benchmarks</title>
<style>body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}h2{margin-top:2em;font-size:1.15em}.note{color:#a33}.src{color:#777;font-size:12px}code{font-size:12px}</style>
${lib.map((s) => `<script>${s.replaceAll('</script', '<\\/script')}</script>`).join('\n')}
</head><body>
<h1>tessera benchmarks</h1>
<p>Charts of the latest results in <code>bench/results/</code>, drawn by <code>npm run report</code>. Figures and how each is measured: <code>docs/benchmarks.md</code>.</p>
${sections.join('\n')}
<script>
const specs = ${JSON.stringify(specs).replaceAll('</', '<\\/')};
window.chartStatus = {};
window.chartsDone = Promise.all(Object.entries(specs).map(([id, spec]) =>
  vegaEmbed('#chart-' + id, spec, { renderer: 'svg', actions: false })
    .then(() => { window.chartStatus[id] = 'ok'; })
    .catch((e) => { window.chartStatus[id] = 'error: ' + e.message; document.getElementById('chart-' + id).textContent = 'chart failed: ' + e.message; })));
</script>
</body></html>
`;
  await writeFile(out, html);
  return { charts: Object.keys(specs), missing };
}

if (process.argv[1] && import.meta.url === (await import('node:url')).pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf('--out');
  const out = at > 0 ? process.argv[at + 1] : join(here, 'index.html');
  const { charts, missing } = await buildReport(out);
  process.stdout.write(`wrote ${out}: ${charts.length} charts${missing.length ? `; no data for ${missing.join(', ')}` : ''}\n`);
}
