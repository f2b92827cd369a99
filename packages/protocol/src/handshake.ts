// X3DH-style key agreement (Signal's X3DH, with the invitation's signed one-time prekey in the role
// of both the signed prekey and the one-time prekey), PROTOCOL.md §5; for a version 2 invitation
// made hybrid as in Signal's PQXDH: an ML-KEM-768 shared secret is one more input to SK (§5.5).
import { concat, fromHex, Reader, toHex, Writer, wipe } from "./_bytes.js";
import {
  dh,
  open,
  type RandomSource,
  seal,
  systemRandom,
  verify,
  x25519IsLowOrder,
  x25519KeyPair,
} from "./crypto.js";
import {
  ACCEPT_VERSION_PQ,
  type AcceptEnvelope,
  type AcceptVersion,
  acceptDigest,
  decodeEnvelope,
  ENVELOPE_VERSION,
  encodeAcceptPrefix,
} from "./envelope.js";
import { CryptoError, DecodeError, HandshakeError } from "./errors.js";
import {
  type AccepterDetails,
  decodeDetails,
  encodeDetails,
  type KemPart,
  sealAd,
  sealKey,
  sessionAd,
  sharedKey,
  signedAcceptBytes,
  ZERO_NONCE,
} from "./handshake-keys.js";
import { checkKemKey, kemCommitment } from "./hosted-key.js";
import type { Identity, PublicIdentity } from "./identity.js";
import { type Invitation, invitationId, PendingInvitation, relayUrlProblem } from "./invitation.js";
import { ML_KEM_CIPHERTEXT_LENGTH, mlKemDecapsulateWithKey, mlKemEncapsulate } from "./kem.js";
import { MAILBOX_ADDRESS_LENGTH } from "./mailbox.js";
import { Session } from "./ratchet.js";

export { sessionAd };

export interface AcceptOptions {
  /** The accepter's own mailbox, where the inviter will write. */
  mailbox: Uint8Array;
  /** The relay holding that mailbox. */
  relayUrl: string;
  /** The first plaintext (padded by the caller), carried in the Accept. */
  plaintext: Uint8Array;
  /**
   * A version 2 invitation: the inviter's ML-KEM-768 key, as fetched from the relay and opened by
   * `openHostedKemKey` (it is checked against the invitation's commitment again here). Missing:
   * HandshakeError KEM_KEY_MISSING; another key: KEM_KEY_MISMATCH. A version 1 invitation: none.
   */
  kemPublicKey?: Uint8Array | null;
  random?: RandomSource;
}

