/** tessera for Node: the isomorphic surface (src/core.ts) plus folders, PostgreSQL, publishing to a folder, and onnxruntime-node as the default runtime. */
import './node/ort-node.ts'; // Node's default runtime: onnxruntime-node
export * from './core.ts';
export { openStore, addModelFile, addModelFiles, externalDataReader, modelNameOf, type OpenStoreOptions } from './node/open.ts';
export { FilePageStore, type FileStoreOptions } from './node/file-store.ts';
export { publishStore, folderSource, type PublishReport } from './node/publish.ts';
