/**
 * The one content hash of tessera: xxHash64 from xxhash-wasm (isomorphic, ~GB/s). Used for block
 * identity (always confirmed by a byte comparison), page checksums and catalog record checksums.
 */
import xxhash from 'xxhash-wasm';

const api = await xxhash();

/** 64-bit xxHash of `bytes`, as a bigint. */
export function hash64(bytes: Uint8Array, seed = 0n): bigint {
  return api.h64Raw(bytes, seed);
}

/** 64-bit xxHash as 16 lowercase hex digits (a stable map key). */
export function hash64Hex(bytes: Uint8Array): string {
  return api.h64Raw(bytes, 0n).toString(16).padStart(16, '0');
}
