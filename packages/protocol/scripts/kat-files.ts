// Known answers for file contents (PROTOCOL.md §14.1): one file key, three files (empty, three
// bytes, one byte past a chunk), each chunk's nonce and its sealed bytes (or, for a full chunk, their
// SHA-256 and first 32 bytes, so the vectors stay small).
import { sha256 } from "@noble/hashes/sha2.js";
import {
  FILE_CHUNK_BYTES,
  FileCipher,
  fileChunkCount,
  fileChunkNonce,
  fileChunkSize,
  hkdfSha256,
  toHex,
} from "../src/index.js";
import { katValue } from "./kat-transcript.js";

/** `size` bytes of a fixed pattern: byte i is i mod 251. */
export function patterned(size: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => i % 251);
}

export function buildFiles(): Record<string, unknown> {
  const fileKey = katValue("file/key");
  const chunkKey = hkdfSha256(
    fileKey,
    new Uint8Array(0),
    new TextEncoder().encode("parley/v1/file-chunks"),
    32,
  );
  const cipher = new FileCipher(fileKey);
  const cases = [0, 3, FILE_CHUNK_BYTES + 1].map((size) => {
    const data = patterned(size);
    const count = fileChunkCount(size);
    return {
      size,
      chunks: Array.from({ length: count }, (_, i) => {
        const last = i === count - 1;
        const chunk = data.subarray(i * FILE_CHUNK_BYTES, i * FILE_CHUNK_BYTES + fileChunkSize(size, i));
        const sealed = cipher.seal(i, last, chunk);
        const small = sealed.length <= 64;
        return {
          index: i,
          last,
          nonce: toHex(fileChunkNonce(i, last)),
          ...(small
            ? { sealed: toHex(sealed) }
            : {
                sealedLength: sealed.length,
                sealedSha256: toHex(sha256(sealed)),
                sealedStart: toHex(sealed.subarray(0, 32)),
              }),
        };
      }),
    };
  });
  return {
    files: {
      description:
        "PROTOCOL.md §14.1: fileKey = SHA-256('parley-kat/file/key'); chunkKey = HKDF-SHA256(fileKey, empty salt, 'parley/v1/file-chunks', 32); each file's bytes are i mod 251; a chunk of more than 48 bytes is given by its sealed length, SHA-256 and first 32 bytes",
      fileKey: toHex(fileKey),
      chunkKey: toHex(chunkKey),
      cases,
    },
  };
}
