// A stored message's ciphertext as it lies on disk: sealed again, by the relay, under a key of its
// own (XChaCha20-Poly1305 with a random 24-byte nonce), bound to the message's relay id and mailbox
// address. This is not for secrecy (the ciphertext is end-to-end encrypted already) but for
// forgetting: erase the key, and every copy of the sealed bytes is noise (keyfile.ts).
import { randomFillSync } from "node:crypto";
import { xopen, xseal } from "@parley/protocol";

const NONCE_LENGTH = 24;
const TAG_LENGTH = 16;
/** Sealed bytes are this much longer than the ciphertext: nonce and tag. */
export const SEAL_OVERHEAD = NONCE_LENGTH + TAG_LENGTH;
const LABEL = Buffer.from("parley-relay/v1/stored-message", "ascii");

/**
 * Random bytes for keys and nonces, drawn from the system a pool at a time (one call per 4 KiB
 * instead of two per message); each piece is wiped from the pool as it is handed out.
 */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/** `n` (at most 4096) fresh random bytes, in a buffer of their own. */
export function freshRandom(n: number): Buffer {
  if (poolAt + n > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const out = Buffer.from(pool.subarray(poolAt, poolAt + n));
  pool.fill(0, poolAt, poolAt + n);
  poolAt += n;
  return out;
}

function ad(id: Uint8Array, address: Uint8Array): Buffer {
  return Buffer.concat([LABEL, id, address]);
}

/** nonce ‖ XChaCha20-Poly1305(key, nonce, ciphertext, label ‖ id ‖ address). */
export function sealMessage(
  key: Uint8Array,
  id: Uint8Array,
  address: Uint8Array,
  ciphertext: Uint8Array,
): Buffer {
  const nonce = freshRandom(NONCE_LENGTH);
  return Buffer.concat([nonce, xseal(key, nonce, ciphertext, ad(id, address))]);
}

/** The ciphertext, or a CryptoError("AUTH") when the key, id, address or bytes are not the ones sealed. */
export function openMessage(
  key: Uint8Array,
  id: Uint8Array,
  address: Uint8Array,
  sealed: Uint8Array,
): Uint8Array {
  if (sealed.length < SEAL_OVERHEAD) throw new RangeError("sealed message shorter than its nonce and tag");
  return xopen(key, sealed.subarray(0, NONCE_LENGTH), sealed.subarray(NONCE_LENGTH), ad(id, address));
}
