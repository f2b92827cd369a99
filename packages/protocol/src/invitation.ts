import { concat, equalConstantTime, Reader, toHex, utf8, Writer, wipe } from "./_bytes.js";
import { base32Decode, base32Encode } from "./base32.js";
import {
  label,
  type RandomSource,
  sha256,
  systemRandom,
  verify,
  x25519KeyPair,
  x25519PublicKey,
} from "./crypto.js";
import { DecodeError, InvitationError } from "./errors.js";
import type { Identity, PublicIdentity } from "./identity.js";
import { MAILBOX_ADDRESS_LENGTH } from "./mailbox.js";
import { MAX_RELAY_URL_LENGTH, relayUrlProblem } from "./relay-url.js";

export { relayUrlProblem };

/** Every invitation code starts with this; the digit is the code format version. */
export const INVITATION_PREFIX = "PARLEY1-";
const INVITATION_VERSION = 1;
const CHECKSUM_LENGTH = 5; // 40 bits: exactly 8 base32 characters
/** Fixed bytes of the body around the relay URL (PROTOCOL.md §4.1). */
const FIXED_BODY_LENGTH = 1 + 4 + 32 * 4 + 1 + 64;
export const DEFAULT_INVITATION_TTL_SECONDS = 7 * 24 * 3600;
export const MAX_INVITATION_TTL_SECONDS = 90 * 24 * 3600;
/** Tolerated difference between the inviter's and the accepter's clocks. */
const CLOCK_SKEW_SECONDS = 24 * 3600;

export interface Invitation {
  /** ws:// or wss:// URL of the relay holding the inviter's first-contact mailbox. */
  readonly relayUrl: string;
  /** The inviter's mailbox address for first contact. */
  readonly mailbox: Uint8Array;
  readonly identity: PublicIdentity;
  /** One-time X25519 prekey; its secret is deleted when the first accept arrives. */
  readonly prekey: Uint8Array;
  /** Unix time in seconds after which the code is refused. */
  readonly expiresAt: number;
  readonly signature: Uint8Array;
}

/** 16 bytes naming an invitation (and its prekey) in the accept message. */
export function invitationId(prekey: Uint8Array): Uint8Array {
  return sha256(concat(label("invitationId"), prekey)).subarray(0, 16);
}

function signedPart(inv: Omit<Invitation, "signature">): Uint8Array {
  return new Writer()
    .u8(INVITATION_VERSION)
    .u32(inv.expiresAt)
    .bytes(inv.mailbox)
    .bytes(inv.identity.signingKey)
    .bytes(inv.identity.agreementKey)
    .bytes(inv.prekey)
    .varBytes(utf8.encode(inv.relayUrl), 1)
    .finish();
}

function checksum(body: Uint8Array): Uint8Array {
  return sha256(concat(label("invitationChecksum"), body)).subarray(0, CHECKSUM_LENGTH);
}

/** The one-line code: PARLEY1-<base32 body>-<base32 checksum>. */
export function encodeInvitation(inv: Invitation): string {
  const body = concat(signedPart(inv), inv.signature);
  return `${INVITATION_PREFIX}${base32Encode(body)}-${base32Encode(checksum(body))}`;
}

/**
 * Parses and checks an invitation code. Each failure is an {@link InvitationError} naming exactly
 * what is wrong. Checks run in this order (PROTOCOL.md §4.2): BAD_PREFIX, UNSUPPORTED_VERSION,
 * BAD_CHARACTER; TRUNCATED when the checksum part is missing or short; MALFORMED when extra parts
 * follow it; CHECKSUM when either part is not canonical base32; TRUNCATED when the body is shorter
 * than its fixed fields; CHECKSUM on a mismatch; MALFORMED for a body that does not parse; then
 * BAD_SIGNATURE; MALFORMED for an expiry further ahead than any invitation lives; EXPIRED. ASCII whitespace is ignored and ASCII letters may be in either case.
 *
 * @example
 * ```ts
 * const inv = decodeInvitation(code, { now: Date.now() });
 * ```
 */
