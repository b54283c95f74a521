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

let fallback: Promise<OrtModule> | null = null;

/**
 * The platform's default runtime: onnxruntime-node under the Node entry, onnxruntime-web otherwise.
 * onnxruntime-node is an optional dependency (its install script can fail on some npm versions),
 * so when the Node default cannot be loaded this prints one notice and runs on onnxruntime-web,
 * which gives the same results, slower on conv models. Asking for it by name (`loadOrt('node')`,
 * `--ort node`) fails instead.
 */
export function defaultOrt(): Promise<OrtModule> {
  if (defaultBackend === 'web') return loadOrtWeb();
  return loadOrtNode().catch((e: InferenceError) => {
    fallback ??= (console.warn(`tessera: ${ortNodeMissing(e.cause)}; running on onnxruntime-web instead (same results, slower on conv models). Install onnxruntime-node@${ORT_NODE_VERSION} for the native runtime, or choose 'web' with setDefaultOrt('web') to skip this check.`), loadOrtWeb());
    return fallback;
  });
}

/** The onnxruntime-node version tessera is tested with (the one onnxruntime-web and -common pin). */
export const ORT_NODE_VERSION = '1.30.0';

function ortNodeMissing(cause: unknown): string {
  return `onnxruntime-node could not be loaded (${String((cause as Error | undefined)?.message ?? cause).split('\n')[0]})`;
}

let ortNode: Promise<OrtModule> | null = null;

function loadOrtNode(): Promise<OrtModule> {
  const name = 'onnxruntime-node';
  ortNode ??= import(/* @vite-ignore */ name).then(
    (ort: any) => (ort.default?.InferenceSession ? ort.default : ort) as OrtModule,
    (e: unknown) => {
      ortNode = null;
      throw new InferenceError('INFERENCE_FAILED', `${ortNodeMissing(e)}: install it with \`ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node@${ORT_NODE_VERSION}\`, or use the onnxruntime-web backend ('web').`, { cause: e });
    },
  );
  return ortNode;
}

/**
 * The runtime for `backend`; without one, the platform's default (see defaultOrt, which falls back
 * to onnxruntime-web when onnxruntime-node is missing). onnxruntime-node is an optional dependency
 * loaded on demand (its name is kept out of static imports so bundles and browsers never see it);
 * asked for by name when it cannot be loaded, this fails with a typed error saying how to install it.
 */
export function loadOrt(backend?: OrtBackend): Promise<OrtModule> {
  if (backend === undefined) return defaultOrt();
  if (backend === 'web') return loadOrtWeb();
  if (backend !== 'node') return Promise.reject(new InvalidArgumentError(`unknown onnxruntime backend "${backend as string}": use 'web' or 'node'`));
  return loadOrtNode();
}
