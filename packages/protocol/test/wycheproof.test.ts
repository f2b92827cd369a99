// Every Wycheproof vector in ../shared/vectors/wycheproof/ (see its README), run through the package's own
// wrappers in src/crypto.ts: the library underneath is audited, these tests check that the wrappers
// neither break it nor relax it (low-order rejection, typed errors, length checks).
import { readFileSync } from "node:fs";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { describe, expect, it } from "vitest";
import { dh, hkdfSha256, open, seal, verify, x25519IsLowOrder, xopen, xseal } from "../src/crypto.js";
import { CryptoError, type CryptoErrorCode } from "../src/errors.js";
import {
  mlKemDecapsulate,
  mlKemEncapsulate,
  mlKemExpandSeed,
  mlKemPublicKey,
  mlKemPublicKeyProblem,
} from "../src/kem.js";
import { specVerify } from "./ed25519-spec.js";

const VECTORS_DIR = new URL("../../../../shared/vectors/wycheproof/", import.meta.url);

type Result = "valid" | "acceptable" | "invalid";

interface Vector {
  readonly tcId: number;
  readonly comment: string;
  readonly flags: readonly string[];
  readonly result: Result;
}

interface XdhVector extends Vector {
  readonly public: string;
  readonly private: string;
  readonly shared: string;
}

interface AeadVector extends Vector {
  readonly key: string;
  readonly iv: string;
  readonly aad: string;
  readonly msg: string;
  readonly ct: string;
  readonly tag: string;
}

interface HkdfVector extends Vector {
  readonly ikm: string;
  readonly salt: string;
  readonly info: string;
  readonly size: number;
  readonly okm: string;
}

interface VectorFile<V extends Vector> {
  readonly name: string;
  readonly numberOfTests: number;
  readonly vectors: readonly V[];
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null;

const isVector = (value: unknown): value is Vector =>
  isRecord(value) &&
  typeof value.tcId === "number" &&
  typeof value.comment === "string" &&
  Array.isArray(value.flags) &&
  (value.result === "valid" || value.result === "acceptable" || value.result === "invalid");

/** The ML-KEM files leave out an empty `comment` or `flags`; they are filled in before the check. */
const withDefaults = (test: unknown): unknown =>
  isRecord(test) ? { comment: "", flags: [], ...test } : test;

/**
 * Reads one Wycheproof file, checks its schema and the shape every test shares, and flattens its
 * groups. The algorithm-specific fields are trusted to match the schema the file declares.
 */
function loadVectors<V extends Vector>(name: string, schema: string): VectorFile<V> {
  const data: unknown = JSON.parse(readFileSync(new URL(name, VECTORS_DIR), "utf8"));
  if (!isRecord(data) || data.schema !== schema || typeof data.numberOfTests !== "number") {
    throw new Error(`${name}: not a Wycheproof file with schema ${schema}`);
  }
  if (!Array.isArray(data.testGroups)) throw new Error(`${name}: no testGroups`);
  const vectors = data.testGroups.flatMap((group: unknown) => {
    if (!isRecord(group) || !Array.isArray(group.tests)) throw new Error(`${name}: malformed test group`);
    const tests = group.tests.map(withDefaults);
    if (!tests.every(isVector)) throw new Error(`${name}: malformed test group`);
    return tests as V[];
  });
  return { name, numberOfTests: data.numberOfTests, vectors };
}

const caseName = (file: VectorFile<Vector>, v: Vector): string =>
  `${file.name} tcId ${v.tcId} [${v.result}]: ${v.comment || v.flags.join(", ") || "(no comment)"}`;

function hex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "hex"));
}

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A copy of `bytes` with the lowest bit of byte `index` flipped. */
function flipBit(bytes: Uint8Array, index: number): Uint8Array {
  const out = bytes.slice();
  out[index]! ^= 1;
  return out;
}

