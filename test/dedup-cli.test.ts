import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { register as registerDedup } from '../src/cli/verbs/dedup.ts';
import { openStore } from '../src/node/open.ts';
import { parseModel } from '../src/onnx/model.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { perturbed } from '../tools/fixtures/family.ts';
import { codeOf, rng, tempDir } from './helpers.ts';

/** Runs `tessera dedup ...` in-process (the verb alone), returning what it printed. */
async function dedup(args: string[]): Promise<string> {
  const program = new Command('tessera').exitOverride();
  registerDedup(program);
  let out = '';
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => { out += s; return true; }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'tessera', 'dedup', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

async function storeWithFamily(path: string) {
  const base = mlp({ inputDim: 64, hidden: 48, outputDim: 10, seed: 1 });
  const ft = await perturbed(base, { seed: 3, scale: 0.01 });
  const store = await openStore(path, { create: true, tile: { rows: 16, cols: 16 } });
  await store.add('base', base);
  await store.add('ft', ft);
  await store.close();
  return { base, ft };
}

test('dedup --json reports per model; --undo restores; --settle frees; errors are typed', async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, 'store');
    const { base, ft } = await storeWithFamily(path);
    const reports = JSON.parse(await dedup([path, '--max-drop', '0.05', '--json']));
    assert.equal(reports.map((r: any) => r.name), ['base', 'ft']);
    for (const r of reports) for (const k of ['name', 'blocksReplaced', 'bytesSaved', 'accuracyBefore', 'accuracyAfter']) assert.ok(k in r, k);
    const ftReport = reports.find((r: any) => r.name === 'ft');
    assert.ok(ftReport.blocksReplaced > 0 && ftReport.accuracyBefore - ftReport.accuracyAfter <= 0.05);

    assert.equal(JSON.parse(await dedup([path, '--undo', 'ft', '--json'])), { name: 'ft', restored: ftReport.blocksReplaced });
    let store = await openStore(path);
    const want = (await parseModel(ft)).tensors.map((t) => t.data);
    (await store.tensorData('ft')).forEach((t, i) => assert.ok(Buffer.from(t).equals(Buffer.from(want[i]))));
    await store.close();

    // A labelled evaluation file: labels from nothing in particular, the bound is relative to the model's own score.
    const x = rng(5);
    await writeFile(join(dir.path, 'eval.json'), JSON.stringify({ input: 'X', dims: [50, 64], data: Array.from({ length: 3200 }, () => x() - 0.5), labels: Array.from({ length: 50 }, (_, i) => i % 10) }));
    const labelled = JSON.parse(await dedup([path, '--models', 'ft', '--max-drop', '0.02', '--eval', join(dir.path, 'eval.json'), '--json']));
    assert.is(labelled.length, 1);
    assert.is(labelled[0].scoring, 'labelled');
    // A folder of per-model files (what the zoo writes), in both base64 encodings.
    const evalDir = join(dir.path, 'evals');
    await mkdir(evalDir);
    const f32 = Float32Array.from({ length: 3200 }, () => x() - 0.5);
    const u8 = Uint8Array.from({ length: 3200 }, () => Math.floor(x() * 256));
    await writeFile(join(evalDir, 'ft.eval.json'), JSON.stringify({ input: 'X', dims: [50, 64], dataType: 'float32', data: Buffer.from(f32.buffer).toString('base64'), labels: Array.from({ length: 50 }, (_, i) => i % 10) }));
    await writeFile(join(evalDir, 'base.eval.json'), JSON.stringify({ input: 'X', dims: [50, 64], dataType: 'uint8', scale: 1 / 255, data: Buffer.from(u8).toString('base64') }));
    const perModel = JSON.parse(await dedup([path, '--max-drop', '0.02', '--eval', evalDir, '--json']));
    assert.equal(perModel.map((r: any) => [r.name, r.scoring]), [['base', 'agreement'], ['ft', 'labelled']]);
    await dedup([path, '--undo', 'ft']);
    await dedup([path, '--undo', 'base']);
    await writeFile(join(evalDir, 'ft.eval.json'), JSON.stringify({ input: 'X', dims: [50, 64], dataType: 'uint8', data: Buffer.from(u8.subarray(0, 10)).toString('base64') }));
    assert.is(await codeOf(dedup([path, '--max-drop', '0.02', '--eval', evalDir, '--models', 'ft'])), 'INVALID_ARGUMENT');
    assert.is(await codeOf(dedup([path, '--max-drop', '0.02', '--eval', join(dir.path, 'evals-missing')])), 'INVALID_ARGUMENT');

    await dedup([path, '--settle']);
    store = await openStore(path);
    assert.is(store.model('ft').substitutions?.length ?? 0, 0);
    assert.ok((await store.verify()).ok);
    await store.close();

    const lossless = JSON.parse(await dedup([path, '--lossless', '--json']));
    assert.equal(lossless.map((r: any) => r.name), ['base', 'ft']);
    assert.ok(lossless.some((r: any) => r.blocksCoded > 0), 'blocks left without a base are coded alone');
    store = await openStore(path);
    assert.ok([...store.catalog.blocks.values()].some((b) => b.codec === 'zstd-planes'));
    assert.ok(Buffer.from(await store.exportModel('base')).equals(Buffer.from(base)), 'base exports byte-identical from coded blocks');
    assert.ok((await store.verify()).ok);
    await store.close();

    await writeFile(join(dir.path, 'bad.json'), JSON.stringify({ input: 'image', dims: [1, 64], data: Array(64).fill(0) }));
    assert.is(await codeOf(dedup([path, '--max-drop', '1.5'])), 'INVALID_ARGUMENT');
    assert.is(await codeOf(dedup([path, '--max-drop', '-0.1'])), 'INVALID_ARGUMENT');
    assert.is(await codeOf(dedup([path])), 'INVALID_ARGUMENT');
    assert.is(await codeOf(dedup([path, '--max-drop', '0.01', '--models', 'nope'])), 'MODEL_NOT_FOUND');
    assert.is(await codeOf(dedup([path, '--undo', 'nope'])), 'MODEL_NOT_FOUND');
    assert.is(await codeOf(dedup([path, '--max-drop', '0.01', '--eval', join(dir.path, 'bad.json')])), 'INVALID_FEEDS');
    assert.is(await codeOf(dedup([path, '--max-drop', '0.01', '--eval', join(dir.path, 'missing.json')])), 'INVALID_ARGUMENT');
  } finally {
    await dir.cleanup();
  }
});

test.run();
