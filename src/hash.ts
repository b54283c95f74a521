/**
 * The content hashes of tessera. xxHash64 from xxhash-wasm (isomorphic, ~GB/s): used for block
 * identity (always confirmed by a byte comparison), page checksums and catalog record checksums.
 */
import xxhash from 'xxhash-wasm';
import type { IHasher } from 'hash-wasm';

const api = await xxhash();

/** xxHash64 of `length` bytes at `offset` of a linear memory, computed where they lie. */
export type InPlaceHash64 = (offset: number, length: number, seed: bigint) => bigint;

/**
 * Memories whose bytes are hashed where they lie (ingest's wasm memory, src/store/ingest-kernel.ts):
 * xxhash-wasm copies its input into its own memory first, a second pass over every block and page
 * written. Same algorithm, same values.
 */
const inPlace = new WeakMap<ArrayBufferLike, InPlaceHash64>();

/** Hashes views of `buffer` with `hash` (the same xxHash64) from now on; a grown memory registers its new buffer. */
export function hashInPlace(buffer: ArrayBufferLike, hash: InPlaceHash64): void {
  inPlace.set(buffer, hash);
}

/** 64-bit xxHash of `bytes`, as a bigint. */
export function hash64(bytes: Uint8Array, seed = 0n): bigint {
  const own = inPlace.get(bytes.buffer);
  return own ? own(bytes.byteOffset, bytes.length, seed) : api.h64Raw(bytes, seed);
}

/** 64-bit xxHash as 16 lowercase hex digits (a stable map key). */
export function hash64Hex(bytes: Uint8Array): string {
  return hash64(bytes).toString(16).padStart(16, '0');
}

/**
 * SHA-256 (hash-wasm): the cryptographic identity of a block across stores. xxHash64 is a fast
 * index, not a defence: a second preimage costs microseconds, so a block that came from elsewhere
 * (an import) is matched by SHA-256 or by a byte comparison, never by xxHash64 alone.
 */
let sha: IHasher | undefined;

/**
 * Loads the SHA-256 hasher (hash-wasm). Only publishing and importing need SHA-256, so it is not
 * built when tessera is imported: that took ~40 ms of every CLI start (`tessera ls`, issue 12).
 * Those operations await this once at their start; `sha256` / `sha256Hex` are then synchronous.
 */
export async function loadSha256(): Promise<void> {
  sha ??= await (await import('hash-wasm')).createSHA256();
}

function hasher(): IHasher {
  if (!sha) throw new Error('internal: sha256 used before loadSha256() was awaited');
  return sha;
}

export function sha256(bytes: Uint8Array): Uint8Array {
  const h = hasher();
  h.init();
  h.update(bytes);
  return h.digest('binary');
}

export function sha256Hex(bytes: Uint8Array): string {
  const h = hasher();
  h.init();
  h.update(bytes);
  return h.digest('hex');
}

/**
 * SHA-256 of `bytes`, resolved later: through WebCrypto where the platform has it (browsers in a
 * secure context, Node), which Chromium computes off the page's main thread, so an import's
 * checks of every block overlap its downloads and writes; else through hash-wasm (loadSha256).
 */
export async function sha256Async(bytes: Uint8Array): Promise<Uint8Array> {
  const subtle = (globalThis as { crypto?: { subtle?: SubtleCrypto } }).crypto?.subtle;
  if (subtle) return new Uint8Array(await subtle.digest('SHA-256', bytes as BufferSource));
  await loadSha256();
  return sha256(bytes);
}
