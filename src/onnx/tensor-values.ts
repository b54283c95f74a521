/**
 * Plain values ↔ onnxruntime tensor data, for every element type onnxruntime's JavaScript API
 * takes. The one place where a feed written by a person (JSON, a JS array) becomes the typed array
 * a `Tensor` holds, and where an output becomes plain values again: the library's plain feeds, the
 * CLI's `run` and the model server all go through here.
 *
 * The conventions, and why:
 * - float16 and bfloat16 are NUMBERS in and out (0.5 stays 0.5), rounded to nearest-even directly
 *   from the double, not via float32 (no double rounding). A typed array of the runtime's own
 *   storage type (Uint16Array for float16) is taken as is: that is onnxruntime's convention for
 *   bit patterns.
 * - int64 / uint64 accept safe-integer numbers, bigints and decimal strings; they come out as
 *   decimal strings (JSON numbers lose precision past 2^53; protobuf's JSON mapping does the same).
 * - NaN and ±Infinity, which JSON cannot hold, are written as the strings "NaN", "Infinity" and
 *   "-Infinity" (protobuf's JSON mapping for floats) and read back from them.
 * - Anything else that is not a number of the element type (a string in a float input, null, a
 *   fraction or an out-of-range value for an integer type) is refused with INVALID_FEEDS rather
 *   than silently becoming NaN, 0 or a wrapped integer.
 *
 * Isomorphic and free of any onnxruntime import: callers pass the result to their own `Tensor`.
 */
import { InferenceError } from '../errors.ts';
import { STORAGE_ARRAY, type DType, type TypedArray, type TypedArrayConstructor } from './dtypes.ts';

/** Element types onnxruntime's JavaScript `Tensor` can be built with (1.30): no bfloat16. */
export type OrtElementType = Exclude<DType, 'bfloat16'> | 'string';

/** The data array a `Tensor` of each type holds. */
export type OrtTensorData = TypedArray | string[];

/** A value that survives JSON: numbers, decimal strings for 64-bit integers, "NaN"/"±Infinity", booleans, strings. */
export type PlainValue = number | string | boolean;

type IntRange = { min: number; max: number };
const INT_RANGE: Record<string, IntRange> = {
  int8: { min: -128, max: 127 },
  uint8: { min: 0, max: 255 },
  int16: { min: -32768, max: 32767 },
  uint16: { min: 0, max: 65535 },
  int32: { min: -(2 ** 31), max: 2 ** 31 - 1 },
  uint32: { min: 0, max: 2 ** 32 - 1 },
};
const INT64_RANGE = { int64: { min: -(2n ** 63n), max: 2n ** 63n - 1n }, uint64: { min: 0n, max: 2n ** 64n - 1n } };

/** The element types `tensorData` accepts. */
export const ORT_ELEMENT_TYPES: readonly OrtElementType[] = ['float32', 'float16', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'bool', 'string'];

function invalid(what: string, message: string): InferenceError {
  return new InferenceError('INVALID_FEEDS', `${what}: ${message}`);
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v === null) return 'null';
  if (typeof v === 'object') return Array.isArray(v) ? 'a nested array' : 'an object';
  return String(v);
}

// ---------------------------------------------------------------------------------------------
// 16-bit floats

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** Bits of the nearest binary float with `expBits` exponent and `manBits` mantissa bits (ties to even). */
function smallFloatBits(x: number, expBits: number, manBits: number): number {
  const signBit = 1 << (expBits + manBits);
  const expMask = (1 << expBits) - 1;
  if (Number.isNaN(x)) return (expMask << manBits) | (1 << (manBits - 1)); // the quiet NaN
  const sign = x < 0 || Object.is(x, -0) ? signBit : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | (expMask << manBits);
  if (a === 0) return sign;
  const bias = (1 << (expBits - 1)) - 1;
  const emin = 1 - bias;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  if (e < emin) return sign | roundHalfEven(a * 2 ** (manBits - emin)); // subnormal (1 << manBits: the smallest normal)
  let m = roundHalfEven((a / 2 ** e - 1) * 2 ** manBits);
  if (m === 1 << manBits) {
    m = 0;
    e++;
  }
  if (e > bias) return sign | (expMask << manBits); // overflow rounds to infinity
  return sign | ((e + bias) << manBits) | m;
}

