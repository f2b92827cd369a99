// PROTOCOL.md §1.2 `Verify`, read literally and written out independently of src/crypto.ts: each
// rule of the spec is one line here. The tests run the code's `verify` and this reading side by
// side over the vectors, so a disagreement shows whether the code or the vector is wrong. It uses
// noble's point arithmetic with lenient decoding and does every strictness check itself.
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha512 } from "@noble/hashes/sha2.js";

const Point = ed25519.Point;
type EdPoint = InstanceType<typeof Point>;

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const fromLe = (b: Uint8Array): bigint => b.reduceRight((acc, byte) => (acc << 8n) | BigInt(byte), 0n);

/** A canonical point encoding decoded, or null: y ≥ p, no square root, or x = 0 with the sign bit. */
function decodeCanonical(bytes: Uint8Array): EdPoint | null {
  const sign = bytes[31]! >> 7;
  const y = fromLe(bytes) & (2n ** 255n - 1n);
  if (y >= P) return null;
  let point: EdPoint;
  try {
    point = Point.fromBytes(bytes, true); // lenient: fails only when x² has no square root
  } catch {
    return null;
  }
  if (point.x === 0n && sign === 1) return null;
  return point;
}

/**
 * §1.2 Verify: invalid exactly when one of its five conditions holds. `cofactored: false` checks
 * SB = R + kA instead (as libsodium and Go do), to show which vectors tell the two apart.
 */
export function specVerify(pk: Uint8Array, msg: Uint8Array, sig: Uint8Array, cofactored = true): boolean {
  if (pk.length !== 32 || sig.length !== 64) return false;
  const A = decodeCanonical(pk);
  const R = decodeCanonical(sig.subarray(0, 32));
  if (!A || !R) return false;
  const S = fromLe(sig.subarray(32));
  if (S >= L) return false;
  if (A.multiplyUnsafe(8n).is0()) return false; // small order
  const k = fromLe(sha512(Uint8Array.from([...sig.subarray(0, 32), ...pk, ...msg]))) % L;
  const h = cofactored ? 8n : 1n;
  const left = Point.BASE.multiplyUnsafe(S).multiplyUnsafe(h);
  const right = R.add(A.multiplyUnsafe(k)).multiplyUnsafe(h);
  return left.equals(right);
}
