/**
 * The element types tessera stores, and their mapping to ONNX's TensorProto.DataType codes.
 * Types outside this table (FLOAT8*, INT4/UINT4, FLOAT4, INT2/UINT2, complex, STRING) are refused
 * with ONNX_UNSUPPORTED_DTYPE: their packing or variable length does not fit byte-addressed blocks.
 */
import { TensorProto_DataType } from 'onnx-buf';
import { InvalidModelError } from '../errors.ts';

export type DType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool';

export interface DTypeInfo {
  /** TensorProto.DataType code. */
  onnx: number;
  /** Bytes per element. */
  bytes: number;
  /** Floating point (eligible for approximate dedup). */
  float: boolean;
}

export const DTYPES: Record<DType, DTypeInfo> = {
  float32: { onnx: TensorProto_DataType.FLOAT, bytes: 4, float: true },
  float16: { onnx: TensorProto_DataType.FLOAT16, bytes: 2, float: true },
  bfloat16: { onnx: TensorProto_DataType.BFLOAT16, bytes: 2, float: true },
  float64: { onnx: TensorProto_DataType.DOUBLE, bytes: 8, float: true },
  int8: { onnx: TensorProto_DataType.INT8, bytes: 1, float: false },
  uint8: { onnx: TensorProto_DataType.UINT8, bytes: 1, float: false },
  int16: { onnx: TensorProto_DataType.INT16, bytes: 2, float: false },
  uint16: { onnx: TensorProto_DataType.UINT16, bytes: 2, float: false },
  int32: { onnx: TensorProto_DataType.INT32, bytes: 4, float: false },
  uint32: { onnx: TensorProto_DataType.UINT32, bytes: 4, float: false },
  int64: { onnx: TensorProto_DataType.INT64, bytes: 8, float: false },
  uint64: { onnx: TensorProto_DataType.UINT64, bytes: 8, float: false },
  bool: { onnx: TensorProto_DataType.BOOL, bytes: 1, float: false },
};

/** The typed arrays tensor data is kept in. */
export type TypedArray = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

export interface TypedArrayConstructor<T extends TypedArray = TypedArray> {
  new (length: number): T;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/**
 * The typed array a tensor of each dtype is kept in, as onnxruntime keeps it: float16 and
 * bfloat16 as their 16-bit patterns, bool as bytes.
 */
export const STORAGE_ARRAY: Record<DType, TypedArrayConstructor> = {
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
};

const BY_CODE = new Map<number, DType>(
  (Object.keys(DTYPES) as DType[]).map((d) => [DTYPES[d].onnx, d]),
);

/** ONNX's own name of a DataType code ('FLOAT8E4M3FN', 'STRING', ...), or 'code N' if unknown. */
export function onnxDtypeName(code: number): string {
  const name = (TensorProto_DataType as unknown as Record<number, string | undefined>)[code];
  return name ?? `code ${code}`;
}

/** The dtype of an ONNX DataType code, if tessera stores it. */
export function tryDtypeFromOnnx(code: number): DType | undefined {
  return BY_CODE.get(code);
}

/**
 * The dtype of an ONNX DataType code. `tensorName` only serves the error message.
 * @throws InvalidModelError ONNX_UNSUPPORTED_DTYPE for codes tessera cannot store.
 */
export function dtypeFromOnnx(code: number, tensorName = '?'): DType {
  const d = BY_CODE.get(code);
  if (d === undefined) {
    const supported = Object.keys(DTYPES).join(', ');
    throw new InvalidModelError(
      'ONNX_UNSUPPORTED_DTYPE',
      `tensor "${tensorName}" has element type ${onnxDtypeName(code)}, which tessera cannot store ` +
        `(supported: ${supported}). Convert the model's weights to a supported type first.`,
    );
  }
  return d;
}

export function dtypeToOnnx(dtype: DType): number {
  return DTYPES[dtype].onnx;
}
