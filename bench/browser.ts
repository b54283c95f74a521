/**
 * `npm run bench -- browser [--quick] [--json] [--standard] [--families=mlp,cnn,vit] [--reps=N]
 * [--page-size=BYTES, default 1 MiB]`: each zoo family (MLP, CNN, ViT; tiny zoo unless --standard) loaded into
 * real Chromium two ways, in the same page and run: tessera (the published family imported in
 * one batch, only missing pages fetched: the pages kept as fetched in the Cache API, streamed there
 * unread, the catalog in IndexedDB; src/browser/idb-store.ts) vs the baseline (each whole .onnx fetched
 * and kept in the Cache API, all at once as `cache.addAll` does, the way transformers.js and
 * WebLLM keep models). Per side and family, from empty storage:
 * - import: until every model is stored;
 * - ready: import, then a session opened from storage and run once for every model;
 * - first inference: the first model alone, storage to first output;
 * - bytes fetched and stored, and the origin's storage use as Chromium counts it.
 * tessera runs twice: on the store as added (exact dedup) and published after lossless delta
 * dedup. Every timing is the median of --reps runs (sides alternate which goes first); the wasm
 * runtime is compiled beforehand, so neither side pays it. Outputs of every model through
 * tessera must equal onnxruntime's on the original file, in the same page, or the bench fails.
 * The zoo holds real trained weights (Chromium compresses stored values: constant fills would lie).
 */
import { join } from 'node:path';
import type { BenchOptions } from './run.ts';
import { prepareDemo, repoRoot, type PreparedFamily } from '../demo/prepare.ts';
import { startStaticServer } from '../demo/serve.ts';
import { launchChromium } from '../tools/fixtures/chromium.ts';
import { FAMILIES, type FamilyName } from './zoo/build.ts';

