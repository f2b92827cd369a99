// The bytes a client deposits in a mailbox (opaque to the relay): either an Accept, which opens a
// session, or a Message of an established session. PROTOCOL.md §5.
import { concat, Reader, Writer } from "./_bytes.js";
import { sha256, TAG_LENGTH } from "./crypto.js";
import { DecodeError } from "./errors.js";
import { MAX_PADDED_LENGTH } from "./payload.js";

export const ENVELOPE_VERSION = 1;
export const EnvelopeKind = { accept: 1, message: 2 } as const;

/** kind (1) || version (1) || ratchet public key (32) || previous chain length (4) || index (4). */
export const HEADER_LENGTH = 42;
/** The largest ciphertext an envelope may carry (the largest padding bucket plus the tag). */
export const MAX_SEALED_LENGTH = MAX_PADDED_LENGTH + TAG_LENGTH;

/**
 * Largest sealed identity: signing key, agreement key, mailbox (32 each), URL length (1), URL (up to
 * 255), signature (64), tag (16).
 */
export const MAX_SEALED_IDENTITY_LENGTH = 32 * 3 + 1 + 255 + 64 + TAG_LENGTH;

/** Kind, version, invitation id (16) and ephemeral key (32): the part of an Accept before its sealed identity. */
export const ACCEPT_PREFIX_LENGTH = 50;

/**
 * The largest envelope a decoder accepts, and so the largest a client deposits: an Accept with the
 * largest sealed identity and the largest message (PROTOCOL.md §8.4). A relay's ciphertext cap
 * below it would refuse honest envelopes.
 */
export const MAX_ENVELOPE_LENGTH =
  ACCEPT_PREFIX_LENGTH + 2 + MAX_SEALED_IDENTITY_LENGTH + HEADER_LENGTH + MAX_SEALED_LENGTH;

export interface MessageHeader {
  readonly ratchetKey: Uint8Array;
  /** Number of messages in the sender's previous sending chain. */
  readonly previousChainLength: number;
  /** Index of this message in its sending chain. */
  readonly index: number;
}

export interface MessageEnvelope {
  readonly kind: "message";
  readonly header: MessageHeader;
  /** The exact header bytes, used as associated data. */
  readonly headerBytes: Uint8Array;
  readonly sealed: Uint8Array;
}

export interface AcceptEnvelope {
  readonly kind: "accept";
  readonly invitationId: Uint8Array;
  readonly ephemeralKey: Uint8Array;
  /** The accepter's identity, mailbox and signature, sealed to the invitation's prekey. */
  readonly sealedIdentity: Uint8Array;
  readonly message: MessageEnvelope;
  /** Everything before `message`: the associated data of `sealedIdentity` is its first 50 bytes. */
  readonly prefixBytes: Uint8Array;
}

export type Envelope = MessageEnvelope | AcceptEnvelope;

export function encodeHeader(header: MessageHeader): Uint8Array {
  return new Writer()
    .u8(EnvelopeKind.message)
    .u8(ENVELOPE_VERSION)
    .bytes(header.ratchetKey)
    .u32(header.previousChainLength)
    .u32(header.index)
    .finish();
}

export function encodeMessage(headerBytes: Uint8Array, sealed: Uint8Array): Uint8Array {
  return new Writer().bytes(headerBytes).bytes(sealed).finish();
}

/** The part of an Accept before its sealed identity; also that ciphertext's associated data. */
export function encodeAcceptPrefix(invitationId: Uint8Array, ephemeralKey: Uint8Array): Uint8Array {
  return new Writer()
    .u8(EnvelopeKind.accept)
    .u8(ENVELOPE_VERSION)
    .bytes(invitationId)
    .bytes(ephemeralKey)
    .finish();
}

export function encodeAccept(
  prefix: Uint8Array,
  sealedIdentity: Uint8Array,
  message: Uint8Array,
): Uint8Array {
  return new Writer().bytes(prefix).varBytes(sealedIdentity, 2).bytes(message).finish();
}

/** SHA-256(Accept prefix || sealed identity): what a repeated Accept must match (PROTOCOL.md §5.4). */
export function acceptDigest(prefix: Uint8Array, sealedIdentity: Uint8Array): Uint8Array {
  return sha256(concat(prefix, sealedIdentity));
}

function readVersion(r: Reader, what: string): void {
  const version = r.u8("version");
  if (version !== ENVELOPE_VERSION)
    throw new DecodeError(`${what}: unsupported version ${version}`, "UNSUPPORTED_VERSION");
}

function decodeMessage(bytes: Uint8Array): MessageEnvelope {
  const r = new Reader(bytes, "message");
  const kind = r.u8("kind");
  if (kind !== EnvelopeKind.message) throw new DecodeError(`message: kind ${kind} is not a message`);
  readVersion(r, "message");
  const header = {
    ratchetKey: r.bytes(32, "ratchet key"),
    previousChainLength: r.u32("pn"),
    index: r.u32("n"),
  };
  const sealed = r.rest();
  if (sealed.length < TAG_LENGTH) throw new DecodeError("message: ciphertext shorter than its tag");
  if (sealed.length > MAX_SEALED_LENGTH)
    throw new DecodeError("message: ciphertext longer than the largest bucket");
  return { kind: "message", header, headerBytes: bytes.slice(0, HEADER_LENGTH), sealed };
}

/** Strictly decodes an envelope; any malformed input is a {@link DecodeError}. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  if (bytes.length === 0) throw new DecodeError("envelope: empty");
  if (bytes[0] === EnvelopeKind.message) return decodeMessage(bytes);
  if (bytes[0] !== EnvelopeKind.accept) throw new DecodeError(`envelope: unknown kind ${bytes[0]}`);
  const r = new Reader(bytes, "accept");
  r.u8("kind");
  readVersion(r, "accept");
  const invitationId = r.bytes(16, "invitation id");
  const ephemeralKey = r.bytes(32, "ephemeral key");
  const prefixBytes = bytes.slice(0, ACCEPT_PREFIX_LENGTH);
  const sealedIdentity = r.varBytes(2, "sealed identity", MAX_SEALED_IDENTITY_LENGTH);
  if (sealedIdentity.length < TAG_LENGTH)
    throw new DecodeError("accept: sealed identity shorter than its tag");
  const message = decodeMessage(r.rest());
  return { kind: "accept", invitationId, ephemeralKey, sealedIdentity, message, prefixBytes };
}
