// Edge-case vectors of PROTOCOL.md §11.3 that are not part of the conversation transcript:
// `ed25519Strictness` (§1.2 Verify) and `relayUrls` (§4.3). Each expectation is written here by
// hand from the spec, never computed by the code under test: test/kat.test.ts checks that the
// code agrees. `pnpm vectors` writes them into vectors/kat.json beside the transcript.
import { ED25519_TORSION_SUBGROUP, ed25519 } from "@noble/curves/ed25519.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { fromHex, toHex } from "../src/index.js";
import { katValue } from "./kat-transcript.js";

const Point = ed25519.Point;
type EdPoint = InstanceType<typeof Point>;

/** The field prime and the group order (RFC 8032 §5.1). */
const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

const le32 = (n: bigint): Uint8Array => {
  if (n < 0n || n >= 2n ** 256n) throw new RangeError("le32: out of range");
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
};
const fromLe = (b: Uint8Array): bigint => b.reduceRight((acc, byte) => (acc << 8n) | BigInt(byte), 0n);
const cat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));
const mod = (n: bigint): bigint => ((n % L) + L) % L;

/** An encoding with y written as the given integer (possibly ≥ p) and the given sign bit. */
const encodeY = (y: bigint, sign: 0 | 1): Uint8Array => {
  const b = le32(y);
  if (sign) b[31]! |= 0x80;
  return b;
};

/** The order of a point of the torsion subgroup: 1, 2, 4 or 8. */
function torsionOrder(point: EdPoint): number {
  let q = point;
  for (let order = 1; order <= 8; order *= 2) {
    if (q.is0()) return order;
    q = q.double();
  }
  throw new Error("not a small-order point");
}

export interface Ed25519Case {
  readonly name: string;
  readonly pk: string;
  readonly msg: string;
  readonly sig: string;
  readonly valid: boolean;
  readonly reason: string;
}

/**
 * Signatures at the edges of §1.2 `Verify`: strict RFC 8032 with a cofactored equation, refusing
 * non-canonical encodings of A and R, S ≥ L and a small-order A, and nothing else. Where possible
 * a refused case satisfies the cofactored equation, so that it is refused by exactly the rule it
 * names (a ZIP-215 or otherwise lenient verifier accepts it).
 */
