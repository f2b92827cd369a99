// The bytes a client deposits in a mailbox (opaque to the relay): either an Accept, which opens a
// session, or a Message of an established session. PROTOCOL.md §5.
import { concat, Reader, Writer } from "./_bytes.js";
import { sha256, TAG_LENGTH, XNONCE_LENGTH } from "./crypto.js";
import { DecodeError } from "./errors.js";
import { ML_KEM_CIPHERTEXT_LENGTH } from "./kem.js";
import { MAX_PADDED_LENGTH } from "./payload.js";

/** Version of the classical Accept envelope (its byte 1), answering a version 1 invitation. */
export const ENVELOPE_VERSION = 1;
/** Version of the post-quantum Accept, answering a version 2 invitation: it carries a KEM ciphertext. */
export const ACCEPT_VERSION_PQ = 2;
export type AcceptVersion = typeof ENVELOPE_VERSION | typeof ACCEPT_VERSION_PQ;
/** Version of the Message envelope that senders produce (PROTOCOL.md §6.3). */
export const MESSAGE_VERSION = 2;
/** Legacy Message version: still decrypted, never produced (PROTOCOL.md §6.3). */
export const LEGACY_MESSAGE_VERSION = 1;
/** The Message version of post-quantum sessions (PROTOCOL.md §6.7): a v2 header plus a flags byte. */
export const PQ_MESSAGE_VERSION = 3;
/** v3 header flag: this message's sending chain was derived with an ML-KEM secret (§6.7). */
export const HEADER_FLAG_KEM_MIXED = 0x01;
export const EnvelopeKind = { accept: 1, message: 2 } as const;

/** The random XChaCha20-Poly1305 nonce a v2 Message carries in its header. */
export const MESSAGE_NONCE_LENGTH = XNONCE_LENGTH;
/**
 * v2 header: kind (1) || version (1) || ratchet public key (32) || previous chain length (4) ||
 * index (4) || nonce (24).
 */
export const HEADER_LENGTH = 66;
/** v1 (legacy) header: the same without the nonce. */
export const LEGACY_HEADER_LENGTH = 42;
/** v3 header (post-quantum sessions): the v2 header, then flags (1). */
export const PQ_HEADER_LENGTH = 67;
/** The largest ciphertext an envelope may carry (the largest padding bucket plus the tag). */
export const MAX_SEALED_LENGTH = MAX_PADDED_LENGTH + TAG_LENGTH;
/**
 * The largest ciphertext of a v3 Message: one byte more, for the KEM extension of a plaintext that
 * fills the largest bucket and ends in a non-zero byte (PROTOCOL.md §6.7 "The KEM extension").
 */
export const MAX_PQ_SEALED_LENGTH = MAX_SEALED_LENGTH + 1;

/**
 * Largest sealed identity (§5.2), in either Accept version: signing key, agreement key, mailbox
 * (32 each), URL length (1), URL (up to 255), signature (64), tag (16): 432.
 */
export const MAX_V1_SEALED_IDENTITY_LENGTH = 32 * 3 + 1 + 255 + 64 + TAG_LENGTH;

/**
 * Largest Accept body, the u16-length field after the AcceptPrefix (§5.4): in a version 2 Accept the
 * KEM ciphertext (1088) followed by the sealed identity, 1520; in a version 1 Accept the sealed
 * identity alone, at most MAX_V1_SEALED_IDENTITY_LENGTH. A session stores and re-sends this field
 * whole while it wraps its messages (§6.5), under the name it had in version 1, sealed identity.
 */
export const MAX_SEALED_IDENTITY_LENGTH = ML_KEM_CIPHERTEXT_LENGTH + MAX_V1_SEALED_IDENTITY_LENGTH;

/** The shortest Accept body of each version: a tag alone (after the ciphertext, in version 2). */
const MIN_ACCEPT_BODY: Readonly<Record<AcceptVersion, number>> = {
  1: TAG_LENGTH,
  2: ML_KEM_CIPHERTEXT_LENGTH + TAG_LENGTH,
};
const MAX_ACCEPT_BODY: Readonly<Record<AcceptVersion, number>> = {
  1: MAX_V1_SEALED_IDENTITY_LENGTH,
  2: MAX_SEALED_IDENTITY_LENGTH,
};

