// Ownership proofs through OpenSSL (src/ed25519.ts) against PROTOCOL.md §1.2 `Verify` (noble, strict):
// every Wycheproof Ed25519 vector, honest signatures and their bit flips, and the inputs on which
// OpenSSL alone would answer differently: small-order and non-canonical keys (refused before it is
// asked), and signatures that only the cofactored equation accepts (OpenSSL's "no" is "unsure", and
// the relay asks noble). Curve points for those are made here with a few lines of BigInt arithmetic
// (RFC 8032 §5.1), independent of both libraries.
import { createHash, createPublicKey, verify as opensslVerify, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  ed25519Verify,
  MailboxAction,
  MailboxKey,
  mailboxProofMessage,
  verifyMailboxProof,
} from "@parley/protocol";
import { describe, expect, it } from "vitest";
import { canonicalEncoding, verifyEd25519 } from "../src/ed25519.js";

const VECTORS = new URL("../../../../shared/vectors/wycheproof/ed25519_test.json", import.meta.url);

/** What the relay decides: OpenSSL, and noble for a second opinion when OpenSSL says no. */
const relayVerify = (pk: Uint8Array, msg: Uint8Array, sig: Uint8Array) => {
  const verdict = verifyEd25519(pk, msg, sig);
  return verdict === "unsure" ? ed25519Verify(pk, msg, sig) : verdict === "valid";
};

