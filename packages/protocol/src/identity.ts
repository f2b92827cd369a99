import { concat, equalConstantTime, Reader, toHex, Writer, wipe } from "./_bytes.js";
import {
  dh,
  ed25519KeyPair,
  ed25519PublicKey,
  label,
  type RandomSource,
  sha256,
  sign,
  systemRandom,
  x25519KeyPair,
  x25519PublicKey,
} from "./crypto.js";
import { DecodeError } from "./errors.js";

/**
 * The public half of an identity: an Ed25519 signing key and a separate X25519 agreement key.
 *
 * The two are separate keys, not one converted into the other, so that no key is used by two
 * algorithms. The agreement key is bound to the signing key wherever it travels: the invitation and
 * the accept message are signed by the signing key, and the safety number covers both keys.
 */
export interface PublicIdentity {
  readonly signingKey: Uint8Array;
  readonly agreementKey: Uint8Array;
}

/** 64 bytes: signing key || agreement key. */
export function encodePublicIdentity(id: PublicIdentity): Uint8Array {
  return concat(id.signingKey, id.agreementKey);
}

export function decodePublicIdentity(bytes: Uint8Array): PublicIdentity {
  const r = new Reader(bytes, "public identity");
  const id = { signingKey: r.bytes(32, "signing key"), agreementKey: r.bytes(32, "agreement key") };
  r.end();
  return id;
}

export function samePublicIdentity(a: PublicIdentity, b: PublicIdentity): boolean {
  return equalConstantTime(encodePublicIdentity(a), encodePublicIdentity(b));
}

/**
 * A printable fingerprint of one identity: the first 16 bytes of
 * SHA-256("parley/v1/fingerprint" || signing key || agreement key), as 8 groups of 4 hex digits.
 *
 * @example
 * ```ts
 * fingerprint(alice.publicIdentity); // "3f2a 9c01 …"
 * ```
 */
export function fingerprint(id: PublicIdentity): string {
  const digest = sha256(concat(label("fingerprint"), id.signingKey, id.agreementKey)).subarray(0, 16);
  return toHex(digest).match(/.{4}/g)!.join(" ");
}

const IDENTITY_VERSION = 1;

/** A long-term identity with its secret keys. Keep it encrypted at rest; `wipe()` when done. */
export class Identity {
  readonly publicIdentity: PublicIdentity;

  private constructor(
    private readonly signingSecret: Uint8Array,
    private readonly agreementSecret: Uint8Array,
  ) {
    this.publicIdentity = {
      signingKey: ed25519PublicKey(signingSecret),
      agreementKey: x25519PublicKey(agreementSecret),
    };
  }

  /** Generates both key pairs from `random` (the system CSPRNG by default). */
  static generate(random: RandomSource = systemRandom): Identity {
    const signing = ed25519KeyPair(random);
    const agreement = x25519KeyPair(random);
    return new Identity(signing.secretKey, agreement.secretKey);
  }

  /** Signs with the Ed25519 identity key. */
  sign(message: Uint8Array): Uint8Array {
    return sign(this.signingSecret, message);
  }

  /** X25519 with the identity agreement key; low-order peers are rejected. */
  agree(publicKey: Uint8Array): Uint8Array {
    return dh(this.agreementSecret, publicKey);
  }

  /** 65 bytes: version (1) || Ed25519 seed || X25519 secret. Secret material: encrypt before storing. */
  serialize(): Uint8Array {
    return new Writer().u8(IDENTITY_VERSION).bytes(this.signingSecret).bytes(this.agreementSecret).finish();
  }

  static deserialize(bytes: Uint8Array): Identity {
    const r = new Reader(bytes, "identity");
    const version = r.u8("version");
    if (version !== IDENTITY_VERSION)
      throw new DecodeError(`identity: unsupported version ${version}`, "UNSUPPORTED_VERSION");
    const identity = new Identity(r.bytes(32, "signing secret"), r.bytes(32, "agreement secret"));
    r.end();
    return identity;
  }

  get fingerprint(): string {
    return fingerprint(this.publicIdentity);
  }

  /** Overwrites the secret keys; the object is unusable afterwards. */
  wipe(): void {
    wipe(this.signingSecret, this.agreementSecret);
  }
}
