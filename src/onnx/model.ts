/**
 * ONNX model I/O: split a model into a small "skeleton" (the protobuf with every weight's bytes
 * removed) plus the weights as raw little-endian byte arrays, and put them back together.
 *
 * The weights are found by one deterministic walk (`walkTensors`) used both when parsing and when
 * assembling, so `tensorData[i]` always fills the i-th tensor slot of a skeleton.
 */
import { clearField, create, fromBinary, isFieldSet, toBinary } from '@bufbuild/protobuf';
import {
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type TypeProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { InvalidArgumentError, InvalidModelError } from '../errors.ts';
import { DTYPES, dtypeFromOnnx, onnxDtypeName, tryDtypeFromOnnx, type DType } from './dtypes.ts';

export interface ExtractedTensor {
  name: string;
  dtype: DType;
  dims: number[];
  /**
   * Raw little-endian bytes, exactly prod(dims) * bytes-per-element long. For tensors stored as
   * raw_data (or external data) this is a view into the caller's buffer, not a copy.
   */
  data: Uint8Array;
  /** Which graph holds the tensor, as a human path: 'graph', 'graph/If_0.then_branch', ... */
  location: string;
  /** The TensorProto field its elements arrived in (absent: raw_data), so export writes them back there. */
  encoding?: TensorEncoding;
}

/**
 * Where a tensor's elements sat in the input's TensorProto. ONNX writers put them either in
 * raw_data or in the typed field of their element type (onnx.helper.make_tensor, Constant nodes
 * and PyTorch's exporter do both), and an empty tensor may carry no data field at all. Keeping
 * this per tensor is what lets `assembleModel` write a file byte-identical to the input.
 * - 'raw': raw_data (also what external data becomes when written inline);
 * - 'float' | 'int32' | 'int64' | 'double' | 'uint64': float_data, int32_data, ... (onnx.proto
 *   says which dtype uses which; float16/bfloat16/uint16 as bit patterns in int32_data);
 * - 'none': no data field (an empty tensor).
 */
export type TensorEncoding = 'raw' | 'float' | 'int32' | 'int64' | 'double' | 'uint64' | 'none';

/** Every TensorEncoding, for checking values read back from a catalog. */
export const TENSOR_ENCODINGS: readonly TensorEncoding[] = ['raw', 'float', 'int32', 'int64', 'double', 'uint64', 'none'];

/** A graph input or output. `shape` entries: number = fixed, string = symbolic, null = unknown. */
export interface TensorIO {
  name: string;
  /** A DType for supported tensor types; otherwise ONNX's name in lower case ('string'),
   * or 'sequence' / 'map' / 'optional' / 'sparse_tensor' / 'unknown' for non-tensor values. */
  dtype: string;
  /** [] for a scalar and also when the rank is unknown. */
  shape: (number | string | null)[];
}

export interface Opset {
  domain: string;
  version: number;
}

export interface ParsedModel {
  /** The model with every extracted tensor's data removed (serialized ModelProto). */
  skeleton: Uint8Array;
  /** Every weight, in skeleton slot order. */
  tensors: ExtractedTensor[];
  inputs: TensorIO[];
  outputs: TensorIO[];
  opsets: Opset[];
  irVersion: number;
}

export interface SkeletonTensor {
  name: string;
  dtype: DType;
  dims: number[];
  location: string;
}

export interface ParseOptions {
  /** Reads an external data file named by a tensor's `location`, relative to the model's folder. */
  readExternal?: (location: string) => Promise<Uint8Array>;
}

/** Default file name of the external data written by `assembleModelExternal`. */
export const DEFAULT_EXTERNAL_LOCATION = 'weights.bin';
/**
 * Offset alignment of each tensor inside the external data buffer. onnxruntime-web 1.30 copies
 * external data out of the mounted buffer and accepts any offset (tested with offsets that are odd
 * numbers); 64 bytes keeps every tensor aligned for typed-array views and SIMD loads, and the
 * padding costs under 64 bytes a tensor.
 */
export const EXTERNAL_DATA_ALIGNMENT = 64;
/** Tensors smaller than this stay inline in `assembleModelExternal` (onnx's own default threshold). */
export const EXTERNAL_DATA_MIN_BYTES = 1024;

/** Above this many elements a tensor's dims are treated as corrupt (2^31, as ONNX Runtime's limit). */
const MAX_ELEMENTS = 2 ** 31;

// ---------------------------------------------------------------------------------------------
// The walk

type TensorVisitor = (tensor: TensorProto, name: string, location: string) => void;

/**
 * Visits every dense tensor of a model that tessera treats as a weight, in a fixed order:
 * main graph (its initializers, then its nodes' tensor attributes and subgraphs, depth first),
 * then functions, then training graphs. STRING tensors are skipped (they stay in the skeleton).
 */
function walkTensors(model: ModelProto, visit: TensorVisitor): void {
  const visitDense: TensorVisitor = (t, name, loc) => {
    if (t.dataType !== TensorProto_DataType.STRING) visit(t, name, loc);
  };
  if (model.graph) walkGraph(model.graph, 'graph', visitDense);
  for (const f of model.functions) {
    walkNodes(f.node, `functions/${f.domain ? f.domain + '.' : ''}${f.name}`, visitDense);
  }
  model.trainingInfo.forEach((ti, i) => {
    if (ti.initialization) walkGraph(ti.initialization, `training[${i}].initialization`, visitDense);
    if (ti.algorithm) walkGraph(ti.algorithm, `training[${i}].algorithm`, visitDense);
  });
}

function walkGraph(graph: GraphProto, location: string, visit: TensorVisitor): void {
  for (const t of graph.initializer) visit(t, t.name, location);
  walkNodes(graph.node, location, visit);
}

function walkNodes(nodes: NodeProto[], location: string, visit: TensorVisitor): void {
  nodes.forEach((node, index) => {
    const label = node.name || `${node.opType}@${index}`;
    // A Constant's tensor is usually unnamed: its node output is the name the graph uses for it.
    const baseName = node.output[0] || label;
    for (const attr of node.attribute) {
      if (attr.t) visit(attr.t, attr.t.name || baseName, location);
      attr.tensors.forEach((t, j) => visit(t, t.name || `${baseName}.${attr.name}[${j}]`, location));
      if (attr.g) walkGraph(attr.g, `${location}/${label}.${attr.name}`, visit);
      attr.graphs.forEach((g, j) => walkGraph(g, `${location}/${label}.${attr.name}[${j}]`, visit));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Decoding and validation

function decodeModel(bytes: Uint8Array, what: string): ModelProto {
  if (!(bytes instanceof Uint8Array)) {
    throw new InvalidArgumentError(`${what} must be a Uint8Array, got ${typeof bytes}.`);
  }
  let model: ModelProto;
  try {
    model = fromBinary(ModelProtoSchema, bytes);
  } catch (e) {
    throw malformed(what, `protobuf decoding failed (${(e as Error)?.message ?? e}); the file may be truncated or not ONNX`, e);
  }
  if (!model.graph) throw malformed(what, 'it has no graph (the file may be truncated or not ONNX)');
  if (model.irVersion >= 3n && model.opsetImport.length === 0) {
    throw malformed(what, `it declares IR version ${model.irVersion} but imports no opset (the file may be truncated)`);
  }
  return model;
}

function malformed(what: string, why: string, cause?: unknown): InvalidModelError {
  return new InvalidModelError('ONNX_MALFORMED', `${what} is not a valid ONNX model: ${why}.`, { cause });
}

/** Checked dims of a tensor and its element count. */
function tensorShape(t: TensorProto, name: string, location: string): { dims: number[]; count: number } {
  const dims: number[] = [];
  let count = 1;
  for (const d of t.dims) {
    if (d < 0n || d > BigInt(MAX_ELEMENTS)) {
      throw new InvalidModelError('ONNX_MALFORMED', `tensor "${name}" (${location}) has an invalid dimension ${d} in dims [${t.dims.join(', ')}]; the model is corrupt.`);
    }
    const n = Number(d);
    dims.push(n);
    count *= n;
  }
  if (count > MAX_ELEMENTS) {
    throw new InvalidModelError('ONNX_MALFORMED', `tensor "${name}" (${location}) has dims [${dims.join(', ')}] = ${count} elements, over the limit of 2^31; the model is corrupt.`);
  }
  return { dims, count };
}

function lengthMismatch(name: string, location: string, dtype: DType, dims: number[], got: string, expected: number): InvalidModelError {
  return new InvalidModelError(
    'ONNX_MALFORMED',
    `tensor "${name}" (${location}, ${dtype} [${dims.join(', ')}]) holds ${got}, expected ${expected} bytes; the model is corrupt.`,
  );
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function asBytes(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/**
 * The tensor's elements from ONNX's typed fields (float_data, int32_data, ...), as little-endian
 * bytes, or undefined when the tensor has none. Which field holds which dtype follows onnx.proto.
 */
function typedFieldBytes(t: TensorProto, dtype: DType): { bytes: Uint8Array; elements: number; encoding: TensorEncoding } | undefined {
  const encoding = TYPED_FIELD[dtype];
  const toBytes = (view: ArrayBufferView & { length: number }) => ({ bytes: asBytes(view), elements: view.length, encoding });
  switch (dtype) {
    case 'float32':
      return t.floatData.length ? toBytes(Float32Array.from(t.floatData)) : undefined;
    case 'float64':
      return t.doubleData.length ? toBytes(Float64Array.from(t.doubleData)) : undefined;
    case 'int64':
      return t.int64Data.length ? toBytes(BigInt64Array.from(t.int64Data)) : undefined;
    case 'uint64':
      return t.uint64Data.length ? toBytes(BigUint64Array.from(t.uint64Data)) : undefined;
    case 'uint32':
      return t.uint64Data.length ? toBytes(Uint32Array.from(t.uint64Data, (v) => Number(BigInt.asUintN(32, v)))) : undefined;
    case 'int32':
      return t.int32Data.length ? toBytes(Int32Array.from(t.int32Data)) : undefined;
    case 'int16':
      return t.int32Data.length ? toBytes(Int16Array.from(t.int32Data)) : undefined;
    case 'int8':
      return t.int32Data.length ? toBytes(Int8Array.from(t.int32Data)) : undefined;
    case 'uint8':
    case 'bool':
      return t.int32Data.length ? toBytes(Uint8Array.from(t.int32Data)) : undefined;
    case 'uint16':
    case 'float16':
    case 'bfloat16': // 16-bit floats are stored as their bit patterns in int32_data
      return t.int32Data.length ? toBytes(Uint16Array.from(t.int32Data)) : undefined;
  }
}

/** The typed field onnx.proto assigns to each dtype. */
const TYPED_FIELD: Record<DType, TensorEncoding> = {
  float32: 'float',
  float64: 'double',
  int64: 'int64',
  uint64: 'uint64',
  uint32: 'uint64',
  int32: 'int32',
  int16: 'int32',
  int8: 'int32',
  uint8: 'int32',
  bool: 'int32',
  uint16: 'int32',
  float16: 'int32',
  bfloat16: 'int32',
};

/** A typed-array view of `bytes` (copied first when unaligned). */
function elementView<T>(bytes: Uint8Array, Ctor: { new (b: ArrayBufferLike, o: number, n: number): T; BYTES_PER_ELEMENT: number }): T {
  const size = Ctor.BYTES_PER_ELEMENT;
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return new Ctor(b.buffer, b.byteOffset, b.length / size);
}

/** Writes `bytes` (little-endian elements of `dtype`) into the tensor field `encoding` names. */
function setTensorData(t: TensorProto, dtype: DType, bytes: Uint8Array, encoding: TensorEncoding): void {
  if (encoding === 'raw') {
    t.rawData = bytes as Uint8Array<ArrayBuffer>;
    return;
  }
  if (encoding === 'none') {
    if (bytes.length) throw new InvalidArgumentError(`tensor "${t.name}" is recorded as having no data field but ${bytes.length} bytes were given.`);
    return;
  }
  if (TYPED_FIELD[dtype] !== encoding) throw new InvalidArgumentError(`tensor "${t.name}" (${dtype}) cannot be written into the ${encoding}_data field.`);
  switch (dtype) {
    case 'float32':
      t.floatData = Array.from(elementView(bytes, Float32Array));
      return;
    case 'float64':
      t.doubleData = Array.from(elementView(bytes, Float64Array));
      return;
    case 'int64':
      t.int64Data = Array.from(elementView(bytes, BigInt64Array));
      return;
    case 'uint64':
      t.uint64Data = Array.from(elementView(bytes, BigUint64Array));
      return;
    case 'uint32':
      t.uint64Data = Array.from(elementView(bytes, Uint32Array), (v) => BigInt(v));
      return;
    case 'int32':
      t.int32Data = Array.from(elementView(bytes, Int32Array));
      return;
    case 'int16':
      t.int32Data = Array.from(elementView(bytes, Int16Array));
      return;
    case 'int8':
      t.int32Data = Array.from(elementView(bytes, Int8Array));
      return;
    case 'uint8':
    case 'bool':
      t.int32Data = Array.from(bytes);
      return;
    case 'uint16':
    case 'float16':
    case 'bfloat16':
      t.int32Data = Array.from(elementView(bytes, Uint16Array));
      return;
  }
}

function hasTypedData(t: TensorProto): boolean {
  return (
    t.floatData.length > 0 ||
    t.doubleData.length > 0 ||
    t.int32Data.length > 0 ||
    t.int64Data.length > 0 ||
    t.uint64Data.length > 0
  );
}

function externalError(name: string, file: string | undefined, why: string, cause?: unknown): InvalidModelError {
  const f = file === undefined ? '' : ` in file "${file}"`;
  return new InvalidModelError('ONNX_EXTERNAL_DATA', `tensor "${name}" has its data${f} outside the model, but ${why}.`, { cause });
}

/** Rejects external data paths that could read outside the model's folder. */
function checkExternalLocation(name: string, loc: string): void {
  const absolute = loc.startsWith('/') || loc.startsWith('\\') || /^[a-zA-Z]:/.test(loc) || loc.includes('://');
  const escapes = loc.split(/[\\/]/).includes('..');
  if (absolute || escapes || loc.includes('\0')) {
    throw externalError(name, loc, 'the location is absolute or leaves the model\'s folder ("..") — refused for safety; move the file beside the model');
  }
}

function parseExternalInt(name: string, loc: string, key: string, value: string): number {
  if (!/^\d+$/.test(value.trim())) throw externalError(name, loc, `its ${key} "${value}" is not a non-negative integer`);
  const n = Number(value.trim());
  if (!Number.isSafeInteger(n)) throw externalError(name, loc, `its ${key} ${value} is too large`);
  return n;
}

interface PendingExternal {
  index: number;
  name: string;
  location: string;
  file: string;
  offset: number;
  length: number | undefined;
  expected: number;
  dtype: DType;
  dims: number[];
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Parses ONNX bytes into a skeleton plus every weight tensor (initializers at any subgraph depth,
 * in functions and training graphs, and tensor attributes such as Constant's `value`).
 * @throws InvalidModelError ONNX_MALFORMED, ONNX_UNSUPPORTED_DTYPE or ONNX_EXTERNAL_DATA.
 */
export async function parseModel(bytes: Uint8Array, opts: ParseOptions = {}): Promise<ParsedModel> {
  if (!LITTLE_ENDIAN) throw new InvalidArgumentError('tessera needs a little-endian platform.');
  const model = decodeModel(bytes, 'the input');
  const tensors: ExtractedTensor[] = [];
  const pending: PendingExternal[] = [];

  walkTensors(model, (t, name, location) => {
    const dtype = dtypeFromOnnx(t.dataType, name);
    const { dims, count } = tensorShape(t, name, location);
    const expected = count * DTYPES[dtype].bytes;
    if (t.segment) {
      throw new InvalidModelError('ONNX_MALFORMED', `tensor "${name}" (${location}) is a segment of a larger tensor, which ONNX models do not use; the model is corrupt.`);
    }
    let data: Uint8Array;
    let encoding: TensorEncoding = 'raw';
    if (t.dataLocation === TensorProto_DataLocation.EXTERNAL) {
      const entries = new Map(t.externalData.map((e) => [e.key, e.value]));
      const file = entries.get('location');
      if (!file) throw externalError(name, undefined, 'its external_data has no "location" entry');
      checkExternalLocation(name, file);
      const offset = entries.has('offset') ? parseExternalInt(name, file, 'offset', entries.get('offset')!) : 0;
      const length = entries.has('length') ? parseExternalInt(name, file, 'length', entries.get('length')!) : undefined;
      if (length !== undefined && length !== expected) {
        throw lengthMismatch(name, location, dtype, dims, `${length} bytes of external data`, expected);
      }
      pending.push({ index: tensors.length, name, location, file, offset, length, expected, dtype, dims });
      data = new Uint8Array(0); // filled in below
    } else if (t.rawData.length > 0 || !hasTypedData(t)) {
      data = t.rawData;
      if (data.length !== expected) throw lengthMismatch(name, location, dtype, dims, `${data.length} bytes of raw_data`, expected);
      if (!isFieldSet(t, TensorProtoSchema.field.rawData)) encoding = 'none';
    } else {
      const typed = typedFieldBytes(t, dtype);
      if (!typed) throw lengthMismatch(name, location, dtype, dims, 'its data in a field that does not match its element type', expected);
      if (typed.bytes.length !== expected) {
        throw lengthMismatch(name, location, dtype, dims, `${typed.elements} elements (${typed.bytes.length} bytes) in typed fields`, expected);
      }
      data = typed.bytes;
      encoding = typed.encoding;
    }
    tensors.push({ name, dtype, dims, data, location, ...(encoding !== 'raw' ? { encoding } : {}) });
    clearTensorData(t);
  });

  if (pending.length) {
    const read = opts.readExternal;
    if (!read) throw externalError(pending[0].name, pending[0].file, 'no external data reader was given (pass the files beside the model)');
    // Each file is read once, all of them at once.
    const files = new Map<string, Promise<Uint8Array>>();
    for (const p of pending) {
      if (files.has(p.file)) continue;
      const file = Promise.resolve().then(() => read(p.file));
      file.catch(() => {}); // awaited below; avoids an unhandled rejection when an earlier file fails first
      files.set(p.file, file);
    }
    for (const p of pending) {
      let content: Uint8Array;
      try {
        content = await files.get(p.file)!;
      } catch (e) {
        throw externalError(p.name, p.file, `the file cannot be read (${(e as Error)?.message ?? e})`, e);
      }
      if (!(content instanceof Uint8Array)) throw externalError(p.name, p.file, 'the reader did not return a Uint8Array');
      const length = p.length ?? content.length - p.offset;
      if (p.offset + length > content.length || length < 0) {
        throw externalError(p.name, p.file, `the file is ${content.length} bytes, shorter than offset ${p.offset} + length ${length} (truncated?)`);
      }
      if (length !== p.expected) throw lengthMismatch(p.name, p.location, p.dtype, p.dims, `${length} bytes of external data`, p.expected);
      tensors[p.index].data = content.subarray(p.offset, p.offset + length);
    }
  }

  const graph = model.graph!;
  return {
    skeleton: toBinary(ModelProtoSchema, model),
    tensors,
    inputs: graphInputs(graph),
    outputs: graph.output.map(tensorIO),
    opsets: model.opsetImport.map((o) => ({ domain: o.domain, version: Number(o.version) })),
    irVersion: Number(model.irVersion),
  };
}

/** Empties a tensor's data fields so it becomes a skeleton slot (raw_data, typed fields, external refs). */
function clearTensorData(t: TensorProto): void {
  const f = TensorProtoSchema.field;
  for (const field of [f.rawData, f.floatData, f.doubleData, f.int32Data, f.int64Data, f.uint64Data, f.dataLocation, f.externalData]) {
    clearField(t, field);
  }
}

/** Slots of a skeleton, checked, in walk order. */
function skeletonSlots(model: ModelProto): { tensor: TensorProto; info: SkeletonTensor; bytes: number }[] {
  const slots: { tensor: TensorProto; info: SkeletonTensor; bytes: number }[] = [];
  walkTensors(model, (t, name, location) => {
    const dtype = dtypeFromOnnx(t.dataType, name);
    const { dims, count } = tensorShape(t, name, location);
    slots.push({ tensor: t, info: { name, dtype, dims, location }, bytes: count * DTYPES[dtype].bytes });
  });
  return slots;
}

function fillSlots(skeleton: Uint8Array, tensorData: Uint8Array[]) {
  const model = decodeModel(skeleton, 'the skeleton');
  const slots = skeletonSlots(model);
  if (!Array.isArray(tensorData) || tensorData.length !== slots.length) {
    throw new InvalidArgumentError(`the skeleton has ${slots.length} tensors but ${tensorData?.length} data arrays were given.`);
  }
  slots.forEach((s, i) => {
    const d = tensorData[i];
    if (!(d instanceof Uint8Array) || d.length !== s.bytes) {
      throw new InvalidArgumentError(
        `tensor ${i} "${s.info.name}" (${s.info.dtype} [${s.info.dims.join(', ')}]) needs ${s.bytes} bytes, got ${d instanceof Uint8Array ? d.length : typeof d}.`,
      );
    }
  });
  return { model, slots };
}

/**
 * A self-contained ONNX model: the skeleton with `tensorData[i]` in slot i, written into the field
 * `encodings[i]` names (default raw_data). Given the encodings `parseModel` reported, the result is
 * byte-identical to the parsed input whenever that input was a canonical protobuf encoding (fields
 * in number order, packed repeated fields, as onnx's Python and C++ writers produce) and held no
 * external data (external data comes back inline as raw_data).
 */
export function assembleModel(skeleton: Uint8Array, tensorData: Uint8Array[], encodings?: readonly (TensorEncoding | undefined)[]): Uint8Array {
  const { model, slots } = fillSlots(skeleton, tensorData);
  if (encodings !== undefined && encodings.length !== slots.length) {
    throw new InvalidArgumentError(`the skeleton has ${slots.length} tensors but ${encodings.length} encodings were given.`);
  }
  slots.forEach((s, i) => setTensorData(s.tensor, s.info.dtype, tensorData[i], encodings?.[i] ?? 'raw'));
  return toBinary(ModelProtoSchema, model);
}

/**
 * The skeleton with the main graph's tensors moved into one external data buffer, at offsets
 * aligned to EXTERNAL_DATA_ALIGNMENT. Pass it to onnxruntime-web as
 * `InferenceSession.create(model, { externalData: [{ path: location, data: externalData }] })`.
 * These stay inline as raw_data, because onnxruntime-web 1.30 fails on them otherwise:
 * - tensors under `minBytes` (default EXTERNAL_DATA_MIN_BYTES): shape inference reads small
 *   tensors such as Reshape's shape and cannot read external data ("Cannot parse data from
 *   external tensors");
 * - subgraph and function tensors: their external data is resolved against the file system, not
 *   the mounted buffer ("external data path could not be canonicalized").
 */
export function assembleModelExternal(
  skeleton: Uint8Array,
  tensorData: Uint8Array[],
  location: string = DEFAULT_EXTERNAL_LOCATION,
  opts: { minBytes?: number } = {},
): { model: Uint8Array; externalData: Uint8Array; location: string } {
  if (typeof location !== 'string' || location === '') throw new InvalidArgumentError('the external data location must be a non-empty file name.');
  const minBytes = Math.max(1, opts.minBytes ?? EXTERNAL_DATA_MIN_BYTES);
  const { model, slots } = fillSlots(skeleton, tensorData);
  const external = slots.map((s, i) => s.info.location === 'graph' && tensorData[i].length >= minBytes);
  const offsets: number[] = [];
  let size = 0;
  tensorData.forEach((d, i) => {
    offsets.push(size);
    if (external[i]) size = alignUp(size + d.length, EXTERNAL_DATA_ALIGNMENT);
  });
  const externalData = new Uint8Array(size);
  slots.forEach((s, i) => {
    const d = tensorData[i];
    if (!external[i]) {
      s.tensor.rawData = d as Uint8Array<ArrayBuffer>;
      return;
    }
    externalData.set(d, offsets[i]);
    s.tensor.dataLocation = TensorProto_DataLocation.EXTERNAL;
    s.tensor.externalData = [
      create(StringStringEntryProtoSchema, { key: 'location', value: location }),
      create(StringStringEntryProtoSchema, { key: 'offset', value: String(offsets[i]) }),
      create(StringStringEntryProtoSchema, { key: 'length', value: String(d.length) }),
    ];
  });
  return { model: toBinary(ModelProtoSchema, model), externalData, location };
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** What a skeleton holds, without any tensor data: its slots (in order), inputs and outputs. */
export function skeletonInfo(skeleton: Uint8Array): { tensors: SkeletonTensor[]; inputs: TensorIO[]; outputs: TensorIO[] } {
  const model = decodeModel(skeleton, 'the skeleton');
  const graph = model.graph!;
  return { tensors: skeletonSlots(model).map((s) => s.info), inputs: graphInputs(graph), outputs: graph.output.map(tensorIO) };
}

// ---------------------------------------------------------------------------------------------
// Inputs and outputs

/** Graph inputs a caller must feed: older models also list initializers as inputs; those are not. */
function graphInputs(graph: GraphProto): TensorIO[] {
  const weights = new Set(graph.initializer.map((t) => t.name));
  return graph.input.filter((v) => !weights.has(v.name)).map(tensorIO);
}

function tensorIO(v: ValueInfoProto): TensorIO {
  return { name: v.name, ...describeType(v.type) };
}

function elemTypeName(code: number): string {
  return tryDtypeFromOnnx(code) ?? onnxDtypeName(code).toLowerCase();
}

function describeType(type: TypeProto | undefined): { dtype: string; shape: (number | string | null)[] } {
  const value = type?.value;
  switch (value?.case) {
    case 'tensorType':
    case 'sparseTensorType': {
      const shape = (value.value.shape?.dim ?? []).map((d) =>
        d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : null,
      );
      const dtype = elemTypeName(value.value.elemType);
      return { dtype: value.case === 'tensorType' ? dtype : `sparse_tensor:${dtype}`, shape };
    }
    case 'sequenceType':
      return { dtype: 'sequence', shape: [] };
    case 'mapType':
      return { dtype: 'map', shape: [] };
    case 'optionalType':
      return { dtype: 'optional', shape: [] };
    default:
      return { dtype: 'unknown', shape: [] };
  }
}

// ---------------------------------------------------------------------------------------------
// Single tensors

/** A TensorProto on its own (as in the input_N.pb files of ONNX's backend test data). */
export interface DecodedTensor {
  name: string;
  /** A DType, or 'string'. */
  dtype: DType | 'string';
  dims: number[];
  /** Little-endian elements for numeric dtypes, the UTF-8-decoded values for 'string'. */
  data: Uint8Array | string[];
}

/**
 * Decodes one serialized TensorProto, from raw_data or its typed field.
 * @throws InvalidModelError ONNX_MALFORMED (bad bytes or lengths), ONNX_UNSUPPORTED_DTYPE,
 * ONNX_EXTERNAL_DATA (a lone tensor file cannot name external data).
 */
export function decodeTensorProto(bytes: Uint8Array): DecodedTensor {
  let t: TensorProto;
  try {
    t = fromBinary(TensorProtoSchema, bytes);
  } catch (e) {
    throw new InvalidModelError('ONNX_MALFORMED', `the bytes are not a serialized ONNX TensorProto (${(e as Error)?.message ?? e}).`, { cause: e });
  }
  const name = t.name;
  const location = 'tensor file';
  const { dims, count } = tensorShape(t, name, location);
  if (t.dataType === TensorProto_DataType.STRING) {
    if (t.stringData.length !== count) throw lengthMismatch(name, location, 'string' as DType, dims, `${t.stringData.length} strings`, count);
    const utf8 = new TextDecoder();
    return { name, dtype: 'string', dims, data: t.stringData.map((s) => utf8.decode(s)) };
  }
  const dtype = dtypeFromOnnx(t.dataType, name);
  const expected = count * DTYPES[dtype].bytes;
  if (t.dataLocation === TensorProto_DataLocation.EXTERNAL) throw externalError(name, undefined, 'a tensor file on its own has no folder to read it from');
  if (t.rawData.length > 0 || !hasTypedData(t)) {
    if (t.rawData.length !== expected) throw lengthMismatch(name, location, dtype, dims, `${t.rawData.length} bytes of raw_data`, expected);
    return { name, dtype, dims, data: t.rawData };
  }
  const typed = typedFieldBytes(t, dtype);
  if (!typed || typed.bytes.length !== expected) throw lengthMismatch(name, location, dtype, dims, `${typed?.elements ?? 0} elements in typed fields`, expected);
  return { name, dtype, dims, data: typed.bytes };
}
