/**
 * Reading an ONNX file without reading its weights up front. The file's structure (graph, nodes,
 * small tensors) is read into a buffer the size of the file, at the file's own offsets, but the
 * bytes of large `raw_data` fields are skipped: those parts of the buffer are never written, so
 * the memory behind them is never touched (no page faults, no resident memory), and each weight
 * is read from the file when ingest comes to it, into one buffer reused across tensors. On a
 * 105 MB model, reading the whole file into fresh memory took 60-120 ms and held the file in RSS
 * until the add ended; reading the same bytes into a reused buffer took ~16 ms
 * (bench store --part=large-models, issue 12).
 *
 * The parser (protobuf-es) returns `raw_data` as views into the buffer it was given, so a parsed
 * tensor whose data view is exactly a skipped range is a weight still to read. `claimDeferred`
 * checks that every skipped range became such a view and nothing else overlaps one; if not (an
 * unusual file, or a parser that copies), the caller reads the skipped ranges in after all, so
 * bytes never read are never used.
 *
 * The walk follows onnx.proto's field numbers: ModelProto.graph (7) → GraphProto.initializer (5)
 * → TensorProto.raw_data (9); GraphProto.node (1) → NodeProto.attribute (5) → AttributeProto.t
 * (5, a Constant's tensor) and AttributeProto.g (6, a subgraph). Everything else is read as is.
 */

/** Reads `into.length` bytes of the file at `position` into `into` (all of them, or throws). */
export type ReadAt = (into: Uint8Array, position: number) => Promise<void>;

/** A raw_data field at least this long is left unread until its tensor's turn. */
export const DEFER_MIN_BYTES = 64 * 1024;
/** Read-ahead when the walk needs more bytes (it may read a little of a weight it then skips). */
const CHUNK = 64 * 1024;

/**
 * A buffer reused by the structure reads of several files, one after another (the files of one
 * batch): a fresh file-sized buffer per file, though mostly never touched, is external memory
 * that V8 counts, and on the zoo (12 files, 51 MB) the collections it set off took ~17 of ~30 ms
 * of garbage collection per batch (`node --cpu-prof`, bench store --part=ingest). A file's
 * structure is used only while that file is added (parsed, its tensors cut): the next file may
 * then overwrite it. Its deferred ranges then hold earlier bytes, not zeros: they are never used
 * unread either way (claimDeferred, fillDeferred).
 */
export interface ReadSpace {
  bytes: Uint8Array;
}

export interface SparseFile {
  /** The file's bytes, at their offsets; the deferred ranges are left unread (zero, or a ReadSpace's earlier bytes). */
  bytes: Uint8Array;
  /** Unread raw_data ranges: offset → length. */
  deferred: Map<number, number>;
}

/** The walk gave up: not the structure expected (the full read then lets the parser judge it). */
class NotScannable extends Error {}

/**
 * Reads a `size`-byte ONNX file through `read`, leaving large weights unread (see above).
 * Returns null when the file's structure is not what the walk expects: read it whole then.
 */
