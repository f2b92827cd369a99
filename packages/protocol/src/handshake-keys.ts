// The key schedule and byte layouts of the handshake (PROTOCOL.md §5.1–5.3, §5.5): SK, the sealed
// identity's key and associated data, what the accepter signs, and the sealed details. Pure
// functions of their inputs; handshake.ts runs them in the order §5.4 gives.
import { concat, Reader, utf8, Writer, wipe } from "./_bytes.js";
import { hkdfSha256, label, sha256 } from "./crypto.js";
import { DecodeError } from "./errors.js";
import type { PublicIdentity } from "./identity.js";
import { relayUrlProblem } from "./invitation.js";
import { MAILBOX_ADDRESS_LENGTH } from "./mailbox.js";

/** X3DH §2.2: 32 bytes of 0xFF before the DH outputs, for X25519. */
export const X3DH_PAD = new Uint8Array(32).fill(0xff);
export const ZERO_NONCE = new Uint8Array(12);

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

/**
 * The post-quantum half of a version 2 handshake: the commitment of the invitation, the KEM
 * ciphertext of the Accept and the shared secret it encapsulates. null in a version 1 handshake.
 */
export interface KemPart {
  readonly commitment: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly sharedSecret: Uint8Array;
}

/**
 * SK = HKDF-SHA256(ikm = 0xFF*32 || DH1 || DH2 || DH3, salt = 32 zero bytes, info = "parley/v1/x3dh",
 * 32); version 2 appends the KEM shared secret, ikm = 0xFF*32 || DH1 || DH2 || DH3 || SS, under
 * info = "parley/v2/pqxdh" (PQXDH's order: the KEM secret last). SK is secret if either the
 * X25519 agreements or ML-KEM-768 hold. Wipes the DH outputs.
 */
export function sharedKey(
  dh1: Uint8Array,
  dh2: Uint8Array,
  dh3: Uint8Array,
  kem: KemPart | null,
): Uint8Array {
  const ikm = kem ? concat(X3DH_PAD, dh1, dh2, dh3, kem.sharedSecret) : concat(X3DH_PAD, dh1, dh2, dh3);
  const sk = hkdfSha256(ikm, new Uint8Array(32), label(kem ? "pqxdh" : "x3dh"), 32);
  wipe(ikm, dh1, dh2, dh3);
  return sk;
}

/**
 * The key sealing the accepter's identity: HKDF-SHA256(ikm = DH3, salt = none,
 * info = "parley/v1/accept-seal" || ephemeral key || prekey, 32); version 2: ikm = DH3 || SS and
 * info = "parley/v2/accept-seal" || ephemeral key || prekey, so who accepted stays hidden from an
 * adversary who later breaks X25519. DH3 involves a fresh ephemeral key (and SS a fresh
 * encapsulation), so this key encrypts exactly one plaintext and the all-zero nonce is safe.
 */
export function sealKey(
  dh3: Uint8Array,
  kem: KemPart | null,
  ephemeral: Uint8Array,
  prekey: Uint8Array,
): Uint8Array {
  if (!kem) return hkdfSha256(dh3, new Uint8Array(0), concat(label("acceptSeal"), ephemeral, prekey), 32);
  const ikm = concat(dh3, kem.sharedSecret);
  const key = hkdfSha256(ikm, new Uint8Array(0), concat(label("acceptSealV2"), ephemeral, prekey), 32);
  wipe(ikm);
  return key;
}

/** The sealed identity's associated data: the AcceptPrefix, and in version 2 the KEM ciphertext. */
export const sealAd = (prefix: Uint8Array, kem: KemPart | null): Uint8Array =>
  kem ? concat(prefix, kem.ciphertext) : prefix;

export interface AccepterDetails {
  identity: PublicIdentity;
  mailbox: Uint8Array;
  relayUrl: string;
  signature: Uint8Array;
}

/**
 * What the accepter signs (§5.2). Version 2 uses its own label and ends with the invitation's KEM
 * commitment and the KEM ciphertext, so the signature binds the post-quantum half too: an Accept's
 * identity cannot be grafted onto another ciphertext, nor onto a handshake with another KEM key.
 */
export function signedAcceptBytes(
  prefix: Uint8Array,
  accepter: PublicIdentity,
  mailbox: Uint8Array,
  relayUrl: string,
  inviter: PublicIdentity,
  kem: KemPart | null,
): Uint8Array {
  const w = new Writer()
    .bytes(label(kem ? "acceptSignatureV2" : "acceptSignature"))
    .bytes(prefix)
    .bytes(accepter.signingKey)
    .bytes(accepter.agreementKey)
    .bytes(mailbox)
    .varBytes(utf8.encode(relayUrl), 1)
    .bytes(inviter.signingKey)
    .bytes(inviter.agreementKey);
  if (kem) w.bytes(kem.commitment).bytes(kem.ciphertext);
  return w.finish();
}

export function encodeDetails(d: AccepterDetails): Uint8Array {
  return new Writer()
    .bytes(d.identity.signingKey)
    .bytes(d.identity.agreementKey)
    .bytes(d.mailbox)
    .varBytes(utf8.encode(d.relayUrl), 1)
    .bytes(d.signature)
    .finish();
}

export function decodeDetails(bytes: Uint8Array): AccepterDetails {
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
