// ML-KEM-768 (FIPS 203), the post-quantum half of the hybrid handshake (PROTOCOL.md §1.2, §5.5).
// The primitive is @noble/post-quantum's; these wrappers add what Parley requires of every
// primitive: lengths checked on entry with typed errors, the encapsulation-key modulus check of
// FIPS 203 §7.2 done here as well as in the library (so it cannot silently go missing), draws from
// the injected random source in a fixed order, and temporaries wiped.
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { checkBytes, concat, wipe } from "./_bytes.js";
import { type RandomSource, systemRandom } from "./crypto.js";
import { CryptoError } from "./errors.js";

/** An ML-KEM-768 encapsulation key `ek`: 384 × 3 bytes of t̂, then the 32-byte ρ (FIPS 203 §8). */
export const ML_KEM_PUBLIC_KEY_LENGTH = 1184;
/** An ML-KEM-768 ciphertext. */
export const ML_KEM_CIPHERTEXT_LENGTH = 1088;
/** The key-generation seed d || z (FIPS 203 Algorithm 16): the whole secret, 64 bytes. */
export const ML_KEM_SEED_LENGTH = 64;
/** The shared secret K. */
export const ML_KEM_SHARED_SECRET_LENGTH = 32;
/** The ML-KEM modulus q. */
const Q = 3329;
/** The bytes of ek that encode the 768 coefficients of t̂ (ByteEncode12, 12 bits each). */
const ENCODED_T_LENGTH = 384 * 3;

/**
 * An ML-KEM-768 key pair kept as its seed: the 2400-byte decapsulation key is expanded from the
 * seed whenever it is needed (FIPS 203 §3.3 allows storing the seed in its place).
 */
export interface MlKemKeyPair {
  /** d || z (64 bytes). Secret. */
  readonly seed: Uint8Array;
  /** The encapsulation key ek (1184 bytes). */
  readonly publicKey: Uint8Array;
}

/**
 * Why `publicKey` is not an ML-KEM-768 encapsulation key, or undefined when it is: a length other
 * than 1184 bytes, or a coefficient of t̂ not below q = 3329, which is the FIPS 203 §7.2 modulus
 * check (ByteEncode12(ByteDecode12(ek[0 : 1152])) = ek[0 : 1152] holds exactly when every 12-bit
 * value is below q). Public data only: not constant time.
 *
 * @example
 * ```ts
 * const problem = mlKemPublicKeyProblem(ek); // "coefficient 17 is 4095, not below q = 3329"
 * ```
 */
export function mlKemPublicKeyProblem(publicKey: Uint8Array): string | undefined {
  if (publicKey.length !== ML_KEM_PUBLIC_KEY_LENGTH)
    return `expected ${ML_KEM_PUBLIC_KEY_LENGTH} bytes, got ${publicKey.length}`;
  // ByteDecode12 (FIPS 203 Algorithm 6): three bytes hold two little-endian 12-bit values.
  for (let i = 0; i < ENCODED_T_LENGTH; i += 3) {
    const b0 = publicKey[i]!;
    const b1 = publicKey[i + 1]!;
    const b2 = publicKey[i + 2]!;
    const low = b0 | ((b1 & 0x0f) << 8);
    const high = (b1 >> 4) | (b2 << 4);
    if (low >= Q) return `coefficient ${(i / 3) * 2} is ${low}, not below q = ${Q} (FIPS 203 §7.2)`;
    if (high >= Q) return `coefficient ${(i / 3) * 2 + 1} is ${high}, not below q = ${Q} (FIPS 203 §7.2)`;
  }
  return undefined;
}

/**
 * ML-KEM.KeyGen_internal(d, z) (FIPS 203 Algorithm 16) of a 64-byte seed d || z: the encapsulation
 * key and the 2400-byte decapsulation key. A seed that is not 64 bytes is CryptoError("BAD_KEY").
 * The caller wipes `decapsulationKey` when done.
 */
export function mlKemExpandSeed(seed: Uint8Array): { publicKey: Uint8Array; decapsulationKey: Uint8Array } {
  if (!(seed instanceof Uint8Array) || seed.length !== ML_KEM_SEED_LENGTH) {
    throw new CryptoError(
      "BAD_KEY",
      `ML-KEM-768 seed: expected ${ML_KEM_SEED_LENGTH} bytes, got ${seed?.length}`,
    );
  }
  const { publicKey, secretKey } = ml_kem768.keygen(seed);
  return { publicKey, decapsulationKey: secretKey };
}