// ---- edwards25519 in BigInt (RFC 8032 §5.1), extended coordinates --------------------------------
const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const mod = (a: bigint, m = P) => ((a % m) + m) % m;
const pow = (b: bigint, e: bigint) => {
  let r = 1n;
  for (let x = mod(b); e > 0n; e >>= 1n, x = (x * x) % P) if (e & 1n) r = (r * x) % P;
  return r;
};
const inv = (a: bigint) => pow(a, P - 2n);
const D = mod(-121665n * inv(121666n));
const SQRT_M1 = pow(2n, (P - 1n) / 4n);
type Point = readonly [bigint, bigint, bigint, bigint]; // X, Y, Z, T
const IDENTITY: Point = [0n, 1n, 1n, 0n];
function add(a: Point, b: Point): Point {
  const A = mod((a[1] - a[0]) * (b[1] - b[0]));
  const B = mod((a[1] + a[0]) * (b[1] + b[0]));
  const C = mod(a[3] * 2n * D * b[3]);
  const Dd = mod(a[2] * 2n * b[2]);
  const [E, F, G, H] = [B - A, Dd - C, Dd + C, B + A];
  return [mod(E * F), mod(G * H), mod(F * G), mod(E * H)];
}
function mul(n: bigint, p: Point): Point {
  let r = IDENTITY;
  for (let q = p; n > 0n; n >>= 1n, q = add(q, q)) if (n & 1n) r = add(r, q);
  return r;
}
const le = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).reverse().toString("hex") || "0"}`);
const toLe = (n: bigint) => Buffer.from(n.toString(16).padStart(64, "0"), "hex").reverse();
function encode(p: Point): Buffer {
  const zi = inv(p[2]);
  const [x, y] = [mod(p[0] * zi), mod(p[1] * zi)];
  const out = toLe(y);
  out[31]! |= Number(x & 1n) << 7;
  return out;
}
/** Strict decoding (y < p, x exists, no x = 0 with the sign bit); null otherwise. */
function decode(e: Uint8Array): Point | null {
  const sign = e[31]! >> 7;
  const y = le(e) & (2n ** 255n - 1n);
  if (y >= P) return null;
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * pow(v, 3n) * pow(u * pow(v, 7n), (P - 5n) / 8n));
  if (mod(v * x * x) !== u) {
    if (mod(v * x * x) !== mod(-u)) return null;
    x = mod(x * SQRT_M1);
  }
  if (x === 0n && sign === 1) return null;
  if (Number(x & 1n) !== sign) x = P - x;
  return [x, y, 1n, mod(x * y)];
}
const BASE = decode(toLe(mod(4n * inv(5n))))!;
const isIdentity = (p: Point) => mod(p[0]) === 0n && mod(p[1] - p[2]) === 0n;
const sha512 = (...parts: Uint8Array[]) => createHash("sha512").update(Buffer.concat(parts)).digest();
/** A signature with scalar `a` (not from a seed: any scalar), nonce `r`, and points given as bytes. */
function signWith(a: bigint, r: bigint, R: Buffer, A: Buffer, msg: Uint8Array): Buffer {
  const k = mod(le(sha512(R, A, msg)), L);
  return Buffer.concat([R, toLe(mod(r + k * a, L))]);
}
const scalar = () => mod(le(randomBytes(64)), L);

/** The eight points of small order, found from the curve: every multiple of an order-8 point. */
function smallOrderEncodings(): Set<string> {
  // [L]Q is in the torsion subgroup for any point Q; try points until one has order 8.
  for (let yTry = 2n; ; yTry++) {
    const q = decode(toLe(yTry));
    if (!q) continue;
    const t = mul(L, q);
    if (isIdentity(mul(4n, t))) continue;
    return new Set(Array.from({ length: 8 }, (_, i) => encode(mul(BigInt(i), t)).toString("hex")));
  }
}

describe("Ed25519 through OpenSSL, with the answers of PROTOCOL.md §1.2 Verify", () => {
  it("agrees with Verify (noble) on every Wycheproof vector, and with Wycheproof's verdict", () => {
    const file = JSON.parse(readFileSync(VECTORS, "utf8")) as {
      testGroups: {
        publicKey: { pk: string };
        tests: { tcId: number; msg: string; sig: string; result: string }[];
      }[];
    };
    const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
    let cases = 0;
    let unsure = 0;
    const disagreements: string[] = [];
    for (const group of file.testGroups) {
      const pk = hex(group.publicKey.pk);
      for (const t of group.tests) {
        const [msg, sig] = [hex(t.msg), hex(t.sig)];
        const noble = ed25519Verify(pk, msg, sig);
        const verdict = verifyEd25519(pk, msg, sig);
        if (verdict === "unsure") unsure++;
        // "valid" and "invalid" are final: each must be noble's answer.
        if (verdict !== "unsure" && (verdict === "valid") !== noble)
          disagreements.push(`tcId ${t.tcId}: ${verdict}`);
        if (relayVerify(pk, msg, sig) !== (t.result === "valid"))
          disagreements.push(`tcId ${t.tcId} vs wycheproof`);
        cases++;
      }
    }
    expect(disagreements).toEqual([]);
    expect(cases).toBe(151);
    // Every valid vector is settled by OpenSSL alone; only refusals may need noble.
    expect(unsure).toBeLessThanOrEqual(63);
  });

  it("agrees on honest proofs and on every one-bit change of them", () => {
    for (let n = 0; n < 20; n++) {
      const key = MailboxKey.generate();
      const challenge = randomBytes(32);
      const sig = key.prove(MailboxAction.subscribe, challenge);
      const msg = mailboxProofMessage(MailboxAction.subscribe, challenge, key.address);
      expect(verifyEd25519(key.publicKey, msg, sig)).toBe("valid");
      expect(verifyMailboxProof(key.publicKey, MailboxAction.subscribe, challenge, key.address, sig)).toBe(
        true,
      );
      for (const [what, bytes] of [
        ["signature", sig],
        ["key", key.publicKey],
        ["message", msg],
      ] as const) {
        const bit = n * 13 + 5 * (what.length + 1);
        const flipped = Uint8Array.from(bytes);
        flipped[(bit >> 3) % flipped.length]! ^= 1 << (bit & 7);
        const args: [Uint8Array, Uint8Array, Uint8Array] =
          what === "signature"
            ? [key.publicKey, msg, flipped]
            : what === "key"
              ? [flipped, msg, sig]
              : [key.publicKey, flipped, sig];
        expect(relayVerify(...args), what).toBe(ed25519Verify(...args));
        expect(verifyEd25519(...args), what).not.toBe("valid");
      }
    }
  });

  it("refuses the eight small-order keys, which OpenSSL alone accepts with a forged signature", () => {
    const found = smallOrderEncodings();
    expect(found.size).toBe(8);
    const der = (pk: Uint8Array) =>
      createPublicKey({
        key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), pk]),
        format: "der",
        type: "spki",
      });
    for (const h of found) {
      const pk = Buffer.from(h, "hex");
      // S = 0, R = identity: [S]B = R + [k]A holds whenever [k]A is the identity, for 1 in 8 messages at worst.
      const sig = Buffer.concat([encode(IDENTITY), Buffer.alloc(32)]);
      const msg = Array.from({ length: 64 }, (_, i) => Buffer.from([i])).find((m) =>
        isIdentity(mul(mod(le(sha512(sig.subarray(0, 32), pk, m)), L), decode(pk)!)),
      )!;
      expect(msg, h).toBeDefined();
      expect(opensslVerify(null, msg, der(pk), sig), h).toBe(true); // OpenSSL alone: forged
      expect(ed25519Verify(pk, msg, sig), h).toBe(false);
      expect(verifyEd25519(pk, msg, sig), h).toBe("invalid");
    }
  });

  it("refuses non-canonical key encodings (y >= p, x = 0 with the sign bit), which OpenSSL alone accepts", () => {
    // The identity as y = p + 1, and with the sign bit set; and y = p - 1 (order 2) with the sign bit.
    const encodings = [
      toLe(P + 1n),
      Buffer.concat([Buffer.from([1]), Buffer.alloc(30), Buffer.from([0x80])]),
      (() => {
        const e = toLe(P - 1n);
        e[31]! |= 0x80;
        return e;
      })(),
    ];
    const sig = Buffer.concat([encode(IDENTITY), Buffer.alloc(32)]);
    for (const pk of encodings) {
      expect(canonicalEncoding(pk)).toBe(false);
      expect(ed25519Verify(pk, Buffer.from("m"), sig)).toBe(false);
      expect(verifyEd25519(pk, Buffer.from("m"), sig)).toBe("invalid");
    }
    // Every y >= p (19 values, each with either sign) is refused by the byte test alone.
    for (let t = 0n; t < 19n; t++) {
      const e = toLe(P + t);
      expect(canonicalEncoding(e)).toBe(false);
      e[31]! |= 0x80;
      expect(canonicalEncoding(e)).toBe(false);
    }
    // The largest canonical y passes it.
    expect(canonicalEncoding(toLe(P - 2n))).toBe(true);
  });

  it("accepts, like Verify, signatures only the cofactored equation accepts (OpenSSL says no: unsure, noble decides)", () => {
    const torsion = [...smallOrderEncodings()].map((h) => decode(Buffer.from(h, "hex"))!);
    const order8 = torsion.find((t) => !isIdentity(mul(4n, t)))!;
    const msg = mailboxProofMessage(MailboxAction.create, randomBytes(32), randomBytes(32));
    // R with a small-order component, under an honest key.
    const a = scalar();
    const A = encode(mul(a, BASE));
    const r = scalar();
    const R = encode(add(mul(r, BASE), order8));
    const tainted = signWith(a, r, R, A, msg);
    expect(ed25519Verify(A, msg, tainted)).toBe(true);
    expect(verifyEd25519(A, msg, tainted)).toBe("unsure");
    expect(relayVerify(A, msg, tainted)).toBe(true);
    // A key with a small-order component (not of small order itself), and an honest R.
    const mixed = encode(add(mul(a, BASE), order8));
    const R2 = encode(mul(r, BASE));
    // [k]T vanishes for one k in 8: take a message for which it does not.
    const m2 = Array.from({ length: 64 }, (_, i) => Buffer.concat([msg, Buffer.from([i])])).find(
      (m) => !isIdentity(mul(mod(le(sha512(R2, mixed, m)), L), order8)),
    )!;
    const taintedKey = signWith(a, r, R2, mixed, m2);
    expect(ed25519Verify(mixed, m2, taintedKey)).toBe(true);
    expect(verifyEd25519(mixed, m2, taintedKey)).toBe("unsure");
    expect(relayVerify(mixed, m2, taintedKey)).toBe(true);
    // S >= L is refused by both, whatever else holds.
    const honest = signWith(a, r, R2, A, msg);
    const big = Buffer.concat([honest.subarray(0, 32), toLe(le(honest.subarray(32)) + L)]);
    expect(ed25519Verify(A, msg, honest)).toBe(true);
    expect(verifyEd25519(A, msg, honest)).toBe("valid");
    expect(ed25519Verify(A, msg, big)).toBe(false);
    expect(verifyEd25519(A, msg, big)).toBe("invalid");
  });

  it("answers invalid, never throws, for wrong lengths and keys that are no point", () => {
    const msg = Buffer.from("m");
    expect(verifyEd25519(new Uint8Array(31), msg, new Uint8Array(64))).toBe("invalid");
    expect(verifyEd25519(new Uint8Array(32).fill(9), msg, new Uint8Array(63))).toBe("invalid");
    // A y for which no x exists.
    let y = 2n;
    while (decode(toLe(y))) y++;
    const notAPoint = toLe(y);
    const verdict = verifyEd25519(notAPoint, msg, Buffer.concat([encode(IDENTITY), Buffer.alloc(32)]));
    expect(verdict === "invalid" || !ed25519Verify(notAPoint, msg, new Uint8Array(64))).toBe(true);
    expect(relayVerify(notAPoint, msg, Buffer.concat([encode(IDENTITY), Buffer.alloc(32)]))).toBe(false);
  });
});
