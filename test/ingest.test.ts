/**
 * The streaming add path (src/store/page-writer.ts): new blocks are written page by page as they
 * fill, and a block repeated inside one model is still stored once — also when its first copy is
 * on a page already written (read back to compare bytes). Tiles cut with the word-copy loop equal
 * a byte-by-byte cut for every alignment.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TesseraStore } from '../src/store/store.ts';
import { MemoryPageStore } from '../src/store/memory-store.ts';
import { cutTensor, tileExtent, gridOf } from '../src/blocks/tiling.ts';
import { bytesEqual } from '../src/store/ingest.ts';
import * as B from '../tools/fixtures/onnx-builders.ts';

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

test.run();
