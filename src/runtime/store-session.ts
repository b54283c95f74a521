/**
 * An inference session for a stored model: its weights assembled from the store's pages (through
 * the store's BlockSource), handed to onnxruntime. It lives in runtime, above the store, so the
 * store never imports the runtime.
 */
import type { TesseraStore } from '../store/store.ts';
import type { ModelEntry } from '../catalog/catalog.ts';
import { ModelSession, type SessionOptions } from './session.ts';

export async function openSession(store: TesseraStore, name: string, opts: SessionOptions = {}): Promise<ModelSession> {
  const model = store.model(name);
  return ModelSession.create(name, model.skeleton, await store.tensorData(name), model, opts);
}

/**
 * Sessions for a model with given weights (skeleton order), not necessarily the stored ones:
 * what dedup's evaluator scores candidate states through (dedup does not import the runtime).
 */
export function weightsSessionFactory(opts: SessionOptions = {}): (model: ModelEntry, weights: Uint8Array[]) => Promise<ModelSession> {
  return (model, weights) => ModelSession.create(model.name, model.skeleton, weights, model, opts);
}
