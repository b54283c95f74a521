/**
 * The ONNX Runtime tessera runs on. onnxruntime-web by default (same code in Node and the
 * browser); onnxruntime-node or any other package with the onnxruntime-common API can be passed in.
 */
import type * as OrtCommon from 'onnxruntime-common';

export type OrtModule = Pick<typeof OrtCommon, 'InferenceSession' | 'Tensor'> & { env?: typeof OrtCommon.env };

let ortWeb: Promise<OrtModule> | null = null;

/** onnxruntime-web, loaded once, single-threaded (fastest on small machines, no COOP/COEP needed). */
export function defaultOrt(): Promise<OrtModule> {
  ortWeb ??= import('onnxruntime-web').then((ort) => {
    ort.env.wasm.numThreads = 1;
    return ort as unknown as OrtModule;
  });
  return ortWeb;
}
