/**
 * The ONNX Runtime tessera runs on, through the onnxruntime-common API. Core code never imports
 * onnxruntime-node: the platform entry registers its default with `setDefaultOrt` (src/node/ort-node.ts
 * makes it onnxruntime-node in Node: ~3x faster on conv models and it does not copy feeds, which
 * shared weights rely on); without a registration the default is onnxruntime-web (the browser's).
 */
import type * as OrtCommon from 'onnxruntime-common';
import { InferenceError, InvalidArgumentError } from '../errors.ts';

export type OrtModule = Pick<typeof OrtCommon, 'InferenceSession' | 'Tensor'> & { env?: typeof OrtCommon.env };

let ortWeb: Promise<OrtModule> | null = null;

/** onnxruntime-web, loaded once, single-threaded (fastest on small machines, no COOP/COEP needed). */
export function loadOrtWeb(): Promise<OrtModule> {
  ortWeb ??= import('onnxruntime-web').then((ort) => {
    ort.env.wasm.numThreads = 1;
    return ort as unknown as OrtModule;
  });
  return ortWeb;
}

/** Which onnxruntime package serves: 'web' (WASM, runs everywhere) or 'node' (native CPU, Node's default). */
export type OrtBackend = 'web' | 'node';

let defaultBackend: OrtBackend = 'web';

/** Sets the runtime `defaultOrt` loads (the Node entry picks 'node'). */
export function setDefaultOrt(backend: OrtBackend): void {
  if (backend !== 'web' && backend !== 'node') throw new InvalidArgumentError(`unknown onnxruntime backend "${backend as string}": use 'web' or 'node'`);
  defaultBackend = backend;
}

/** The backend `defaultOrt` loads now. */
export function defaultOrtBackend(): OrtBackend {
  return defaultBackend;
}

/** The platform's default runtime: onnxruntime-node under the Node entry, onnxruntime-web otherwise. */
export function defaultOrt(): Promise<OrtModule> {
  return loadOrt(defaultBackend);
}

let ortNode: Promise<OrtModule> | null = null;

/**
 * The runtime for `backend`. onnxruntime-node is an optional dependency loaded on demand (its name
 * is kept out of static imports so bundles and browsers never see it); when it is not installed
 * this fails with a typed error saying how to install it.
 */
export function loadOrt(backend: OrtBackend = defaultBackend): Promise<OrtModule> {
  if (backend === 'web') return loadOrtWeb();
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