export function buildEd25519Strictness(): Ed25519Case[] {
  const seed = katValue("ed25519/seed");
  const { scalar: a, pointBytes: A } = ed25519.utils.getExtendedPublicKey(seed);
  const msg = new TextEncoder().encode("Parley PROTOCOL.md §1.2 Verify");
  const challenge = (r: Uint8Array, pk: Uint8Array) => mod(fromLe(sha512(cat(r, pk, msg))));
  const r = mod(fromLe(katValue("ed25519/nonce")));
  const rB = Point.BASE.multiply(r).toBytes();
  const signature = ed25519.sign(msg, seed);
  const S = fromLe(signature.subarray(32));
  const R0 = signature.subarray(0, 32);

  const cases: Ed25519Case[] = [];
  const add = (name: string, pk: Uint8Array, sig: Uint8Array, valid: boolean, reason: string, m = msg) =>
    cases.push({ name, pk: toHex(pk), msg: toHex(m), sig: toHex(sig), valid, reason });

  add("baseline", A, signature, true, "an ordinary RFC 8032 signature (deterministic, from the seed)");
  const flipped = msg.slice();
  flipped[0]! ^= 1;
  add(
    "message-changed",
    A,
    signature,
    false,
    "the baseline signature over a message with one bit flipped: the equation fails",
    flipped,
  );
  add(
    "r-identity-s-zero",
    A,
    cat(le32(1n), le32(0n)),
    false,
    "R = identity, S = 0, an ordinary A: the equation fails (kA ≠ 0)",
  );

  // S ≥ L. The multiples of L leave the scalar unchanged mod L, so only the range check refutes them.
  const maxMultiple = (2n ** 256n - 1n - S) / L;
  for (const [name, s, reason] of [
    ["s-plus-l", S + L, "S + L: the same scalar mod L, refused only because S ≥ L (malleability)"],
    ["s-plus-2l", S + 2n * L, "S + 2L: the same scalar mod L, refused only because S ≥ L"],
    [
      "s-plus-max-multiple-of-l",
      S + maxMultiple * L,
      `S + ${maxMultiple}L, the largest multiple of L that still fits 32 bytes: refused only because S ≥ L`,
    ],
    ["s-equals-l", L, "S = L exactly (0 mod L): refused because S ≥ L"],
    ["s-all-ones", 2n ** 256n - 1n, "S = 2^256 − 1: refused because S ≥ L"],
  ] as const) {
    add(name, A, cat(R0, le32(s)), false, reason);
  }

  // Small-order R with S = k·a: [8]R = 0 and [8]SB = [8]kA, so the cofactored equation holds.
  // §1.2 does not refuse a small-order R, so these are valid; a cofactorless verifier (SB = R + kA)
  // refuses every one but the identity.
  const torsion = ED25519_TORSION_SUBGROUP.map((h) => fromHex(h));
  for (const [i, t] of torsion.entries()) {
    const order = torsionOrder(Point.fromBytes(t));
    const s = mod(challenge(t, A) * a);
    const why =
      order === 1
        ? "R is the identity; S = k·a satisfies even the cofactorless equation"
        : `R is a point of order ${order}; S = k·a satisfies the cofactored equation (not the cofactorless one), and a small-order R is not refused`;
    add(`r-small-order-${i}`, A, cat(t, le32(s)), true, why);
  }

  // A mixed-order R: r·B plus a point of order 8. Valid by the cofactored equation only.
  const t8 = Point.fromBytes(torsion[1]!);
  if (torsionOrder(t8) !== 8) throw new Error("torsion[1] is expected to have order 8");
  const mixedR = Point.BASE.multiply(r).add(t8).toBytes();
  add(
    "r-mixed-order",
    A,
    cat(mixedR, le32(mod(r + challenge(mixedR, A) * a))),
    true,
    "R = r·B + T with T of order 8; S = r + k·a satisfies the cofactored equation, not the cofactorless one",
  );

  // Small-order A with R = r·B, S = r: [8]SB = [8]R and [8]kA = 0, so the cofactored equation
  // holds and only the small-order rule refuses them.
  for (const [i, t] of torsion.entries()) {
    const order = torsionOrder(Point.fromBytes(t));
    add(
      `a-small-order-${i}`,
      t,
      cat(rB, le32(r)),
      false,
      `A is a point of order ${order}; R = r·B, S = r satisfies the cofactored equation, so only the small-order rule refuses it`,
    );
  }

  // A mixed-order A: a·B plus a point of order 8. Not of small order, so valid when S = r + k·a.
  const mixedA = Point.BASE.multiply(a).add(t8).toBytes();
  const kMixed = challenge(rB, mixedA);
  if (kMixed % 8n === 0n) throw new Error("r-mixed-order: k ≡ 0 mod 8, choose another nonce name");
  add(
    "a-mixed-order",
    mixedA,
    cat(rB, le32(mod(r + kMixed * a))),
    true,
    "A = a·B + T with T of order 8 is not of small order; S = r + k·a satisfies the cofactored equation (the cofactorless one fails, k mod 8 ≠ 0)",
  );

  // Non-canonical encodings of small-order points: each decodes (leniently) to a point for which the
  // signature satisfies the cofactored equation, so only the encoding rule refuses it as R.
  const nonCanonical: [string, Uint8Array, string][] = [
    ["identity-sign-bit", encodeY(1n, 1), "y = 1 (x = 0) with the sign bit set"],
    ["y-p-minus-1-sign-bit", encodeY(P - 1n, 1), "y = p − 1 (x = 0, order 2) with the sign bit set"],
    ["y-p-plus-1", encodeY(P + 1n, 0), "y = p + 1 ≥ p (the identity, unreduced)"],
    ["y-p-plus-1-sign-bit", encodeY(P + 1n, 1), "y = p + 1 ≥ p with the sign bit set"],
    ["y-p", encodeY(P, 0), "y = p ≥ p (y = 0 unreduced, a point of order 4)"],
    ["y-p-sign-bit", encodeY(P, 1), "y = p ≥ p with the sign bit set (the other point of order 4)"],
  ];
  for (const [name, enc, what] of nonCanonical) {
    add(
      `r-${name}`,
      A,
      cat(enc, le32(mod(challenge(enc, A) * a))),
      false,
      `R encodes ${what}: not canonical; S = k·a (k over these bytes) satisfies the cofactored equation for the point it would decode to`,
    );
  }
  for (const [name, enc, what] of nonCanonical) {
    add(
      `a-${name}`,
      enc,
      cat(rB, le32(r)),
      false,
      `A encodes ${what}: not canonical (and of small order); R = r·B, S = r satisfies the cofactored equation`,
    );
  }
  const noRoot = encodeY(2n, 0);
  add(
    "r-not-on-curve",
    A,
    cat(noRoot, le32(S)),
    false,
    "R has y = 2, for which x² has no square root: no point",
  );
  add("a-not-on-curve", noRoot, signature, false, "A has y = 2, for which x² has no square root: no point");
  add(
    "a-y-p-plus-3",
    encodeY(P + 3n, 0),
    signature,
    false,
    "A encodes y = p + 3 ≥ p (y = 3, a point of large order): not canonical",
  );

  // Wrong lengths.
  add("pk-31-bytes", A.subarray(0, 31), signature, false, "|pk| = 31");
  add("pk-33-bytes", cat(A, new Uint8Array(1)), signature, false, "|pk| = 33 (a zero byte appended)");
  add("pk-empty", new Uint8Array(0), signature, false, "|pk| = 0");
  add("sig-63-bytes", A, signature.subarray(0, 63), false, "|sig| = 63");
  add("sig-65-bytes", A, cat(signature, new Uint8Array(1)), false, "|sig| = 65 (a zero byte appended)");
  add("sig-empty", A, new Uint8Array(0), false, "|sig| = 0");
  return cases;
}

