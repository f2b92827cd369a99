// The plaintext inside every ratchet message: versioned, typed, padded to a size bucket.
// PROTOCOL.md §7.
import { Reader, utf8, Writer } from "./_bytes.js";
import { type RandomSource, systemRandom } from "./crypto.js";
import { DecodeError, PayloadError } from "./errors.js";

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

export const PayloadType = { text: 1, delivered: 2, read: 3 } as const;

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
export type Payload = TextPayload | ReceiptPayload;

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

function parse(bytes: Uint8Array): Payload {
  const r = new Reader(bytes, "payload");
  const version = r.u8("version");
  if (version !== PAYLOAD_VERSION)
    throw new DecodeError(`payload: unsupported version ${version}`, "UNSUPPORTED_VERSION");
  const type = r.u8("type");
  if (type !== PayloadType.text && type !== PayloadType.delivered && type !== PayloadType.read) {
    throw new PayloadError("UNSUPPORTED_TYPE", `payload type ${type} is not known to this version`);
  }
  const id = r.bytes(MESSAGE_ID_LENGTH, "message id");
  const sentAt = r.u64("timestamp");
  let payload: Payload;
  if (type === PayloadType.text) {
    payload = { type: "text", id, sentAt, text: r.string4("text", MAX_TEXT_BYTES) };
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
