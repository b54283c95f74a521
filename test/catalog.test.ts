import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode } from '@msgpack/msgpack';
import { Catalog, checkCatalog, decodeRecord, encodeRecord, type CatalogRecord, type ModelEntry } from '../src/catalog/catalog.ts';

const config = { tile: { rows: 2, cols: 2 }, pageSize: 4096 };

function model(name: string, blocks: number[][]): ModelEntry {
  return {
    name,
    addedAt: '2026-01-01T00:00:00.000Z',
    skeleton: new Uint8Array([1, 2, 3]),
    inputs: [],
    outputs: [],
    sourceBytes: 10,
    tensors: blocks.map((b, i) => ({ name: `t${i}`, dtype: 'float32', dims: [2, 2 * b.length], location: 'graph', blocks: Uint32Array.from(b) })),
  };
}
const blk = (id: number, page: number, offset: number, base?: number) => ({ id, page, offset, length: 16, hash: id.toString(16).padStart(16, '0'), ...(base !== undefined ? { base } : {}) });

/** A history touching every record type: shared pages, substitutions, undo, settle, delta, rm. */
function history(): CatalogRecord[] {
  return [
    { t: 'init', seq: 1, format: 1, config },
    { t: 'add', seq: 2, model: model('a', [[0, 1], [2]]), blocks: [blk(0, 0, 0), blk(1, 0, 16), blk(2, 1, 0)], pages: [{ id: 0, used: 32 }, { id: 1, used: 16 }] },
    { t: 'add', seq: 3, model: model('b', [[0, 1], [3]]), blocks: [blk(3, 2, 0)], pages: [{ id: 2, used: 16 }] },
    { t: 'subst', seq: 4, model: 'b', subs: [{ tensor: 1, index: 0, from: 3, to: 2, distance: 0.01 }] },
    { t: 'add', seq: 5, model: model('c', [[0, 1], [4]]), blocks: [blk(4, 3, 0)], pages: [{ id: 3, used: 16 }] },
    { t: 'delta', seq: 6, model: 'c', blocks: [blk(5, 4, 0, 2)], pages: [{ id: 4, used: 16 }], slots: [{ tensor: 1, index: 0, to: 5 }] },
  ];
}

function replay(recs: CatalogRecord[]): Catalog {
  return Catalog.load(null, recs.map((r) => encodeRecord(r)));
}

function summary(c: Catalog) {
  return {
    seq: c.seq,
    models: [...c.models.values()].map((m) => ({ name: m.name, blocks: m.tensors.map((t) => Array.from(t.blocks)), subs: m.substitutions ?? [] })),
    blocks: [...c.blocks].sort((x, y) => x[0] - y[0]),
    pages: [...c.pages].sort((x, y) => x[0] - y[0]),
  };
}

test('records round-trip through their encoding', () => {
  for (const r of history()) assert.equal(decodeRecord(encodeRecord(r)), r);
});

test('replay derives reference counts: substitutions retain originals, deltas hold their base', () => {
  const c = replay(history());
  assert.equal(checkCatalog(c), []);
  assert.is(c.blocks.get(3)!.refs, 1, 'retained by the substitution');
  assert.is(c.blocks.get(2)!.refs, 3, 'a slot, the substitution, the delta base');
  assert.not.ok(c.blocks.has(4), 'replaced by its delta block');
  assert.not.ok(c.pages.has(3), 'its page freed');
  assert.equal(Array.from(c.models.get('b')!.tensors[1].blocks), [2]);
});

test('undo puts originals back; settle drops them; rm frees what no one else holds', () => {
  const undo = replay([...history(), { t: 'undo', seq: 7, model: 'b' }]);
  assert.equal(Array.from(undo.models.get('b')!.tensors[1].blocks), [3]);
  assert.equal(checkCatalog(undo), []);
  const settle = replay([...history(), { t: 'settle', seq: 7, model: 'b' }]);
  assert.not.ok(settle.blocks.has(3));
  assert.not.ok(settle.pages.has(2));
  assert.equal(checkCatalog(settle), []);
  const before = replay(history());
  const predicted = before.pagesFreedBy('a');
  const rm = replay([...history(), { t: 'rm', seq: 7, name: 'a' }]);
  assert.equal(predicted, [...before.pages.keys()].filter((p) => !rm.pages.has(p)).sort((x, y) => x - y));
  assert.equal(checkCatalog(rm), []);
});

test('a compaction record settles and moves in one step; an older tessera refuses it, older repacks still replay', () => {
  // Settling b drops block 3 (page 2 frees); blocks 0, 1 and 2 move onto new page 5, so pages 0 and 1 free too.
  const compact: CatalogRecord = { t: 'repack', seq: 7, settle: ['b'], blocks: [{ id: 0, page: 5, offset: 0 }, { id: 1, page: 5, offset: 16 }, { id: 2, page: 5, offset: 32 }], pages: [{ id: 5, used: 48 }] };
  const wire = encodeRecord(compact);
  assert.equal(decodeRecord(wire), compact);
  // The tag is one a tessera before this record never knew ('repack' would replay the moves and skip the settle).
  assert.is((decode(wire) as { t: string }).t, 'repack-settle');
  const c = replay([...history(), compact]);
  assert.equal(checkCatalog(c), []);
  assert.equal(c.models.get('b')!.substitutions, []);
  assert.not.ok(c.blocks.has(3));
  assert.equal([...c.pages.keys()].sort((x, y) => x - y), [4, 5]);
  // Equivalent to the two records an earlier compact wrote (settle, then repack), which still replay.
  const old = replay([...history(), { t: 'settle', seq: 7, model: 'b' }, { t: 'repack', seq: 8, blocks: compact.blocks, pages: compact.pages }]);
  assert.is((decode(encodeRecord({ t: 'repack', seq: 8, blocks: compact.blocks, pages: compact.pages })) as { t: string }).t, 'repack');
  assert.equal({ ...summary(old), seq: 7, pages: summary(old).pages.map(([id, p]) => [id, { ...p, epoch: p.epoch === 8 ? 7 : p.epoch }]) }, summary(c));
});

test('a snapshot reloads to the same state, shared pages included, and skips folded records', () => {
  const recs = history();
  const c = replay(recs);
  const again = Catalog.load(c.snapshot(), recs.map((r) => encodeRecord(r)));
  assert.equal(summary(again), summary(c));
  const more: CatalogRecord = { t: 'rm', seq: 7, name: 'a' };
  const later = Catalog.load(c.snapshot(), [...recs, more].map((r) => encodeRecord(r)));
  assert.equal(summary(later), summary(replay([...recs, more])));
});

test('damaged or out-of-order records are CATALOG_CORRUPT', () => {
  const recs = history().map((r) => encodeRecord(r));
  assert.throws(() => Catalog.load(null, [recs[0], recs[2]]), (e: any) => e.code === 'CATALOG_CORRUPT');
  assert.throws(() => Catalog.load(null, [new Uint8Array([0xc1, 0xff])]), (e: any) => e.code === 'CATALOG_CORRUPT');
  assert.throws(() => replay([...history(), { t: 'rm', seq: 7, name: 'zzz' }]), (e: any) => e.code === 'CATALOG_CORRUPT');
});

test.run();
