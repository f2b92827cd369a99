// The package's only door to cryptographic primitives. Everything comes from the audited @noble
// libraries; these wrappers add the checks Parley requires (lengths, low-order rejection, typed
// errors) and the versioned domain-separation labels. The Wycheproof tests run through them.
import { chacha20poly1305, xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { randomBytes as nobleRandomBytes } from "@noble/hashes/utils.js";
import { checkBytes, isAllZero, utf8 } from "./_bytes.js";
import { CryptoError } from "./errors.js";

/** A source of random bytes. Tests and known-answer vectors inject a deterministic one. */
export type RandomSource = (length: number) => Uint8Array;

/** The operating system's CSPRNG (crypto.getRandomValues). */
export const systemRandom: RandomSource = (length) => nobleRandomBytes(length);

/**
 * Versioned domain-separation labels. Changing what a key is derived for means a new label;
 * no key is ever used for two purposes. PROTOCOL.md §2 lists them.
 */
export const LABELS = {
  x3dh: "parley/v1/x3dh",
  acceptSeal: "parley/v1/accept-seal",
  acceptSignature: "parley/v1/accept-signature",
  sessionAd: "parley/v1/session-ad",
  ratchetRoot: "parley/v1/ratchet-root",
  /** Legacy (v1 Messages, decrypt only): expands a message key to a ChaCha20 key and nonce. */
  messageKeys: "parley/v1/message-keys",
  /** v2 Messages: derives a message key's XChaCha20-Poly1305 key (its nonce is random). */
  messageKeyV2: "parley/v2/message-key",
  /** v3 Messages (post-quantum sessions): KDF_RK with an ML-KEM shared secret mixed in. */
  ratchetRootKem: "parley/v3/ratchet-root-kem",
  invitationSignature: "parley/v1/invitation-signature",
  invitationChecksum: "parley/v1/invitation-checksum",
  invitationId: "parley/v1/invitation-id",
  fingerprint: "parley/v1/fingerprint",
  safetyNumber: "parley/v1/safety-number",
  mailboxAddress: "parley/v1/mailbox-address",
  mailboxProof: "parley/v1/mailbox-proof",
  depositToken: "parley/v1/deposit-token",
  groupEntrySignature: "parley/v1/group-entry-signature",
  groupEntryHash: "parley/v1/group-entry-hash",
  groupMessage: "parley/v1/group-message",
  fileChunks: "parley/v1/file-chunks",
  blobToken: "parley/v1/blob-token",
  groupFile: "parley/v1/group-file",
  // Version 2 invitations and Accepts: the hybrid (X25519 + ML-KEM-768) handshake, PROTOCOL.md §4.6, §5.5.
  /** v2 invitations: signature prefix (the v2 body carries the KEM commitment). */
  invitationSignatureV2: "parley/v2/invitation-signature",
  /** v2 invitations: checksum prefix. */
  invitationChecksumV2: "parley/v2/invitation-checksum",
  /** SHA-256 prefix: the commitment to the inviter's ML-KEM-768 encapsulation key. */
  kemCommitment: "parley/v2/kem-commitment",
  /** HKDF info: the hosted KEM key's blob id, from the commitment and the prekey. */
  kemBlobId: "parley/v2/kem-blob-id",
  /** HKDF info: the hosted KEM key's read token, from the commitment and the prekey. */
  kemBlobReadToken: "parley/v2/kem-blob-read-token",
  /** HKDF info: the key sealing the hosted KEM key (a §14.1 file key), from the commitment and the prekey. */
  kemBlobFileKey: "parley/v2/kem-blob-file-key",
  /** HKDF info: the hosted KEM key's write token, from the inviter's secret KEM seed. */
  kemBlobWriteToken: "parley/v2/kem-blob-write-token",
  /** HKDF info prefix: the v2 sealed-identity key, from DH3 and the KEM shared secret. */
  acceptSealV2: "parley/v2/accept-seal",
  /** v2 Accepts: signature prefix (also covers the KEM commitment and ciphertext). */
  acceptSignatureV2: "parley/v2/accept-signature",
  /** HKDF info: SK of the hybrid handshake, from F, DH1, DH2, DH3 and the KEM shared secret. */
  pqxdh: "parley/v2/pqxdh",
} as const;

export const label = (name: keyof typeof LABELS): Uint8Array => utf8.encode(LABELS[name]);

export const KEY_LENGTH = 32;
export const NONCE_LENGTH = 12;
export const XNONCE_LENGTH = 24;
export const TAG_LENGTH = 16;
export const SIGNATURE_LENGTH = 64;

export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

/** A fresh X25519 key pair (RFC 7748), the secret from `random`. */
export function x25519KeyPair(random: RandomSource = systemRandom): KeyPair {
  const secretKey = checkBytes("random(32)", random(32), 32);
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
}

/** The X25519 public key of a secret key. */
export function x25519PublicKey(secretKey: Uint8Array): Uint8Array {
  checkBytes("secretKey", secretKey, 32);
  return x25519.getPublicKey(secretKey);
}

/** p = 2^255 − 19, the field of Curve25519. */
const P25519 = (1n << 255n) - 19n;
/**
 * The u-coordinates of the points of order dividing 8 (PROTOCOL.md §1.2, `DH`): with a clamped
 * scalar these, and only these, give an all-zero X25519 output.
 */
const LOW_ORDER_U: readonly bigint[] = [
  0n,
  1n,
  P25519 - 1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
];

/**
 * True when `publicKey` is an X25519 point of small order: its u-coordinate (bit 255 masked,
 * reduced mod p, as RFC 7748 §5 decodes it) is one of the five that `dh` refuses. Public keys only:
 * this does not run in constant time.
 *
 * @example
 * ```ts
 * if (x25519IsLowOrder(invitation.prekey)) throw new Error("invalid invitation");
 * ```
 */
export function x25519IsLowOrder(publicKey: Uint8Array): boolean {
  checkBytes("publicKey", publicKey, 32);
  let u = 0n;
  for (let i = 31; i >= 0; i--) u = (u << 8n) | BigInt(i === 31 ? publicKey[i]! & 0x7f : publicKey[i]!);
  return LOW_ORDER_U.includes(u % P25519);
}

/**
 * X25519 Diffie-Hellman. Rejects low-order public keys and an all-zero shared secret
 * (RFC 7748 §6.1) with CryptoError("LOW_ORDER"): such a result carries no secret at all.
 *
 * @example
 * ```ts
 * const shared = dh(alice.secretKey, bob.publicKey);
 * ```
 */
export function dh(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  if (secretKey.length !== 32)
    throw new CryptoError("BAD_KEY", `secretKey: expected 32 bytes, got ${secretKey.length}`);
  if (publicKey.length !== 32)
    throw new CryptoError("BAD_KEY", `publicKey: expected 32 bytes, got ${publicKey.length}`);
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(secretKey, publicKey);
  } catch {
    // noble rejects the known low-order points before the ladder and a zero result after it.
    throw new CryptoError("LOW_ORDER", "X25519: low-order public key (all-zero shared secret)");
  }
  if (isAllZero(shared)) throw new CryptoError("LOW_ORDER", "X25519: all-zero shared secret");
  return shared;
}