/**
 * A fresh ML-KEM-768 key pair (FIPS 203 Algorithm 19): draws d (32 bytes), then z (32 bytes).
 *
 * @example
 * ```ts
 * const { seed, publicKey } = mlKemKeyPair();
 * ```
 */
export function mlKemKeyPair(random: RandomSource = systemRandom): MlKemKeyPair {
  const d = checkBytes("random(32)", random(32), 32);
  const z = checkBytes("random(32)", random(32), 32);
  const seed = concat(d, z);
  const { publicKey, decapsulationKey } = mlKemExpandSeed(seed);
  wipe(decapsulationKey);
  return { seed, publicKey };
}

/** The encapsulation key of a seed (FIPS 203 Algorithm 16). */
export function mlKemPublicKey(seed: Uint8Array): Uint8Array {
  const { publicKey, decapsulationKey } = mlKemExpandSeed(seed);
  wipe(decapsulationKey);
  return publicKey;
}

/**
 * ML-KEM.Encaps (FIPS 203 Algorithm 20) to `publicKey`: the 1088-byte ciphertext and the 32-byte
 * shared secret. The key is checked first (length and the §7.2 modulus check, CryptoError
 * "BAD_KEY", nothing drawn); then the 32-byte message m is drawn from `random`.
 *
 * @example
 * ```ts
 * const { ciphertext, sharedSecret } = mlKemEncapsulate(ek);
 * ```
 */
export function mlKemEncapsulate(
  publicKey: Uint8Array,
  random: RandomSource = systemRandom,
): { ciphertext: Uint8Array; sharedSecret: Uint8Array } {
  const problem = mlKemPublicKeyProblem(publicKey);
  if (problem) throw new CryptoError("BAD_KEY", `ML-KEM-768 encapsulation key: ${problem}`);
  const m = checkBytes("random(32)", random(32), 32);
  try {
    // noble repeats the modulus check; a throw here would be a disagreement with ours.
    const { cipherText, sharedSecret } = ml_kem768.encapsulate(publicKey, m);
    const copy = Uint8Array.from(sharedSecret);
    wipe(sharedSecret);
    return { ciphertext: cipherText, sharedSecret: copy };
  } catch (e) {
    throw new CryptoError("BAD_KEY", `ML-KEM-768 encapsulation key refused: ${(e as Error).message}`);
  } finally {
    wipe(m);
  }
}

/**
 * ML-KEM.Decaps (FIPS 203 Algorithm 21) of `ciphertext` with the key pair of `seed`. A ciphertext
 * that is not 1088 bytes is CryptoError("BAD_LENGTH"), a seed that is not 64 bytes "BAD_KEY". Any
 * other ciphertext gives a shared secret: an altered one gives the implicit-rejection value
 * J(z || c), which matches nothing the sender holds, so the failure shows up where the secret is
 * used (an AEAD tag), never as an error here.
 *
 * @example
 * ```ts
 * const sharedSecret = mlKemDecapsulate(seed, ciphertext);
 * ```
 */
export function mlKemDecapsulate(seed: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return mlKemDecapsulateWithKey(seed, ciphertext).sharedSecret;
}

/**
 * {@link mlKemDecapsulate}, also returning the encapsulation key of the seed, which the key
 * generation it runs computes anyway (the handshake needs both: one key generation, not two).
 */
export function mlKemDecapsulateWithKey(
  seed: Uint8Array,
  ciphertext: Uint8Array,
): { sharedSecret: Uint8Array; publicKey: Uint8Array } {
  if (!(ciphertext instanceof Uint8Array) || ciphertext.length !== ML_KEM_CIPHERTEXT_LENGTH) {
    throw new CryptoError(
      "BAD_LENGTH",
      `ML-KEM-768 ciphertext: expected ${ML_KEM_CIPHERTEXT_LENGTH} bytes, got ${ciphertext?.length}`,
    );
  }
  const { publicKey, decapsulationKey } = mlKemExpandSeed(seed);
  try {
    const sharedSecret = ml_kem768.decapsulate(ciphertext, decapsulationKey);
    const copy = Uint8Array.from(sharedSecret);
    wipe(sharedSecret);
    return { sharedSecret: copy, publicKey };
  } finally {
    wipe(decapsulationKey);
  }
}
