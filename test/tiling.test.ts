import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assembleTensor, cutTensor, gridOf, paddedTile } from '../src/blocks/tiling.ts';
import { rng } from './helpers.ts';

const shapes: number[][] = [[], [1], [7], [64], [65, 3], [128, 128], [100, 70], [3, 4, 5], [1, 1000], [130, 1, 2, 2]];
const tiles = [{ rows: 1, cols: 1 }, { rows: 16, cols: 16 }, { rows: 64, cols: 8 }, { rows: 7, cols: 300 }];

test('cut then assemble gives back every byte, for any shape, tile and element size', () => {
  const r = rng(1);
  for (const dims of shapes) {
    for (const tile of tiles) {
      for (const es of [1, 2, 4, 8]) {
        const n = dims.reduce((a, d) => a * d, 1) * es;
        const data = new Uint8Array(n);
        for (let i = 0; i < n; i++) data[i] = Math.floor(r() * 256);
        const blocks = cutTensor(data, dims, es, tile);
        assert.is(blocks.length, gridOf(dims, tile).count);
        // Padding is never stored: the blocks hold exactly the tensor's bytes.
        assert.is(blocks.reduce((a, b) => a + b.length, 0), n);
        assert.equal(assembleTensor(blocks, dims, es, tile), data, `dims ${dims} tile ${tile.rows}x${tile.cols} es ${es}`);
      }
    }
  }
});

test('the 2-D view is first dim x the rest; vectors are columns', () => {
  assert.equal(gridOf([10], { rows: 4, cols: 4 }), { rows: 10, cols: 1, tileRows: 3, tileCols: 1, count: 3 });
  assert.equal(gridOf([2, 3, 4], { rows: 4, cols: 5 }), { rows: 2, cols: 12, tileRows: 1, tileCols: 3, count: 3 });
  assert.is(gridOf([0, 5], { rows: 4, cols: 4 }).count, 0);
});

test('edge tiles are zero-padded to the full tile for similarity kernels', () => {
  const data = new Float32Array([1, 2, 3, 4, 5, 6]); // 3 x 2
  const blocks = cutTensor(new Uint8Array(data.buffer), [3, 2], 4, { rows: 2, cols: 4 });
  assert.is(blocks.length, 2);
  assert.equal(Array.from(paddedTile(blocks[1], 1, 2, { rows: 2, cols: 4 })), [5, 6, 0, 0, 0, 0, 0, 0]);
});

test('row-spanning blocks are views, not copies', () => {
  const data = new Uint8Array(64 * 16 * 4);
  const blocks = cutTensor(data, [64, 16], 4, { rows: 16, cols: 16 });
  assert.ok(blocks.every((b) => b.buffer === data.buffer));
});

test.run();
