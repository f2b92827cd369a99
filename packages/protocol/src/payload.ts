// The plaintext inside every ratchet message: versioned, typed, padded to a size bucket.
// PROTOCOL.md §7.
import { concat, Reader, utf8, Writer } from "./_bytes.js";
import { label, type RandomSource, systemRandom, verify } from "./crypto.js";
import { DecodeError, PayloadError } from "./errors.js";
import {
  decodeFileManifest,
  encodeFileManifest,
  type FileManifest,
  MAX_FILE_MANIFEST_BYTES,
  readFileManifest,
  writeFileManifest,
} from "./file-payload.js";

export const PAYLOAD_VERSION = 1;
/**
 * Padded plaintext sizes. A payload is padded (ISO/IEC 7816-4: 0x80 then zeros) to the smallest
 * bucket that holds it plus the 0x80 marker, so the relay learns only the bucket.
 */
export const PADDING_BUCKETS = [256, 1024, 4096, 16384, 32768] as const;
export const MAX_PADDED_LENGTH = 32768;
export const MESSAGE_ID_LENGTH = 16;
/** Fixed bytes before a text: version, type, message id, timestamp, text length. */
const TEXT_OVERHEAD = 1 + 1 + MESSAGE_ID_LENGTH + 8 + 4;
/** The longest text, in UTF-8 bytes, that fits the largest bucket. */
export const MAX_TEXT_BYTES = MAX_PADDED_LENGTH - 1 - TEXT_OVERHEAD;
/** Most message ids one receipt may acknowledge. */
export const MAX_RECEIPT_IDS = 256;
const GROUP_ID_LENGTH = 16;
/** Fixed bytes before a forwarded group text, the largest group body: so any group text can be forwarded. */
const GROUP_TEXT_OVERHEAD = 1 + 1 + MESSAGE_ID_LENGTH + 8 + GROUP_ID_LENGTH + 1 + 32 + 32 + 4 + 4 + 64;
/** The longest group text, in UTF-8 bytes: what still fits the largest bucket when forwarded. */
export const MAX_GROUP_TEXT_BYTES = MAX_PADDED_LENGTH - 1 - GROUP_TEXT_OVERHEAD;
/** The longest invitation code an introduction carries. */
export const MAX_INTRODUCTION_CODE = 2048;
/** The longest group entry a payload carries (group.ts MAX_GROUP_ENTRY_BYTES fits well inside). */
const MAX_GROUP_ENTRY_PAYLOAD = 8192;

export const PayloadType = { text: 1, delivered: 2, read: 3, group: 4, file: 5 } as const;
const GroupKind = { text: 1, entry: 2, introduce: 3, forward: 4, file: 5, "forward-file": 6 } as const;

interface Common {
  /** Random, chosen by the sender; receipts refer to it. */
  readonly id: Uint8Array;
  /** The sender's clock, milliseconds since the epoch. The receiver treats it as a claim. */
  readonly sentAt: number;
}
export interface TextPayload extends Common {
  readonly type: "text";
  readonly text: string;
}
export interface ReceiptPayload extends Common {
  readonly type: "delivered" | "read";
  readonly ids: readonly Uint8Array[];
}
/** A group's traffic over one pairwise session (PROTOCOL.md §13). Members are named by signing key. */
export interface GroupPayload extends Common {
  readonly type: "group";
  readonly groupId: Uint8Array;
  readonly body: GroupBody;
}
export type GroupBody =
  /** A message by the sender of this payload; `signature` by its identity key (groupTextSignedBytes). */
  | { readonly kind: "text"; readonly seq: number; readonly text: string; readonly signature: Uint8Array }
  /** A membership entry (group.ts), as it travels. */
  | { readonly kind: "entry"; readonly entry: Uint8Array }
  /** `from`'s one-time invitation code for `to`, passed through an admin both have a session with. */
  | { readonly kind: "introduce"; readonly from: Uint8Array; readonly to: Uint8Array; readonly code: string }
  /** `author`'s message for `to`, passed on by a member with sessions to both; the id and sentAt are the author's. */
  | {
      readonly kind: "forward";
      readonly author: Uint8Array;
      readonly to: Uint8Array;
      readonly seq: number;
      readonly text: string;
      readonly signature: Uint8Array;
    }
  /**
   * A file offered by the sender of this payload (§14.3): the manifest with my own read token;
   * `signature` by the sender's identity key over it with the read token zeroed (groupFileSignedBytes).
   */
  | {
      readonly kind: "file";
      readonly seq: number;
      readonly file: FileManifest;
      readonly signature: Uint8Array;
    }
  /** `author`'s file for `to`, passed on by another member; the id and sentAt are the author's. */
  | {
      readonly kind: "forward-file";
      readonly author: Uint8Array;
      readonly to: Uint8Array;
      readonly seq: number;
      readonly file: FileManifest;
      readonly signature: Uint8Array;
    };
