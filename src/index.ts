/** tessera for Node: the store, its backends, serving, and the error types. */
import './node/ort-node.ts'; // Node's default runtime: onnxruntime-node
export { openStore, addModelFile, externalDataReader, modelNameOf, type OpenStoreOptions } from './node/open.ts';
export { FilePageStore } from './node/file-store.ts';
export { TesseraStore, DEFAULT_TILE, validateModelName, type AddReport, type StoreStats, type ModelStats, type VerifyReport, type Progress } from './store/store.ts';
export { MemoryPageStore } from './store/memory-store.ts';
export type { PageStore } from './store/page-store.ts';
export { ModelSession, type Feed, type SessionOptions, type WeightMode } from './runtime/session.ts';
export { openSession, weightsSessionFactory } from './runtime/store-session.ts';
export type { OrtModule } from './runtime/ort.ts';
export * from './errors.ts';
export { publishStore, folderSource } from './node/publish.ts';
export { PublishedStore, importModels } from './store/published.ts';
export { Server, type ServerOptions, type ServerMetrics, type ExecutorKind, type ExecutorChoice } from './runtime/server.ts';
export { loadOrt, setDefaultOrt, type OrtBackend } from './runtime/ort.ts';
export { BufferPool, createPolicy, POLICY_NAMES } from './pool/index.ts';
export { dedupModels, dedupLossless, dedupMethod, DEDUP_METHODS, type DedupOptions, type DedupProgress, type ModelDedupReport, type LosslessReport, type DedupMethod } from './dedup/planner.ts';
export { parseEvalSet, createEvaluator, syntheticEvalSet, type EvalSet, type Evaluator, type EvaluatorOptions, type SessionFactory, type EvalSession } from './dedup/evaluate.ts';