/** Kind, version, invitation id (16) and ephemeral key (32): the part of an Accept before its sealed identity. */
export const ACCEPT_PREFIX_LENGTH = 50;

/**
 * The largest envelope a decoder accepts and a sender produces: a version 2 Accept with the largest
 * sealed identity wrapping a v3 Message with the largest ciphertext (PROTOCOL.md §8.4): 34 424 bytes.
 */
export const MAX_ENVELOPE_LENGTH =
  ACCEPT_PREFIX_LENGTH + 2 + MAX_SEALED_IDENTITY_LENGTH + PQ_HEADER_LENGTH + MAX_PQ_SEALED_LENGTH;

export interface MessageHeader {
  /**
   * 2 for every Message a classical session sends, 3 for a post-quantum session's; 1 only for a
   * legacy Message being decrypted.
   */
  readonly version: typeof MESSAGE_VERSION | typeof LEGACY_MESSAGE_VERSION | typeof PQ_MESSAGE_VERSION;
  readonly ratchetKey: Uint8Array;
  /** Number of messages in the sender's previous sending chain. */
  readonly previousChainLength: number;
  /** Index of this message in its sending chain. */
  readonly index: number;
  /** v2, v3: the 24 random bytes drawn for this encryption. v1: null (its nonce is derived). */
  readonly nonce: Uint8Array | null;
  /** v3 only: the flags byte (bit 0, HEADER_FLAG_KEM_MIXED; no other bit is defined). */
  readonly flags?: number;
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
  /** 1: classical. 2: post-quantum, answering a version 2 invitation. */
  readonly version: AcceptVersion;
  readonly invitationId: Uint8Array;
  readonly ephemeralKey: Uint8Array;
  /**
   * The Accept body (§5.4), exactly as on the wire: version 1, the accepter's identity, mailbox and
   * signature sealed to the invitation's prekey; version 2, the KEM ciphertext (its first 1088
   * bytes, also in `kemCiphertext`) followed by that sealed identity. The accept digest covers it
   * whole, and a session re-sends it whole.
   */
  readonly sealedIdentity: Uint8Array;
  /** Version 2: the ML-KEM-768 ciphertext (1088 bytes) opening the body. Version 1: null. */
  readonly kemCiphertext: Uint8Array | null;
  readonly message: MessageEnvelope;
  /** The AcceptPrefix, bytes 0..50: kind, version, invitation id, ephemeral key. */
  readonly prefixBytes: Uint8Array;
}

export type Envelope = MessageEnvelope | AcceptEnvelope;

/** The header's exact bytes (v2 or v3 with its nonce, or a legacy v1 header without one). */
export function encodeHeader(header: MessageHeader): Uint8Array {
  const w = new Writer()
    .u8(EnvelopeKind.message)
    .u8(header.version)
    .bytes(header.ratchetKey)
    .u32(header.previousChainLength)
    .u32(header.index);
  if (header.version === LEGACY_MESSAGE_VERSION) {
    if (header.nonce !== null) throw new RangeError("nonce: a v1 header carries none");
  } else {
    if (header.nonce?.length !== MESSAGE_NONCE_LENGTH)
      throw new RangeError(`nonce: expected ${MESSAGE_NONCE_LENGTH} bytes`);
    w.bytes(header.nonce);
  }
  if (header.version === PQ_MESSAGE_VERSION) {
    const flags = header.flags ?? 0;
    if ((flags & ~HEADER_FLAG_KEM_MIXED) !== 0) throw new RangeError(`flags: undefined bits in ${flags}`);
    w.u8(flags);
  } else if (header.flags !== undefined) {
    throw new RangeError(`flags: a v${header.version} header carries none`);
  }
  return w.finish();
}

export function encodeMessage(headerBytes: Uint8Array, sealed: Uint8Array): Uint8Array {
  return new Writer().bytes(headerBytes).bytes(sealed).finish();
}

/** The AcceptPrefix: the 50 bytes before the Accept body (and the start of the sealed identity's AD). */
export function encodeAcceptPrefix(
  invitationId: Uint8Array,
  ephemeralKey: Uint8Array,
  version: AcceptVersion = ENVELOPE_VERSION,
): Uint8Array {
  return new Writer().u8(EnvelopeKind.accept).u8(version).bytes(invitationId).bytes(ephemeralKey).finish();
}

