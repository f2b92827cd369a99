// Relay wire protocol: binary frames over WebSocket. PROTOCOL.md §8.
// Every frame: version (u8) || type (u8) || request id (u32) || body. Layouts are exact: a decoder
// refuses unknown versions and types, short or long bodies, and out-of-range values.
import { Reader, toHex, utf8, Writer } from "./_bytes.js";
import {
  BLOB_TOKEN_LENGTH,
  blobSizeProblem,
  MAX_BLOB_READERS,
  MIN_SEALED_CHUNK_BYTES,
  SEALED_CHUNK_BYTES,
} from "./blob.js";
import { DecodeError } from "./errors.js";

export const FRAME_VERSION = 1;
/** Default cap on the ciphertext of one deposit; a relay may configure it lower or higher. */
export const DEFAULT_MAX_CIPHERTEXT = 64 * 1024;
const MAX_ERROR_MESSAGE = 1024;

/** Typed relay errors and their wire codes (u16). */
export const RelayErrorCode = {
  BAD_FRAME: 1,
  UNSUPPORTED_VERSION: 2,
  AUTH: 3,
  UNKNOWN_MAILBOX: 4,
  MAILBOX_EXISTS: 5,
  QUOTA: 6,
  TOO_LARGE: 7,
  RATE_LIMITED: 8,
  UNKNOWN_MESSAGE: 9,
  NO_HELLO: 10,
  SHUTTING_DOWN: 12,
  INTERNAL: 13,
  UNKNOWN_BLOB: 14,
} as const;
export type RelayErrorName = keyof typeof RelayErrorCode;
const ERROR_NAMES = new Map<number, RelayErrorName>(
  Object.entries(RelayErrorCode).map(([k, v]) => [v, k as RelayErrorName]),
);

