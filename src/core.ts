/**
 * The isomorphic surface of tessera, exported once: everything that runs the same in Node and in
 * the browser. The platform entries add only their own parts: src/index.ts (folders, PostgreSQL,
 * publishing to a folder, onnxruntime-node as the default runtime) and src/browser.ts (IndexedDB,
 * HTTP imports, onnxruntime-web's files).
 */
export * from './errors.ts';

export { TesseraStore, DEFAULT_TILE, validateModelName } from './store/store.ts';
export type { AddBatch, AddOptions, AddReport, BlockInput, CompactReport, ModelStats, NewTensor, Progress, StoreStats, VerifyReport } from './store/store.ts';
export type { CatalogView } from './store/catalog-view.ts';
export type { BlockSource, BlockSourceOptions, DecodedBaseCache } from './store/block-source.ts';
export type { BlockEntry, ModelEntry, PageEntry, StoreConfig, Substitution, TensorEntry, TensorIOInfo } from './catalog/catalog.ts';
export type { TileShape } from './blocks/tiling.ts';
export type { DType } from './onnx/dtypes.ts';
export { MemoryPageStore } from './store/memory-store.ts';
export type { PageStore, PageStoreOptions } from './store/page-store.ts';

export { PublishedStore, importModels, INDEX_FILE } from './store/published.ts';
export type { ImportOptions, ImportProgress, ImportReport, PublishedIndex, PublishedModelSummary, PublishedSource } from './store/published.ts';

export { ModelSession } from './runtime/session.ts';
export type { Feed, SessionOptions, WeightMode } from './runtime/session.ts';
export { openSession, weightsSessionFactory } from './runtime/store-session.ts';
export { loadOrt, setDefaultOrt } from './runtime/ort.ts';
export type { OrtBackend, OrtModule } from './runtime/ort.ts';
export { Server } from './runtime/server.ts';
export type { ServerOptions, ServerMetrics, ExecutorKind, ExecutorChoice } from './runtime/server.ts';

export { BufferPool, createPolicy, POLICY_NAMES } from './pool/index.ts';
export type { BufferPoolOptions, EvictionPolicy, PageRef, PolicyName, PoolStats } from './pool/index.ts';

export { dedupModels, dedupLossless, dedupMethod, DEDUP_METHODS } from './dedup/planner.ts';
export type { DedupMethod, DedupOptions, DedupProgress, LosslessReport, ModelDedupReport } from './dedup/planner.ts';
export { parseEvalSet, createEvaluator, syntheticEvalSet } from './dedup/evaluate.ts';
export type { EvalSession, EvalSet, Evaluator, EvaluatorOptions, SessionFactory } from './dedup/evaluate.ts';
