/**
 * The 'feeds' serving mode: a model whose main-graph weights are graph inputs, so an onnxruntime
 * session holds no weights at all and each run is handed them as feeds, assembled from pooled
 * pages. Shared weights then live once (in the pool), at the price of onnxruntime copying every
 * weight feed into its memory on every run (measured by bench/serving.ts).
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  ModelProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
} from 'onnx-buf';
import { InvalidModelError } from '../errors.ts';

/** The skeleton with every main-graph initializer named in `weights` turned into a graph input. */
export function weightsAsInputs(skeleton: Uint8Array, weights: ReadonlySet<string>): Uint8Array {
  let model;
  try {
    model = fromBinary(ModelProtoSchema, skeleton);
  } catch (e) {
    throw new InvalidModelError('ONNX_MALFORMED', `the skeleton cannot be decoded: ${(e as Error).message}`);
  }
  const graph = model.graph!;
  const declared = new Set(graph.input.map((i) => i.name));
  const kept = [];
  for (const init of graph.initializer) {
    if (!weights.has(init.name)) {
      kept.push(init);
      continue;
    }
    if (declared.has(init.name)) continue; // old-style models already list initializers as inputs
    graph.input.push(
      create(ValueInfoProtoSchema, {
        name: init.name,
        type: create(TypeProtoSchema, {
          value: {
            case: 'tensorType',
            value: create(TypeProto_TensorSchema, {
              elemType: init.dataType,
              shape: create(TensorShapeProtoSchema, { dim: init.dims.map((d) => create(TensorShapeProto_DimensionSchema, { value: { case: 'dimValue', value: d } })) }),
            }),
          },
        }),
      }),
    );
  }
  graph.initializer = kept;
  return toBinary(ModelProtoSchema, model);
}