type Bytes = Uint8Array;
interface Base {
  /** Chosen by the client, echoed in the reply; 0 for relay pushes (deliver). */
  readonly requestId: number;
}
export interface HelloFrame extends Base {
  readonly type: "hello";
  /** Highest protocol version the client speaks. */
  readonly maxVersion: number;
}
export interface CreateMailboxFrame extends Base {
  readonly type: "createMailbox";
  readonly ownerKey: Bytes;
  /** Ownership proof (MailboxAction.create) over this connection's challenge. */
  readonly signature: Bytes;
}
export interface DepositFrame extends Base {
  readonly type: "deposit";
  readonly address: Bytes;
  /**
   * Random, chosen by the sender, scoped to the mailbox: a retried deposit with the same id and the
   * same ciphertext is stored once; the same id with another ciphertext is refused (PROTOCOL.md §8.1).
   */
  readonly clientMessageId: Bytes;
  readonly ciphertext: Bytes;
}
export interface SubscribeFrame extends Base {
  readonly type: "subscribe";
  readonly address: Bytes;
  readonly signature: Bytes;
}
export interface UnsubscribeFrame extends Base {
  readonly type: "unsubscribe";
  readonly address: Bytes;
}
export interface AckFrame extends Base {
  readonly type: "ack";
  readonly address: Bytes;
  readonly messageId: Bytes;
}
export interface DeleteMailboxFrame extends Base {
  readonly type: "deleteMailbox";
  readonly address: Bytes;
  readonly signature: Bytes;
}
export interface SetDepositTokenFrame extends Base {
  readonly type: "setDepositToken";
  readonly address: Bytes;
  /** depositTokenHash(token): from now on the mailbox takes deposits with that token only. */
  readonly tokenHash: Bytes;
  /** Ownership proof (MailboxAction.setDepositToken) over the challenge and `tokenHash`. */
  readonly signature: Bytes;
}
export interface TokenDepositFrame extends Base {
  readonly type: "tokenDeposit";
  readonly address: Bytes;
  /** The mailbox's deposit token, as its owner gave it to this sender. */
  readonly token: Bytes;
  /** As in `deposit`. */
  readonly clientMessageId: Bytes;
  readonly ciphertext: Bytes;
}
/** Creates a blob (PROTOCOL.md §14.2); the whole `sealedSize` counts against quotas from now on. */
export interface CreateBlobFrame extends Base {
  readonly type: "createBlob";
  /** 32 random bytes drawn by the uploader. */
  readonly blobId: Bytes;
  /** blobTokenHash(write token). */
  readonly writeTokenHash: Bytes;
  /** ≥ 1. */
  readonly chunkCount: number;
  /** The total of the sealed chunks: (chunkCount − 1) × 65 552 + (16 … 65 552). */
  readonly sealedSize: number;
  /** blobTokenHash of each recipient's read token: 1 … 64, all distinct and unlike the write token's. */
  readonly readTokenHashes: readonly Bytes[];
}
export interface PutChunkFrame extends Base {
  readonly type: "putChunk";
  readonly blobId: Bytes;
  readonly writeToken: Bytes;
  /** Chunks are written in order: the next index stores, a lower one is a retry. */
  readonly index: number;
  /** 16 … 65 552 bytes, checked against that bound rather than maxCiphertext. */
  readonly sealedChunk: Bytes;
}
export interface BlobStatusFrame extends Base {
  readonly type: "blobStatus";
  readonly blobId: Bytes;
  /** The write token or a read token that has not completed. */
  readonly token: Bytes;
}
export interface GetChunkFrame extends Base {
  readonly type: "getChunk";
  readonly blobId: Bytes;
  readonly readToken: Bytes;
  readonly index: number;
}
export interface BlobDoneFrame extends Base {
  readonly type: "blobDone";
  readonly blobId: Bytes;
  /** Retired by this frame; the blob is deleted when it was the last read token. */
  readonly readToken: Bytes;
}
export interface DeleteBlobFrame extends Base {
  readonly type: "deleteBlob";
  readonly blobId: Bytes;
  readonly writeToken: Bytes;
}
export interface WelcomeFrame extends Base {
  readonly type: "welcome";
  readonly version: number;
  /** 32 random bytes, fresh per connection, signed in ownership proofs. */
  readonly challenge: Bytes;
  readonly maxCiphertext: number;
  readonly retentionSeconds: number;
}
export interface OkFrame extends Base {
  readonly type: "ok";
}
export interface DeliverFrame extends Base {
  readonly type: "deliver";
  readonly address: Bytes;
  /** Relay-assigned id, used to ack. */
  readonly messageId: Bytes;
  /** Relay arrival time, ms since the epoch. */
  readonly receivedAt: number;
  readonly ciphertext: Bytes;
}
/** The answer to blobStatus. */
export interface BlobInfoFrame extends Base {
  readonly type: "blobInfo";
  readonly chunkCount: number;
  /** Chunks stored, from index 0 (≤ chunkCount): an uploader resumes here. */
  readonly written: number;
  /** Read tokens that have not completed (≤ 64). */
  readonly readersLeft: number;
  /** When the relay deletes the blob, complete or not: ms since the epoch. */
  readonly expiresAt: number;
}
/** The answer to getChunk. */
export interface ChunkFrame extends Base {
  readonly type: "chunk";
  readonly index: number;
  readonly sealedChunk: Bytes;
}
export interface ErrorFrame extends Base {
  readonly type: "error";
  readonly code: RelayErrorName;
  readonly message: string;
}

export type ClientFrame =
  | HelloFrame
  | CreateMailboxFrame
  | DepositFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | AckFrame
  | DeleteMailboxFrame
  | SetDepositTokenFrame
  | TokenDepositFrame
  | CreateBlobFrame
  | PutChunkFrame
  | BlobStatusFrame
  | GetChunkFrame
  | BlobDoneFrame
  | DeleteBlobFrame;
export type ServerFrame = WelcomeFrame | OkFrame | DeliverFrame | ErrorFrame | BlobInfoFrame | ChunkFrame;
export type Frame = ClientFrame | ServerFrame;

/**
 * Field kinds: fixed-length byte strings, integers, the rest of the frame (a ciphertext, bounded by
 * maxCiphertext; a sealed chunk, bounded by 16 … 65 552), a u16-prefixed string, or a list of
 * 32-byte hashes after a u8 count (1 … 64).
 */