/** A file offered to this recipient (§14.3); the message id is the file's id. */
export interface FilePayload extends Common {
  readonly type: "file";
  readonly file: FileManifest;
}
export type Payload = TextPayload | ReceiptPayload | GroupPayload | FilePayload;

/**
 * What a group message's author signs: "parley/v1/group-message" || group id (16) || message id (16)
 * || sentAt (u64) || seq (u32) || text length (u32) || text (UTF-8).
 */
export function groupTextSignedBytes(m: {
  groupId: Uint8Array;
  id: Uint8Array;
  sentAt: number;
  seq: number;
  text: string;
}): Uint8Array {
  if (m.groupId.length !== GROUP_ID_LENGTH) throw new RangeError("groupId: expected 16 bytes");
  if (m.id.length !== MESSAGE_ID_LENGTH) throw new RangeError("id: expected 16 bytes");
  const body = new Writer()
    .bytes(m.groupId)
    .bytes(m.id)
    .u64(m.sentAt)
    .u32(m.seq)
    .varBytes(utf8.encode(m.text), 4);
  return concat(label("groupMessage"), body.finish());
}

/** Whether `signature` is the author's (signing key) over a group message. Never throws on bad input. */
export function verifyGroupText(
  authorSigningKey: Uint8Array,
  m: { groupId: Uint8Array; id: Uint8Array; sentAt: number; seq: number; text: string },
  signature: Uint8Array,
): boolean {
  try {
    return verify(authorSigningKey, groupTextSignedBytes(m), signature);
  } catch {
    return false;
  }
}

/**
 * What a group file's author signs (§14.3): "parley/v1/group-file" || group id (16) || message id
 * (16) || sentAt (u64) || seq (u32) || M (u16) || the manifest body (M bytes) with its read token
 * replaced by 32 zero bytes. Every member's copy carries its own read token and the same signature.
 */
export function groupFileSignedBytes(m: {
  groupId: Uint8Array;
  id: Uint8Array;
  sentAt: number;
  seq: number;
  file: FileManifest;
}): Uint8Array {
  if (m.groupId.length !== GROUP_ID_LENGTH) throw new RangeError("groupId: expected 16 bytes");
  if (m.id.length !== MESSAGE_ID_LENGTH) throw new RangeError("id: expected 16 bytes");
  const body = encodeFileManifest({ ...m.file, readToken: new Uint8Array(32) });
  const w = new Writer().bytes(m.groupId).bytes(m.id).u64(m.sentAt).u32(m.seq).varBytes(body, 2);
  return concat(label("groupFile"), w.finish());
}

/**
 * Whether `signature` is the author's (signing key) over a group file, whatever read token the
 * copy carries. Never throws on bad input.
 */
export function verifyGroupFile(
  authorSigningKey: Uint8Array,
  m: { groupId: Uint8Array; id: Uint8Array; sentAt: number; seq: number; file: FileManifest },
  signature: Uint8Array,
): boolean {
  try {
    return verify(authorSigningKey, groupFileSignedBytes(m), signature);
  } catch {
    return false;
  }
}

export function newMessageId(random: RandomSource = systemRandom): Uint8Array {
  const id = random(MESSAGE_ID_LENGTH);
  if (id.length !== MESSAGE_ID_LENGTH) throw new RangeError("random: wrong length");
  return id;
}

/** The bucket a payload of `length` bytes is padded to, or null if it fits none. */
export function bucketFor(length: number): number | null {
  for (const b of PADDING_BUCKETS) if (length + 1 <= b) return b;
  return null;
}

/**
 * Encodes and pads a payload. Throws PayloadError("TOO_LARGE") when it fits no bucket.
 *
 * @example
 * ```ts
 * const padded = encodePayload({ type: "text", id: newMessageId(), sentAt: Date.now(), text: "hi" });
 * padded.length; // 256
 * ```
 */
