// Relay blobs (PROTOCOL.md §14.2): the sealed chunks of one file, kept by a relay under a random
// blob id and guarded by capabilities of which it keeps only hashes: one write token for the
// uploader, one read token per recipient.
import { concat } from "./_bytes.js";
import { label, sha256 } from "./crypto.js";
import { FILE_CHUNK_BYTES, FILE_CHUNK_OVERHEAD } from "./file.js";

/** A blob id: 32 random bytes the uploader draws (§1.4), unrelated to any mailbox. */
export const BLOB_ID_LENGTH = 32;
/** A write or read token (32 random bytes) and the hash a relay keeps of it. */
export const BLOB_TOKEN_LENGTH = 32;
/** The most read tokens (recipients) one blob has. */
export const MAX_BLOB_READERS = 64;
/** The sealed length of every chunk but the last: FILE_CHUNK_BYTES + the tag, 65 552. */
export const SEALED_CHUNK_BYTES = FILE_CHUNK_BYTES + FILE_CHUNK_OVERHEAD;
/** The shortest sealed chunk: an empty plaintext and its tag. */
export const MIN_SEALED_CHUNK_BYTES = FILE_CHUNK_OVERHEAD;

/**
 * The hash a relay keeps of a blob's write or read token:
 * SHA-256("parley/v1/blob-token" || token). A leak of the relay's storage does not give the tokens.
 */
export function blobTokenHash(token: Uint8Array): Uint8Array {
  if (token.length !== BLOB_TOKEN_LENGTH) throw new RangeError("blob token: expected 32 bytes");
  return sha256(concat(label("blobToken"), token));
}

/**
 * Why `sealedSize` cannot be the total of `chunkCount` sealed chunks, or undefined when it can:
 * every chunk but the last is SEALED_CHUNK_BYTES and the last 16 … SEALED_CHUNK_BYTES (§14.2).
 */
export function blobSizeProblem(chunkCount: number, sealedSize: number): string | undefined {
  if (!Number.isInteger(chunkCount) || chunkCount < 1) return "chunkCount must be at least 1";
  const before = (chunkCount - 1) * SEALED_CHUNK_BYTES;
  if (sealedSize < before + MIN_SEALED_CHUNK_BYTES || sealedSize > before + SEALED_CHUNK_BYTES) {
    return `sealedSize ${sealedSize} is not the total of ${chunkCount} sealed chunks (${before + MIN_SEALED_CHUNK_BYTES} … ${before + SEALED_CHUNK_BYTES})`;
  }
  return undefined;
}

/** The sealed length chunk `index` of a blob must have (its sizes checked by blobSizeProblem). */
export function sealedChunkLength(chunkCount: number, sealedSize: number, index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= chunkCount)
    throw new RangeError("chunk index out of range");
  return index < chunkCount - 1 ? SEALED_CHUNK_BYTES : sealedSize - (chunkCount - 1) * SEALED_CHUNK_BYTES;
}
