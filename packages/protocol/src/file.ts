// File contents, sealed for a relay's blob storage (PROTOCOL.md §14.1): a fresh random key per
// file, the file cut into 64 KiB chunks, each sealed with XChaCha20-Poly1305 under a key derived
// from it, in a STREAM construction (as age does): the nonce holds the chunk's index and whether it
// is the last, so a chunk cannot be moved, repeated, dropped from the end, or taken from another file.
import { wipe } from "./_bytes.js";
import { hkdfSha256, KEY_LENGTH, label, xopen, xseal } from "./crypto.js";
import { CryptoError } from "./errors.js";

/** Plaintext bytes in every chunk but the last (which holds 1 … FILE_CHUNK_BYTES, or 0 for an empty file). */
export const FILE_CHUNK_BYTES = 64 * 1024;
/** What sealing adds to a chunk: the Poly1305 tag. */
export const FILE_CHUNK_OVERHEAD = 16;
/** The most chunks a file has: the index is a u64 in the nonce, but sizes stay safe integers. */
export const MAX_FILE_CHUNKS = 2 ** 32;

/** How many chunks a file of `size` bytes is cut into (an empty file is one empty chunk). */
export function fileChunkCount(size: number): number {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError("file size: a safe integer ≥ 0");
  const count = Math.max(1, Math.ceil(size / FILE_CHUNK_BYTES));
  if (count > MAX_FILE_CHUNKS) throw new RangeError(`a file has at most ${MAX_FILE_CHUNKS} chunks`);
  return count;
}

/** The plaintext size of chunk `index` of a file of `size` bytes. */
export function fileChunkSize(size: number, index: number): number {
  const count = fileChunkCount(size);
  if (!Number.isInteger(index) || index < 0 || index >= count)
    throw new RangeError("chunk index out of range");
  return index < count - 1 ? FILE_CHUNK_BYTES : size - FILE_CHUNK_BYTES * (count - 1);
}

/** The 24-byte nonce of chunk `index`: 15 zero bytes, the index (u64), 1 if it is the last chunk. */
export function fileChunkNonce(index: number, last: boolean): Uint8Array {
  if (!Number.isSafeInteger(index) || index < 0 || index >= MAX_FILE_CHUNKS)
    throw new RangeError("chunk index out of range");
  const nonce = new Uint8Array(24);
  new DataView(nonce.buffer).setBigUint64(15, BigInt(index));
  nonce[23] = last ? 1 : 0;
  return nonce;
}

/**
 * The sealing of one file: the chunk key derived from the file key
 * (HKDF-SHA256, info "parley/v1/file-chunks"). `wipe()` when done.
 */
export class FileCipher {
  private readonly chunkKey: Uint8Array;

  constructor(fileKey: Uint8Array) {
    if (fileKey.length !== KEY_LENGTH) throw new CryptoError("BAD_KEY", "file key: expected 32 bytes");
    this.chunkKey = hkdfSha256(fileKey, new Uint8Array(0), label("fileChunks"), KEY_LENGTH);
  }

  /** Seals chunk `index` (`last`: the file's final chunk). Sizes are the caller's (fileChunkSize). */
  seal(index: number, last: boolean, chunk: Uint8Array): Uint8Array {
    if (chunk.length > FILE_CHUNK_BYTES)
      throw new RangeError(`a chunk holds at most ${FILE_CHUNK_BYTES} bytes`);
    if (!last && chunk.length !== FILE_CHUNK_BYTES)
      throw new RangeError("every chunk before the last is full");
    if (last && index > 0 && chunk.length === 0)
      throw new RangeError("only an empty file has an empty chunk");
    return xseal(this.chunkKey, fileChunkNonce(index, last), chunk, new Uint8Array(0));
  }

  /**
   * Opens chunk `index`, which the caller expects to be the last or not (from the manifest's
   * chunk count): a chunk moved, repeated, cut off, from another file, or presented as last when
   * it is not (or the reverse) is CryptoError AUTH.
   */
  open(index: number, last: boolean, sealed: Uint8Array): Uint8Array {
    if (sealed.length > FILE_CHUNK_BYTES + FILE_CHUNK_OVERHEAD)
      throw new CryptoError("AUTH", "a sealed chunk is longer than any chunk");
    const chunk = xopen(this.chunkKey, fileChunkNonce(index, last), sealed, new Uint8Array(0));
    if (!last && chunk.length !== FILE_CHUNK_BYTES)
      throw new CryptoError("AUTH", "a chunk before the last is not a full chunk");
    if (last && index > 0 && chunk.length === 0)
      throw new CryptoError("AUTH", "an empty last chunk after others: only an empty file has one");
    return chunk;
  }

  wipe(): void {
    wipe(this.chunkKey);
  }
}