export function encodePayload(p: Payload): Uint8Array {
  if (p.id.length !== MESSAGE_ID_LENGTH) throw new RangeError(`id: expected ${MESSAGE_ID_LENGTH} bytes`);
  const w = new Writer().u8(PAYLOAD_VERSION).u8(PayloadType[p.type]).bytes(p.id).u64(p.sentAt);
  if (p.type === "text") {
    const text = utf8.encode(p.text);
    if (text.length > MAX_TEXT_BYTES) {
      throw new PayloadError(
        "TOO_LARGE",
        `text is ${text.length} bytes; the most one message carries is ${MAX_TEXT_BYTES}`,
      );
    }
    w.varBytes(text, 4);
  } else if (p.type === "group") {
    writeGroup(w, p);
  } else if (p.type === "file") {
    writeFileManifest(w, p.file);
  } else {
    if (p.ids.length < 1 || p.ids.length > MAX_RECEIPT_IDS) {
      throw new PayloadError(
        "TOO_LARGE",
        `a receipt lists 1..${MAX_RECEIPT_IDS} message ids, not ${p.ids.length}`,
      );
    }
    w.u16(p.ids.length);
    for (const id of p.ids) {
      if (id.length !== MESSAGE_ID_LENGTH)
        throw new RangeError(`receipt id: expected ${MESSAGE_ID_LENGTH} bytes`);
      w.bytes(id);
    }
  }
  const raw = w.finish();
  const bucket = bucketFor(raw.length);
  if (bucket === null)
    throw new PayloadError("TOO_LARGE", `payload of ${raw.length} bytes fits no padding bucket`);
  const padded = new Uint8Array(bucket);
  padded.set(raw);
  padded[raw.length] = 0x80;
  return padded;
}

/** Strips the padding and decodes. Malformed input is a PayloadError; nothing else is thrown. */
export function decodePayload(padded: Uint8Array): Payload {
  if (!(PADDING_BUCKETS as readonly number[]).includes(padded.length)) {
    throw new PayloadError("BAD_PADDING", `padded payload is ${padded.length} bytes, not a bucket size`);
  }
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  if (end < 0 || padded[end] !== 0x80) throw new PayloadError("BAD_PADDING", "padding marker 0x80 missing");
  if (bucketFor(end) !== padded.length) {
    throw new PayloadError(
      "BAD_PADDING",
      `payload of ${end} bytes is padded past its bucket (${bucketFor(end)})`,
    );
  }
  try {
    return parse(padded.subarray(0, end));
  } catch (e) {
    if (e instanceof DecodeError) {
      throw new PayloadError(e.code === "UNSUPPORTED_VERSION" ? e.code : "BAD_FRAME", e.message);
    }
    throw e;
  }
}

function writeGroup(w: Writer, p: GroupPayload): void {
  if (p.groupId.length !== GROUP_ID_LENGTH) throw new RangeError("groupId: expected 16 bytes");
  const b = p.body;
  w.bytes(p.groupId).u8(GroupKind[b.kind]);
  const key = (name: string, k: Uint8Array) => {
    if (k.length !== 32) throw new RangeError(`${name}: expected a 32-byte signing key`);
    w.bytes(k);
  };
  const text = (t: string) => {
    const bytes = utf8.encode(t);
    if (bytes.length > MAX_GROUP_TEXT_BYTES) {
      throw new PayloadError(
        "TOO_LARGE",
        `text is ${bytes.length} bytes; the most one group message carries is ${MAX_GROUP_TEXT_BYTES}`,
      );
    }
    w.varBytes(bytes, 4);
  };
  const signature = (sig: Uint8Array) => {
    if (sig.length !== 64) throw new RangeError("signature: expected 64 bytes");
    w.bytes(sig);
  };
  switch (b.kind) {
    case "text":
      w.u32(b.seq);
      text(b.text);
      signature(b.signature);
      break;
    case "entry":
      if (b.entry.length < 1 || b.entry.length > MAX_GROUP_ENTRY_PAYLOAD)
        throw new RangeError(`entry: 1..${MAX_GROUP_ENTRY_PAYLOAD} bytes`);
      w.varBytes(b.entry, 2);
      break;
    case "introduce": {
      key("from", b.from);
      key("to", b.to);
      const code = utf8.encode(b.code);
      if (code.length < 1 || code.length > MAX_INTRODUCTION_CODE)
        throw new RangeError(`code: 1..${MAX_INTRODUCTION_CODE} bytes`);
      w.varBytes(code, 2);
      break;
    }
    case "forward":
      key("author", b.author);
      key("to", b.to);
      w.u32(b.seq);
      text(b.text);
      signature(b.signature);
      break;
    case "forward-file":
      key("author", b.author);
      key("to", b.to);
      w.u32(b.seq).varBytes(encodeFileManifest(b.file), 2);
      signature(b.signature);
      break;
    case "file":
      w.u32(b.seq).varBytes(encodeFileManifest(b.file), 2);
      signature(b.signature);
      break;
  }
}

