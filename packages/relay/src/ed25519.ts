// Ownership proofs checked with the Ed25519 of Node's OpenSSL, about ten times cheaper than the pure
// JavaScript of @noble/curves, with the answers of PROTOCOL.md §1.2 `Verify` (noble, strict).
//
// OpenSSL differs from `Verify` in two ways, and both are dealt with here:
// - It accepts encodings `Verify` refuses: a public key whose y is not reduced (y >= p) or that has
//   x = 0 with the sign bit set, and public keys of small order. Those are refused before OpenSSL is
//   asked (pure byte comparisons). It checks S < L and compares R with the canonical encoding it
//   computes itself, so a non-canonical R or S never verifies there; both are checked here as well,
//   so that nothing rests on one OpenSSL version.
// - It checks the cofactorless equation [S]B = R + [k]A, where `Verify` checks the cofactored one,
//   [8][S]B = [8]R + [8][k]A. Whatever the first accepts the second does, but a signature whose R
//   (or whose key) carries a small-order component can satisfy only the second. No RFC 8032 signer
//   produces one; only the key's holder can craft it. So OpenSSL's "yes" is `Verify`'s "yes", and
//   its "no" is "unsure": the caller asks `Verify` itself (noble) for a second opinion, within a
//   budget of its own, since an attacker's every bad proof is such a "no".
import { createPublicKey, type KeyObject, verify } from "node:crypto";

export type Verdict = "valid" | "invalid" | "unsure";

/** SubjectPublicKeyInfo DER of an Ed25519 key, up to the 32 key bytes (RFC 8410). */
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** The canonical encodings of the eight points of small order (y little-endian, x's sign in bit 255). */
const SMALL_ORDER = new Set(
  [
    "0100000000000000000000000000000000000000000000000000000000000000", // (0, 1): the identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // (0, -1): order 2
    "0000000000000000000000000000000000000000000000000000000000000000", // (+-sqrt(-1), 0): order 4
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
  ].map((hex) => Buffer.from(hex, "hex").toString("latin1")),
);

/** L, the order of the base point, little-endian. */
const L = Buffer.from("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010", "hex");

/**
 * Is `e` (32 bytes) a canonical point encoding as far as bytes tell: y < p = 2^255 - 19, and not
 * x = 0 (y = 1 or y = p - 1) with the sign bit set. Whether x exists at all is left to the curve
 * arithmetic (OpenSSL refuses such a key, and no such R equals the R it computes).
 */
export function canonicalEncoding(e: Uint8Array): boolean {
  const sign = e[31]! >> 7;
  const top = e[31]! & 0x7f;
  let middleAllOnes = true; // bytes 1..30 all 0xff
  let middleAllZero = true;
  for (let i = 1; i < 31; i++) {
    if (e[i] !== 0xff) middleAllOnes = false;
    if (e[i] !== 0) middleAllZero = false;
  }
  // y >= p: y = 2^255 - 19 + t, t in 0..18, i.e. top 0x7f, middle all ones, low byte >= 0xed.
  if (top === 0x7f && middleAllOnes && e[0]! >= 0xed) return false;
  if (sign === 1) {
    if (top === 0 && middleAllZero && e[0] === 1) return false; // y = 1
    if (top === 0x7f && middleAllOnes && e[0] === 0xec) return false; // y = p - 1
  }
  return true;
}

/** Is S (32 bytes, little-endian) below L? */
function reducedScalar(s: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    if (s[i]! < L[i]!) return true;
    if (s[i]! > L[i]!) return false;
  }
  return false; // S = L
}

/** Owner keys as OpenSSL key objects, most recently used last: importing one costs about a verification. */
const keys = new Map<string, KeyObject>();
const KEY_CACHE = 4096;

function keyObject(publicKey: Uint8Array): KeyObject {
  const id = Buffer.from(publicKey).toString("latin1");
  let key = keys.get(id);
  if (key) {
    keys.delete(id);
  } else {
    key = createPublicKey({
      key: Buffer.concat([SPKI_PREFIX, publicKey]),
      format: "der",
      type: "spki",
    });
    if (keys.size >= KEY_CACHE) keys.delete(keys.keys().next().value!);
  }
  keys.set(id, key);
  return key;
}

/**
 * PROTOCOL.md §1.2 `Verify(publicKey, message, signature)` through OpenSSL: "valid" and "invalid"
 * are `Verify`'s own answers; "unsure" means OpenSSL refused a signature that `Verify` might still
 * accept (see the top of this file), and only `Verify` itself can tell.
 */
export function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Verdict {
  if (publicKey.length !== 32 || signature.length !== 64) return "invalid";
  if (!canonicalEncoding(publicKey) || SMALL_ORDER.has(Buffer.from(publicKey).toString("latin1"))) {
    return "invalid";
  }
  if (!canonicalEncoding(signature.subarray(0, 32)) || !reducedScalar(signature.subarray(32))) {
    return "invalid";
  }
  let ok: boolean;
  try {
    ok = verify(null, message, keyObject(publicKey), signature);
  } catch {
    // A key OpenSSL cannot decode (y with no x on the curve): `Verify` refuses it as well.
    return "invalid";
  }
  return ok ? "valid" : "unsure";
}