export type RelayUrlCase =
  | { readonly url: string; readonly valid: true; readonly normalized: string; readonly reason: string }
  | { readonly url: string; readonly valid: false; readonly rule: number; readonly reason: string };

const ok = (url: string, normalized: string, reason: string): RelayUrlCase => ({
  url,
  valid: true,
  normalized,
  reason,
});
const refused = (url: string, rule: number, reason: string): RelayUrlCase => ({
  url,
  valid: false,
  rule,
  reason,
});

/**
 * Relay URLs accepted (with the WHATWG serialization a client connects to) and refused (with the
 * number of the first §4.3 rule they break). Rules 5 and 6 have no case: no string that passes
 * rules 3 and 4 breaks them.
 */
export function buildRelayUrls(): RelayUrlCase[] {
  const base = "wss://relay.example/";
  const fill = (n: number, c: string) => c.repeat(n);
  return [
    ok("wss://relay.example", "wss://relay.example/", "the plain form; the parser adds the root path"),
    ok("wss://relay.example/", "wss://relay.example/", "a trailing slash: the root path written out"),
    ok("wss://relay.example/parley/", "wss://relay.example/parley/", "a path keeps its trailing slash"),
    ok("wss://relay.example//", "wss://relay.example//", "an empty path segment is kept"),
    ok("ws://localhost:8080", "ws://localhost:8080/", "ws: is permitted (for local testing)"),
    ok(
      "WSS://Relay.EXAMPLE/Path",
      "wss://relay.example/Path",
      "scheme and host in any case (lower-cased); the path keeps its case",
    ),
    ok("wss://relay.example:443", "wss://relay.example/", "the default port of wss: is dropped"),
    ok("ws://relay.example:80", "ws://relay.example/", "the default port of ws: is dropped"),
    ok("wss://relay.example:80", "wss://relay.example:80/", "a port other than the scheme's default is kept"),
    ok("wss://relay.example:0443", "wss://relay.example/", "leading zeros in the port (443, then dropped)"),
    ok("wss://relay.example:", "wss://relay.example/", "an empty port is no port"),
    ok("wss://relay.example:65535", "wss://relay.example:65535/", "the largest port"),
    ok("wss://[::1]:8443/parley", "wss://[::1]:8443/parley", "an IPv6 address in brackets, with a port"),
    ok(
      "wss://[::FFFF:127.0.0.1]",
      "wss://[::ffff:7f00:1]/",
      "an IPv6 address is serialized compressed, in lower case",
    ),
    ok("wss://127.0.0.1:8443", "wss://127.0.0.1:8443/", "an IPv4 address"),
    ok("wss://0x7f.1", "wss://127.0.0.1/", "a host ending in a number is read as IPv4, in any WHATWG form"),
    ok("wss://relay.example/?room=1", "wss://relay.example/?room=1", "a query is allowed"),
    ok("wss://relay.example?x", "wss://relay.example/?x", "a query straight after the host"),
    ok("wss://relay.example/?", "wss://relay.example/?", "an empty query is kept"),
    ok(
      "wss://@relay.example",
      "wss://relay.example/",
      "empty user-info: username and password are both empty",
    ),
    ok("wss://:@relay.example", "wss://relay.example/", "empty username and empty password"),
    ok(
      "wss://relay.example/%23",
      "wss://relay.example/%23",
      "a percent-encoded # is part of the path, not a fragment",
    ),
    ok(
      "wss://relay.example/p%41th",
      "wss://relay.example/p%41th",
      "percent-encoding in the path is kept as written",
    ),
    ok("wss://relay.example/%zz", "wss://relay.example/%zz", "a stray % in the path is kept as written"),
    ok("wss://%72elay.example", "wss://relay.example/", "percent-encoding in the host is decoded"),
    ok(
      "wss://r%C3%A9lay.example",
      "wss://xn--rlay-bpa.example/",
      "a percent-encoded UTF-8 host: the string is ASCII, the parser turns the host into punycode",
    ),
    ok(
      "wss://xn--rlay-bpa.example",
      "wss://xn--rlay-bpa.example/",
      "an international host name written in punycode",
    ),
    ok("wss://relay.example\\parley", "wss://relay.example/parley", "a backslash is read as a slash"),
    ok(
      "wss://\\relay.example",
      "wss://relay.example/",
      "rule 3 sees a character other than / after //; the parser then skips the backslash as a slash",
    ),
    ok("wss://relay.example/a/../b", "wss://relay.example/b", "dot segments are resolved"),
    ok(
      'wss://relay.example/"<>`{}|^',
      "wss://relay.example/%22%3C%3E%60%7B%7D|^",
      "printable ASCII that the parser percent-encodes in a path",
    ),
    ok(base + fill(235, "a"), base + fill(235, "a"), "exactly 255 bytes"),

    refused(base + fill(236, "a"), 1, "256 bytes"),
    refused(
      base + fill(118, "é"),
      1,
      "256 bytes in UTF-8 but 138 characters: the limit counts bytes, and rule 1 is checked before rule 2",
    ),
    refused("", 2, "the empty string"),
    refused(" wss://relay.example", 2, "a leading space (the WHATWG parser would strip it)"),
    refused("wss://relay.example\t", 2, "a tab (the parser would remove it)"),
    refused("wss://relay.\nexample", 2, "a line feed inside the host (the parser would remove it)"),
    refused("wss://rélay.example", 2, "a non-ASCII host name: it has to be written in punycode"),
    refused("wss://relay.example/\u202e", 2, "a bidi override (U+202E)"),
    refused("wss://relay.example/\u001b[31m", 2, "an escape sequence (ESC, U+001B)"),
    refused("wss://relay.example/\u007f", 2, "DEL (U+007F)"),
    refused("http://relay.example", 3, "scheme http:"),
    refused("https://relay.example", 3, "scheme https:"),
    refused("wsss://relay.example", 3, "scheme wsss:"),
    refused("wss:relay.example", 3, "no // (the parser would repair it)"),
    refused("wss:/relay.example", 3, "one / (the parser would repair it)"),
    refused("wss:///relay.example", 3, "three slashes (the parser would skip the empty host)"),
    refused("wss:\\\\relay.example", 3, "backslashes instead of // (the parser would read them as //)"),
    refused("wss://", 3, "nothing after //"),
    refused("wss://relay.example:65536", 4, "a port above 65535"),
    refused("wss://relay.example:port", 4, "a port that is not a number"),
    refused("wss://[::1", 4, "an unclosed IPv6 bracket"),
    refused("wss://::1", 4, "an IPv6 address without brackets"),
    refused("wss://[fe80::1%25eth0]", 4, "an IPv6 zone identifier"),
    refused("wss://256.0.0.1", 4, "an IPv4 address with a part above 255"),
    refused("wss://re%lay.example", 4, "a % in the host that starts no percent sequence"),
    refused("wss://relay.example%00", 4, "a percent-encoded NUL in the host"),
    refused("wss://a%2Fb", 4, "a percent-encoded / in the host"),
    refused("wss://:443", 4, "a port but no host"),
    refused("wss://?x", 4, "a query but no host"),
    refused("wss://#", 4, "no host (rule 4 comes before rule 8)"),
    refused("wss://user@relay.example", 7, "a username"),
    refused("wss://user:pass@relay.example", 7, "a username and a password"),
    refused("wss://:pass@relay.example", 7, "a password with an empty username"),
    refused("wss://user:@relay.example", 7, "a username with an empty password"),
    refused("wss://user@relay.example/#x", 7, "credentials and a fragment (rule 7 comes first)"),
    refused("wss://relay.example/#frag", 8, "a fragment"),
    refused("wss://relay.example/#", 8, "a bare # (the parsed fragment is empty)"),
    refused("wss://relay.example#", 8, "a bare # straight after the host"),
    refused("wss://relay.example/?q=#", 8, "a bare # after a query"),
  ];
}

/** The edge-case keys of vectors/kat.json, in the order they follow the transcript. */
export function buildEdgeCases(): { ed25519Strictness: Ed25519Case[]; relayUrls: RelayUrlCase[] } {
  return { ed25519Strictness: buildEd25519Strictness(), relayUrls: buildRelayUrls() };
}
