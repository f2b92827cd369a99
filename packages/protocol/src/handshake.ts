// X3DH-style key agreement (Signal's X3DH, with the invitation's signed one-time prekey in the role
// of both the signed prekey and the one-time prekey). PROTOCOL.md §5.
import { concat, fromHex, Reader, toHex, utf8, Writer, wipe } from "./_bytes.js";
import {
  dh,
  hkdfSha256,
  label,
  open,
  type RandomSource,
  seal,
  sha256,
  systemRandom,
  verify,
  x25519IsLowOrder,
  x25519KeyPair,
} from "./crypto.js";
import { type AcceptEnvelope, acceptDigest, decodeEnvelope, encodeAcceptPrefix } from "./envelope.js";
import { CryptoError, DecodeError, HandshakeError } from "./errors.js";
import type { Identity, PublicIdentity } from "./identity.js";
import { type Invitation, invitationId, PendingInvitation, relayUrlProblem } from "./invitation.js";
import { MAILBOX_ADDRESS_LENGTH } from "./mailbox.js";
import { Session } from "./ratchet.js";

/** X3DH §2.2: 32 bytes of 0xFF before the DH outputs, for X25519. */
const X3DH_PAD = new Uint8Array(32).fill(0xff);
const ZERO_NONCE = new Uint8Array(12);

/** The session's associated data: SHA-256(label || inviter identity (64) || accepter identity (64)). */
export function sessionAd(inviter: PublicIdentity, accepter: PublicIdentity): Uint8Array {
  return sha256(
    concat(
      label("sessionAd"),
      inviter.signingKey,
      inviter.agreementKey,
      accepter.signingKey,
      accepter.agreementKey,
    ),
  );
}

/** SK = HKDF-SHA256(ikm = 0xFF*32 || DH1 || DH2 || DH3, salt = 32 zero bytes, info = label, 32). */
function sharedKey(dh1: Uint8Array, dh2: Uint8Array, dh3: Uint8Array): Uint8Array {
  const ikm = concat(X3DH_PAD, dh1, dh2, dh3);
  const sk = hkdfSha256(ikm, new Uint8Array(32), label("x3dh"), 32);
  wipe(ikm, dh1, dh2, dh3);
  return sk;
}

/**
 * The key sealing the accepter's identity: HKDF-SHA256(ikm = DH3, salt = none,
 * info = label || ephemeral key || prekey, 32). DH3 involves a fresh ephemeral key, so this key
 * encrypts exactly one plaintext and the all-zero nonce is safe.
 */
function sealKey(dh3: Uint8Array, ephemeral: Uint8Array, prekey: Uint8Array): Uint8Array {
  return hkdfSha256(dh3, new Uint8Array(0), concat(label("acceptSeal"), ephemeral, prekey), 32);
}

interface AccepterDetails {
  identity: PublicIdentity;
  mailbox: Uint8Array;
  relayUrl: string;
  signature: Uint8Array;
}

function signedAcceptBytes(
  prefix: Uint8Array,
  accepter: PublicIdentity,
  mailbox: Uint8Array,
  relayUrl: string,
  inviter: PublicIdentity,
): Uint8Array {
  return new Writer()
    .bytes(label("acceptSignature"))
    .bytes(prefix)
    .bytes(accepter.signingKey)
    .bytes(accepter.agreementKey)
    .bytes(mailbox)
    .varBytes(utf8.encode(relayUrl), 1)
    .bytes(inviter.signingKey)
    .bytes(inviter.agreementKey)
    .finish();
}

function encodeDetails(d: AccepterDetails): Uint8Array {
  return new Writer()
    .bytes(d.identity.signingKey)
    .bytes(d.identity.agreementKey)
    .bytes(d.mailbox)
    .varBytes(utf8.encode(d.relayUrl), 1)
    .bytes(d.signature)
    .finish();
}