/** A fresh Ed25519 key pair from a 32-byte seed drawn from `random`. */
export function ed25519KeyPair(random: RandomSource = systemRandom): KeyPair {
  const secretKey = checkBytes("random(32)", random(32), 32);
  return { secretKey, publicKey: ed25519.getPublicKey(secretKey) };
}

export function ed25519PublicKey(secretKey: Uint8Array): Uint8Array {
  checkBytes("secretKey", secretKey, 32);
  return ed25519.getPublicKey(secretKey);
}

/** Ed25519 signature (RFC 8032, deterministic). */
export function sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  return ed25519.sign(message, secretKey);
}

/**
 * Strict RFC 8032 verification (no ZIP-215 leniency, so signatures are not malleable). Returns
 * false for any malformed key or signature instead of throwing.
 */
export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== SIGNATURE_LENGTH) return false;
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

function aeadArgs(key: Uint8Array, nonce: Uint8Array, nonceLength: number): void {
  if (key.length !== KEY_LENGTH)
    throw new CryptoError("BAD_LENGTH", `key: expected 32 bytes, got ${key.length}`);
  if (nonce.length !== nonceLength) {
    throw new CryptoError("BAD_LENGTH", `nonce: expected ${nonceLength} bytes, got ${nonce.length}`);
  }
}

/** ChaCha20-Poly1305 (RFC 8439) encryption: returns ciphertext || 16-byte tag. */
export function seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  aeadArgs(key, nonce, NONCE_LENGTH);
  return chacha20poly1305(key, nonce, ad).encrypt(plaintext);
}

/**
 * ChaCha20-Poly1305 decryption. The tag is checked (in constant time, by noble) before anything is
 * decrypted; a failure is CryptoError("AUTH") and reveals nothing else.
 */
export function open(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array {
  aeadArgs(key, nonce, NONCE_LENGTH);
  if (sealed.length < TAG_LENGTH) throw new CryptoError("AUTH", "ciphertext shorter than its tag");
  try {
    return chacha20poly1305(key, nonce, ad).decrypt(sealed);
  } catch {
    throw new CryptoError("AUTH", "authentication failed");
  }
}

/** XChaCha20-Poly1305 (24-byte nonce, safe to draw at random) encryption. */
export function xseal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  aeadArgs(key, nonce, XNONCE_LENGTH);
  return xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
}

/** XChaCha20-Poly1305 decryption; failure is CryptoError("AUTH"). */
export function xopen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array {
  aeadArgs(key, nonce, XNONCE_LENGTH);
  if (sealed.length < TAG_LENGTH) throw new CryptoError("AUTH", "ciphertext shorter than its tag");
  try {
    return xchacha20poly1305(key, nonce, ad).decrypt(sealed);
  } catch {
    throw new CryptoError("AUTH", "authentication failed");
  }
}

/** The most HKDF-SHA256 can produce (RFC 5869 §2.3: L <= 255 * HashLen). */
export const HKDF_MAX_LENGTH = 255 * 32;

/** HKDF-SHA256 (RFC 5869). An empty salt is the RFC's default (32 zero bytes). */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 1 || length > HKDF_MAX_LENGTH) {
    throw new CryptoError("BAD_LENGTH", `HKDF-SHA256: length must be 1..${HKDF_MAX_LENGTH}, got ${length}`);
  }
  return hkdf(sha256, ikm, salt.length === 0 ? undefined : salt, info, length);
}

export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  return hmac(sha256, key, message);
}

export { sha256, sha512 };
