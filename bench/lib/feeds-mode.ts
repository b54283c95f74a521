/**
 * Measurement-only weight hand-over: top-level initializers become graph inputs, passed as feeds
 * on every run (onnxruntime-web copies feeds into wasm memory per run). Used by `bench store` to
 * compare with inline and external-data sessions.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, ValueInfoProtoSchema, TypeProtoSchema, TypeProto_TensorSchema, TensorShapeProtoSchema, TensorShapeProto_DimensionSchema } from 'onnx-buf';
import * as ort from 'onnxruntime-web';
import { assembleModel, parseModel } from '../../src/onnx/model.ts';
import { DTYPES, type DType } from '../../src/onnx/dtypes.ts';

export async function feedsSession(onnx: Uint8Array): Promise<{ session: ort.InferenceSession; weights: Record<string, ort.Tensor> }> {
  const parsed = await parseModel(onnx);
  const model = fromBinary(ModelProtoSchema, assembleModel(parsed.skeleton, parsed.tensors.map((t) => t.data)));
  const graph = model.graph!;
  const weights: Record<string, ort.Tensor> = {};
  const byName = new Map(parsed.tensors.filter((t) => t.location === 'graph').map((t) => [t.name, t]));
  for (const init of graph.initializer) {
    const t = byName.get(init.name)!;
    const view = new (DTYPES[t.dtype as DType].bytes === 4 ? Float32Array : Uint8Array)(t.data.slice().buffer);
    weights[init.name] = new ort.Tensor(t.dtype as any, view as any, t.dims);
    graph.input.push(
      create(ValueInfoProtoSchema, {
        name: init.name,
        type: create(TypeProtoSchema, {
          value: { case: 'tensorType', value: create(TypeProto_TensorSchema, { elemType: init.dataType, shape: create(TensorShapeProtoSchema, { dim: t.dims.map((d) => create(TensorShapeProto_DimensionSchema, { value: { case: 'dimValue', value: BigInt(d) } })) }) }) },
        }),
      }),
    );
  }
  graph.initializer = [];
  const session = await ort.InferenceSession.create(toBinary(ModelProtoSchema, model));
  return { session, weights };
}
