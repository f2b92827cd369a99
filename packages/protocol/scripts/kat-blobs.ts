// Known answers for relay blobs (PROTOCOL.md §14.2): one blob holding the 3-byte file of the
// `files` vectors (one sealed chunk of 19 bytes) for two readers, its token hashes, and every blob
// frame of an upload, a download and the end of the blob, in the order a client and relay send them.
import { blobTokenHash, encodeFrame, FileCipher, type Frame, toHex } from "../src/index.js";
import { patterned } from "./kat-files.js";
import { jsonable, KAT_NOW, katValue } from "./kat-transcript.js";

export function buildBlobs(): Record<string, unknown> {
  const blobId = katValue("blob/id");
  const writeToken = katValue("blob/write-token");
  const readTokens = [katValue("blob/read-token/1"), katValue("blob/read-token/2")];
  // The 3-byte file of `files` (bytes i mod 251), sealed as its only (so last) chunk.
  const sealed = new FileCipher(katValue("file/key")).seal(0, true, patterned(3));
  const [first, second] = readTokens as [Uint8Array, Uint8Array];
  const frames: Frame[] = [
    {
      type: "createBlob",
      requestId: 1,
      blobId,
      writeTokenHash: blobTokenHash(writeToken),
      chunkCount: 1,
      sealedSize: sealed.length,
      readTokenHashes: readTokens.map(blobTokenHash),
    },
    { type: "ok", requestId: 1 },
    { type: "putChunk", requestId: 2, blobId, writeToken, index: 0, sealedChunk: sealed },
    { type: "ok", requestId: 2 },
    { type: "blobStatus", requestId: 3, blobId, token: writeToken },
    {
      type: "blobInfo",
      requestId: 3,
      chunkCount: 1,
      written: 1,
      readersLeft: 2,
      expiresAt: KAT_NOW + 604_800_000,
    },
    { type: "getChunk", requestId: 4, blobId, readToken: first, index: 0 },
    { type: "chunk", requestId: 4, index: 0, sealedChunk: sealed },
    { type: "blobDone", requestId: 5, blobId, readToken: first },
    { type: "ok", requestId: 5 },
    { type: "blobDone", requestId: 6, blobId, readToken: second },
    { type: "ok", requestId: 6 },
    { type: "blobStatus", requestId: 7, blobId, token: writeToken },
    { type: "error", requestId: 7, code: "UNKNOWN_BLOB", message: "no such blob" },
    { type: "deleteBlob", requestId: 8, blobId, writeToken },
  ];
  return {
    blobs: {
      description:
        "PROTOCOL.md §14.2: blobId = value('blob/id'), writeToken = value('blob/write-token'), read tokens value('blob/read-token/1') and value('blob/read-token/2'); the blob holds the 3-byte file of `files` as one sealed chunk; created at now, so it expires at now + 604 800 s",
      blobId: toHex(blobId),
      writeToken: toHex(writeToken),
      writeTokenHash: toHex(blobTokenHash(writeToken)),
      readTokens: readTokens.map(toHex),
      readTokenHashes: readTokens.map((t) => toHex(blobTokenHash(t))),
      sealedChunk: toHex(sealed),
      frames: frames.map((frame) => jsonable({ frame, hex: encodeFrame(frame) })),
    },
  };
}