function decodeDetails(bytes: Uint8Array): AccepterDetails {
  const r = new Reader(bytes, "accept identity");
  const identity = { signingKey: r.bytes(32, "signing key"), agreementKey: r.bytes(32, "agreement key") };
  const mailbox = r.bytes(MAILBOX_ADDRESS_LENGTH, "mailbox");
  const relayUrl = r.string(1, "relay URL", 255);
  const signature = r.bytes(64, "signature");
  r.end();
  const problem = relayUrlProblem(relayUrl);
  if (problem) throw new DecodeError(`accept identity: relay URL: ${problem}`);
  return { identity, mailbox, relayUrl, signature };
}

export interface AcceptOptions {
  /** The accepter's own mailbox, where the inviter will write. */
  mailbox: Uint8Array;
  /** The relay holding that mailbox. */
  relayUrl: string;
  /** The first plaintext (padded by the caller), carried in the Accept. */
  plaintext: Uint8Array;
  random?: RandomSource;
}

/**
 * Refuses an invitation whose one-time prekey or inviter agreement key is an X25519 point of small
 * order with HandshakeError("LOW_ORDER"), naming the key. Such a code decodes (§4.2 does not look at
 * the points) but no handshake can use it; an accepter runs this before anything else (§5.1), so a
 * bad code changes nothing. `acceptInvitation` runs it too.
 *
 * @example
 * ```ts
 * const invitation = decodeInvitation(code);
 * checkInvitationKeys(invitation); // throws HandshakeError("LOW_ORDER")
 * ```
 */
export function checkInvitationKeys(invitation: Invitation): void {
  if (x25519IsLowOrder(invitation.prekey)) {
    throw new HandshakeError(
      "LOW_ORDER",
      "its one-time prekey is a low-order X25519 point, which no key agreement can use",
    );
  }
  if (x25519IsLowOrder(invitation.identity.agreementKey)) {
    throw new HandshakeError(
      "LOW_ORDER",
      "the inviter's agreement key is a low-order X25519 point, which no key agreement can use",
    );
  }
}

/**
 * The accepter's side: agrees a session with the inviter of a (decoded, verified) invitation and
 * encrypts the first message. Returns the session and the Accept to deposit in the inviter's
 * mailbox. Until the inviter replies, `session.encrypt` keeps wrapping messages in the Accept.
 *
 * @example
 * ```ts
 * const { session, message } = acceptInvitation(bob, decodeInvitation(code), { mailbox, relayUrl, plaintext });
 * ```
 */
export function acceptInvitation(
  identity: Identity,
  invitation: Invitation,
  options: AcceptOptions,
): { session: Session; message: Uint8Array } {
  if (options.mailbox.length !== MAILBOX_ADDRESS_LENGTH) throw new RangeError("mailbox: expected 32 bytes");
  const problem = relayUrlProblem(options.relayUrl);
  if (problem) throw new RangeError(`relayUrl: ${problem}`);
  checkInvitationKeys(invitation);
  const random = options.random ?? systemRandom;
  const inviter = invitation.identity;
  const ephemeral = x25519KeyPair(random);
  const id = invitationId(invitation.prekey);
  const prefix = encodeAcceptPrefix(id, ephemeral.publicKey);

  let dh1: Uint8Array;
  let dh2: Uint8Array;
  let dh3: Uint8Array;
  try {
    dh1 = identity.agree(invitation.prekey);
    dh2 = dh(ephemeral.secretKey, inviter.agreementKey);
    dh3 = dh(ephemeral.secretKey, invitation.prekey);
  } catch (e) {
    if (e instanceof CryptoError)
      throw new HandshakeError("LOW_ORDER", `invitation key rejected: ${e.message}`);
    throw e;
  } finally {
    wipe(ephemeral.secretKey);
  }
  const me = identity.publicIdentity;
  const signature = identity.sign(signedAcceptBytes(prefix, me, options.mailbox, options.relayUrl, inviter));
  const details = encodeDetails({
    identity: me,
    mailbox: options.mailbox,
    relayUrl: options.relayUrl,
    signature,
  });
  const key = sealKey(dh3, ephemeral.publicKey, invitation.prekey);
  const sealedIdentity = seal(key, ZERO_NONCE, details, prefix);
  wipe(key);
  const sk = sharedKey(dh1, dh2, dh3);
  const session = Session.initiate(
    sk,
    sessionAd(inviter, me),
    invitation.prekey,
    concat(id, ephemeral.publicKey),
    { prefix, sealedIdentity },
    { random },
  );
  wipe(sk);
  return { session, message: session.encrypt(options.plaintext) };
}

