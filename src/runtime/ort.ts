/**
 * The ONNX Runtime tessera runs on. onnxruntime-web by default (same code in Node and the
 * browser); onnxruntime-node or any other package with the onnxruntime-common API can be passed in.
 */
import type * as OrtCommon from 'onnxruntime-common';
import { InferenceError, InvalidArgumentError } from '../errors.ts';

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

/** Which onnxruntime package serves: 'web' (default, WASM, runs everywhere) or 'node' (native CPU, optional). */
export type OrtBackend = 'web' | 'node';

let ortNode: Promise<OrtModule> | null = null;

/**
 * The runtime for `backend`. onnxruntime-node is an optional dependency loaded on demand (its name
 * is kept out of static imports so bundles and browsers never see it); when it is not installed
 * this fails with a typed error saying how to install it.
 */
export function loadOrt(backend: OrtBackend = 'web'): Promise<OrtModule> {
  if (backend === 'web') return defaultOrt();
  if (backend !== 'node') return Promise.reject(new InvalidArgumentError(`unknown onnxruntime backend "${backend as string}": use 'web' or 'node'`));
  const name = 'onnxruntime-node';
  ortNode ??= import(/* @vite-ignore */ name).then(
    (ort: any) => (ort.default?.InferenceSession ? ort.default : ort) as OrtModule,
    (e: unknown) => {
      ortNode = null;
      throw new InferenceError('INFERENCE_FAILED', `onnxruntime-node is not installed (${(e as Error).message?.split('\n')[0]}): install it with \`ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node@1.30.0\`, or use the default onnxruntime-web backend.`, { cause: e });
    },
  );
  return ortNode;
}
