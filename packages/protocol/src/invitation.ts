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
import { KEM_COMMITMENT_LENGTH, kemCommitment } from "./hosted-key.js";
import type { Identity, PublicIdentity } from "./identity.js";
import { ML_KEM_SEED_LENGTH, mlKemKeyPair, mlKemPublicKey } from "./kem.js";
import { MAILBOX_ADDRESS_LENGTH } from "./mailbox.js";
import { MAX_RELAY_URL_LENGTH, relayUrlProblem } from "./relay-url.js";

export { relayUrlProblem };

/** A classical (version 1) invitation code starts with this; the digit is the code format version. */
export const INVITATION_PREFIX = "PARLEY1-";
/** A post-quantum (version 2) invitation code starts with this (PROTOCOL.md §4.1). */
export const INVITATION_PREFIX_V2 = "PARLEY2-";
/** The invitation versions: 1 classical (X25519 only), 2 hybrid (X25519 and ML-KEM-768). */
export type InvitationVersion = 1 | 2;
const PREFIXES: Readonly<Record<InvitationVersion, string>> = {
  1: INVITATION_PREFIX,
  2: INVITATION_PREFIX_V2,
};
const CHECKSUM_LENGTH = 5; // 40 bits: exactly 8 base32 characters
/**
 * Fixed bytes of the body around the relay URL (PROTOCOL.md §4.1): version, expiry, mailbox,
 * signing key, agreement key, prekey, URL length, signature; version 2 adds the KEM commitment.
 */
const FIXED_BODY_LENGTH: Readonly<Record<InvitationVersion, number>> = {
  1: 1 + 4 + 32 * 4 + 1 + 64,
  2: 1 + 4 + 32 * 4 + KEM_COMMITMENT_LENGTH + 1 + 64,
};
const SIGNATURE_LABEL = { 1: "invitationSignature", 2: "invitationSignatureV2" } as const;
const CHECKSUM_LABEL = { 1: "invitationChecksum", 2: "invitationChecksumV2" } as const;
export const DEFAULT_INVITATION_TTL_SECONDS = 7 * 24 * 3600;
export const MAX_INVITATION_TTL_SECONDS = 90 * 24 * 3600;
/** Tolerated difference between the inviter's and the accepter's clocks. */
const CLOCK_SKEW_SECONDS = 24 * 3600;

export interface Invitation {
  /** 1: classical. 2: post-quantum: the accepter also encapsulates to the key `kemCommitment` names. */
  readonly version: InvitationVersion;
  /** ws:// or wss:// URL of the relay holding the inviter's first-contact mailbox. */
  readonly relayUrl: string;
  /** The inviter's mailbox address for first contact. */
  readonly mailbox: Uint8Array;
  readonly identity: PublicIdentity;
  /** One-time X25519 prekey; its secret is deleted when the first accept arrives. */
  readonly prekey: Uint8Array;
  /** Unix time in seconds after which the code is refused. */
  readonly expiresAt: number;
  /**
   * Version 2: SHA-256("parley/v2/kem-commitment" || ek) of the inviter's one-time ML-KEM-768 key,
   * which is hosted at the relay (PROTOCOL.md §4.6). Version 1: null.
   */
  readonly kemCommitment: Uint8Array | null;
  readonly signature: Uint8Array;
}

/** 16 bytes naming an invitation (and its prekey) in the accept message. */
export function invitationId(prekey: Uint8Array): Uint8Array {
  return sha256(concat(label("invitationId"), prekey)).subarray(0, 16);
}

function signedPart(inv: Omit<Invitation, "signature">): Uint8Array {
  const w = new Writer()
    .u8(inv.version)
    .u32(inv.expiresAt)
    .bytes(inv.mailbox)
    .bytes(inv.identity.signingKey)
    .bytes(inv.identity.agreementKey)
    .bytes(inv.prekey);
  if (inv.version === 2) {
    if (inv.kemCommitment?.length !== KEM_COMMITMENT_LENGTH)
      throw new RangeError("kemCommitment: a version 2 invitation carries 32 bytes");
    w.bytes(inv.kemCommitment);
  } else if (inv.kemCommitment !== null) {
    throw new RangeError("kemCommitment: a version 1 invitation carries none");
  }
  return w.varBytes(utf8.encode(inv.relayUrl), 1).finish();
}

function signatureInput(version: InvitationVersion, signed: Uint8Array): Uint8Array {
  return concat(label(SIGNATURE_LABEL[version]), signed);
}

