/**
 * zstd through @bokuweb/zstd-wasm (compression and decompression in wasm; Node and browser builds
 * of one package). Its wasm is instantiated once, on the first `zstdReady()`: Node reads it from
 * the package, a browser fetches `zstd.wasm` beside the page's bundle (build/bundle-browser.mjs
 * copies it there).
 *
 * The package itself is imported on that first call too, not with this module: its emscripten
 * glue cost every `tessera` command ~8 ms of start-up and its RSS (issue 12), and only the block
 * codec uses it.
 *
 * Decompression is bounded: the library allocates whatever size a frame header declares, so a
 * frame is read only when its header states exactly the size the caller expects.
 */
import type * as ZstdWasm from '@bokuweb/zstd-wasm';
import { CorruptionError, InternalError } from '../errors.ts';

let ready: Promise<void> | undefined;
/** The package, once imported and instantiated (every call below goes through `loaded()`). */
let zstd: typeof ZstdWasm | undefined;
/** One compression and one decompression context, reused: making one per call cost ~5-10 us. */
let cctx = 0;
let dctx = 0;
const NO_DICTIONARY = new Uint8Array(0);

/** Imports and instantiates the zstd wasm once; every zstd call below needs it to have resolved. */
export function zstdReady(): Promise<void> {
  ready ??= import('@bokuweb/zstd-wasm').then(
    async (lib) => {
      await lib.init();
      cctx = lib.createCCtx();
      dctx = lib.createDCtx();
      zstd = lib;
    },
    (e: unknown) => {
      // A failed import is not kept: the next call tries again.
      ready = undefined;
      throw e;
    },
  );
  return ready;
}

function loaded(): typeof ZstdWasm {
  if (!zstd) throw new InternalError('zstd is used before zstdReady() resolved (internal ordering bug).');
  return zstd;
}

/** One zstd frame of `data` at `level` (zstd's own framing records the content size). */
export function zstdCompress(data: Uint8Array, level: number): Uint8Array {
  return loaded().compressUsingDict(cctx, data, NO_DICTIONARY, level);
}

const ZSTD_MAGIC = 0xfd2fb528;

/** The content size a zstd frame header declares, or -1 when it declares none. */
export function zstdFrameContentSize(frame: Uint8Array): number {
  if (frame.length < 5) return -1;
  const magic = (frame[0] | (frame[1] << 8) | (frame[2] << 16) | (frame[3] << 24)) >>> 0;
  if (magic !== ZSTD_MAGIC) return -1;
  const fhd = frame[4];
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const dictIdBytes = [0, 1, 2, 4][fhd & 3];
  let at = 5 + (singleSegment ? 0 : 1) + dictIdBytes;
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][fcsFlag];
  if (!fcsBytes || at + fcsBytes > frame.length) return -1;
  let size = 0;
  for (let k = fcsBytes - 1; k >= 0; k--) size = size * 256 + frame[at + k];
  return fcsBytes === 2 ? size + 256 : size;
}

/** Decompresses one frame that must hold exactly `expected` bytes. */
export function zstdDecompressExactly(frame: Uint8Array, expected: number): Uint8Array {
  const lib = loaded();
  const declared = zstdFrameContentSize(frame);
  if (declared !== expected) throw new CorruptionError('PAGE_CORRUPT', `a zstd stream declares ${declared < 0 ? 'no valid size' : `${declared} bytes`}, ${expected} were expected: it is damaged or hostile.`);
  let out: Uint8Array;
  try {
    out = lib.decompressUsingDict(dctx, frame, NO_DICTIONARY, { defaultHeapSize: expected });
  } catch (e) {
    throw new CorruptionError('PAGE_CORRUPT', `a zstd stream cannot be decompressed (${(e as Error).message}).`);
  }
  if (out.length !== expected) throw new CorruptionError('PAGE_CORRUPT', `a zstd stream decompresses to ${out.length} bytes, ${expected} were expected.`);
  return out;
}
