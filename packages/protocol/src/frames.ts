// Relay wire protocol: binary frames over WebSocket. PROTOCOL.md §8.
// Every frame: version (u8) || type (u8) || request id (u32) || body. Layouts are exact: a decoder
// refuses unknown versions and types, short or long bodies, and out-of-range values.
import { Reader, utf8, Writer } from "./_bytes.js";
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
  | TokenDepositFrame;
export type ServerFrame = WelcomeFrame | OkFrame | DeliverFrame | ErrorFrame;
export type Frame = ClientFrame | ServerFrame;

/** Field kinds: fixed-length byte strings, integers, the rest of the frame, or a u16-prefixed string. */
type Field =
  | readonly [name: string, kind: "u8" | "u16" | "u32" | "u64" | "rest" | "string"]
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
      case "string": {
        const s = utf8.encode(String(v));
        if (s.length > MAX_ERROR_MESSAGE)
          throw new RangeError(`${name}: longer than ${MAX_ERROR_MESSAGE} bytes`);
        w.varBytes(s, 2);
        break;
      }
    }
  }
  return w.finish();
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
  if (type === "hello" && out.maxVersion === 0)
    throw new DecodeError("frame: hello maxVersion must be at least 1");
  if (type === "welcome" && out.version === 0)
    throw new DecodeError("frame: welcome version must be at least 1");
  return out as unknown as Frame;
}
