/**
 * Writes a zoo MLP as an ONNX model (opset 17): input `input` float32 [N, inDim] with a dynamic
 * batch dim, MatMul + Add (+ Relu between layers), output `logits` float32 [N, classes]. Weights are
 * initializers with raw_data, named `<layer>.weight` ([in, out], MatMul's layout) and
 * `<layer>.bias`. No timestamps or random ids: the same weights give the same bytes.
 * `readMlpOnnx` reads such a file back (the zoo reuses built models as parents).
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
  TensorProto_DataType,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { InvalidModelError } from '../../src/errors.ts';
import type { Layer, Mlp } from './train.ts';

export const INPUT_NAME = 'input';
export const OUTPUT_NAME = 'logits';
const OPSET = 17n;
const IR_VERSION = 8n;

function floatTensor(name: string, dims: number[], data: Float32Array): TensorProto {
  // raw_data is little-endian, as Float32Array memory is on every host Node and browsers run on.
  // Copy so the proto owns exactly these bytes.
  const raw = new Uint8Array(data.byteLength);
  raw.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return create(TensorProtoSchema, {
    name,
    dims: dims.map((d) => BigInt(d)),
    dataType: TensorProto_DataType.FLOAT,
    rawData: raw,
  });
}

function valueInfo(name: string, dims: (number | string)[]): ValueInfoProto {
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: 'tensorType',
        value: create(TypeProto_TensorSchema, {
          elemType: TensorProto_DataType.FLOAT,
          shape: create(TensorShapeProtoSchema, {
            dim: dims.map((d) =>
              create(TensorShapeProto_DimensionSchema, {
                value: typeof d === 'string' ? { case: 'dimParam', value: d } : { case: 'dimValue', value: BigInt(d) },
              }),
            ),
          }),
        }),
      },
    }),
  });
}

/** ONNX bytes of an MLP; `docString` lands in the model's doc_string (e.g. how it was made). */
export function exportMlpOnnx(m: Mlp, opts: { graphName: string; docString?: string }): Uint8Array {
  const nodes: NodeProto[] = [];
  const initializer: TensorProto[] = [];
  let x = INPUT_NAME;
  m.layers.forEach((l, i) => {
    const last = i === m.layers.length - 1;
    initializer.push(floatTensor(`${l.name}.weight`, [l.inDim, l.outDim], l.weight));
    initializer.push(floatTensor(`${l.name}.bias`, [l.outDim], l.bias));
    const mm = `${l.name}.matmul`;
    const added = last ? OUTPUT_NAME : `${l.name}.add`;
    nodes.push(create(NodeProtoSchema, { name: `${l.name}/MatMul`, opType: 'MatMul', input: [x, `${l.name}.weight`], output: [mm] }));
    nodes.push(create(NodeProtoSchema, { name: `${l.name}/Add`, opType: 'Add', input: [mm, `${l.name}.bias`], output: [added] }));
    x = added;
    if (!last) {
      const r = `${l.name}.relu`;
      nodes.push(create(NodeProtoSchema, { name: `${l.name}/Relu`, opType: 'Relu', input: [x], output: [r] }));
      x = r;
    }
  });
  const first = m.layers[0];
  const lastLayer = m.layers[m.layers.length - 1];
  const model = create(ModelProtoSchema, {
    irVersion: IR_VERSION,
    producerName: 'tessera-zoo',
    producerVersion: '1',
    docString: opts.docString ?? '',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: OPSET })],
    graph: create(GraphProtoSchema, {
      name: opts.graphName,
      node: nodes,
      initializer,
      input: [valueInfo(INPUT_NAME, ['N', first.inDim])],
      output: [valueInfo(OUTPUT_NAME, ['N', lastLayer.outDim])],
    }),
  });
  return toBinary(ModelProtoSchema, model);
}

/** Reads back an MLP written by `exportMlpOnnx` (layers in fc1, fc2, ... order). */
export function readMlpOnnx(bytes: Uint8Array): Mlp {
  let model;
  try {
    model = fromBinary(ModelProtoSchema, bytes);
  } catch (e) {
    throw new InvalidModelError('ONNX_MALFORMED', `not an ONNX model: ${(e as Error).message}`, { cause: e });
  }
  const inits = new Map<string, TensorProto>();
  for (const t of model.graph?.initializer ?? []) inits.set(t.name, t);
  const floats = (t: TensorProto): Float32Array => {
    if (t.dataType !== TensorProto_DataType.FLOAT || t.rawData.byteLength === 0) {
      throw new InvalidModelError('ONNX_UNSUPPORTED_DTYPE', `tensor ${t.name}: expected float32 raw_data (a zoo model written by exportMlpOnnx)`);
    }
    return new Float32Array(t.rawData.slice().buffer);
  };
  const layers: Layer[] = [];
  for (let i = 1; inits.has(`fc${i}.weight`); i++) {
    const w = inits.get(`fc${i}.weight`)!;
    const b = inits.get(`fc${i}.bias`);
    if (!b || w.dims.length !== 2) throw new InvalidModelError('ONNX_MALFORMED', `layer fc${i}: missing bias or weight not 2-D`);
    layers.push({ name: `fc${i}`, inDim: Number(w.dims[0]), outDim: Number(w.dims[1]), weight: floats(w), bias: floats(b) });
  }
  if (layers.length === 0) throw new InvalidModelError('ONNX_MALFORMED', 'no fc1.weight initializer: not a zoo MLP');
  return { layers };
}