export function decodeInvitation(code: string, options: { now?: number } = {}): Invitation {
  const text = normalizeCode(code);
  if (!text.startsWith("PARLEY")) {
    throw new InvitationError(
      "BAD_PREFIX",
      `not a Parley invitation: it should start with ${INVITATION_PREFIX}`,
    );
  }
  const version = /^PARLEY(\d+)-/.exec(text);
  if (!version)
    throw new InvitationError(
      "BAD_PREFIX",
      `not a Parley invitation: it should start with ${INVITATION_PREFIX}`,
    );
  if (version[0] !== INVITATION_PREFIX) {
    throw new InvitationError(
      "UNSUPPORTED_VERSION",
      `invitation format version ${version[1]} is not supported (this version reads ${INVITATION_PREFIX})`,
    );
  }
  const rest = text.slice(INVITATION_PREFIX.length);
  const badChar = /[^A-Z2-7-]/.exec(rest);
  if (badChar) {
    throw new InvitationError(
      "BAD_CHARACTER",
      `character '${badChar[0]}' at position ${INVITATION_PREFIX.length + badChar.index + 1} cannot occur in an invitation code (mistyped?)`,
    );
  }
  const parts = rest.split("-");
  const checksumChars = Math.ceil((CHECKSUM_LENGTH * 8) / 5);
  if (parts.length === 1 || (parts.length === 2 && parts[1]!.length < checksumChars)) {
    throw new InvitationError(
      "TRUNCATED",
      "the invitation code is incomplete: its end is missing (cut off when copied?)",
    );
  }
  if (parts.length !== 2 || parts[1]!.length !== checksumChars) {
    throw new InvitationError("MALFORMED", "the invitation code has extra characters after its checksum");
  }
  const body = base32Decode(parts[0]!);
  const sum = base32Decode(parts[1]!);
  if (!(body instanceof Uint8Array) || !(sum instanceof Uint8Array)) {
    throw new InvitationError("CHECKSUM", "checksum mismatch: a character was mistyped, dropped or changed");
  }
  if (body.length < FIXED_BODY_LENGTH) {
    throw new InvitationError(
      "TRUNCATED",
      `the invitation code is too short: ${body.length} of at least ${FIXED_BODY_LENGTH} bytes (part was lost when copied?)`,
    );
  }
  if (!equalBytesPublic(checksum(body), sum)) {
    throw new InvitationError("CHECKSUM", "checksum mismatch: a character was mistyped, dropped or changed");
  }
  const inv = parseBody(body);
  const signed = body.subarray(0, body.length - 64);
  if (!verify(inv.identity.signingKey, concat(label("invitationSignature"), signed), inv.signature)) {
    throw new InvitationError(
      "BAD_SIGNATURE",
      "the invitation's signature does not verify: it was altered or not signed by the identity it names",
    );
  }
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  if (inv.expiresAt > now + MAX_INVITATION_TTL_SECONDS + CLOCK_SKEW_SECONDS) {
    throw new InvitationError(
      "MALFORMED",
      "the invitation claims to be valid for longer than any invitation can be",
    );
  }
  if (inv.expiresAt <= now) {
    throw new InvitationError(
      "EXPIRED",
      `the invitation expired at ${new Date(inv.expiresAt * 1000).toISOString()}`,
    );
  }
  return inv;
}

/**
 * Removes ASCII whitespace (space, tab, CR, LF: line wrapping when pasted) and upper-cases ASCII
 * letters only, so every implementation accepts exactly the same strings.
 */
export function normalizeCode(text: string): string {
  return text.replace(/[ \t\r\n]+/g, "").replace(/[a-z]/g, (c) => c.toUpperCase());
}

