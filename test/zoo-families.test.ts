/**
 * The zoo's CNN and ViT graph shapes end to end, on the tiny families: the graphs use the ops
 * PyTorch's exporter writes, the trainer's forward pass is what onnxruntime computes on the file,
 * and through a store each model exports byte-identical and serves onnxruntime's outputs.
 * Relations hold: heads share the backbone bit-exactly, a LoRA-merged fine-tune moves every
 * adapted weight by a low-rank update.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-web';
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import { buildFamily, type Architecture } from '../bench/zoo/family.ts';
import { cnnArchitecture, loadParams } from '../bench/zoo/cnn.ts';
import { vitArchitecture } from '../bench/zoo/vit.ts';
import { evaluationSplit } from '../bench/zoo/tasks.ts';
import { predict } from '../bench/zoo/nn.ts';
import { readInitializers } from '../bench/zoo/onnx-graph.ts';
import { createGemm } from '../src/kernels/gemm.ts';
import { openStore, addModelFile } from '../src/node/open.ts';
import { openSession } from '../src/runtime/store-session.ts';
import { tempDir } from './helpers.ts';

ort.env.wasm.numThreads = 1;

/** Numerical rank of a rows x cols matrix (Gram-Schmidt on rows, relative tolerance). */
function rank(m: Float32Array, rows: number, cols: number): number {
  const basis: Float64Array[] = [];
  let scale = 0;
  for (let i = 0; i < m.length; i++) scale = Math.max(scale, Math.abs(m[i]));
  for (let r = 0; r < rows; r++) {
    const v = Float64Array.from(m.subarray(r * cols, (r + 1) * cols));
    for (const b of basis) {
      let d = 0;
      for (let j = 0; j < cols; j++) d += v[j] * b[j];
      for (let j = 0; j < cols; j++) v[j] -= d * b[j];
    }
    const n = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
    if (n > 1e-3 * scale * Math.sqrt(cols)) basis.push(v.map((x) => x / n));
  }
  return basis.length;
}

const cases: [Architecture, string[]][] = [
  [cnnArchitecture, ['Conv', 'Relu', 'MaxPool', 'GlobalAveragePool', 'Flatten', 'Gemm']],
  [vitArchitecture, ['Reshape', 'Transpose', 'MatMul', 'Add', 'LayerNormalization', 'Gather', 'Div', 'Softmax', 'Gemm', 'Erf', 'Mul', 'ReduceMean', 'Constant']],
];

for (const [arch, ops] of cases) {
  test(`${arch.family}: PyTorch-style graph, trainer equals onnxruntime, store round trip is byte-identical and serves the same outputs`, async () => {
    const dir = await tempDir();
    try {
      const zoo = join(dir.path, 'zoo');
      const manifest = await buildFamily(arch, { size: 'tiny', dir: zoo, models: ['head-parity', 'lora-noisy'] });
      const names = manifest.models.map((m) => m.name);
      // The tiny LoRA fine-tune must be kept (beat its base by the margin on noisy digits).
      assert.equal(names, [`${arch.family}-base`, `${arch.family}-head-parity`, `${arch.family}-lora-noisy`], JSON.stringify(manifest.rejected));
      const gemm = await createGemm();
      const bytesOf = (name: string) => readFile(join(zoo, `${name}.onnx`)).then((b) => new Uint8Array(b));

      const base = await bytesOf(`${arch.family}-base`);
      const graph = fromBinary(ModelProtoSchema, base);
      assert.is(graph.opsetImport[0].version, 17n);
      const used = new Set(graph.graph!.node.map((n) => n.opType));
      for (const op of ops) assert.ok(used.has(op), `${arch.family} graph lacks ${op}`);

      // The trainer's forward pass is what onnxruntime computes on the exported file.
      const split = evaluationSplit(manifest.models[0].evaluation, 'heldOut');
      const n = 8;
      const x = split.images.slice(0, n * 784);
      const f = arch.create(gemm, 'tiny', 10, 0);
      loadParams(f.net, base);
      const mine = predict(f.net, x, n);
      const session = await ort.InferenceSession.create(base);
      const theirs = (await session.run({ input: new ort.Tensor('float32', x, [n, 1, 28, 28]) })).logits.data as Float32Array;
      await session.release();
      for (let i = 0; i < mine.length; i++) assert.ok(Math.abs(mine[i] - theirs[i]) <= 1e-3 * (1 + Math.abs(theirs[i])), `${arch.family} logit ${i}: trainer ${mine[i]} vs ort ${theirs[i]}`);
      assert.ok(f.net.params.length > 0 && manifest.models[0].params === f.net.params.reduce((a, p) => a + p.value.length, 0));

      // Relations: the head's backbone is bit-exact; LoRA moved each adapted weight by rank <= r.
      const baseInits = readInitializers(base);
      const headInits = readInitializers(await bytesOf(`${arch.family}-head-parity`));
      for (const [name, t] of baseInits) {
        if (name.startsWith('head.')) continue;
        assert.ok(Buffer.from(t.data.buffer).equals(Buffer.from(headInits.get(name)!.data.buffer)), `${name} differs in the head`);
      }
      const lora = manifest.models.find((m) => m.kind === 'lora');
      assert.ok(lora);
      {
        const loraInits = readInitializers(await bytesOf(lora!.name));
        const r = arch.budget('tiny').loraRank;
        let adapted = 0;
        for (const [name, t] of baseInits) {
          if (!/weight$/.test(name) || t.dims.length < 2) continue;
          const d = Float32Array.from(t.data, (v, i) => loraInits.get(name)!.data[i] - v);
          const rows = t.dims[0], cols = t.data.length / rows;
          const k = rank(d, rows, cols);
          assert.ok(k >= 1 && k <= r, `${name}: update of rank ${k}, adapters rank ${r}`);
          adapted++;
        }
        assert.ok(adapted >= 3);
      }

      // Through a store: export byte-identical, outputs equal onnxruntime on the original file.
      const store = await openStore(join(dir.path, 'store'), { create: true });
      const probe = new ort.Tensor('float32', x.slice(0, 3 * 784), [3, 1, 28, 28]);
      for (const m of manifest.models) {
        await addModelFile(store, join(zoo, m.file));
        const original = await bytesOf(m.name);
        const exported = await store.exportModel(m.name);
        assert.ok(Buffer.from(exported).equals(Buffer.from(original)), `${m.name}: export differs from the file`);
        const fromFile = await ort.InferenceSession.create(original);
        const fromStore = await openSession(store, m.name);
        const want = await fromFile.run({ input: probe });
        const got = await fromStore.run({ input: probe });
        assert.equal(Array.from(got.logits.data as Float32Array), Array.from(want.logits.data as Float32Array), m.name);
        await fromFile.release();
        await fromStore.release();
      }
      const stats = store.stats();
      const head = stats.perModel.find((p) => p.name === `${arch.family}-head-parity`)!;
      assert.ok(head.uniqueBytes < head.logicalBytes * 0.2, `${arch.family} head shares its backbone: ${head.uniqueBytes} of ${head.logicalBytes}`);
      await store.close();
    } finally {
      await dir.cleanup();
    }
  });
}

test.run();
