/**
 * Every failure tessera reports is a TesseraError with a stable `code`; the message says what was
 * wrong and what to do. Each subclass is typed over the codes it may carry (one class per code:
 * `ERROR_CLASS` says which), so a caller can branch on the class or the code alike, and code
 * raises a code only through its class. test/errors.test.ts raises every code through the API.
 */

/** The codes, grouped by the class that raises them. */
export const ERROR_CODES = {
  InvalidModelError: ['ONNX_MALFORMED', 'ONNX_UNSUPPORTED_DTYPE', 'ONNX_EXTERNAL_DATA'],
  ModelNotFoundError: ['MODEL_NOT_FOUND'],
  ModelExistsError: ['MODEL_EXISTS'],
  InvalidNameError: ['INVALID_NAME'],
  StoreError: ['NOT_A_STORE', 'STORE_LOCKED', 'STORE_CLOSED', 'STORE_UNAVAILABLE', 'IO_ERROR'],
  CorruptionError: ['PAGE_CORRUPT', 'CATALOG_CORRUPT'],
  InvalidArgumentError: ['INVALID_ARGUMENT'],
  CapacityError: ['BUDGET_EXCEEDED', 'QUOTA_EXCEEDED'],
  InferenceError: ['INVALID_FEEDS', 'INFERENCE_FAILED'],
  PackingInputError: ['PACKING_INPUT'],
  InternalError: ['INTERNAL'],
} as const;

type Codes = typeof ERROR_CODES;
export type ErrorClassName = keyof Codes;
export type ErrorCode = Codes[ErrorClassName][number];

export type InvalidModelCode = Codes['InvalidModelError'][number];
export type StoreErrorCode = Codes['StoreError'][number];
export type CorruptionCode = Codes['CorruptionError'][number];
export type CapacityCode = Codes['CapacityError'][number];
export type InferenceCode = Codes['InferenceError'][number];

/** The class that raises each code. */
export const ERROR_CLASS = Object.fromEntries(
  (Object.entries(ERROR_CODES) as [ErrorClassName, readonly ErrorCode[]][]).flatMap(([cls, codes]) => codes.map((c) => [c, cls])),
) as Record<ErrorCode, ErrorClassName>;

export class TesseraError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The ONNX bytes (or their external data) cannot be read as a model tessera can store. */
export class InvalidModelError extends TesseraError<InvalidModelCode> {}
/** A model name that is not in the store. */
export class ModelNotFoundError extends TesseraError<'MODEL_NOT_FOUND'> {
  constructor(name: string, known: string[] = []) {
    const hint = known.length ? ` Models in the store: ${known.slice(0, 8).join(', ')}${known.length > 8 ? ', ...' : ''}.` : ' The store holds no models.';
    super('MODEL_NOT_FOUND', `model "${name}" is not in the store.${hint}`);
  }
}
/** Adding a model under a name that is already taken. */
export class ModelExistsError extends TesseraError<'MODEL_EXISTS'> {
  constructor(name: string) {
    super('MODEL_EXISTS', `model "${name}" is already in the store: remove it first or add under another name (--name).`);
  }
}
/** A model name tessera cannot use (names become file names and keys). */
export class InvalidNameError extends TesseraError<'INVALID_NAME'> {
  constructor(message: string) {
    super('INVALID_NAME', message);
  }
}
/** A path or store that cannot be opened or used as asked, or storage that failed. */
export class StoreError extends TesseraError<StoreErrorCode> {}
/** Stored bytes that fail their checksum or a catalog that does not add up. */
export class CorruptionError extends TesseraError<CorruptionCode> {
  readonly pageId?: number;
  readonly models?: string[];
  constructor(code: CorruptionCode, message: string, details: { pageId?: number; models?: string[] } = {}) {
    super(code, message);
    this.pageId = details.pageId;
    this.models = details.models;
  }
}
/** A caller argument outside what the operation accepts. */
export class InvalidArgumentError extends TesseraError<'INVALID_ARGUMENT'> {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}
/** A memory budget or a storage quota (disk, database, browser origin) that cannot hold what was asked. */
export class CapacityError extends TesseraError<CapacityCode> {}
/** Inference inputs that do not match the model, or the runtime failing. */
export class InferenceError extends TesseraError<InferenceCode> {}
/** Bad packing input: empty, out-of-range ids, or a page that cannot hold whole blocks. */
export class PackingInputError extends TesseraError<'PACKING_INPUT'> {
  constructor(message: string) {
    super('PACKING_INPUT', message);
  }
}
/** A broken invariant inside tessera (a bug, not a caller's mistake): report it. */
export class InternalError extends TesseraError<'INTERNAL'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INTERNAL', `${message} (an internal error in tessera: please report it)`, options);
  }
}
