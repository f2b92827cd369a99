// The Double Ratchet's KDF chains and message sealing (PROTOCOL.md §6.2, §6.3, §6.7 "Mixing"): KDF_RK,
// KDF_CK, the message keys of v2/v3 and legacy v1 Messages. Section numbers refer to Signal's spec.
import { concat, wipe } from "./_bytes.js";
import { hkdfSha256, hmacSha256, KEY_LENGTH, label, NONCE_LENGTH, open, xopen, xseal } from "./crypto.js";
import type { MessageEnvelope } from "./envelope.js";
import { CryptoError } from "./errors.js";
import type { SkippedKey } from "./ratchet-state.js";

const CHAIN_MESSAGE_KEY = Uint8Array.of(0x01);
const CHAIN_NEXT_KEY = Uint8Array.of(0x02);

/**
 * KDF_RK (§5.2): HKDF-SHA256(salt = root key, ikm = DH output, info = label) -> root key', chain key.
 * With a KEM secret (a post-quantum session's MIXED step, PROTOCOL.md §6.7 "Mixing") the ikm is
 * DH output || secret and the label "parley/v3/ratchet-root-kem". Wipes `dhOut`, not `kemSecret`.
 */
export function kdfRoot(
  rootKey: Uint8Array,
  dhOut: Uint8Array,
  kemSecret?: Uint8Array,
): [Uint8Array, Uint8Array] {
  const ikm = kemSecret ? concat(dhOut, kemSecret) : dhOut;
  const out = hkdfSha256(ikm, rootKey, label(kemSecret ? "ratchetRootKem" : "ratchetRoot"), 64);
  const keys: [Uint8Array, Uint8Array] = [out.slice(0, 32), out.slice(32, 64)];
  wipe(out, ikm, dhOut);
  return keys;
}

/** KDF_CK (§5.2): message key = HMAC(ck, 0x01), next chain key = HMAC(ck, 0x02). */
export function kdfChain(chainKey: Uint8Array): [Uint8Array, Uint8Array] {
  return [hmacSha256(chainKey, CHAIN_NEXT_KEY), hmacSha256(chainKey, CHAIN_MESSAGE_KEY)];
}

/**
 * v2 (PROTOCOL.md §6.2): the XChaCha20-Poly1305 key of a message key,
 * HKDF-SHA256(ikm = message key, salt = none, info = "parley/v2/message-key", 32). The nonce is not
 * derived: each encryption draws 24 fresh random bytes and sends them in the header, so a sender
 * whose state was rewound (a restored backup, a cloned VM) re-derives the same key but never the
 * same (key, nonce) pair.
 */
function messageKeyV2(messageKey: Uint8Array): Uint8Array {
  return hkdfSha256(messageKey, new Uint8Array(0), label("messageKeyV2"), KEY_LENGTH);
}

/**
 * v1 (legacy, decrypt only): HKDF-SHA256(ikm = message key, salt = none,
 * info = "parley/v1/message-keys", 44) = ChaCha20-Poly1305 key (32) || nonce (12). The nonce is a
 * function of the message key, which is why v1 is no longer sent (PROTOCOL.md §6.2).
 */
function messageCipherV1(messageKey: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
  const out = hkdfSha256(messageKey, new Uint8Array(0), label("messageKeys"), 32 + NONCE_LENGTH);
  return { key: out.subarray(0, 32), nonce: out.subarray(32) };
}

/** Seals under a v2 header: XChaCha20-Poly1305 with the header's random nonce. Wipes `messageKey`. */
export function sealWith(
  messageKey: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  const key = messageKeyV2(messageKey);
  try {
    return xseal(key, nonce, plaintext, ad);
  } finally {
    wipe(key, messageKey);
  }
}

/** Opens a Message of either version; returns null when authentication fails, never throws on it. */
export function openWith(messageKey: Uint8Array, m: MessageEnvelope, ad: Uint8Array): Uint8Array | null {
  try {
    if (m.header.nonce !== null) {
      // Version 2: only its headers carry a nonce.
      const key = messageKeyV2(messageKey);
      try {
        return xopen(key, m.header.nonce, m.sealed, ad);
      } finally {
        wipe(key);
      }
    }
    const { key, nonce } = messageCipherV1(messageKey);
    try {
      return open(key, nonce, m.sealed, ad);
    } finally {
      wipe(key, nonce);
    }
  } catch (e) {
    if (e instanceof CryptoError) return null;
    throw e;
  }
}

/** Derives the message keys from `from` up to (not including) `to`; returns the chain key at `to`. */
export function skipKeys(
  chain: Uint8Array,
  ratchetKey: Uint8Array,
  from: number,
  to: number,
  out: SkippedKey[],
): Uint8Array {
  let ck: Uint8Array = Uint8Array.from(chain);
  for (let i = from; i < to; i++) {
    const [next, messageKey] = kdfChain(ck);
    wipe(ck);
    ck = next;
    out.push({ ratchetKey: Uint8Array.from(ratchetKey), index: i, messageKey });
  }
  return ck;
}