export function encodeAccept(
  prefix: Uint8Array,
  sealedIdentity: Uint8Array,
  message: Uint8Array,
): Uint8Array {
  return new Writer().bytes(prefix).varBytes(sealedIdentity, 2).bytes(message).finish();
}

/** SHA-256(AcceptPrefix || Accept body): what a repeated Accept must match (PROTOCOL.md §5.4). */
export function acceptDigest(prefix: Uint8Array, sealedIdentity: Uint8Array): Uint8Array {
  return sha256(concat(prefix, sealedIdentity));
}

function decodeMessage(bytes: Uint8Array): MessageEnvelope {
  const r = new Reader(bytes, "message");
  const kind = r.u8("kind");
  if (kind !== EnvelopeKind.message) throw new DecodeError(`message: kind ${kind} is not a message`);
  const version = r.u8("version");
  if (version !== MESSAGE_VERSION && version !== LEGACY_MESSAGE_VERSION && version !== PQ_MESSAGE_VERSION)
    throw new DecodeError(`message: unsupported version ${version}`, "UNSUPPORTED_VERSION");
  const ratchetKey = r.bytes(32, "ratchet key");
  const previousChainLength = r.u32("pn");
  const index = r.u32("n");
  const nonce = version === LEGACY_MESSAGE_VERSION ? null : r.bytes(MESSAGE_NONCE_LENGTH, "nonce");
  let header: MessageHeader = {
    version: version as MessageHeader["version"],
    ratchetKey,
    previousChainLength,
    index,
    nonce,
  };
  let headerLength = nonce ? HEADER_LENGTH : LEGACY_HEADER_LENGTH;
  let maxSealed = MAX_SEALED_LENGTH;
  if (version === PQ_MESSAGE_VERSION) {
    const flags = r.u8("flags");
    if ((flags & ~HEADER_FLAG_KEM_MIXED) !== 0)
      throw new DecodeError(`message: undefined header flags in ${flags}`);
    header = { ...header, flags };
    headerLength = PQ_HEADER_LENGTH;
    maxSealed = MAX_PQ_SEALED_LENGTH;
  }
  const sealed = r.rest();
  if (sealed.length < TAG_LENGTH) throw new DecodeError("message: ciphertext shorter than its tag");
  if (sealed.length > maxSealed) throw new DecodeError("message: ciphertext longer than the largest bucket");
  return { kind: "message", header, headerBytes: bytes.slice(0, headerLength), sealed };
}

/** Strictly decodes an envelope; any malformed input is a {@link DecodeError}. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  if (bytes.length === 0) throw new DecodeError("envelope: empty");
  if (bytes[0] === EnvelopeKind.message) return decodeMessage(bytes);
  if (bytes[0] !== EnvelopeKind.accept) throw new DecodeError(`envelope: unknown kind ${bytes[0]}`);
  const r = new Reader(bytes, "accept");
  r.u8("kind");
  const version = r.u8("version");
  if (version !== ENVELOPE_VERSION && version !== ACCEPT_VERSION_PQ)
    throw new DecodeError(`accept: unsupported version ${version}`, "UNSUPPORTED_VERSION");
  const invitationId = r.bytes(16, "invitation id");
  const ephemeralKey = r.bytes(32, "ephemeral key");
  const prefixBytes = bytes.slice(0, ACCEPT_PREFIX_LENGTH);
  const what = version === ACCEPT_VERSION_PQ ? "KEM ciphertext and sealed identity" : "sealed identity";
  const sealedIdentity = r.varBytes(2, what, MAX_ACCEPT_BODY[version]);
  if (sealedIdentity.length < MIN_ACCEPT_BODY[version])
    throw new DecodeError(
      version === ACCEPT_VERSION_PQ
        ? "accept: shorter than a KEM ciphertext and a sealed identity's tag"
        : "accept: sealed identity shorter than its tag",
    );
  const kemCiphertext =
    version === ACCEPT_VERSION_PQ ? sealedIdentity.slice(0, ML_KEM_CIPHERTEXT_LENGTH) : null;
  const message = decodeMessage(r.rest());
  return {
    kind: "accept",
    version,
    invitationId,
    ephemeralKey,
    sealedIdentity,
    kemCiphertext,
    message,
    prefixBytes,
  };
}