function smallFloatValue(bits: number, expBits: number, manBits: number): number {
  const sign = bits & (1 << (expBits + manBits)) ? -1 : 1;
  const expMask = (1 << expBits) - 1;
  const e = (bits >> manBits) & expMask;
  const m = bits & ((1 << manBits) - 1);
  const bias = (1 << (expBits - 1)) - 1;
  if (e === expMask) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** (1 - bias - manBits);
  return sign * (1 + m / 2 ** manBits) * 2 ** (e - bias);
}

/** IEEE half-precision bits of the nearest float16 to `x` (round to nearest, ties to even). */
export function float16Bits(x: number): number {
  return smallFloatBits(x, 5, 10);
}
/** The value of IEEE half-precision bits. */
export function float16Value(bits: number): number {
  return smallFloatValue(bits, 5, 10);
}
/** bfloat16 bits of the nearest bfloat16 to `x` (round to nearest, ties to even). */
export function bfloat16Bits(x: number): number {
  return smallFloatBits(x, 8, 7);
}
/** The value of bfloat16 bits. */
export function bfloat16Value(bits: number): number {
  return smallFloatValue(bits, 8, 7);
}

// ---------------------------------------------------------------------------------------------
// Plain values → tensor data

const SPECIAL_FLOATS: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

function floatOf(v: unknown, what: string, i: number): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v in SPECIAL_FLOATS) return SPECIAL_FLOATS[v];
  throw invalid(what, `element ${i} is ${describe(v)}, not a number (give NaN and infinities as "NaN", "Infinity", "-Infinity").`);
}

function intOf(v: unknown, dtype: string, what: string, i: number): number {
  const r = INT_RANGE[dtype];
  if (typeof v === 'number' && Number.isInteger(v) && v >= r.min && v <= r.max) return v;
  if (typeof v === 'bigint' && v >= BigInt(r.min) && v <= BigInt(r.max)) return Number(v);
  const why = typeof v === 'number' || typeof v === 'bigint' ? `outside ${dtype}'s range [${r.min}, ${r.max}] or not an integer` : `not an integer`;
  throw invalid(what, `element ${i} is ${describe(v)}, ${why}.`);
}

function int64Of(v: unknown, dtype: 'int64' | 'uint64', what: string, i: number): bigint {
  let b: bigint | undefined;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) b = BigInt(v.trim());
  else if (typeof v === 'number' && Number.isInteger(v)) {
    throw invalid(what, `element ${i} is ${v}, beyond 2^53 where numbers lose precision: give ${dtype} values this large as decimal strings.`);
  }
  const r = INT64_RANGE[dtype];
  if (b === undefined) throw invalid(what, `element ${i} is ${describe(v)}, not an integer (give ${dtype} values as integers, bigints or decimal strings).`);
  if (b < r.min || b > r.max) throw invalid(what, `element ${i} is ${b}, outside ${dtype}'s range [${r.min}, ${r.max}].`);
  return b;
}

function boolOf(v: unknown, what: string, i: number): number {
  if (v === true || v === 1) return 1;
  if (v === false || v === 0) return 0;
  throw invalid(what, `element ${i} is ${describe(v)}, not a boolean (true, false, 1 or 0).`);
}

function isElementType(dtype: string): dtype is OrtElementType {
  return (ORT_ELEMENT_TYPES as readonly string[]).includes(dtype);
}

/**
 * The data array for a `Tensor` of `dtype` from plain values: a flat array (or array-like) of
 * numbers, bigints, decimal strings, booleans or strings as the type takes (see the module
 * header). A typed array already of the runtime's storage type for `dtype` is returned as is.
 * `what` names the input in messages.
 * @throws InferenceError INVALID_FEEDS for a type onnxruntime cannot take (bfloat16 included: its
 * JavaScript API has no bfloat16 tensor) or any value that is not an element of the type.
 */
