// Safety numbers (PROTOCOL.md §9): what two people compare, out of band, to know that no one swapped
// their keys. Modelled on Signal's numeric fingerprints.
import { concat, equalConstantTime } from "./_bytes.js";
import { base32Decode, base32Encode } from "./base32.js";
import { label, sha512 } from "./crypto.js";
import type { PublicIdentity } from "./identity.js";
import { normalizeCode } from "./invitation.js";

/** Hash iterations per identity: makes finding a colliding key pair expensive (Signal uses 5200). */
export const SAFETY_ITERATIONS = 5200;
const SAFETY_VERSION = 1;
export const SAFETY_COMPACT_PREFIX = "PARLEYSN1-";

/** 32-byte per-identity fingerprint: SHA-512 iterated, truncated. */
function identityDigest(id: PublicIdentity): Uint8Array {
  const key = concat(id.signingKey, id.agreementKey);
  let h = sha512(concat(label("safetyNumber"), Uint8Array.of(0, SAFETY_VERSION), key));
  for (let i = 1; i < SAFETY_ITERATIONS; i++) h = sha512(concat(h, key));
  return h.slice(0, 32);
}

/** 30 digits: six 5-byte chunks of the digest, each big-endian mod 100000, zero-padded. */
function digits(digest: Uint8Array): string {
  let out = "";
  for (let i = 0; i < 30; i += 5) {
    let v = 0;
    for (let j = 0; j < 5; j++) v = v * 256 + digest[i + j]!;
    out += String(v % 100000).padStart(5, "0");
  }
  return out;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

export interface SafetyNumber {
  /** 60 digits, the same on both sides. */
  readonly digits: string;
  /** The digits in 12 groups of 5, separated by spaces. */
  readonly display: string;
  /** Compact form for a QR code: PARLEYSN1- then base32 of both 32-byte digests, lower first. */
  readonly compact: string;
}

/**
 * The safety number of a pair of identities: symmetric, so both people see the same number.
 *
 * @example
 * ```ts
 * safetyNumber(me, them).display; // "12345 67890 … (12 groups)"
 * ```
 */
export function safetyNumber(a: PublicIdentity, b: PublicIdentity): SafetyNumber {
  const [lo, hi] = [identityDigest(a), identityDigest(b)].sort(compareBytes) as [Uint8Array, Uint8Array];
  const all = digits(lo) + digits(hi);
  return {
    digits: all,
    display: all.match(/.{5}/g)!.join(" "),
    compact: SAFETY_COMPACT_PREFIX + base32Encode(concat(lo, hi)),
  };
}

/**
 * Checks a scanned or typed compact safety number (or the 60 digits, spaces allowed) against the
 * expected one, in constant time. Returns false for anything malformed.
 */
export function verifySafetyNumber(expected: SafetyNumber, candidate: string): boolean {
  const text = normalizeCode(candidate);
  if (text.startsWith(SAFETY_COMPACT_PREFIX)) {
    const got = base32Decode(text.slice(SAFETY_COMPACT_PREFIX.length));
    const want = base32Decode(expected.compact.slice(SAFETY_COMPACT_PREFIX.length));
    return got instanceof Uint8Array && want instanceof Uint8Array && equalConstantTime(got, want);
  }
  if (!/^\d{60}$/.test(text)) return false;
  const encoder = new TextEncoder();
  return equalConstantTime(encoder.encode(text), encoder.encode(expected.digits));
}
