/**
 * The KServe v2 / Open Inference Protocol tensor codec: an inference request (JSON, optionally
 * followed by binary tensor data — the binary tensor data extension) in, tessera feeds out; runtime
 * outputs in, a response body (JSON, or JSON + binary) out. Pure functions: the HTTP layer only
 * moves bytes through them.
 *
 * Binary extension: the `Inference-Header-Content-Length` header gives the length of the JSON part;
 * inputs with `parameters.binary_data_size` take their bytes, in input order, from what follows.
 * Outputs asked for with `parameters.binary_data: true` (or every output, with the request parameter
 * `binary_data_output: true`) come back the same way. Binary data is little-endian, row-major,
 * unpadded; BOOL is one byte per element.
 */
import type { TensorIOInfo } from '../../catalog/catalog.ts';
import { InferenceError } from '../../errors.ts';
import { plainValues, tensorData, type PlainValue } from '../../onnx/tensor-values.ts';
import { DTYPES, STORAGE_ARRAY, type DType, type TypedArrayConstructor } from '../../onnx/dtypes.ts';

/** A request the client got wrong: HTTP 400, or 413 when it is merely too large. */
export class ProtocolError extends Error {
  constructor(readonly status: 400 | 413, message: string) {
    super(message);
  }
}

interface Datatype {
  /** tessera / onnxruntime dtype name. */
  dtype: DType;
  bytes: number;
  array: TypedArrayConstructor;
}

/** The layout of a dtype's elements: its size and the typed array it is kept in (dtypes.ts). */
const datatype = (dtype: DType): Datatype => ({ dtype, bytes: DTYPES[dtype].bytes, array: STORAGE_ARRAY[dtype] });

/** KServe datatype → element layout. BYTES (strings) is not served: no stored model takes strings. */
export const DATATYPES: Record<string, Datatype> = {
  BOOL: datatype('bool'),
  UINT8: datatype('uint8'),
  UINT16: datatype('uint16'),
  UINT32: datatype('uint32'),
  UINT64: datatype('uint64'),
  INT8: datatype('int8'),
  INT16: datatype('int16'),
  INT32: datatype('int32'),
  INT64: datatype('int64'),
  FP16: datatype('float16'),
  FP32: datatype('float32'),
  FP64: datatype('float64'),
};

const BY_DTYPE = new Map<string, string>(Object.entries(DATATYPES).map(([k, v]) => [v.dtype, k]));

/** The KServe datatype of a tessera dtype ('float32' → 'FP32'); BYTES for strings and unknowns. */
export function datatypeOf(dtype: string): string {
  return BY_DTYPE.get(dtype) ?? (dtype === 'string' ? 'BYTES' : dtype.toUpperCase());
}

/** Model metadata's tensor description: symbolic and unknown dims are -1. */
export function tensorMetadata(io: TensorIOInfo): { name: string; datatype: string; shape: number[] } {
  return { name: io.name, datatype: datatypeOf(io.dtype), shape: io.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)) };
}

export interface ParsedRequest {
  id?: string;
  feeds: Record<string, { data: ArrayLike<number | bigint> & ArrayBufferView; dims: number[]; dtype: string }>;
  /** Outputs to return (null: all), each with whether it goes back as binary. */
  outputs: { name: string; binary: boolean }[] | null;
  /** Default for outputs not listed (request parameter binary_data_output). */
  binaryByDefault: boolean;
  /** Bytes of tensor data in the request. */
  tensorBytes: number;
}