function checksum(version: InvitationVersion, body: Uint8Array): Uint8Array {
  return sha256(concat(label(CHECKSUM_LABEL[version]), body)).subarray(0, CHECKSUM_LENGTH);
}

/** The one-line code: PARLEY1- (or PARLEY2-) <base32 body>-<base32 checksum>. */
export function encodeInvitation(inv: Invitation): string {
  const body = concat(signedPart(inv), inv.signature);
  return `${PREFIXES[inv.version]}${base32Encode(body)}-${base32Encode(checksum(inv.version, body))}`;
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
      `not a Parley invitation: it should start with ${INVITATION_PREFIX_V2} or ${INVITATION_PREFIX}`,
    );
  }
  const prefix = /^PARLEY(\d+)-/.exec(text);
  if (!prefix)
    throw new InvitationError(
      "BAD_PREFIX",
      `not a Parley invitation: it should start with ${INVITATION_PREFIX_V2} or ${INVITATION_PREFIX}`,
    );
  const version = prefix[0] === INVITATION_PREFIX ? 1 : prefix[0] === INVITATION_PREFIX_V2 ? 2 : undefined;
  if (version === undefined) {
    throw new InvitationError(
      "UNSUPPORTED_VERSION",
      `invitation format version ${prefix[1]} is not supported (this version reads ${INVITATION_PREFIX} and ${INVITATION_PREFIX_V2})`,
    );
  }
  const rest = text.slice(prefix[0].length);
  const badChar = /[^A-Z2-7-]/.exec(rest);
  if (badChar) {
    throw new InvitationError(
      "BAD_CHARACTER",
      `character '${badChar[0]}' at position ${prefix[0].length + badChar.index + 1} cannot occur in an invitation code (mistyped?)`,
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
  if (body.length < FIXED_BODY_LENGTH[version]) {
    throw new InvitationError(
      "TRUNCATED",
      `the invitation code is too short: ${body.length} of at least ${FIXED_BODY_LENGTH[version]} bytes (part was lost when copied?)`,
    );
  }
  if (!equalBytesPublic(checksum(version, body), sum)) {
    throw new InvitationError("CHECKSUM", "checksum mismatch: a character was mistyped, dropped or changed");
  }
  const inv = parseBody(version, body);
  const signed = body.subarray(0, body.length - 64);
  if (!verify(inv.identity.signingKey, signatureInput(version, signed), inv.signature)) {
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

/** Parses a body whose code prefix said `version`; the body's own version byte must say the same. */
function parseBody(version: InvitationVersion, body: Uint8Array): Invitation {
  try {
    const r = new Reader(body, "invitation");
    const bodyVersion = r.u8("version");
    if (bodyVersion !== version)
      throw new DecodeError(`body version ${bodyVersion} is not ${version}, the version of its prefix`);
    const expiresAt = r.u32("expiry");
    const mailbox = r.bytes(MAILBOX_ADDRESS_LENGTH, "mailbox");
    const identity = { signingKey: r.bytes(32, "signing key"), agreementKey: r.bytes(32, "agreement key") };
    const prekey = r.bytes(32, "prekey");
    const kemCommitment = version === 2 ? r.bytes(KEM_COMMITMENT_LENGTH, "KEM commitment") : null;
    const relayUrl = r.string(1, "relay URL", MAX_RELAY_URL_LENGTH);
    const signature = r.bytes(64, "signature");
    r.end();
    const problem = relayUrlProblem(relayUrl);
    if (problem) throw new DecodeError(`relay URL ${JSON.stringify(relayUrl)}: ${problem}`);
    return { version, relayUrl, mailbox, identity, prekey, expiresAt, kemCommitment, signature };
  } catch (e) {
    if (e instanceof DecodeError)
      throw new InvitationError("MALFORMED", `malformed invitation: ${e.message}`);
    throw e;
  }
}

/**
 * The encapsulation key of each version 2 PendingInvitation, once known: computing it from the seed
 * is a key generation, and creating the invitation, uploading the key and opening the Accept each
 * need it. Public values only.
 */
const kemPublicKeys = new WeakMap<PendingInvitation, Uint8Array>();

/**
 * The inviter's secret half of an outstanding invitation: the one-time prekey, and for a
 * post-quantum invitation the seed of its one-time ML-KEM-768 key pair. It is consumed by the first
 * valid accept message; a replay of that message finds it gone.
 */
export class PendingInvitation {
  constructor(
    readonly id: Uint8Array,
    readonly prekeySecret: Uint8Array,
    readonly prekey: Uint8Array,
    readonly expiresAt: number,
    /** Version 2: the ML-KEM-768 seed d || z (64 bytes, secret). Version 1: null. */
    readonly kemSeed: Uint8Array | null = null,
  ) {
    if (kemSeed !== null && kemSeed.length !== ML_KEM_SEED_LENGTH)
      throw new RangeError(`kemSeed: expected ${ML_KEM_SEED_LENGTH} bytes, got ${kemSeed.length}`);
  }

  get idHex(): string {
    return toHex(this.id);
  }

  /** The version of the invitation this answers: 2 (post-quantum) when it holds a KEM seed. */
  get version(): InvitationVersion {
    return this.kemSeed === null ? 1 : 2;
  }

  /** The ML-KEM-768 encapsulation key the invitation commits to (version 2), or null. */
  get kemPublicKey(): Uint8Array | null {
    if (this.kemSeed === null) return null;
    let key = kemPublicKeys.get(this);
    if (key === undefined) {
      key = mlKemPublicKey(this.kemSeed);
      kemPublicKeys.set(this, key);
    }
    return Uint8Array.from(key);
  }

  /**
   * Version 1 (69 bytes): 1 || expiresAt u32 || prekey secret (32) || prekey (32).
   * Version 2 (133 bytes): 2 || the same || KEM seed (64). Secret: encrypt at rest.
   */
  serialize(): Uint8Array {
    const w = new Writer().u8(this.version).u32(this.expiresAt).bytes(this.prekeySecret).bytes(this.prekey);
    if (this.kemSeed !== null) w.bytes(this.kemSeed);
    return w.finish();
  }

  static deserialize(bytes: Uint8Array): PendingInvitation {
    const r = new Reader(bytes, "pending invitation");
    const version = r.u8("version");
    if (version !== 1 && version !== 2)
      throw new DecodeError(`pending invitation: unsupported version ${version}`, "UNSUPPORTED_VERSION");
    const expiresAt = r.u32("expiry");
    const secret = r.bytes(32, "prekey secret");
    const prekey = r.bytes(32, "prekey");
    const kemSeed = version === 2 ? r.bytes(ML_KEM_SEED_LENGTH, "KEM seed") : null;
    r.end();
    if (!equalConstantTime(x25519PublicKey(secret), prekey))
      throw new DecodeError("pending invitation: prekey does not match its secret");
    return new PendingInvitation(invitationId(prekey), secret, prekey, expiresAt, kemSeed);
  }

  wipe(): void {
    wipe(this.prekeySecret, this.kemSeed ?? undefined);
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
  /**
   * true (the default): a version 2 invitation, hybrid X25519 + ML-KEM-768; its KEM key must be
   * hosted at the relay (`hostedKemKeyUpload`) before the code is handed out. false: version 1.
   */
  postQuantum?: boolean;
  random?: RandomSource;
}

/**
 * Creates a signed one-time invitation and the pending secret to keep until it is accepted. It is
 * post-quantum (version 2) unless `postQuantum: false`: then, before handing out the code, the
 * inviter uploads the blob `hostedKemKeyUpload(pending)` describes (PROTOCOL.md §4.6). Draws the
 * prekey secret (32 bytes), then for version 2 the KEM seed's d and z (32 bytes each).
 *
 * @example
 * ```ts
 * const { code, pending } = createInvitation(alice, { relayUrl: "wss://relay.example", mailbox });
 * const upload = hostedKemKeyUpload(pending); // createBlob + putChunk, then show the code
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
  const random = options.random ?? systemRandom;
  const version: InvitationVersion = (options.postQuantum ?? true) ? 2 : 1;
  const prekey = x25519KeyPair(random);
  const kem = version === 2 ? mlKemKeyPair(random) : null;
  const unsigned = {
    version,
    relayUrl: options.relayUrl,
    mailbox: Uint8Array.from(options.mailbox),
    identity: identity.publicIdentity,
    prekey: prekey.publicKey,
    expiresAt: Math.floor((options.now ?? Date.now()) / 1000) + ttl,
    kemCommitment: kem ? kemCommitment(kem.publicKey) : null,
  };
  const signature = identity.sign(signatureInput(version, signedPart(unsigned)));
  const invitation: Invitation = { ...unsigned, signature };
  const pending = new PendingInvitation(
    invitationId(prekey.publicKey),
    prekey.secretKey,
    prekey.publicKey,
    unsigned.expiresAt,
    kem?.seed ?? null,
  );
  if (kem) kemPublicKeys.set(pending, kem.publicKey);
  return { invitation, code: encodeInvitation(invitation), pending };
}