export async function readSkippingWeights(size: number, read: ReadAt, minBytes = DEFER_MIN_BYTES, space?: ReadSpace): Promise<SparseFile | null> {
  let bytes: Uint8Array;
  if (space) {
    if (space.bytes.length < size) space.bytes = new Uint8Array(size);
    bytes = space.bytes.subarray(0, size);
  } else bytes = new Uint8Array(size);
  const deferred = new Map<number, number>();
  // Every byte before `loaded`, outside deferred ranges, has been read.
  let loaded = 0;
  const need = async (end: number) => {
    if (end > size) throw new NotScannable();
    if (end <= loaded) return;
    const to = Math.min(size, Math.max(end, loaded + CHUNK));
    await read(bytes.subarray(loaded, to), loaded);
    loaded = to;
  };
  const varint = async (pos: number): Promise<{ value: number; next: number }> => {
    // A varint is at most 10 bytes: load them once (fewer awaits than one per byte).
    if (pos + 10 > loaded) await need(Math.min(size, pos + 10));
    let value = 0;
    for (let i = 0, scale = 1; i < 10; i++, scale *= 128) {
      if (pos + i >= size) throw new NotScannable();
      const b = bytes[pos + i];
      value += (b & 0x7f) * scale;
      // Values may exceed 2^53 (a negative int64 is 10 bytes): only tags and lengths are used.
      if (b < 0x80) return { value, next: pos + i + 1 };
    }
    throw new NotScannable();
  };

  type Into = (field: number, start: number, end: number) => Promise<boolean>;
  /** Walks the fields in [start, end); `into` handles a length-delimited field and says whether it did. */
  const walk = async (start: number, end: number, into: Into) => {
    let pos = start;
    while (pos < end) {
      const tag = await varint(pos);
      const field = Math.floor(tag.value / 8);
      pos = tag.next;
      switch (tag.value & 7) {
        case 0:
          pos = (await varint(pos)).next;
          break;
        case 1:
          pos += 8;
          break;
        case 5:
          pos += 4;
          break;
        case 2: {
          const len = await varint(pos);
          if (!Number.isSafeInteger(len.value)) throw new NotScannable();
          const from = len.next;
          const to = from + len.value;
          if (to > end) throw new NotScannable();
          // A field shorter than minBytes holds no weight to skip: read it without walking it.
          if (to - from < minBytes || !(await into(field, from, to))) await need(to);
          pos = to;
          break;
        }
        default:
          throw new NotScannable(); // groups: not used by ONNX
      }
      if (pos > end) throw new NotScannable();
    }
  };

  const tensor: Into = async (field, from, to) => {
    if (field !== 9 || to - from < minBytes) return false;
    deferred.set(from, to - from);
    loaded = Math.max(loaded, to);
    return true;
  };
  const attribute: Into = async (field, from, to) => {
    if (field === 5) return walk(from, to, tensor).then(() => true);
    if (field === 6) return walk(from, to, graph).then(() => true);
    return false;
  };
  const node: Into = async (field, from, to) => (field === 5 ? walk(from, to, attribute).then(() => true) : false);
  const graph: Into = async (field, from, to) => {
    if (field === 5) return walk(from, to, tensor).then(() => true);
    if (field === 1) return walk(from, to, node).then(() => true);
    return false;
  };
  const model: Into = async (field, from, to) => (field === 7 ? walk(from, to, graph).then(() => true) : false);

  try {
    await walk(0, size, model);
    await need(size);
  } catch (e) {
    if (e instanceof NotScannable) return null;
    throw e;
  }
  return { bytes, deferred };
}

/**
 * Matches parsed tensor data views to the deferred ranges of `file`: returns, per view, its file
 * range when it is exactly a deferred range (a weight still to read), or null when some deferred
 * range is not exactly one tensor's view or a view overlaps one (the caller must then read the
 * deferred ranges in before using anything parsed from `file.bytes`).
 */
export function claimDeferred(file: SparseFile, views: readonly Uint8Array[]): ({ offset: number; length: number } | undefined)[] | null {
  const claimed = new Set<number>();
  const out: ({ offset: number; length: number } | undefined)[] = [];
  const ranges = [...file.deferred].sort((a, b) => a[0] - b[0]);
  const overlaps = (from: number, to: number) => {
    // Binary search for the last range starting before `to`.
    let lo = 0;
    let hi = ranges.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (ranges[mid][0] < to) (found = mid), (lo = mid + 1);
      else hi = mid - 1;
    }
    return found >= 0 && ranges[found][0] + ranges[found][1] > from;
  };
  for (const v of views) {
    if (v.buffer !== file.bytes.buffer) {
      out.push(undefined);
      continue;
    }
    const offset = v.byteOffset - file.bytes.byteOffset;
    const length = file.deferred.get(offset);
    if (length !== undefined && length === v.length && !claimed.has(offset)) {
      claimed.add(offset);
      out.push({ offset, length });
      continue;
    }
    if (v.length > 0 && overlaps(offset, offset + v.length)) return null;
    out.push(undefined);
  }
  return claimed.size === file.deferred.size ? out : null;
}

/** Reads every deferred range into `file.bytes` (the fallback: the whole file in memory). */
export async function fillDeferred(file: SparseFile, read: ReadAt): Promise<void> {
  for (const [offset, length] of file.deferred) await read(file.bytes.subarray(offset, offset + length), offset);
  file.deferred.clear();
}