export function tensorData(dtype: string, values: unknown, what = 'input'): OrtTensorData {
  if (dtype === 'bfloat16') {
    throw invalid(what, "onnxruntime's JavaScript API has no bfloat16 tensors, so bfloat16 inputs cannot be fed; convert the model's input to float16 or float32.");
  }
  if (!isElementType(dtype)) throw invalid(what, `element type ${dtype} cannot be given as plain data (supported: ${ORT_ELEMENT_TYPES.join(', ')}).`);
  if (dtype !== 'string' && ArrayBuffer.isView(values) && values.constructor === STORAGE_ARRAY[dtype]) return values as OrtTensorData;
  if (typeof values !== 'object' || values === null || typeof (values as ArrayLike<unknown>).length !== 'number' || typeof values === 'string') {
    throw invalid(what, `data must be a flat array of values, got ${describe(values)}.`);
  }
  const src = values as ArrayLike<unknown>;
  const n = src.length;
  switch (dtype) {
    case 'string': {
      const out: string[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (typeof v !== 'string') throw invalid(what, `element ${i} is ${describe(v)}, not a string.`);
        out[i] = v;
      }
      return out;
    }
    case 'float32':
    case 'float64': {
      const out = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = floatOf(src[i], what, i);
      return out;
    }
    case 'float16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = float16Bits(floatOf(src[i], what, i));
      return out;
    }
    case 'int64':
    case 'uint64': {
      const out = dtype === 'int64' ? new BigInt64Array(n) : new BigUint64Array(n);
      for (let i = 0; i < n; i++) out[i] = int64Of(src[i], dtype, what, i);
      return out;
    }
    case 'bool': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = boolOf(src[i], what, i);
      return out;
    }
    default: {
      const out = new (STORAGE_ARRAY[dtype] as TypedArrayConstructor<Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array>)(n);
      for (let i = 0; i < n; i++) out[i] = intOf(src[i], dtype, what, i);
      return out;
    }
  }
}

/**
 * A typed-array view of little-endian element bytes (weights from the store) as a `Tensor` of
 * `dtype` holds them; copied only when `bytes` is not aligned to the element size.
 */
export function tensorDataFromBytes(dtype: Exclude<OrtElementType, 'string'>, bytes: Uint8Array): Exclude<OrtTensorData, string[]> {
  const Ctor = (dtype as string) === 'bfloat16' ? undefined : STORAGE_ARRAY[dtype];
  if (!Ctor) throw invalid('tensor', `element type ${dtype} has no onnxruntime tensor.`);
  const size = Ctor.BYTES_PER_ELEMENT;
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return new Ctor(b.buffer, b.byteOffset, b.length / size);
}

// ---------------------------------------------------------------------------------------------
// Tensor data → plain values

function floatOut(v: number): number | string {
  return Number.isFinite(v) ? v : Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
}

/**
 * Plain, JSON-safe values of a tensor's data: floats (float16 and bfloat16 decoded) as numbers,
 * with NaN and infinities as "NaN" / "Infinity" / "-Infinity"; 64-bit integers as decimal strings;
 * bool as true/false; strings as they are.
 */
export function plainValues(dtype: string, data: unknown): PlainValue[] {
  const src = data as ArrayLike<unknown>;
  if (!src || typeof src.length !== 'number') throw invalid('output', `tensor data of type ${dtype} is not an array.`);
  const F16 = (globalThis as { Float16Array?: Function }).Float16Array;
  switch (dtype) {
    case 'float16':
      if (F16 && data instanceof F16) return Array.from(src as ArrayLike<number>, floatOut);
      return Array.from(src as ArrayLike<number>, (b) => floatOut(float16Value(b)));
    case 'bfloat16':
      return Array.from(src as ArrayLike<number>, (b) => floatOut(bfloat16Value(b)));
    case 'float32':
    case 'float64':
      return Array.from(src as ArrayLike<number>, floatOut);
    case 'int64':
    case 'uint64':
      return Array.from(src as ArrayLike<bigint | number>, (v) => String(v));
    case 'bool':
      return Array.from(src as ArrayLike<number | boolean>, (v) => Boolean(v));
    default:
      return Array.from(src as ArrayLike<PlainValue>);
  }
}
