/**
 * A small ONNX graph writer for the zoo's CNN and ViT families, in the shape PyTorch's exporter
 * writes (opset 17, IR 8): weights as float32 raw_data initializers named by module path, shape
 * operands as `Constant` nodes, node names `/path/Op`, dynamic batch dim `batch`. No timestamps
 * or ids: the same weights give the same bytes. `readInitializers` reads the weights back (a built
 * model is reused as the parent of the next).
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
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
  type AttributeProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { InvalidModelError } from '../../src/errors.ts';

export type AttrValue = number | number[] | { ints: number[] } | { float: number } | { tensorInt64: number[] };

function attribute(name: string, v: AttrValue): AttributeProto {
  if (typeof v === 'number') return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(v) });
  if (Array.isArray(v) || 'ints' in v) {
    const ints = Array.isArray(v) ? v : v.ints;
    return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: ints.map((x) => BigInt(x)) });
  }
  if ('float' in v) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: v.float });
  const raw = new Uint8Array(new BigInt64Array(v.tensorInt64.map((x) => BigInt(x))).buffer);
  return create(AttributeProtoSchema, {
    name, type: AttributeProto_AttributeType.TENSOR,
    t: create(TensorProtoSchema, { dims: [BigInt(v.tensorInt64.length)], dataType: TensorProto_DataType.INT64, rawData: raw }),
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
            dim: dims.map((d) => create(TensorShapeProto_DimensionSchema, { value: typeof d === 'string' ? { case: 'dimParam', value: d } : { case: 'dimValue', value: BigInt(d) } })),
          }),
        }),
      },
    }),
  });
}

export class GraphWriter {
  private readonly nodes: NodeProto[] = [];
  private readonly inits: TensorProto[] = [];
  private counter = 0;

  /** A float32 initializer. */
  weight(name: string, dims: number[], data: Float32Array): string {
    const raw = new Uint8Array(data.byteLength);
    raw.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.inits.push(create(TensorProtoSchema, { name, dims: dims.map((d) => BigInt(d)), dataType: TensorProto_DataType.FLOAT, rawData: raw }));
    return name;
  }

  /** A node; returns its first output's name (`/path/Op_output_0`, as the exporter names them). */
  node(op: string, path: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputName?: string): string {
    const out = outputName ?? `${path}/${op}_output_0`;
    this.nodes.push(create(NodeProtoSchema, {
      name: `${path}/${op}`, opType: op, input: inputs, output: [out],
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    }));
    return out;
  }

  /** An int64 Constant node (shape operands, axes), as the exporter writes them. */
  constInt64(path: string, values: number[]): string {
    const k = this.counter++;
    const out = `${path}/Constant_${k}_output_0`;
    this.nodes.push(create(NodeProtoSchema, {
      name: `${path}/Constant_${k}`, opType: 'Constant', input: [], output: [out],
      attribute: [attribute('value', { tensorInt64: values })],
    }));
    return out;
  }

  /** An int64 scalar Constant node (a Gather index). */
  constInt64Scalar(path: string, value: number): string {
    const k = this.counter++;
    const out = `${path}/Constant_${k}_output_0`;
    this.nodes.push(create(NodeProtoSchema, {
      name: `${path}/Constant_${k}`, opType: 'Constant', input: [], output: [out],
      attribute: [create(AttributeProtoSchema, {
        name: 'value', type: AttributeProto_AttributeType.TENSOR,
        t: create(TensorProtoSchema, { dims: [], dataType: TensorProto_DataType.INT64, rawData: new Uint8Array(new BigInt64Array([BigInt(value)]).buffer) }),
      })],
    }));
    return out;
  }

  /** A float scalar Constant node. */
  constFloat(path: string, value: number): string {
    const k = this.counter++;
    const out = `${path}/Constant_${k}_output_0`;
    this.nodes.push(create(NodeProtoSchema, {
      name: `${path}/Constant_${k}`, opType: 'Constant', input: [], output: [out],
      attribute: [create(AttributeProtoSchema, {
        name: 'value', type: AttributeProto_AttributeType.TENSOR,
        t: create(TensorProtoSchema, { dims: [], dataType: TensorProto_DataType.FLOAT, rawData: new Uint8Array(new Float32Array([value]).buffer) }),
      })],
    }));
    return out;
  }

  /** The model bytes. */
  finish(opts: { graphName: string; docString: string; input: [string, (number | string)[]]; output: [string, (number | string)[]] }): Uint8Array {
    const model = create(ModelProtoSchema, {
      irVersion: 8n,
      producerName: 'tessera-zoo',
      producerVersion: '1',
      docString: opts.docString,
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })],
      graph: create(GraphProtoSchema, {
        name: opts.graphName,
        node: this.nodes,
        initializer: this.inits,
        input: [valueInfo(...opts.input)],
        output: [valueInfo(...opts.output)],
      }),
    });
    return toBinary(ModelProtoSchema, model);
  }
}

/** Float32 initializers of a model by name. */
export function readInitializers(bytes: Uint8Array): Map<string, { dims: number[]; data: Float32Array }> {
  let model;
  try {
    model = fromBinary(ModelProtoSchema, bytes);
  } catch (e) {
    throw new InvalidModelError('ONNX_MALFORMED', `not an ONNX model: ${(e as Error).message}`, { cause: e });
  }
  const out = new Map<string, { dims: number[]; data: Float32Array }>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataType !== TensorProto_DataType.FLOAT || t.rawData.byteLength === 0) continue;
    out.set(t.name, { dims: t.dims.map(Number), data: new Float32Array(t.rawData.slice().buffer) });
  }
  return out;
}
