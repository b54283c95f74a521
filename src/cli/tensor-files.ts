/**
 * Tensors as files for `tessera run`: NumPy `.npy` (read by npyjs, written here: the header is a
 * few lines and npyjs cannot write float16 from its bits) and raw little-endian bytes, so big
 * inputs and outputs never pass through JSON.
 */
import { parse as parseNpy } from 'npyjs';
import { InvalidArgumentError } from '../errors.ts';
import { plainValues, type PlainValue } from '../onnx/tensor-values.ts';

/** A tensor as the CLI moves it: ONNX dtype name, dims, and data in that dtype's typed array. */
export interface TensorData {
  dtype: string;
  dims: number[];
  data: ArrayBufferView | string[];
}

const NPY_TO_ONNX: Record<string, string> = {
  i1: 'int8', u1: 'uint8', i2: 'int16', u2: 'uint16', i4: 'int32', u4: 'uint32',
  i8: 'int64', u8: 'uint64', f2: 'float16', f4: 'float32', f8: 'float64', b1: 'bool',
};
const ONNX_TO_NPY: Record<string, string> = {
  int8: '|i1', uint8: '|u1', int16: '<i2', uint16: '<u2', int32: '<i4', uint32: '<u4',
  int64: '<i8', uint64: '<u8', float16: '<f2', float32: '<f4', float64: '<f8', bool: '|b1',
};
/** Typed array per ONNX dtype for raw bytes (float16 and bfloat16 as their 16-bit patterns). */
const RAW: Record<string, { new (b: ArrayBuffer, o: number, n: number): ArrayBufferView; BYTES_PER_ELEMENT: number }> = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array,
  int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array,
  int64: BigInt64Array, uint64: BigUint64Array, bool: Uint8Array, float16: Uint16Array, bfloat16: Uint16Array,
};

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
export const isNpy = (b: Uint8Array) => NPY_MAGIC.every((x, i) => b[i] === x);

/** An owned, aligned copy: typed arrays over file bytes need their own buffer at offset 0. */
const own = (b: Uint8Array) => b.slice().buffer;

export function readNpy(bytes: Uint8Array, what: string): TensorData {
  let a;
  try {
    a = parseNpy(own(bytes), { convertFloat16: false });
  } catch (e) {
    throw new InvalidArgumentError(`${what} is not a readable .npy file (${(e as Error).message}).`);
  }
  if (a.fortranOrder) throw new InvalidArgumentError(`${what} is a Fortran-order .npy: save it in C order (numpy.ascontiguousarray) first.`);
  const dtype = NPY_TO_ONNX[a.dtype];
  if (!dtype) throw new InvalidArgumentError(`${what} holds numpy dtype ${a.dtype}, which has no ONNX tensor type here: use ${Object.keys(NPY_TO_ONNX).join(', ')}.`);
  return { dtype, dims: a.shape, data: a.data };
}

export function readRaw(bytes: Uint8Array, dtype: string, dims: number[], what: string): TensorData {
  const Ctor = RAW[dtype];
  if (!Ctor) throw new InvalidArgumentError(`${what}: dtype ${dtype} cannot be read as raw bytes; use a .npy or JSON input.`);
  const n = dims.reduce((a, d) => a * d, 1);
  if (bytes.length !== n * Ctor.BYTES_PER_ELEMENT) {
    throw new InvalidArgumentError(`${what} has ${bytes.length} bytes, but ${dtype} [${dims.join(', ')}] needs ${n * Ctor.BYTES_PER_ELEMENT} (${n} x ${Ctor.BYTES_PER_ELEMENT} bytes, little-endian).`);
  }
  return { dtype, dims, data: new Ctor(own(bytes), 0, n) };
}

/** `.npy` bytes (format 1.0) for a tensor: float16 data is its 16-bit patterns. */
export function writeNpy(t: TensorData, what: string): Uint8Array {
  const descr = ONNX_TO_NPY[t.dtype];
  if (!descr || !ArrayBuffer.isView(t.data)) throw new InvalidArgumentError(`${what}: ${t.dtype} tensors cannot be written as .npy; write JSON (--output FILE.json).`);
  const shape = t.dims.length === 1 ? `(${t.dims[0]},)` : `(${t.dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Magic (6) + version (2) + length (2) + header + '\n', padded with spaces to 64 bytes.
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const body = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const out = new Uint8Array(10 + header.length + body.length);
  out.set([...NPY_MAGIC, 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(new TextEncoder().encode(header), 10);
  out.set(body, 10 + header.length);
  return out;
}

export function writeRaw(t: TensorData, what: string): Uint8Array {
  if (!ArrayBuffer.isView(t.data)) throw new InvalidArgumentError(`${what}: ${t.dtype} tensors have no raw byte form; write JSON (--output FILE.json).`);
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/**
 * A tensor's values for JSON (src/onnx/tensor-values.ts): float16/bfloat16 decoded to numbers,
 * 64-bit integers as decimal strings, NaN/±Infinity as "NaN"/"Infinity"/"-Infinity".
 */
export function jsonValues(t: TensorData): PlainValue[] {
  return plainValues(t.dtype, t.data);
}