/** A group file item's `M` and manifest body: the body fills exactly M bytes (§14.3). */
function readGroupManifest(r: Reader): FileManifest {
  return decodeFileManifest(r.varBytes(2, "manifest", MAX_FILE_MANIFEST_BYTES));
}

function parseGroup(r: Reader): { groupId: Uint8Array; body: GroupBody } {
  const groupId = r.bytes(GROUP_ID_LENGTH, "group id");
  const kind = r.u8("group kind");
  switch (kind) {
    case GroupKind.text:
      return {
        groupId,
        body: {
          kind: "text",
          seq: r.u32("seq"),
          text: r.string4("text", MAX_GROUP_TEXT_BYTES),
          signature: r.bytes(64, "signature"),
        },
      };
    case GroupKind.entry: {
      const entry = r.varBytes(2, "entry", MAX_GROUP_ENTRY_PAYLOAD);
      if (entry.length === 0) throw new DecodeError("payload: empty group entry");
      return { groupId, body: { kind: "entry", entry } };
    }
    case GroupKind.introduce: {
      const from = r.bytes(32, "from");
      const to = r.bytes(32, "to");
      const code = r.string(2, "code", MAX_INTRODUCTION_CODE);
      if (code.length === 0) throw new DecodeError("payload: empty invitation code");
      return { groupId, body: { kind: "introduce", from, to, code } };
    }
    case GroupKind.forward:
      return {
        groupId,
        body: {
          kind: "forward",
          author: r.bytes(32, "author"),
          to: r.bytes(32, "to"),
          seq: r.u32("seq"),
          text: r.string4("text", MAX_GROUP_TEXT_BYTES),
          signature: r.bytes(64, "signature"),
        },
      };
    case GroupKind.file:
      return {
        groupId,
        body: {
          kind: "file",
          seq: r.u32("seq"),
          file: readGroupManifest(r),
          signature: r.bytes(64, "signature"),
        },
      };
    case GroupKind["forward-file"]:
      return {
        groupId,
        body: {
          kind: "forward-file",
          author: r.bytes(32, "author"),
          to: r.bytes(32, "to"),
          seq: r.u32("seq"),
          file: readGroupManifest(r),
          signature: r.bytes(64, "signature"),
        },
      };
    default:
      throw new DecodeError(`payload: unknown group kind ${kind}`);
  }
}

function parse(bytes: Uint8Array): Payload {
  const r = new Reader(bytes, "payload");
  const version = r.u8("version");
  if (version !== PAYLOAD_VERSION)
    throw new DecodeError(`payload: unsupported version ${version}`, "UNSUPPORTED_VERSION");
  const type = r.u8("type");
  if (
    type !== PayloadType.text &&
    type !== PayloadType.delivered &&
    type !== PayloadType.read &&
    type !== PayloadType.group &&
    type !== PayloadType.file
  ) {
    throw new PayloadError("UNSUPPORTED_TYPE", `payload type ${type} is not known to this version`);
  }
  const id = r.bytes(MESSAGE_ID_LENGTH, "message id");
  const sentAt = r.u64("timestamp");
  let payload: Payload;
  if (type === PayloadType.text) {
    payload = { type: "text", id, sentAt, text: r.string4("text", MAX_TEXT_BYTES) };
  } else if (type === PayloadType.group) {
    payload = { type: "group", id, sentAt, ...parseGroup(r) };
  } else if (type === PayloadType.file) {
    payload = { type: "file", id, sentAt, file: readFileManifest(r) };
  } else {
    const count = r.u16("receipt count");
    if (count < 1 || count > MAX_RECEIPT_IDS) throw new DecodeError(`payload: receipt lists ${count} ids`);
    const ids: Uint8Array[] = [];
    for (let i = 0; i < count; i++) ids.push(r.bytes(MESSAGE_ID_LENGTH, "receipt id"));
    payload = { type: type === PayloadType.delivered ? "delivered" : "read", id, sentAt, ids };
  }
  r.end();
  return payload;
}
