// RFC 4648 base32, upper case, no padding. Upper-case letters and digits fit a QR code's
// alphanumeric mode, which keeps invitation QR codes small.
export const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const VALUES = new Map([...BASE32_ALPHABET].map((c, i) => [c, i]));

export function base32Encode(bytes: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const b of bytes) {
    buffer = ((buffer << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/** Why a base32 string did not decode: the index of a bad character, or unused trailing bits set. */
export type Base32Failure = { kind: "character"; index: number } | { kind: "trailing-bits" };

/**
 * Decodes strict base32. Returns the failure instead of throwing, so callers word their own error.
 * Strict: leftover bits must be zero and a length that no byte string encodes to is refused, so every
 * accepted string is the unique encoding of its bytes.
 */
export function base32Decode(text: string): Uint8Array | Base32Failure {
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let buffer = 0;
  let bits = 0;
  let j = 0;
  for (let i = 0; i < text.length; i++) {
    const v = VALUES.get(text[i]!);
    if (v === undefined) return { kind: "character", index: i };
    buffer = ((buffer << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out[j++] = (buffer >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  if (bits >= 5 || (buffer & ((1 << bits) - 1)) !== 0) return { kind: "trailing-bits" };
  return out;
}
