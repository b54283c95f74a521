/**
 * Every failure tessera reports is a TesseraError with a stable `code`; the message says what was
 * wrong and what to do. Subclasses group codes by what the caller can do about them.
 */
export type ErrorCode =
  | 'ONNX_MALFORMED'
  | 'ONNX_UNSUPPORTED_DTYPE'
  | 'ONNX_EXTERNAL_DATA'
  | 'MODEL_NOT_FOUND'
  | 'MODEL_EXISTS'
  | 'INVALID_NAME'
  | 'NOT_A_STORE'
  | 'STORE_EXISTS'
  | 'STORE_LOCKED'
  | 'STORE_CLOSED'
  | 'STORE_UNAVAILABLE'
  | 'PAGE_CORRUPT'
  | 'CATALOG_CORRUPT'
  | 'INVALID_ARGUMENT'
  | 'BUDGET_EXCEEDED'
  | 'QUOTA_EXCEEDED'
  | 'INVALID_FEEDS'
  | 'INFERENCE_FAILED'
  | 'PACKING_INPUT'
  | 'IO_ERROR';

export class TesseraError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The ONNX bytes (or their external data) cannot be read as a model tessera can store. */
export class InvalidModelError extends TesseraError {}
/** A model name that is not in the store. */
export class ModelNotFoundError extends TesseraError {
  constructor(name: string, known: string[] = []) {
    const hint = known.length ? ` Models in the store: ${known.slice(0, 8).join(', ')}${known.length > 8 ? ', ...' : ''}.` : ' The store holds no models.';
    super('MODEL_NOT_FOUND', `model "${name}" is not in the store.${hint}`);
  }
}
/** Adding a model under a name that is already taken. */
export class ModelExistsError extends TesseraError {
  constructor(name: string) {
    super('MODEL_EXISTS', `model "${name}" is already in the store: remove it first or add under another name (--name).`);
  }
}
/** A path or store that cannot be opened as asked. */
export class StoreError extends TesseraError {}
/** Stored bytes that fail their checksum or a catalog that does not add up. */
export class CorruptionError extends TesseraError {
  readonly pageId?: number;
  readonly models?: string[];
  constructor(code: 'PAGE_CORRUPT' | 'CATALOG_CORRUPT', message: string, details: { pageId?: number; models?: string[] } = {}) {
    super(code, message);
    this.pageId = details.pageId;
    this.models = details.models;
  }
}
/** A caller argument outside what the operation accepts. */
export class InvalidArgumentError extends TesseraError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}
/** Memory budget or storage quota that cannot hold what was asked. */
export class CapacityError extends TesseraError {}
/** Inference inputs that do not match the model, or the runtime failing. */
export class InferenceError extends TesseraError {}
