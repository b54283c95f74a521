/**
 * Reading ONNX files with their weights left unread until their turn (src/onnx/sparse-read.ts,
 * used by addModelFile): on every corpus and real model, the structure read that way parses to
 * the same skeleton and, once the skipped ranges are read, the same tensor bytes as the whole
 * file; models added from files export byte-identical (sha256); a range the parse does not claim
 * as exactly one weight's bytes is read in (never used as zeros); a file cut short fails typed,
 * leaving the store as it was.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseModel } from '../src/onnx/model.ts';
import { claimDeferred, fillDeferred, readSkippingWeights, type ReadAt, type ReadSpace } from '../src/onnx/sparse-read.ts';
import { addModelFile, addModelFiles, openStore } from '../src/node/open.ts';
import { corpusCases, realModels } from '../tools/fixtures/onnx-corpus.ts';
import * as B from '../tools/fixtures/onnx-builders.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function readerOf(file: Uint8Array): ReadAt & { reads: number } {
  const r = Object.assign(
    async (into: Uint8Array, position: number) => {
      r.reads++;
      if (position + into.length > file.length) throw new Error('read past the end');
      into.set(file.subarray(position, position + into.length));
    },
    { reads: 0 },
  );
  return r;
}

/** Parses `file` the sparse way (every raw_data of `minBytes` or more left unread) and checks it against the whole-file parse. */
async function sameAsWholeParse(name: string, file: Uint8Array, minBytes: number): Promise<'deferred' | 'none' | 'fallback'> {
  const whole = await parseModel(file);
  const read = readerOf(file);
  const sparse = await readSkippingWeights(file.length, read, minBytes);
  assert.ok(sparse, `${name}: the walk gave up on a valid model`);
  const parsed = await parseModel(sparse.bytes);
  assert.equal(parsed.skeleton, whole.skeleton, `${name}: skeleton`);
  const claims = claimDeferred(sparse, parsed.tensors.map((t) => t.data));
  let kind: 'deferred' | 'none' | 'fallback' = sparse.deferred.size ? 'deferred' : 'none';
  if (!claims) {
    await fillDeferred(sparse, read);
    kind = 'fallback';
  }
  parsed.tensors.forEach((t, i) => {
    const c = claims?.[i];
    let data = t.data;
    if (c) {
      data = new Uint8Array(c.length);
      data.set(file.subarray(c.offset, c.offset + c.length));
    }
    assert.equal(sha256(data), sha256(whole.tensors[i].data), `${name}: tensor ${t.name}`);
  });
  return kind;
}

test('every corpus and real model parses the same with its weights read in later', async () => {
  const counts = { deferred: 0, none: 0, fallback: 0 };
  for (const c of corpusCases()) counts[await sameAsWholeParse(c.name, new Uint8Array(readFileSync(c.file)), 1)]++;
  for (const m of realModels()) counts[await sameAsWholeParse(m.name, new Uint8Array(readFileSync(m.file)), 1)]++;
  // Each file's raw_data is claimed by exactly its tensor: no corpus file needs the fallback.
  assert.is(counts.fallback, 0, JSON.stringify(counts));
  // Most corpus files hold no weights (inputs only); 73 hold raw_data (15 of them real models).
  assert.ok(counts.deferred >= 70, JSON.stringify(counts));
});