type Field =
  | readonly [name: string, kind: "u8" | "u16" | "u32" | "u64" | "rest" | "sealed" | "string" | "hashes"]
  | readonly [name: string, kind: "bytes", length: number];

/** The frame table (PROTOCOL.md §8.2): type byte and body layout, in order. */
const LAYOUTS: Record<Frame["type"], { code: number; fields: readonly Field[] }> = {
  hello: { code: 0x01, fields: [["maxVersion", "u8"]] },
  createMailbox: {
    code: 0x02,
    fields: [
      ["ownerKey", "bytes", 32],
      ["signature", "bytes", 64],
    ],
  },
  deposit: {
    code: 0x03,
    fields: [
      ["address", "bytes", 32],
      ["clientMessageId", "bytes", 16],
      ["ciphertext", "rest"],
    ],
  },
  subscribe: {
    code: 0x04,
    fields: [
      ["address", "bytes", 32],
      ["signature", "bytes", 64],
    ],
  },
  unsubscribe: { code: 0x05, fields: [["address", "bytes", 32]] },
  ack: {
    code: 0x06,
    fields: [
      ["address", "bytes", 32],
      ["messageId", "bytes", 16],
    ],
  },
  deleteMailbox: {
    code: 0x07,
    fields: [
      ["address", "bytes", 32],
      ["signature", "bytes", 64],
    ],
  },
  setDepositToken: {
    code: 0x08,
    fields: [
      ["address", "bytes", 32],
      ["tokenHash", "bytes", 32],
      ["signature", "bytes", 64],
    ],
  },
  tokenDeposit: {
    code: 0x09,
    fields: [
      ["address", "bytes", 32],
      ["token", "bytes", 32],
      ["clientMessageId", "bytes", 16],
      ["ciphertext", "rest"],
    ],
  },
  createBlob: {
    code: 0x0a,
    fields: [
      ["blobId", "bytes", 32],
      ["writeTokenHash", "bytes", 32],
      ["chunkCount", "u32"],
      ["sealedSize", "u64"],
      ["readTokenHashes", "hashes"],
    ],
  },
  putChunk: {
    code: 0x0b,
    fields: [
      ["blobId", "bytes", 32],
      ["writeToken", "bytes", 32],
      ["index", "u32"],
      ["sealedChunk", "sealed"],
    ],
  },
  blobStatus: {
    code: 0x0c,
    fields: [
      ["blobId", "bytes", 32],
      ["token", "bytes", 32],
    ],
  },
  getChunk: {
    code: 0x0d,
    fields: [
      ["blobId", "bytes", 32],
      ["readToken", "bytes", 32],
      ["index", "u32"],
    ],
  },
  blobDone: {
    code: 0x0e,
    fields: [
      ["blobId", "bytes", 32],
      ["readToken", "bytes", 32],
    ],
  },
  deleteBlob: {
    code: 0x0f,
    fields: [
      ["blobId", "bytes", 32],
      ["writeToken", "bytes", 32],
    ],
  },
  welcome: {
    code: 0x81,
    fields: [
      ["version", "u8"],
      ["challenge", "bytes", 32],
      ["maxCiphertext", "u32"],
      ["retentionSeconds", "u32"],
    ],
  },
  ok: { code: 0x82, fields: [] },
  deliver: {
    code: 0x83,
    fields: [
      ["address", "bytes", 32],
      ["messageId", "bytes", 16],
      ["receivedAt", "u64"],
      ["ciphertext", "rest"],
    ],
  },
  error: {
    code: 0x84,
    fields: [
      ["code", "u16"],
      ["message", "string"],
    ],
  },
  blobInfo: {
    code: 0x85,
    fields: [
      ["chunkCount", "u32"],
      ["written", "u32"],
      ["readersLeft", "u8"],
      ["expiresAt", "u64"],
    ],
  },
  chunk: {
    code: 0x86,
    fields: [
      ["index", "u32"],
      ["sealedChunk", "sealed"],
    ],
  },
};
const BY_CODE = new Map(Object.entries(LAYOUTS).map(([type, l]) => [l.code, type as Frame["type"]]));