export interface Limits {
  /** Largest input tensor, in bytes. */
  maxTensorBytes: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function flatten(data: unknown, out: unknown[], limit: number): void {
  if (!Array.isArray(data)) {
    out.push(data);
    return;
  }
  for (const d of data) {
    if (Array.isArray(d)) flatten(d, out, limit);
    else out.push(d);
    if (out.length > limit) return;
  }
}

/**
 * Parses an inference request. `body` is the raw body; `headerLength` the value of
 * Inference-Header-Content-Length (undefined: the whole body is JSON).
 */
export function parseInferRequest(body: Uint8Array, headerLength: string | undefined, limits: Limits): ParsedRequest {
  let jsonEnd = body.length;
  if (headerLength !== undefined) {
    const n = Number(headerLength);
    if (!Number.isInteger(n) || n < 0 || n > body.length) throw new ProtocolError(400, `Inference-Header-Content-Length ${JSON.stringify(headerLength)} must be a whole number of bytes no larger than the body (${body.length} bytes)`);
    jsonEnd = n;
  }
  let req: unknown;
  try {
    req = JSON.parse(Buffer.from(body.buffer, body.byteOffset, jsonEnd).toString('utf8'));
  } catch (e) {
    throw new ProtocolError(400, `the request is not valid JSON (${(e as Error).message})${headerLength === undefined && body.length ? '; binary tensor data needs the Inference-Header-Content-Length header' : ''}`);
  }
  if (!isObject(req)) throw new ProtocolError(400, 'the request must be a JSON object with an "inputs" array');
  if (!Array.isArray(req.inputs) || !req.inputs.length) throw new ProtocolError(400, 'the request needs a non-empty "inputs" array of {name, shape, datatype, data}');
  const params = isObject(req.parameters) ? req.parameters : {};
  let binaryAt = jsonEnd;
  let tensorBytes = 0;
  const feeds: ParsedRequest['feeds'] = {};
  for (const [i, input] of req.inputs.entries()) {
    if (!isObject(input) || typeof input.name !== 'string' || !input.name) throw new ProtocolError(400, `inputs[${i}] must be an object with a "name" string`);
    const name = input.name;
    if (name in feeds) throw new ProtocolError(400, `input "${name}" is given twice`);
    const dt = typeof input.datatype === 'string' ? DATATYPES[input.datatype] : undefined;
    if (!dt) {
      const hint = input.datatype === 'BYTES' ? 'BYTES (string) tensors are not served' : `use one of ${Object.keys(DATATYPES).join(', ')}`;
      throw new ProtocolError(400, `input "${name}": datatype ${JSON.stringify(input.datatype)} is not supported: ${hint}`);
    }
    if (!Array.isArray(input.shape) || !input.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new ProtocolError(400, `input "${name}": "shape" must be an array of non-negative integers`);
    const dims = input.shape as number[];
    const count = dims.reduce((a, d) => a * d, 1);
    const bytes = count * dt.bytes;
    if (bytes > limits.maxTensorBytes) throw new ProtocolError(413, `input "${name}" holds ${bytes} bytes, more than the limit of ${limits.maxTensorBytes} bytes per tensor: send smaller batches`);
    tensorBytes += bytes;
    const ip = isObject(input.parameters) ? input.parameters : {};
    let data: ArrayLike<number | bigint> & ArrayBufferView;
    if (ip.binary_data_size !== undefined) {
      const size = ip.binary_data_size;
      if (!Number.isSafeInteger(size) || (size as number) < 0) throw new ProtocolError(400, `input "${name}": binary_data_size must be a non-negative integer`);
      if (size !== bytes) throw new ProtocolError(400, `input "${name}": binary_data_size is ${size} bytes, but shape [${dims.join(', ')}] of ${input.datatype} needs ${bytes}`);
      if (binaryAt + bytes > body.length) throw new ProtocolError(400, `input "${name}": the body holds ${body.length - binaryAt} more binary bytes, ${bytes} are needed`);
      // Copied so the typed array is aligned and owns its bytes (the body may be reused).
      const own = new Uint8Array(bytes);
      own.set(body.subarray(binaryAt, binaryAt + bytes));
      binaryAt += bytes;
      data = new (dt.array as unknown as new (b: ArrayBuffer) => typeof data)(own.buffer);
    } else {
      if (input.data === undefined) throw new ProtocolError(400, `input "${name}" has neither "data" nor a binary_data_size parameter`);
      if (input.datatype === 'FP16') throw new ProtocolError(400, `input "${name}": FP16 has no JSON form: send it as binary data (binary_data_size)`);
      const flat: unknown[] = [];
      flatten(input.data, flat, count);
      if (flat.length !== count) throw new ProtocolError(400, `input "${name}": shape [${dims.join(', ')}] needs ${count} elements, "data" has ${flat.length > count ? 'more' : flat.length}`);
      data = fromJson(name, dt, flat);
    }
    feeds[name] = { data, dims, dtype: dt.dtype };
  }
  if (binaryAt !== body.length && headerLength !== undefined) throw new ProtocolError(400, `the body has ${body.length - binaryAt} bytes of binary data that no input claims (binary_data_size)`);
  let outputs: ParsedRequest['outputs'] = null;
  const binaryByDefault = params.binary_data_output === true;
  if (req.outputs !== undefined) {
    if (!Array.isArray(req.outputs)) throw new ProtocolError(400, '"outputs" must be an array of {name, parameters}');
    outputs = req.outputs.map((o, i) => {
      if (!isObject(o) || typeof o.name !== 'string') throw new ProtocolError(400, `outputs[${i}] must be an object with a "name" string`);
      const op = isObject(o.parameters) ? o.parameters : {};
      return { name: o.name, binary: op.binary_data === undefined ? binaryByDefault : op.binary_data === true };
    });
  }
  return { id: typeof req.id === 'string' ? req.id : undefined, feeds, outputs, binaryByDefault, tensorBytes };
}

/** JSON tensor data through the project's one converter (src/onnx/tensor-values.ts): INT64 and
 * UINT64 take numbers or decimal strings (exact past 2^53), floats take "NaN"/"Infinity"/"-Infinity". */
function fromJson(name: string, dt: Datatype, flat: unknown[]): ArrayLike<number | bigint> & ArrayBufferView {
  try {
    return tensorData(dt.dtype, flat, `input "${name}"`) as unknown as ArrayLike<number | bigint> & ArrayBufferView;
  } catch (e) {
    if (e instanceof InferenceError) throw new ProtocolError(400, e.message);
    throw e;
  }
}

/**
 * JSON output values: plainValues' conventions (NaN and infinities as "NaN"/"Infinity"/"-Infinity",
 * which JSON numbers cannot hold), except that INT64/UINT64 are JSON numbers as the protocol says
 * while they are exact (|v| < 2^53) and decimal strings beyond, so no value is ever rounded.
 */
function jsonValues(dtype: string, data: unknown): PlainValue[] {
  const values = plainValues(dtype, data);
  if (dtype !== 'int64' && dtype !== 'uint64') return values;
  return values.map((v) => {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : v;
  });
}

/** A runtime output tensor: what onnxruntime returns. */
export interface OutputTensor {
  type: string;
  dims: readonly number[];
  data: unknown;
}

/** Encodes the response: JSON alone, or JSON + binary outputs (then `headerLength` is set). */
export function encodeInferResponse(
  model: string,
  id: string | undefined,
  results: Record<string, OutputTensor>,
  req: Pick<ParsedRequest, 'outputs' | 'binaryByDefault'>,
): { body: Buffer; headerLength?: number } {
  const wanted = req.outputs ?? Object.keys(results).map((name) => ({ name, binary: req.binaryByDefault }));
  const binaries: Buffer[] = [];
  const outputs = wanted.map(({ name, binary }) => {
    const t = results[name];
    const datatype = datatypeOf(t.type);
    const base = { name, datatype, shape: [...t.dims] };
    const data = t.data as ArrayLike<number | bigint> & Partial<ArrayBufferView>;
    if (binary && data.buffer) {
      const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      binaries.push(bytes);
      return { ...base, parameters: { binary_data_size: bytes.length } };
    }
    if (datatype === 'FP16') throw new ProtocolError(400, `output "${name}" is FP16, which has no JSON form: ask for it as binary data`);
    return { ...base, data: jsonValues(t.type, t.data) };
  });
  const json = Buffer.from(JSON.stringify({ model_name: model, ...(id !== undefined ? { id } : {}), outputs }));
  if (!binaries.length) return { body: json };
  return { body: Buffer.concat([json, ...binaries]), headerLength: json.length };
}

/** Output names a request asks for that the model does not have (checked before running). */
export function unknownOutputs(req: Pick<ParsedRequest, 'outputs'>, outputs: TensorIOInfo[]): string[] {
  const known = new Set(outputs.map((o) => o.name));
  return (req.outputs ?? []).map((o) => o.name).filter((n) => !known.has(n));
}