test('models added from files export byte-identical, weights read one at a time, duplicates matched against their page copy', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-sparse-'));
  try {
    // 70 KiB weights (deferred), a repeat of one of them (matched against the page it went to),
    // a 64x128 tile-cut weight and small ones (read with the structure).
    const big = [0, 1].map((k) => B.randomFloats(64 * 280, 50 + k));
    const inits = [
      B.floatTensor('A', [64, 280], big[0]),
      B.floatTensor('B', [64, 280], big[1]),
      B.floatTensor('C', [64, 280], big[0]),
      B.floatTensor('T', [64, 128], B.randomFloats(64 * 128, 53)),
      B.floatTensor('b', [8], B.randomFloats(8, 54)),
    ];
    const nodes = inits.map((t, i) => B.node('Identity', [t.name], [`Y${i}`]));
    const synthetic = B.encode(B.modelProto(B.graph({ name: 'g', nodes, inputs: [], outputs: nodes.map((_, i) => B.valueInfo(`Y${i}`, B.FLOAT)), initializers: inits })));
    const files = [{ name: 'synthetic', file: join(dir, 'synthetic.onnx') }, ...realModels().slice(0, 6)];
    await writeFile(files[0].file, synthetic);
    const store = await openStore(join(dir, 'store'), { create: true, pageSize: 1 << 16 });
    for (const f of files) {
      const bytes = new Uint8Array(readFileSync(f.file));
      const r = await addModelFile(store, f.file, { name: f.name });
      if (f.name === 'synthetic') assert.is(r.newBlocks, r.blocks - 5, 'the repeated weight (5 blocks) is stored once');
      assert.is(sha256(await store.exportModel(f.name)), sha256(bytes), f.name);
    }
    assert.equal((await store.verify()).ok, true);
    await store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a skipped range that is not exactly one weight is read in; a file cut short fails typed and adds nothing', async () => {
  const file = B.encode(B.modelProto(B.graph({ name: 'g', nodes: [B.node('Identity', ['W'], ['Y'])], inputs: [], outputs: [B.valueInfo('Y', B.FLOAT)], initializers: [B.floatTensor('W', [64, 300], B.randomFloats(64 * 300, 7))] })));
  const sparse = (await readSkippingWeights(file.length, readerOf(file)))!;
  assert.is(sparse.deferred.size, 1);
  const [[offset, length]] = [...sparse.deferred];
  // A view that is not the range, one that overlaps it, and no view at all: all refused.
  assert.is(claimDeferred(sparse, [sparse.bytes.subarray(offset, offset + length - 4)]), null);
  assert.is(claimDeferred(sparse, [sparse.bytes.subarray(offset - 8, offset + 8)]), null);
  assert.is(claimDeferred(sparse, []), null);
  assert.ok(claimDeferred(sparse, [sparse.bytes.subarray(offset, offset + length)])?.[0]);

  const dir = await mkdtemp(join(tmpdir(), 'tessera-sparse-'));
  try {
    const cut = join(dir, 'cut.onnx');
    await writeFile(cut, file.subarray(0, file.length - 1000));
    const store = await openStore(join(dir, 'store'), { create: true });
    let code = '';
    try {
      await addModelFile(store, cut, { name: 'cut' });
    } catch (e) {
      code = (e as { code?: string }).code ?? String(e);
    }
    assert.is(code, 'ONNX_MALFORMED');
    assert.equal(store.listModels(), []);
    assert.equal((await store.verify()).ok, true);
    await store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('files read one after another into one reused structure buffer parse and export as read alone', async () => {
  // Two models whose weights sit at the same offsets with different bytes: the second's skipped
  // ranges hold the first's weights (not zeros) when it is parsed.
  const model = (seed: number, cols: number) => B.encode(B.modelProto(B.graph({ name: 'g', nodes: [B.node('Identity', ['W'], ['Y'])], inputs: [], outputs: [B.valueInfo('Y', B.FLOAT)], initializers: [B.floatTensor('W', [64, cols], B.randomFloats(64 * cols, seed))] })));
  const first = model(60, 300);
  const second = model(61, 300);
  const space: ReadSpace = { bytes: new Uint8Array(0) };
  const a = (await readSkippingWeights(first.length, readerOf(first), undefined, space))!;
  await fillDeferred(a, readerOf(first));
  const buffer = space.bytes.buffer;
  const b = (await readSkippingWeights(second.length, readerOf(second), undefined, space))!;
  assert.ok(space.bytes.buffer === buffer, 'the buffer was reused');
  const [[offset, length]] = [...b.deferred];
  // (The walk reads ahead into the range's start: the rest holds the first file's bytes.)
  assert.is.not(sha256(b.bytes.subarray(offset, offset + length)), sha256(second.subarray(offset, offset + length)), 'the unread range is not what the second file holds there');
  assert.is(sha256(b.bytes.subarray(offset + length - 1024, offset + length)), sha256(first.subarray(offset + length - 1024, offset + length)), 'its end holds what the first file holds there');
  const parsed = await parseModel(b.bytes);
  const claims = claimDeferred(b, parsed.tensors.map((t) => t.data))!;
  assert.ok(claims[0], 'the weight is still to be read');
  assert.equal(parsed.skeleton, (await parseModel(second)).skeleton);

  // A batch (one ReadSpace for its files): larger, smaller and real files in turn export byte-identical.
  const dir = await mkdtemp(join(tmpdir(), 'tessera-sparse-'));
  try {
    const files = [
      { name: 'wide', file: join(dir, 'wide.onnx'), bytes: model(62, 600) },
      ...realModels().slice(0, 4).map((m) => ({ name: m.name, file: m.file, bytes: new Uint8Array(readFileSync(m.file)) })),
      { name: 'narrow', file: join(dir, 'narrow.onnx'), bytes: model(63, 300) },
      { name: 'first', file: join(dir, 'first.onnx'), bytes: first },
      { name: 'second', file: join(dir, 'second.onnx'), bytes: second },
    ];
    for (const f of files) if (f.file.startsWith(dir)) await writeFile(f.file, f.bytes);
    const store = await openStore(join(dir, 'store'), { create: true, pageSize: 1 << 16 });
    await addModelFiles(store, files.map((f) => ({ file: f.file, name: f.name })));
    for (const f of files) assert.is(sha256(await store.exportModel(f.name)), sha256(f.bytes), f.name);
    assert.equal((await store.verify()).ok, true);
    await store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
