// The file manifest (PROTOCOL.md §14.3): what a recipient needs to fetch, open and check a file a
// relay holds as a blob (§14.2). It travels as payload type 5 (§7.1), end-to-end encrypted, since it
// carries the file key and the recipient's read token.
import { Reader, utf8, Writer } from "./_bytes.js";
import { DecodeError } from "./errors.js";
import { fileChunkCount } from "./file.js";

/** Longest file name in a manifest, in UTF-8 bytes. */
export const MAX_FILE_NAME_BYTES = 255;
/** Longest media type in a manifest (printable ASCII). */
export const MAX_MEDIA_TYPE_BYTES = 127;
/** Longest relay URL in a manifest (the §4.3 limit). */
export const MAX_MANIFEST_URL_BYTES = 255;
/** Blob ids, blob tokens and file keys are 32 bytes each (§14.1, §14.2). */
const KEY_BYTES = 32;
/** The largest manifest payload before padding: it pads to 1024 (§14.3). */
export const MAX_FILE_PAYLOAD_BYTES = 26 + 1 + 255 + 1 + 127 + 8 + 32 + 4 + 1 + 255 + 32 + 32 + 32 + 8;
/** The largest manifest body (the fields after the common header): what a group file item holds, 788 bytes. */
export const MAX_FILE_MANIFEST_BYTES = MAX_FILE_PAYLOAD_BYTES - 26;

/** A file offered to one recipient (§14.3). */
export interface FileManifest {
  /** The sender's name for the file: a claim, to sanitise before use (§14.4). */
  readonly name: string;
  /** e.g. "image/png"; "" when unknown. */
  readonly mediaType: string;
  /** Plaintext size in bytes. */
  readonly size: number;
  /** SHA-256 of the whole plaintext. */
  readonly sha256: Uint8Array;
  /** max(1, ⌈size / 65 536⌉), checked on both sides. */
  readonly chunkCount: number;
  /** The relay holding the blob. */
  readonly relay: string;
  readonly blobId: Uint8Array;
  /** This recipient's read token. */
  readonly readToken: Uint8Array;
  /** The file key (§14.1). */
  readonly fileKey: Uint8Array;
  /** When the relay deletes the blob, ms since the epoch. */
  readonly expiresAt: number;
}

const printableAscii = (s: string) => /^[\x21-\x7e]*$/.test(s);

/** Appends a manifest body. Bad fields are programming errors (RangeError naming the field). */
export function writeFileManifest(w: Writer, f: FileManifest): void {
  const name = utf8.encode(f.name);
  if (name.length < 1 || name.length > MAX_FILE_NAME_BYTES)
    throw new RangeError(`name: 1..${MAX_FILE_NAME_BYTES} UTF-8 bytes, not ${name.length}`);
  if (f.mediaType.length > MAX_MEDIA_TYPE_BYTES || !printableAscii(f.mediaType))
    throw new RangeError(`mediaType: at most ${MAX_MEDIA_TYPE_BYTES} printable ASCII characters`);
  if (f.relay.length < 1 || f.relay.length > MAX_MANIFEST_URL_BYTES || !printableAscii(f.relay))
    throw new RangeError(`relay: 1..${MAX_MANIFEST_URL_BYTES} printable ASCII characters`);
  if (f.sha256.length !== 32) throw new RangeError("sha256: expected 32 bytes");
  if (f.chunkCount !== fileChunkCount(f.size))
    throw new RangeError(`chunkCount: a file of ${f.size} bytes has ${fileChunkCount(f.size)} chunks`);
  for (const [field, v] of [
    ["blobId", f.blobId],
    ["readToken", f.readToken],
    ["fileKey", f.fileKey],
  ] as const) {
    if (v.length !== KEY_BYTES) throw new RangeError(`${field}: expected 32 bytes`);
  }
  w.varBytes(name, 1)
    .varBytes(utf8.encode(f.mediaType), 1)
    .u64(f.size)
    .bytes(f.sha256)
    .u32(f.chunkCount)
    .varBytes(utf8.encode(f.relay), 1)
    .bytes(f.blobId)
    .bytes(f.readToken)
    .bytes(f.fileKey)
    .u64(f.expiresAt);
}

/** Reads a manifest body, strictly (§14.3): any fault is a DecodeError (BAD_FRAME). */
export function readFileManifest(r: Reader): FileManifest {
  const name = r.string(1, "file name", MAX_FILE_NAME_BYTES);
  if (name.length === 0) throw new DecodeError("payload: empty file name");
  const mediaType = r.string(1, "media type", MAX_MEDIA_TYPE_BYTES);
  if (!printableAscii(mediaType)) throw new DecodeError("payload: media type is not printable ASCII");
  const size = r.u64("file size");
  const sha256 = r.bytes(32, "sha256");
  const chunkCount = r.u32("chunk count");
  // size ≤ 2^53 − 1 (r.u64), so fileChunkCount cannot throw: at most 2^37 chunks, checked below.
  const expected = Math.max(1, Math.ceil(size / 65536));
  if (chunkCount !== expected)
    throw new DecodeError(`payload: chunk count ${chunkCount} does not match a size of ${size} bytes`);
  const relay = r.string(1, "relay URL", MAX_MANIFEST_URL_BYTES);
  if (relay.length === 0 || !printableAscii(relay))
    throw new DecodeError("payload: relay URL is empty or not printable ASCII");
  return {
    name,
    mediaType,
    size,
    sha256,
    chunkCount,
    relay,
    blobId: r.bytes(KEY_BYTES, "blob id"),
    readToken: r.bytes(KEY_BYTES, "read token"),
    fileKey: r.bytes(KEY_BYTES, "file key"),
    expiresAt: r.u64("expiresAt"),
  };
}

/** A manifest body on its own (§14.3): the `M` bytes a group file item carries (§13.3). */
export function encodeFileManifest(f: FileManifest): Uint8Array {
  const w = new Writer();
  writeFileManifest(w, f);
  return w.finish();
}

/** Reads a manifest body that fills `bytes` exactly (a group file item's `M` bytes): a DecodeError otherwise. */
export function decodeFileManifest(bytes: Uint8Array): FileManifest {
  const r = new Reader(bytes, "group file manifest");
  const f = readFileManifest(r);
  r.end();
  return f;
}