interface Run {
  importMs: number;
  readyMs: number;
  bytesFetched: number;
  bytesStored: number;
  usageBytes: number;
  outputs: Record<string, number[]>;
}
interface TesseraRun extends Run {
  catalogBytes: number;
  /** The local catalog's size as IndexedDB holds it, deflated (included in bytesStored). */
  catalogStoredBytes: number;
  /** Blocks kept as deltas or coded (zstd) in IndexedDB, decoded on read. */
  codedBlocks: number;
  perModel: { name: string; wholeFileBytes: number; bytesFetched: number; bytesStored: number; pagesFetched: number; pagesRead: number }[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ratio = (a: number, b: number) => (b ? Number((a / b).toFixed(3)) : null);
const ms = (x: number) => Number(x.toFixed(1));
const arg = (args: string[], name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

/** Models no other model derives from, trained from scratch: the negative controls, not part of the fine-tune family. */
function controls(f: PreparedFamily): Set<string> {
  const parents = new Set(f.manifest.models.map((m) => m.derivedFrom));
  return new Set(f.manifest.models.filter((m) => m.kind === 'scratch' && !parents.has(m.name)).map((m) => m.name));
}

export async function run(opts: BenchOptions): Promise<object> {
  const size = opts.args.includes('--standard') ? 'standard' : 'tiny';
  const families = (arg(opts.args, 'families')?.split(',') ?? [...FAMILIES]) as FamilyName[];
  const reps = Number(arg(opts.args, 'reps') ?? (opts.quick ? 1 : 5));
  // The store's default page size (what `tessera publish` of a default store serves); the demo page
  // uses DEMO_PAGE_SIZE to show partial fetches, at the cost of a request per 64 KiB.
  const pageSize = Number(arg(opts.args, 'page-size') ?? 1 << 20);
  const demo = await prepareDemo({ size, families, pageSize });
  // @ts-expect-error a plain build script without types; importing it bundles build/out/browser/
  await import('../build/bundle-browser.mjs');
  const routes: Record<string, string> = { '/lib/': join(repoRoot, 'build', 'out', 'browser'), '/bench/': join(repoRoot, 'bench', 'lib'), '/data/': demo.dir };
  for (const f of demo.families) {
    routes[`/${f.family}/pub/`] = f.pubDir;
    routes[`/${f.family}/pub-lossless/`] = f.pubLosslessDir;
    routes[`/${f.family}/onnx/`] = f.onnxDir;
  }
  const server = await startStaticServer(routes, { index: join(repoRoot, 'demo', 'index.html') });
  const { context, close } = await launchChromium();
  const results: object[] = [];
  try {
    const page = await context.newPage();
    await page.goto(server.url + '/data/digits.json');
    type Page = { warm(a: object): Promise<void>; cacheApi(a: object): Promise<Run>; tessera(a: object): Promise<TesseraRun>; cleanup(a: object): Promise<void> };
    const call = <K extends keyof Page>(fn: K, a: object) =>
      page.evaluate(async ([fn, a]) => ((await import('/bench/browser-page.mjs' as string)) as Record<string, (x: object) => Promise<unknown>>)[fn](a), [fn, a] as const) as ReturnType<Page[K]>;
    let runId = 0;
    for (const f of demo.families) {
      const names = f.manifest.models.map((m) => m.name).slice(0, opts.quick ? 4 : undefined);
      const files = Object.fromEntries(f.manifest.models.map((m) => [m.name, m.file]));
      const dims = f.family === 'mlp' ? [1, 784] : [1, 1, 28, 28];
      const io = { inputName: 'input', dims };
      const onnxBase = `/${f.family}/onnx/`;
      await call('warm', { url: onnxBase + files[names[0]], ...io });
      const sides = {
        cacheApi: (list: string[]) => call('cacheApi', { cacheName: `bench-${++runId}`, onnxBase, files, names: list, ...io }),
        tessera: (list: string[]) => call('tessera', { dbName: `bench-${++runId}`, pub: `/${f.family}/pub/`, names: list, ...io }),
        tesseraLossless: (list: string[]) => call('tessera', { dbName: `bench-${++runId}`, pub: `/${f.family}/pub-lossless/`, names: list, ...io }),
      };
      type SideName = keyof typeof sides;
      const runs: Record<SideName, Run[]> = { cacheApi: [], tessera: [], tesseraLossless: [] };
      const firsts: Record<SideName, number[]> = { cacheApi: [], tessera: [], tesseraLossless: [] };
      const order = Object.keys(sides) as SideName[];
      for (let r = 0; r < reps; r++) {
        // Rotate which side goes first: the machine is shared, and a side should not always pay a warm-up.
        const turn = order.map((_, k) => order[(k + r) % order.length]);
        for (const side of turn) runs[side].push(await sides[side](names));
        for (const side of turn) firsts[side].push((await sides[side]([names[0]])).readyMs);
      }
      await call('cleanup', {});
      const reference = runs.cacheApi[0].outputs;
      for (const side of ['tessera', 'tesseraLossless'] as const) {
        for (const name of names) {
          const got = runs[side][0].outputs[name];
          const want = reference[name];
          if (!got || got.length !== want.length || got.some((v, i) => !Object.is(v, want[i]))) {
            throw new Error(`bench browser: ${f.family}/${name} through tessera (${side}) gives other outputs than onnxruntime on the original file: refusing to report timings for wrong results.`);
          }
        }
      }
      const summary = (side: SideName) => {
        const rs = runs[side];
        const { outputs: _, ...last } = rs[rs.length - 1];
        return { ...last, importMs: ms(median(rs.map((x) => x.importMs))), readyMs: ms(median(rs.map((x) => x.readyMs))), firstInferenceMs: ms(median(firsts[side])), usageBytes: median(rs.map((x) => x.usageBytes)), importMsRuns: rs.map((x) => ms(x.importMs)) };
      };
      const cacheApi = summary('cacheApi');
      const exact = summary('tessera') as ReturnType<typeof summary> & Omit<TesseraRun, 'outputs'>;
      const lossless = summary('tesseraLossless') as ReturnType<typeof summary> & Omit<TesseraRun, 'outputs'>;
      const ratios = (s: ReturnType<typeof summary>) => ({
        importMs: ratio(s.importMs, cacheApi.importMs),
        readyMs: ratio(s.readyMs, cacheApi.readyMs),
        firstInferenceMs: ratio(s.firstInferenceMs, cacheApi.firstInferenceMs),
        bytesFetched: ratio(s.bytesFetched, cacheApi.bytesFetched),
        bytesStored: ratio(s.bytesStored, cacheApi.bytesStored),
        usageBytes: ratio(s.usageBytes, cacheApi.usageBytes),
      });
      // The fine-tune family: the models but the negative controls (which share nothing by design).
      const skip = controls(f);
      const fineTuneFamily = (s: typeof exact) => {
        const ms = s.perModel.filter((m) => !skip.has(m.name));
        const whole = ms.reduce((n, m) => n + m.wholeFileBytes, 0);
        return {
          models: ms.map((m) => m.name),
          bytesFetched: ratio(s.catalogBytes + ms.reduce((n, m) => n + m.bytesFetched, 0), whole),
          bytesStored: ratio(s.catalogStoredBytes + ms.reduce((n, m) => n + m.bytesStored, 0), whole),
        };
      };
      const row = {
        family: f.family,
        models: names,
        controls: [...skip].filter((n) => names.includes(n)),
        cacheApi,
        tessera: exact,
        tesseraLossless: lossless,
        ratios: ratios(exact),
        losslessRatios: ratios(lossless),
        fineTuneFamily: { tessera: fineTuneFamily(exact), tesseraLossless: fineTuneFamily(lossless) },
        outputsEqual: true,
      };
      results.push(row);
      console.error(`browser ${f.family}: ${names.length} models; import ${exact.importMs} / lossless ${lossless.importMs} vs Cache API ${cacheApi.importMs} ms (x${row.ratios.importMs} / x${row.losslessRatios.importMs}); ready ${exact.readyMs} / ${lossless.readyMs} vs ${cacheApi.readyMs} ms; first inference ${exact.firstInferenceMs} / ${lossless.firstInferenceMs} vs ${cacheApi.firstInferenceMs} ms; fetched x${row.ratios.bytesFetched} / x${row.losslessRatios.bytesFetched}, stored x${row.ratios.bytesStored} / x${row.losslessRatios.bytesStored}; fine-tune family (lossless) fetched x${row.fineTuneFamily.tesseraLossless.bytesFetched}, stored x${row.fineTuneFamily.tesseraLossless.bytesStored}`);
    }
  } finally {
    await close();
    await server.close();
  }
  return {
    zoo: size,
    pageSize,
    reps,
    families: results,
    notes: 'Timings are medians of `reps` runs from empty storage; import: until every model is stored; ready: import plus a session and one run per model; firstInferenceMs: the first model alone. tessera.bytesFetched includes the index and catalog (and the block table when the import needed it) (catalogBytes); tessera.bytesStored includes the local catalog as IndexedDB holds it, deflated (catalogStoredBytes). tesseraLossless: the same store published after lossless delta dedup (bit-exact, not compacted, so every model keeps its deltas on its own pages); its deltas and coded blocks are stored so (codedBlocks) and decoded on read. fineTuneFamily: the family without its negative controls (models trained from scratch that nothing derives from), as a fraction of their whole files.',
  };
}
