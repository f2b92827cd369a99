// Known answers for file contents (PROTOCOL.md §14.1): one file key, three files (empty, three
// bytes, one byte past a chunk), each chunk's nonce and its sealed bytes (or, for a full chunk, their
// SHA-256 and first 32 bytes, so the vectors stay small); and file manifests (§14.3) offering two of
// those files, field by field and as padded payloads.
import { sha256 } from "@noble/hashes/sha2.js";
import {
  encodePayload,
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
  const manifests = [
    { size: 3, name: "notes.txt", mediaType: "text/plain", at: 1_767_225_600_000 },
    { size: FILE_CHUNK_BYTES + 1, name: "Été 🌄.bin", mediaType: "", at: 1_767_225_600_001 },
  ].map((m, i) => {
    const file = {
      name: m.name,
      mediaType: m.mediaType,
      size: m.size,
      sha256: sha256(patterned(m.size)),
      chunkCount: fileChunkCount(m.size),
      relay: "wss://relay.example:8443/parley",
      blobId: katValue(`file/${i}/blob-id`),
      readToken: katValue(`file/${i}/read-token`),
      fileKey,
      expiresAt: m.at + 7 * 86_400_000,
    };
    const id = katValue(`file/${i}/message-id`, 16);
    const padded = encodePayload({ type: "file", id, sentAt: m.at, file });
    return {
      id: toHex(id),
      sentAt: m.at,
      file: {
        ...file,
        sha256: toHex(file.sha256),
        blobId: toHex(file.blobId),
        readToken: toHex(file.readToken),
        fileKey: toHex(file.fileKey),
      },
      rawLength: padded.lastIndexOf(0x80),
      padded: toHex(padded),
    };
  });
  return {
    fileManifests: {
      description:
        "PROTOCOL.md §14.3: file manifest payloads (§7.1 type 5) offering the 3-byte and 65 537-byte files of `files` (same file key, bytes i mod 251); blobId, readToken = SHA-256('parley-kat/file/<n>/blob-id' | '.../read-token'), message id = the first 16 bytes of SHA-256('parley-kat/file/<n>/message-id')",
      cases: manifests,
    },
    files: {
      description:
        "PROTOCOL.md §14.1: fileKey = SHA-256('parley-kat/file/key'); chunkKey = HKDF-SHA256(fileKey, empty salt, 'parley/v1/file-chunks', 32); each file's bytes are i mod 251; a chunk of more than 48 bytes is given by its sealed length, SHA-256 and first 32 bytes",
      fileKey: toHex(fileKey),
      chunkKey: toHex(chunkKey),
      cases,
    },
  };
}
