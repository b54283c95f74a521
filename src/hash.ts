/**
 * The content hashes of tessera. xxHash64 from xxhash-wasm (isomorphic, ~GB/s): used for block
 * identity (always confirmed by a byte comparison), page checksums and catalog record checksums.
 */
import xxhash from 'xxhash-wasm';
import { createSHA256 } from 'hash-wasm';

const api = await xxhash();

/** 64-bit xxHash of `bytes`, as a bigint. */
export function hash64(bytes: Uint8Array, seed = 0n): bigint {
  return api.h64Raw(bytes, seed);
}

/** 64-bit xxHash as 16 lowercase hex digits (a stable map key). */
export function hash64Hex(bytes: Uint8Array): string {
  return api.h64Raw(bytes, 0n).toString(16).padStart(16, '0');
}

/**
 * SHA-256 (hash-wasm): the cryptographic identity of a block across stores. xxHash64 is a fast
 * index, not a defence: a second preimage costs microseconds, so a block that came from elsewhere
 * (an import) is matched by SHA-256 or by a byte comparison, never by xxHash64 alone.
 */
const sha = await createSHA256();

export function sha256(bytes: Uint8Array): Uint8Array {
  sha.init();
  sha.update(bytes);
  return sha.digest('binary');
}

export function sha256Hex(bytes: Uint8Array): string {
  sha.init();
  sha.update(bytes);
  return sha.digest('hex');
}
