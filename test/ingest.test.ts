/**
 * The streaming add path (src/store/page-writer.ts): new blocks are written page by page as they
 * fill, and a block repeated inside one model is still stored once — also when its first copy is
 * on a page already written (read back to compare bytes). Tiles cut with the word-copy loop equal
 * a byte-by-byte cut for every alignment. The ingest kernel (assembly/ingest.ts) cuts tiles and
 * hashes bytes where they lie exactly as the JS cut and xxhash-wasm do, and a file add whose
 * weights go through it exports the file's bytes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { cutTensor, tileExtent, gridOf } from '../src/blocks/tiling.ts';
import { bytesEqual } from '../src/store/ingest.ts';
import { IngestMemory } from '../src/store/ingest-kernel.ts';
import { hash64 } from '../src/hash.ts';
import { addModelFile, openStore } from '../src/node/open.ts';
import * as B from '../tools/fixtures/onnx-builders.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('a model whose blocks repeat across many pages stores each distinct block once and reads back exactly', async () => {
  // 8 tensors on 32 KiB pages: 4 distinct ones of 64x64 float32 (one 16 KiB block, a view of the
  // input) and of 64x128 (two copied tiles, cut again to compare), then the same 4 again: their
  // first copies are on pages already written when the repeats come.
  const distinct = [0, 1, 2, 3].map((k) => B.randomFloats(64 * (k % 2 ? 128 : 64), 40 + k));
  const inits = [0, 1, 2, 3, 0, 1, 2, 3].map((k, i) => B.floatTensor(`W${i}`, [64, k % 2 ? 128 : 64], distinct[k]));
  const nodes = inits.map((_, i) => B.node('Identity', [`W${i}`], [`Y${i}`]));
  const model = B.encode(B.modelProto(B.graph({ name: 'repeats', nodes, inputs: [], outputs: nodes.map((_, i) => B.valueInfo(`Y${i}`, B.FLOAT)), initializers: inits })));
  const backend = new MemoryPageStore({ pageSize: 1 << 15 });
  const store = await TesseraStore.open(backend, { tile: { rows: 64, cols: 64 } });
  const writes: number[] = [];
  const write = backend.writeFrame.bind(backend);
  backend.writeFrame = async (page) => {
    writes.push(page.length > 0 ? 1 : 0);
    return write(page);
  };
  const report = await store.add('m', model);
  assert.is(report.blocks, 12);
  assert.is(report.newBlocks, 6);
  assert.is(report.newPages, 3);
  assert.equal(writes, [1, 1, 1], 'one page written at a time');
  assert.equal(await store.exportModel('m'), model);
  await store.close();
});

test('tile copies equal a byte-by-byte cut for every offset, element size and width', () => {
  const tile = { rows: 3, cols: 5 };
  for (const elemBytes of [1, 2, 4, 8]) {
    for (const dims of [[7, 13], [4, 5], [9, 2, 3], [2, 64]]) {
      for (const shift of [0, 1, 2, 3, 4]) {
        const n = dims.reduce((a, d) => a * d, 1) * elemBytes;
        const buf = new Uint8Array(n + shift);
        for (let i = 0; i < buf.length; i++) buf[i] = (i * 37 + shift) & 255;
        const data = buf.subarray(shift);
        const grid = gridOf(dims, tile);
        const blocks = cutTensor(data, dims, elemBytes, tile);
        blocks.forEach((b, i) => {
          const { r0, c0, h, w } = tileExtent(grid, tile, i);
          const expected: number[] = [];
          for (let r = 0; r < h; r++) for (let c = 0; c < w * elemBytes; c++) expected.push(data[(r0 + r) * grid.cols * elemBytes + c0 * elemBytes + c]);
          assert.equal(Array.from(b), expected, `elem ${elemBytes} dims ${dims} shift ${shift} block ${i}`);
        });
      }
    }
  }
});

test('bytesEqual tells blocks apart by any one byte, at any alignment and length (native and word paths)', () => {
  const r = B.rng(9);
  const base = new Uint8Array(16384 + 8);
  for (let i = 0; i < base.length; i++) base[i] = Math.floor(r() * 256);
  for (const length of [0, 3, 255, 256, 1000, 16384]) {
    for (const offset of [0, 1, 4]) {
      const a = base.subarray(offset, offset + length);
      const copy = new Uint8Array(length + 8);
      copy.set(a, 3);
      const b = copy.subarray(3, 3 + length);
      assert.ok(bytesEqual(a, b), `equal ${length}@${offset}`);
      assert.ok(!bytesEqual(a, b.subarray(0, Math.max(0, length - 1))) || length === 0, `lengths ${length}@${offset}`);
      for (const at of length ? [0, length >> 1, length - 1] : []) {
        b[at] ^= 1;
        assert.not.ok(bytesEqual(a, b), `byte ${at} of ${length}@${offset}`);
        b[at] ^= 1;
      }
    }
  }
});

test('the ingest kernel cuts tiles and hashes in place exactly as the JS cut and xxhash-wasm do', () => {
  const mem = new IngestMemory();
  assert.ok(mem.reserve(1 << 20));
  const all = new Uint8Array(mem.buffer, mem.base, 1 << 20);
  const r = B.rng(3);
  for (let i = 0; i < all.length; i++) all[i] = Math.floor(r() * 256);
  // xxHash64: every length to 300 (all tail paths), page-sized ones, odd offsets, two seeds.
  for (const length of [...Array.from({ length: 301 }, (_, i) => i), 4096, 16384, 65536 + 7]) {
    for (const offset of [0, 1, 5]) {
      for (const seed of [0n, 0x9e3779b97f4a7c15n]) {
        const view = all.subarray(offset, offset + length);
        assert.is(hash64(view, seed), hash64(view.slice(), seed), `length ${length} offset ${offset} seed ${seed}`);
      }
    }
  }
  // Cuts: row lengths that take the vector path (multiples of 64) and the memory.copy path.
  const src = all.subarray(0, 1 << 19);
  const out = all.subarray(1 << 19);
  for (const [stride, rowLen, rows] of [[4096, 256, 64], [1000, 64, 7], [300, 24, 64], [129, 128, 3], [7, 1, 9], [256, 256, 1]]) {
    for (const from of [0, 3, 64]) {
      const block = out.subarray(100, 100 + rows * rowLen);
      mem.cut(src, from, stride, rowLen, rows, block);
      const expected = new Uint8Array(rows * rowLen);
      for (let k = 0; k < rows; k++) expected.set(src.subarray(from + k * stride, from + k * stride + rowLen), k * rowLen);
      assert.equal(block.slice(), expected, `stride ${stride} row ${rowLen} x ${rows} from ${from}`);
    }
  }
  assert.throws(() => mem.cut(src, 0, 4096, 256, 64, new Uint8Array(16384)), /outside its memory/);
});

test('a file add whose weights are read into the kernel memory and cut there exports the same bytes', async () => {
  // Weights of 64 KiB or more are read into the page writer's wasm memory and cut by the kernel:
  // float32 [300, 70] (tiles 64 and 6 wide: vector and memory.copy rows), float16 [200, 200]
  // (128-byte rows), int8 [300, 300], a repeat of the first (matched against its copy on the page),
  // a small tensor cut in ordinary memory, then weights that each grow the memory.
  const f32 = B.randomFloats(300 * 70, 1);
  const inits = [
    B.floatTensor('a', [300, 70], f32),
    B.float16Tensor('h', [200, 200], B.randomFloats(200 * 200, 2)),
    B.tensorProto('q', 'int8', [300, 300], B.randomElementBytes('int8', 300 * 300, 3)),
    B.floatTensor('a2', [300, 70], f32),
    B.floatTensor('s', [10, 70], B.randomFloats(700, 4)),
    // Each larger than the last: the memory grows while a page is open, in either frame.
    B.floatTensor('g1', [100, 250], B.randomFloats(100 * 250, 5)),
    B.floatTensor('g2', [128, 270], B.randomFloats(128 * 270, 6)),
    B.floatTensor('g3', [64, 600], B.randomFloats(64 * 600, 7)),
    B.floatTensor('g4', [200, 230], B.randomFloats(200 * 230, 8)),
  ];
  const nodes = inits.map((t) => B.node('Identity', [t.name], [`Y_${t.name}`]));
  const model = B.encode(B.modelProto(B.graph({ name: 'kernel', nodes, inputs: [], outputs: nodes.map((n) => B.valueInfo(n.output[0], B.FLOAT)), initializers: inits })));
  const dir = await mkdtemp(join(tmpdir(), 'tessera-ingest-kernel-'));
  try {
    await writeFile(join(dir, 'm.onnx'), model);
    const store = await openStore(join(dir, 'store'), { create: true, tile: { rows: 64, cols: 64 }, pageSize: 1 << 16 });
    const grown = 8 + 10 + 10 + 16;
    const cut = IngestMemory.prototype.cut;
    let kernelCuts = 0;
    IngestMemory.prototype.cut = function (...args) {
      kernelCuts++;
      return cut.apply(this, args);
    };
    const report = await addModelFile(store, join(dir, 'm.onnx')).finally(() => (IngestMemory.prototype.cut = cut));
    // Every tile but those that did not fit the open page (at most one per page, cut aside).
    assert.ok(kernelCuts >= 10 + 16 + 25 + 10 + grown - report.newPages, `${kernelCuts} tiles cut by the kernel, ${report.newPages} pages`);
    // a: 5 x 2 tiles, h: 4 x 4, q: 5 x 5, a2: the same 10 as a, s: 1 x 2, g1-g4: 2 x 4, 2 x 5, 1 x 10, 4 x 4.
    assert.is(report.blocks, 10 + 16 + 25 + 10 + 2 + grown);
    assert.is(report.newBlocks, 10 + 16 + 25 + 2 + grown);
    assert.equal(await store.exportModel('m'), model);
    assert.ok((await store.verify()).ok);
    await store.close();
    const reopened = await openStore(join(dir, 'store'));
    assert.equal(await reopened.exportModel('m'), model);
    await reopened.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