/** What the inviter learns from a valid Accept. */
export interface AcceptedContact {
  readonly session: Session;
  readonly identity: PublicIdentity;
  readonly mailbox: Uint8Array;
  readonly relayUrl: string;
  readonly plaintext: Uint8Array;
  readonly invitationId: Uint8Array;
}

/**
 * The inviter's outstanding invitations. Each one-time prekey opens at most one session: the first
 * valid Accept consumes it (the secret is wiped and its id remembered), and any later Accept for it
 * is refused with CONSUMED. A repeat of the same Accept belongs to the session it opened (see
 * `Session.handshakeId`), never to a new one. Consumed ids are kept until their invitation's expiry,
 * after which any Accept for them is refused as UNKNOWN_INVITATION.
 */
export class InvitationBook {
  private readonly pending = new Map<string, PendingInvitation>();
  /** Consumed invitation ids (hex) and their expiry (unix seconds). */
  private readonly consumed = new Map<string, number>();

  add(invitation: PendingInvitation): void {
    this.pending.set(invitation.idHex, invitation);
  }

  get size(): number {
    return this.pending.size;
  }

  has(id: Uint8Array): boolean {
    return this.pending.has(toHex(id));
  }

  isConsumed(id: Uint8Array): boolean {
    return this.consumed.has(toHex(id));
  }

  /** Forgets invitations, pending or consumed, that expired at or before `now` (ms); returns how many pending. */
  expire(now: number = Date.now()): number {
    let n = 0;
    for (const [key, p] of this.pending) {
      if (p.expiresAt * 1000 <= now) {
        p.wipe();
        this.pending.delete(key);
        n++;
      }
    }
    for (const [key, expiresAt] of this.consumed) if (expiresAt * 1000 <= now) this.consumed.delete(key);
    return n;
  }

  /**
   * Opens a session from an Accept. Throws DecodeError (malformed), HandshakeError
   * (UNKNOWN_INVITATION, CONSUMED, EXPIRED, LOW_ORDER, AUTH, BAD_SIGNATURE) or RatchetError (the
   * first message failed); on any throw the book is unchanged and the prekey stays unused.
   */
  accept(
    identity: Identity,
    wire: Uint8Array,
    options: { now?: number; random?: RandomSource } = {},
  ): AcceptedContact {
    const envelope = decodeEnvelope(wire);
    if (envelope.kind !== "accept")
      throw new HandshakeError("UNKNOWN_INVITATION", "not an Accept: no session to open");
    const key = toHex(envelope.invitationId);
    const pending = this.pending.get(key);
    if (!pending) {
      if (this.consumed.has(key)) {
        throw new HandshakeError(
          "CONSUMED",
          "this invitation was already accepted; a one-time invitation opens one session",
        );
      }
      throw new HandshakeError("UNKNOWN_INVITATION", "no outstanding invitation matches this Accept");
    }
    if (pending.expiresAt * 1000 <= (options.now ?? Date.now())) {
      throw new HandshakeError("EXPIRED", "the invitation this Accept answers has expired");
    }
    const contact = openAccept(identity, pending, envelope, options.random ?? systemRandom);
    this.pending.delete(key);
    this.consumed.set(key, pending.expiresAt);
    pending.wipe();
    return contact;
  }