/** The accepter's result: the session, the Accept to deposit, and whether the session is hybrid. */
export interface AcceptResult {
  readonly session: Session;
  readonly message: Uint8Array;
  /** true when SK includes an ML-KEM-768 secret (a version 2 invitation): safe if either X25519 or ML-KEM holds. */
  readonly postQuantum: boolean;
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
 * A version 2 (post-quantum) invitation needs `kemPublicKey`, fetched from the relay
 * (`hostedKemKeyLocation`, `openHostedKemKey`): without one that matches its commitment the call
 * fails closed (KEM_KEY_MISSING, KEM_KEY_MISMATCH) before drawing anything.
 *
 * @example
 * ```ts
 * const invitation = decodeInvitation(code);
 * const kemPublicKey = openHostedKemKey(invitation, chunkFromRelay); // version 2 only
 * const { session, message, postQuantum } = acceptInvitation(bob, invitation, { mailbox, relayUrl, plaintext, kemPublicKey });
 * ```
 */
export function acceptInvitation(
  identity: Identity,
  invitation: Invitation,
  options: AcceptOptions,
): AcceptResult {
  if (options.mailbox.length !== MAILBOX_ADDRESS_LENGTH) throw new RangeError("mailbox: expected 32 bytes");
  const problem = relayUrlProblem(options.relayUrl);
  if (problem) throw new RangeError(`relayUrl: ${problem}`);
  checkInvitationKeys(invitation);
  let kemKey: Uint8Array | null = null;
  if (invitation.version === 2) kemKey = checkKemKey(invitation, options.kemPublicKey);
  else if (options.kemPublicKey !== undefined && options.kemPublicKey !== null)
    throw new RangeError("kemPublicKey: a version 1 (classical) invitation has no KEM key");
  const random = options.random ?? systemRandom;
  const inviter = invitation.identity;
  const ephemeral = x25519KeyPair(random);
  const id = invitationId(invitation.prekey);

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
  // FIPS 203 Encaps: draws m; the key already passed checkKemKey, so this cannot refuse it.
  let kem: KemPart | null = null;
  if (kemKey && invitation.kemCommitment) {
    const { ciphertext, sharedSecret } = mlKemEncapsulate(kemKey, random);
    kem = { commitment: invitation.kemCommitment, ciphertext, sharedSecret };
  }
  const version: AcceptVersion = kem ? ACCEPT_VERSION_PQ : ENVELOPE_VERSION;
  const prefix = encodeAcceptPrefix(id, ephemeral.publicKey, version);
  const me = identity.publicIdentity;
  const signature = identity.sign(
    signedAcceptBytes(prefix, me, options.mailbox, options.relayUrl, inviter, kem),
  );
  const details = encodeDetails({
    identity: me,
    mailbox: options.mailbox,
    relayUrl: options.relayUrl,
    signature,
  });
  const key = sealKey(dh3, kem, ephemeral.publicKey, invitation.prekey);
  const sealedIdentity = seal(key, ZERO_NONCE, details, sealAd(prefix, kem));
  wipe(key);
  const sk = sharedKey(dh1, dh2, dh3, kem);
  if (kem) wipe(kem.sharedSecret);
  // The session stores the AcceptPrefix and the Accept body (in version 2, the KEM ciphertext and
  // the sealed identity) and re-sends both with every message until the inviter replies (§5.4).
  const session = Session.initiate(
    sk,
    sessionAd(inviter, me),
    invitation.prekey,
    concat(id, ephemeral.publicKey),
    { prefix, sealedIdentity: kem ? concat(kem.ciphertext, sealedIdentity) : sealedIdentity },
    // A hybrid handshake starts a post-quantum ratchet (§6.7): KEM exchanges from the first message.
    { random, postQuantum: kem !== null },
  );
  wipe(sk);
  return { session, message: session.encrypt(options.plaintext), postQuantum: kem !== null };
}

/** What the inviter learns from a valid Accept. */
export interface AcceptedContact {
  readonly session: Session;
  readonly identity: PublicIdentity;
  readonly mailbox: Uint8Array;
  readonly relayUrl: string;
  readonly plaintext: Uint8Array;
  readonly invitationId: Uint8Array;
  /** true when SK includes an ML-KEM-768 secret (a version 2 invitation and Accept). */
  readonly postQuantum: boolean;
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
   * (UNKNOWN_INVITATION, CONSUMED, EXPIRED, DOWNGRADE, VERSION_MISMATCH, LOW_ORDER, AUTH,
   * BAD_SIGNATURE) or RatchetError (the first message failed); on any throw the book is unchanged
   * and the prekey stays unused. A post-quantum invitation opens only from a version 2 Accept
   * (a classical one is DOWNGRADE), a classical invitation only from a version 1 Accept.
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
    if (pending.version === 2 && envelope.version !== ACCEPT_VERSION_PQ) {
      throw new HandshakeError(
        "DOWNGRADE",
        "a classical Accept answers a post-quantum invitation: refused, it would open a session without its post-quantum key",
      );
    }
    if (pending.version === 1 && envelope.version !== ENVELOPE_VERSION) {
      throw new HandshakeError(
        "VERSION_MISMATCH",
        "a post-quantum Accept answers a classical invitation, which has no post-quantum key",
      );
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
  // Version 2: decapsulate. An altered ciphertext gives ML-KEM's implicit-rejection secret, so the
  // sealed identity below fails authentication (AUTH): the ciphertext is also in its AD.
  let kem: KemPart | null = null;
  let sealed = envelope.sealedIdentity;
  if (envelope.kemCiphertext && pending.kemSeed) {
    const { sharedSecret, publicKey } = mlKemDecapsulateWithKey(pending.kemSeed, envelope.kemCiphertext);
    kem = { commitment: kemCommitment(publicKey), ciphertext: envelope.kemCiphertext, sharedSecret };
    sealed = envelope.sealedIdentity.subarray(ML_KEM_CIPHERTEXT_LENGTH);
  }
  const key = sealKey(dh3, kem, ephemeral, pending.prekey);
  let details: AccepterDetails;
  try {
    details = decodeDetails(open(key, ZERO_NONCE, sealed, sealAd(envelope.prefixBytes, kem)));
  } catch (e) {
    wipe(dh3, kem?.sharedSecret);
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
    kem,
  );
  if (!verify(details.identity.signingKey, signed, details.signature)) {
    wipe(dh3, kem?.sharedSecret);
    throw new HandshakeError("BAD_SIGNATURE", "the Accept is not signed by the identity it carries");
  }
  let dh1: Uint8Array;
  let dh2: Uint8Array;
  try {
    dh1 = dh(pending.prekeySecret, details.identity.agreementKey);
    dh2 = identity.agree(ephemeral);
  } catch (e) {
    wipe(dh3, dh1!, kem?.sharedSecret);
    if (e instanceof CryptoError)
      throw new HandshakeError("LOW_ORDER", `accepter key rejected: ${e.message}`);
    throw e;
  }
  const sk = sharedKey(dh1, dh2, dh3, kem);
  if (kem) wipe(kem.sharedSecret);
  const handshakeId = concat(pending.id, ephemeral);
  const session = Session.respond(
    sk,
    sessionAd(me, details.identity),
    { secretKey: pending.prekeySecret, publicKey: pending.prekey },
    handshakeId,
    acceptDigest(envelope.prefixBytes, envelope.sealedIdentity),
    { random, postQuantum: kem !== null },
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
    postQuantum: kem !== null,
  };
}