/** True for frames a client sends (type < 0x80). */
export const isClientFrame = (f: Frame): f is ClientFrame => LAYOUTS[f.type].code < 0x80;

/** Encodes a frame. Throws RangeError for values that do not fit their fields. */
export function encodeFrame(frame: Frame): Uint8Array {
  const layout = LAYOUTS[frame.type];
  if ((frame.type === "hello" && frame.maxVersion < 1) || (frame.type === "welcome" && frame.version < 1)) {
    throw new RangeError("protocol versions start at 1");
  }
  const w = new Writer().u8(FRAME_VERSION).u8(layout.code).u32(frame.requestId);
  const values = frame as unknown as Record<string, unknown>;
  for (const field of layout.fields) {
    const [name, kind] = field;
    const v = name === "code" && frame.type === "error" ? RelayErrorCode[frame.code] : values[name];
    switch (kind) {
      case "u8":
        w.u8(checkInt(name, v, 0xff));
        break;
      case "u16":
        w.u16(checkInt(name, v, 0xffff));
        break;
      case "u32":
        w.u32(checkInt(name, v, 0xffffffff));
        break;
      case "u64":
        w.u64(checkInt(name, v, Number.MAX_SAFE_INTEGER));
        break;
      case "bytes":
        if (!(v instanceof Uint8Array) || v.length !== field[2])
          throw new RangeError(`${name}: expected ${field[2]} bytes`);
        w.bytes(v);
        break;
      case "rest":
        if (!(v instanceof Uint8Array) || v.length === 0)
          throw new RangeError(`${name}: expected non-empty bytes`);
        w.bytes(v);
        break;
      case "sealed":
        if (!(v instanceof Uint8Array) || v.length < MIN_SEALED_CHUNK_BYTES || v.length > SEALED_CHUNK_BYTES)
          throw new RangeError(`${name}: expected ${MIN_SEALED_CHUNK_BYTES} … ${SEALED_CHUNK_BYTES} bytes`);
        w.bytes(v);
        break;
      case "hashes": {
        if (!Array.isArray(v) || v.length < 1 || v.length > MAX_BLOB_READERS)
          throw new RangeError(`${name}: expected 1 … ${MAX_BLOB_READERS} hashes`);
        w.u8(v.length);
        for (const h of v as unknown[]) {
          if (!(h instanceof Uint8Array) || h.length !== BLOB_TOKEN_LENGTH)
            throw new RangeError(`${name}: expected ${BLOB_TOKEN_LENGTH}-byte hashes`);
          w.bytes(h);
        }
        break;
      }
      case "string": {
        const s = utf8.encode(String(v));
        if (s.length > MAX_ERROR_MESSAGE)
          throw new RangeError(`${name}: longer than ${MAX_ERROR_MESSAGE} bytes`);
        w.varBytes(s, 2);
        break;
      }
    }
  }
  const problem = valueProblem(frame);
  if (problem) throw new RangeError(problem);
  return w.finish();
}

/**
 * The rules between a frame's fields that its layout alone does not state (PROTOCOL.md §8.4 step
 * 6, §14.2), shared by the encoder (RangeError) and the decoder (BAD_FRAME), so that whatever
 * decodes re-encodes and the reverse.
 */
function valueProblem(frame: Frame): string | undefined {
  switch (frame.type) {
    case "hello":
      return frame.maxVersion === 0 ? "hello maxVersion must be at least 1" : undefined;
    case "welcome":
      return frame.version === 0 ? "welcome version must be at least 1" : undefined;
    case "createBlob": {
      const size = blobSizeProblem(frame.chunkCount, frame.sealedSize);
      if (size) return `createBlob: ${size}`;
      const seen = new Set([toHex(frame.writeTokenHash)]);
      for (const h of frame.readTokenHashes) {
        const hex = toHex(h);
        if (seen.has(hex)) return "createBlob: the token hashes (write and read) must be distinct";
        seen.add(hex);
      }
      return undefined;
    }
    case "blobInfo":
      if (frame.chunkCount < 1) return "blobInfo: chunkCount must be at least 1";
      if (frame.written > frame.chunkCount) return "blobInfo: written is above chunkCount";
      if (frame.readersLeft > MAX_BLOB_READERS) return `blobInfo: readersLeft is above ${MAX_BLOB_READERS}`;
      return undefined;
    default:
      return undefined;
  }
}