  /**
   * Version (1) || count u32 || each pending (u16 length-prefixed) || count u32 || each consumed:
   * id (16) || expiry u32.
   */
  serialize(): Uint8Array {
    const w = new Writer().u8(1).u32(this.pending.size);
    for (const p of this.pending.values()) w.varBytes(p.serialize(), 2);
    w.u32(this.consumed.size);
    for (const [id, expiresAt] of this.consumed) w.bytes(fromHex(id)).u32(expiresAt);
    return w.finish();
  }

  static deserialize(bytes: Uint8Array): InvitationBook {
    const r = new Reader(bytes, "invitation book");
    const version = r.u8("version");
    if (version !== 1)
      throw new DecodeError(`invitation book: unsupported version ${version}`, "UNSUPPORTED_VERSION");
    const book = new InvitationBook();
    const pending = r.u32("pending count");
    for (let i = 0; i < pending; i++) book.add(PendingInvitation.deserialize(r.varBytes(2, "pending", 1024)));
    const consumed = r.u32("consumed count");
    for (let i = 0; i < consumed; i++)
      book.consumed.set(toHex(r.bytes(16, "consumed id")), r.u32("consumed expiry"));
    r.end();
    return book;
  }
}

function openAccept(
  identity: Identity,
  pending: PendingInvitation,
  envelope: AcceptEnvelope,
  random: RandomSource,
): AcceptedContact {
  const ephemeral = envelope.ephemeralKey;
  let dh3: Uint8Array;
  try {
    dh3 = dh(pending.prekeySecret, ephemeral);
  } catch (e) {
    if (e instanceof CryptoError)
      throw new HandshakeError("LOW_ORDER", `ephemeral key rejected: ${e.message}`);
    throw e;
  }
  const key = sealKey(dh3, ephemeral, pending.prekey);
  let details: AccepterDetails;
  try {
    details = decodeDetails(open(key, ZERO_NONCE, envelope.sealedIdentity, envelope.prefixBytes));
  } catch (e) {
    wipe(dh3);
    if (e instanceof CryptoError)
      throw new HandshakeError("AUTH", "the Accept's sealed identity failed authentication");
    throw e;
  } finally {
    wipe(key);
  }
  const me = identity.publicIdentity;
  const signed = signedAcceptBytes(
    envelope.prefixBytes,
    details.identity,
    details.mailbox,
    details.relayUrl,
    me,
  );
  if (!verify(details.identity.signingKey, signed, details.signature)) {
    wipe(dh3);
    throw new HandshakeError("BAD_SIGNATURE", "the Accept is not signed by the identity it carries");
  }
  let dh1: Uint8Array;
  let dh2: Uint8Array;
  try {
    dh1 = dh(pending.prekeySecret, details.identity.agreementKey);
    dh2 = identity.agree(ephemeral);
  } catch (e) {
    wipe(dh3, dh1!);
    if (e instanceof CryptoError)
      throw new HandshakeError("LOW_ORDER", `accepter key rejected: ${e.message}`);
    throw e;
  }
  const sk = sharedKey(dh1, dh2, dh3);
  const handshakeId = concat(pending.id, ephemeral);
  const session = Session.respond(
    sk,
    sessionAd(me, details.identity),
    { secretKey: pending.prekeySecret, publicKey: pending.prekey },
    handshakeId,
    acceptDigest(envelope.prefixBytes, envelope.sealedIdentity),
    { random },
  );
  wipe(sk);
  let plaintext: Uint8Array;
  try {
    plaintext = session.decrypt(concat(envelope.message.headerBytes, envelope.message.sealed));
  } catch (e) {
    session.wipe();
    throw e;
  }
  return {
    session,
    identity: details.identity,
    mailbox: details.mailbox,
    relayUrl: details.relayUrl,
    plaintext,
    invitationId: Uint8Array.from(pending.id),
  };
}