/** Runs `fn` and asserts it throws a CryptoError with exactly `code`. */
function expectCryptoError(fn: () => unknown, code: CryptoErrorCode): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected CryptoError("${code}")`).toBeInstanceOf(CryptoError);
  expect((caught as CryptoError).code).toBe(code);
}

/** One generated case per vector, plus a check that none was lost on the way. */
function describeVectors<V extends Vector>(title: string, file: VectorFile<V>, check: (v: V) => void): void {
  describe(title, () => {
    it(`${file.name} generates one case per vector (numberOfTests = ${file.numberOfTests})`, () => {
      expect(file.vectors).toHaveLength(file.numberOfTests);
    });
    for (const v of file.vectors) it(caseName(file, v), () => check(v));
  });
}

// --- X25519 -----------------------------------------------------------------------------------

const x25519File = loadVectors<XdhVector>("x25519_test.json", "xdh_comp_schema_v1.json");

/** Low-order public keys give an all-zero shared secret, which `dh` must refuse (RFC 7748 §6.1). */
const LOW_ORDER_FLAGS = ["LowOrderPublic", "ZeroSharedSecret"];
const EXPECTED_LOW_ORDER_REJECTIONS = 31;

type XdhExpectation = "shared" | "low-order" | "reject";

/**
 * What `dh` must do with a vector. Wycheproof marks low-order points "acceptable" because RFC 7748
 * permits returning zero; Parley rejects them. Other acceptable cases (twist points, non-canonical
 * public keys) are computed as the RFC says.
 */
function xdhExpectation(v: XdhVector): XdhExpectation {
  if (v.result === "invalid") return "reject";
  if (v.flags.some((flag) => LOW_ORDER_FLAGS.includes(flag))) return "low-order";
  return "shared";
}

const isAllZeroHex = (s: string): boolean => /^(00)+$/.test(s);

/** Runs `dh`; returns "low-order" when it refused with CryptoError("LOW_ORDER"), else the hex result. */
function runDh(v: XdhVector): string {
  try {
    return toHex(dh(hex(v.private), hex(v.public)));
  } catch (error) {
    if (error instanceof CryptoError && error.code === "LOW_ORDER") return "low-order";
    throw error;
  }
}

function checkX25519(v: XdhVector): void {
  const expectation = xdhExpectation(v);
  // The flags and the expected output must agree: low-order exactly when the secret is all zero.
  expect(isAllZeroHex(v.shared)).toBe(expectation === "low-order");
  switch (expectation) {
    case "shared":
      expect(toHex(dh(hex(v.private), hex(v.public)))).toBe(v.shared);
      break;
    case "low-order":
      expect(v.result).toBe("acceptable");
      expectCryptoError(() => dh(hex(v.private), hex(v.public)), "LOW_ORDER");
      break;
    case "reject":
      expect(() => dh(hex(v.private), hex(v.public))).toThrow(CryptoError);
      break;
  }
}

describeVectors("Wycheproof X25519 through dh()", x25519File, checkX25519);

describe("Wycheproof X25519 low-order rejections", () => {
  it(`dh() rejects exactly the ${EXPECTED_LOW_ORDER_REJECTIONS} low-order / all-zero cases`, () => {
    const rejected = x25519File.vectors.filter((v) => runDh(v) === "low-order").map((v) => v.tcId);
    const flagged = x25519File.vectors.filter((v) => xdhExpectation(v) === "low-order").map((v) => v.tcId);
    expect(rejected).toHaveLength(EXPECTED_LOW_ORDER_REJECTIONS);
    expect(rejected).toEqual(flagged);
  });

  it("x25519IsLowOrder() flags exactly the public keys that dh() refuses (PROTOCOL.md §1.2)", () => {
    for (const v of x25519File.vectors.filter((v) => v.result !== "invalid")) {
      expect(x25519IsLowOrder(hex(v.public)), `tcId ${v.tcId}`).toBe(xdhExpectation(v) === "low-order");
    }
  });
});

// --- Ed25519 ----------------------------------------------------------------------------------

interface EddsaVector extends Vector {
  readonly pk: string;
  readonly msg: string;
  readonly sig: string;
}

/** The EdDSA file keeps each group's public key on the group; it is copied onto its tests. */
function loadEddsa(name: string): VectorFile<EddsaVector> {
  const file = loadVectors<EddsaVector>(name, "eddsa_verify_schema_v1.json");
  const data = JSON.parse(readFileSync(new URL(name, VECTORS_DIR), "utf8")) as {
    testGroups: { publicKey: { pk: string }; tests: { tcId: number }[] }[];
  };
  const keys = new Map(data.testGroups.flatMap((g) => g.tests.map((t) => [t.tcId, g.publicKey.pk] as const)));
  return { ...file, vectors: file.vectors.map((v) => ({ ...v, pk: keys.get(v.tcId)! })) };
}

/**
 * §1.2 Verify against Wycheproof: `verify` (the code) and `specVerify` (the spec read literally,
 * test/ed25519-spec.ts) must both give Wycheproof's verdict; a valid signature with a flipped bit
 * in R, in S or in the message must fail.
 */
function checkEd25519(v: EddsaVector): void {
  expect(v.result, "this file has no 'acceptable' cases").not.toBe("acceptable");
  const [pk, msg, sig] = [hex(v.pk), hex(v.msg), hex(v.sig)];
  expect(verify(pk, msg, sig)).toBe(v.result === "valid");
  expect(specVerify(pk, msg, sig)).toBe(v.result === "valid");
  if (v.result === "valid") {
    expect(verify(pk, msg, flipBit(sig, 0))).toBe(false);
    expect(verify(pk, msg, flipBit(sig, 32))).toBe(false);
    if (msg.length > 0) expect(verify(pk, flipBit(msg, 0), sig)).toBe(false);
  }
}

describeVectors(
  "Wycheproof Ed25519 through verify() and the literal §1.2 reading",
  loadEddsa("ed25519_test.json"),
  checkEd25519,
);

// --- ChaCha20-Poly1305 and XChaCha20-Poly1305 -------------------------------------------------

interface Aead {
  readonly seal: (key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array) => Uint8Array;
  readonly open: (key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array) => Uint8Array;
}

/** The CryptoError code the wrappers give for each kind of invalid AEAD vector. */
const AEAD_INVALID_CODES: Readonly<Record<string, CryptoErrorCode>> = {
  InvalidNonceSize: "BAD_LENGTH",
  ModifiedTag: "AUTH",
};

function aeadInvalidCode(v: AeadVector): CryptoErrorCode {
  const codes = new Set(v.flags.flatMap((flag) => AEAD_INVALID_CODES[flag] ?? []));
  if (codes.size !== 1) throw new Error(`tcId ${v.tcId}: no single expected error for flags ${v.flags}`);
  return [...codes][0]!;
}

function checkAead(aead: Aead, v: AeadVector): void {
  const key = hex(v.key);
  const iv = hex(v.iv);
  const aad = hex(v.aad);
  const msg = hex(v.msg);
  const ct = hex(v.ct);
  const sealed = concatBytes(ct, hex(v.tag));

  if (v.result !== "valid") {
    const code = aeadInvalidCode(v);
    expectCryptoError(() => aead.open(key, iv, sealed, aad), code);
    if (code === "BAD_LENGTH") expectCryptoError(() => aead.seal(key, iv, msg, aad), code);
    return;
  }

  expect(toHex(aead.seal(key, iv, msg, aad))).toBe(v.ct + v.tag);
  expect(toHex(aead.open(key, iv, sealed, aad))).toBe(v.msg);

  // Any single flipped bit, in the tag, the ciphertext or the associated data, must fail to open.
  expectCryptoError(() => aead.open(key, iv, flipBit(sealed, ct.length), aad), "AUTH");
  if (ct.length > 0) expectCryptoError(() => aead.open(key, iv, flipBit(sealed, 0), aad), "AUTH");
  if (aad.length > 0) expectCryptoError(() => aead.open(key, iv, sealed, flipBit(aad, 0)), "AUTH");
}

describeVectors(
  "Wycheproof ChaCha20-Poly1305 through seal()/open()",
  loadVectors<AeadVector>("chacha20_poly1305_test.json", "aead_test_schema_v1.json"),
  (v) => checkAead({ seal, open }, v),
);

describeVectors(
  "Wycheproof XChaCha20-Poly1305 through xseal()/xopen()",
  loadVectors<AeadVector>("xchacha20_poly1305_test.json", "aead_test_schema_v1.json"),
  (v) => checkAead({ seal: xseal, open: xopen }, v),
);

// --- HKDF-SHA256 ------------------------------------------------------------------------------

function checkHkdf(v: HkdfVector): void {
  const derive = () => hkdfSha256(hex(v.ikm), hex(v.salt), hex(v.info), v.size);
  if (v.result === "invalid") {
    expect(v.flags).toContain("SizeTooLarge");
    expectCryptoError(derive, "BAD_LENGTH");
    return;
  }
  expect(toHex(derive())).toBe(v.okm);
}

describeVectors(
  "Wycheproof HKDF-SHA256 through hkdfSha256()",
  loadVectors<HkdfVector>("hkdf_sha256_test.json", "hkdf_test_schema_v1.json"),
  checkHkdf,
);

// --- ML-KEM-768 (FIPS 203) --------------------------------------------------------------------
// Through src/kem.ts, whose seed-based key pairs, encapsulation and decapsulation the hybrid
// handshake uses (PROTOCOL.md §1.2, §5.5).

interface MlKemKeygenVector extends Vector {
  readonly seed: string;
  readonly ek: string;
  readonly dk: string;
}

interface MlKemEncapsVector extends Vector {
  readonly m: string;
  readonly ek: string;
  readonly c: string;
  readonly K: string;
}

interface MlKemDecapsVector extends Vector {
  readonly seed: string;
  readonly ek?: string;
  readonly c: string;
  readonly K: string;
}

/** A random source that fails the test if anything is drawn. */
const noDraws = (): Uint8Array => {
  throw new Error("a refused call drew from the random source");
};

/** FIPS 203 Algorithm 16 from the 64-byte seed d || z: both keys, and the public key alone. */
function checkMlKemKeygen(v: MlKemKeygenVector): void {
  expect(v.result).toBe("valid");
  const seed = hex(v.seed);
  const { publicKey, decapsulationKey } = mlKemExpandSeed(seed);
  expect(toHex(publicKey)).toBe(v.ek);
  expect(toHex(decapsulationKey)).toBe(v.dk);
  expect(toHex(mlKemPublicKey(seed))).toBe(v.ek);
  expect(mlKemPublicKeyProblem(publicKey)).toBeUndefined();
  // Another seed (one bit of d, or of z) gives another key pair.
  expect(toHex(mlKemPublicKey(flipBit(seed, 0)))).not.toBe(v.ek);
  expect(toHex(mlKemExpandSeed(flipBit(seed, 32)).decapsulationKey)).not.toBe(v.dk);
}

describeVectors(
  "§1.2 Wycheproof ML-KEM-768 key generation from a seed through mlKemExpandSeed()",
  loadVectors<MlKemKeygenVector>("mlkem_768_keygen_seed_test.json", "mlkem_keygen_seed_test_schema.json"),
  checkMlKemKeygen,
);

const mlKemEncapsFile = loadVectors<MlKemEncapsVector>(
  "mlkem_768_encaps_test.json",
  "mlkem_encaps_test_schema.json",
);

/**
 * FIPS 203 Algorithm 17 with the vector's m. Invalid encapsulation keys (a wrong length, or a
 * coefficient not below q: the §7.2 modulus check) are refused with CryptoError BAD_KEY before
 * anything is drawn, by the wrapper's own check.
 */
function checkMlKemEncaps(v: MlKemEncapsVector): void {
  const ek = hex(v.ek);
  if (v.result === "invalid") {
    expect(mlKemPublicKeyProblem(ek)).toBeDefined();
    expectCryptoError(() => mlKemEncapsulate(ek, noDraws), "BAD_KEY");
    if (ek.length === 1184) expect(mlKemPublicKeyProblem(ek)).toContain("FIPS 203 §7.2");
    return;
  }
  expect(mlKemPublicKeyProblem(ek)).toBeUndefined();
  const { ciphertext, sharedSecret } = mlKemEncapsulate(ek, (n) => hex(v.m).subarray(0, n));
  expect(toHex(ciphertext)).toBe(v.c);
  expect(toHex(sharedSecret)).toBe(v.K);
}

describeVectors(
  "§1.2 Wycheproof ML-KEM-768 encapsulation through mlKemEncapsulate(): invalid keys refused (BAD_KEY) before any draw",
  mlKemEncapsFile,
  checkMlKemEncaps,
);

describe("§1.2 Wycheproof ML-KEM-768 encapsulation-key checks", () => {
  it("mlKemPublicKeyProblem() refuses exactly the invalid keys, each of the 1184-byte ones for its modulus (FIPS 203 §7.2)", () => {
    const refused = mlKemEncapsFile.vectors.filter((v) => mlKemPublicKeyProblem(hex(v.ek)) !== undefined);
    expect(refused.map((v) => v.tcId)).toEqual(
      mlKemEncapsFile.vectors.filter((v) => v.result === "invalid").map((v) => v.tcId),
    );
    const modulus = refused.filter((v) => hex(v.ek).length === 1184);
    // The CCTV ModulusOverflow group (12) and the FIPS 203 group's "Public key not reduced" (100).
    expect(modulus).toHaveLength(112);
    expect(refused).toHaveLength(132);
    expect(modulus.filter((v) => v.flags.includes("ModulusOverflow"))).toHaveLength(12);
  });

  it("the wrapper's own modulus check agrees with the library's on every vector", () => {
    for (const v of mlKemEncapsFile.vectors) {
      const ek = hex(v.ek);
      let libraryRefuses = false;
      try {
        ml_kem768.encapsulate(ek, hex(v.m));
      } catch {
        libraryRefuses = true;
      }
      expect(mlKemPublicKeyProblem(ek) !== undefined, `tcId ${v.tcId}`).toBe(libraryRefuses);
    }
  });
});

/** The expected refusal of an invalid decapsulation vector: its seed's or its ciphertext's length. */
function mlKemDecapsInvalidCode(v: MlKemDecapsVector): CryptoErrorCode {
  if (hex(v.seed).length !== 64) return "BAD_KEY";
  if (hex(v.c).length !== 1088) return "BAD_LENGTH";
  throw new Error(`tcId ${v.tcId}: an invalid vector with a well-formed seed and ciphertext`);
}

/**
 * FIPS 203 Algorithm 18 with the key pair of the seed. A modified ciphertext is still "valid": it
 * decapsulates to the implicit-rejection secret the vector gives; flipping a bit of any ciphertext
 * gives another secret again.
 */
function checkMlKemDecaps(v: MlKemDecapsVector): void {
  const seed = hex(v.seed);
  const c = hex(v.c);
  if (v.result === "invalid") {
    expectCryptoError(() => mlKemDecapsulate(seed, c), mlKemDecapsInvalidCode(v));
    return;
  }
  if (v.ek !== undefined) expect(toHex(mlKemPublicKey(seed))).toBe(v.ek);
  expect(toHex(mlKemDecapsulate(seed, c))).toBe(v.K);
  expect(toHex(mlKemDecapsulate(seed, flipBit(c, c.length - 1)))).not.toBe(v.K);
}

describeVectors(
  "§1.2 Wycheproof ML-KEM-768 decapsulation through mlKemDecapsulate()",
  loadVectors<MlKemDecapsVector>("mlkem_768_test.json", "mlkem_test_schema.json"),
  checkMlKemDecaps,
);