// The checksum is public (anyone can recompute it), so an ordinary comparison is fine here.
function equalBytesPublic(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function parseBody(body: Uint8Array): Invitation {
  try {
    const r = new Reader(body, "invitation");
    const version = r.u8("version");
    if (version !== INVITATION_VERSION)
      throw new DecodeError(`body version ${version} is not ${INVITATION_VERSION}`);
    const expiresAt = r.u32("expiry");
    const mailbox = r.bytes(MAILBOX_ADDRESS_LENGTH, "mailbox");
    const identity = { signingKey: r.bytes(32, "signing key"), agreementKey: r.bytes(32, "agreement key") };
    const prekey = r.bytes(32, "prekey");
    const relayUrl = r.string(1, "relay URL", MAX_RELAY_URL_LENGTH);
    const signature = r.bytes(64, "signature");
    r.end();
    const problem = relayUrlProblem(relayUrl);
    if (problem) throw new DecodeError(`relay URL ${JSON.stringify(relayUrl)}: ${problem}`);
    return { relayUrl, mailbox, identity, prekey, expiresAt, signature };
  } catch (e) {
    if (e instanceof DecodeError)
      throw new InvitationError("MALFORMED", `malformed invitation: ${e.message}`);
    throw e;
  }
}

/**
 * The inviter's secret half of an outstanding invitation: the one-time prekey. It is consumed by
 * the first valid accept message; a replay of that message finds it gone.
 */
export class PendingInvitation {
  constructor(
    readonly id: Uint8Array,
    readonly prekeySecret: Uint8Array,
    readonly prekey: Uint8Array,
    readonly expiresAt: number,
  ) {}

  get idHex(): string {
    return toHex(this.id);
  }

  /** 1 (version) || expiresAt u32 || prekey secret (32) || prekey (32). Secret: encrypt at rest. */
  serialize(): Uint8Array {
    return new Writer().u8(1).u32(this.expiresAt).bytes(this.prekeySecret).bytes(this.prekey).finish();
  }

  static deserialize(bytes: Uint8Array): PendingInvitation {
    const r = new Reader(bytes, "pending invitation");
    const version = r.u8("version");
    if (version !== 1)
      throw new DecodeError(`pending invitation: unsupported version ${version}`, "UNSUPPORTED_VERSION");
    const expiresAt = r.u32("expiry");
    const secret = r.bytes(32, "prekey secret");
    const prekey = r.bytes(32, "prekey");
    r.end();
    if (!equalConstantTime(x25519PublicKey(secret), prekey))
      throw new DecodeError("pending invitation: prekey does not match its secret");
    return new PendingInvitation(invitationId(prekey), secret, prekey, expiresAt);
  }

  wipe(): void {
    wipe(this.prekeySecret);
  }
}

export interface CreateInvitationOptions {
  relayUrl: string;
  /** The inviter's first-contact mailbox address (32 bytes). */
  mailbox: Uint8Array;
  /** Lifetime in seconds (default 7 days, at most 90 days). */
  ttlSeconds?: number;
  /** Milliseconds since the epoch (default Date.now()). */
  now?: number;
  random?: RandomSource;
}

/**
 * Creates a signed one-time invitation and the pending secret to keep until it is accepted.
 *
 * @example
 * ```ts
 * const { code, pending } = createInvitation(alice, { relayUrl: "wss://relay.example", mailbox });
 * ```
 */
export function createInvitation(
  identity: Identity,
  options: CreateInvitationOptions,
): { invitation: Invitation; code: string; pending: PendingInvitation } {
  const problem = relayUrlProblem(options.relayUrl);
  if (problem)
    throw new InvitationError("MALFORMED", `relay URL ${JSON.stringify(options.relayUrl)}: ${problem}`);
  if (options.mailbox.length !== MAILBOX_ADDRESS_LENGTH) throw new RangeError("mailbox: expected 32 bytes");
  const ttl = options.ttlSeconds ?? DEFAULT_INVITATION_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_INVITATION_TTL_SECONDS) {
    throw new RangeError(`ttlSeconds: must be 1..${MAX_INVITATION_TTL_SECONDS}, got ${ttl}`);
  }
  const prekey = x25519KeyPair(options.random ?? systemRandom);
  const unsigned = {
    relayUrl: options.relayUrl,
    mailbox: Uint8Array.from(options.mailbox),
    identity: identity.publicIdentity,
    prekey: prekey.publicKey,
    expiresAt: Math.floor((options.now ?? Date.now()) / 1000) + ttl,
  };
  const signature = identity.sign(concat(label("invitationSignature"), signedPart(unsigned)));
  const invitation = { ...unsigned, signature };
  const pending = new PendingInvitation(
    invitationId(prekey.publicKey),
    prekey.secretKey,
    prekey.publicKey,
    unsigned.expiresAt,
  );
  return { invitation, code: encodeInvitation(invitation), pending };
}