function checkInt(name: string, v: unknown, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max)
    throw new RangeError(`${name}: out of range`);
  return v;
}

export interface DecodeFrameOptions {
  /** Largest ciphertext accepted in deposit and deliver frames (default 64 KiB). */
  maxCiphertext?: number;
}

/**
 * Strictly decodes one frame. Any malformed input is a {@link DecodeError} with code BAD_FRAME,
 * UNSUPPORTED_VERSION for another frame version, or TOO_LARGE for a ciphertext above
 * `maxCiphertext`; nothing else is thrown. The direction is not checked: a relay refuses server
 * frames itself (see {@link isClientFrame}).
 */
export function decodeFrame(bytes: Uint8Array, options: DecodeFrameOptions = {}): Frame {
  const maxCiphertext = options.maxCiphertext ?? DEFAULT_MAX_CIPHERTEXT;
  const r = new Reader(bytes, "frame");
  const version = r.u8("version");
  if (version !== FRAME_VERSION)
    throw new DecodeError(`frame: unsupported version ${version}`, "UNSUPPORTED_VERSION");
  const code = r.u8("type");
  const type = BY_CODE.get(code);
  if (!type) throw new DecodeError(`frame: unknown type 0x${code.toString(16).padStart(2, "0")}`);
  const out: Record<string, unknown> = { type, requestId: r.u32("request id") };
  for (const field of LAYOUTS[type].fields) {
    const [name, kind] = field;
    switch (kind) {
      case "u8":
        out[name] = r.u8(name);
        break;
      case "u16":
        out[name] = r.u16(name);
        break;
      case "u32":
        out[name] = r.u32(name);
        break;
      case "u64":
        out[name] = r.u64(name);
        break;
      case "bytes":
        out[name] = r.bytes(field[2], name);
        break;
      case "rest": {
        const rest = r.rest();
        if (rest.length === 0) throw new DecodeError(`frame: ${type} has an empty ${name}`);
        if (rest.length > maxCiphertext) {
          throw new DecodeError(
            `frame: ${name} is ${rest.length} bytes, more than the limit of ${maxCiphertext}`,
            "TOO_LARGE",
          );
        }
        out[name] = rest;
        break;
      }
      case "sealed": {
        // A sealed chunk has a bound of its own (§14.1), whatever the relay's maxCiphertext.
        const rest = r.rest();
        if (rest.length < MIN_SEALED_CHUNK_BYTES)
          throw new DecodeError(`frame: ${type} has a ${name} of ${rest.length} bytes, less than 16`);
        if (rest.length > SEALED_CHUNK_BYTES) {
          throw new DecodeError(
            `frame: ${name} is ${rest.length} bytes, more than the limit of ${SEALED_CHUNK_BYTES}`,
            "TOO_LARGE",
          );
        }
        out[name] = rest;
        break;
      }
      case "hashes": {
        const count = r.u8(name);
        if (count < 1 || count > MAX_BLOB_READERS)
          throw new DecodeError(`frame: ${type} lists ${count} ${name}, not 1 … ${MAX_BLOB_READERS}`);
        out[name] = Array.from({ length: count }, () => r.bytes(BLOB_TOKEN_LENGTH, name));
        break;
      }
      case "string":
        out[name] = r.string(2, name, MAX_ERROR_MESSAGE);
        break;
    }
  }
  r.end();
  if (type === "error") {
    const name = ERROR_NAMES.get(out.code as number);
    if (!name) throw new DecodeError(`frame: unknown error code ${out.code}`);
    out.code = name;
  }
  const frame = out as unknown as Frame;
  const problem = valueProblem(frame);
  if (problem) throw new DecodeError(`frame: ${problem}`);
  return frame;
}
