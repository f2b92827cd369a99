import { concat, Reader, toHex, Writer, wipe } from "./_bytes.js";
import {
  ed25519KeyPair,
  ed25519PublicKey,
  label,
  type RandomSource,
  sha256,
  sign,
  systemRandom,
  verify,
} from "./crypto.js";
import { DecodeError } from "./errors.js";

export const MAILBOX_ADDRESS_LENGTH = 32;
export const CHALLENGE_LENGTH = 32;

/**
 * A mailbox address: SHA-256("parley/v1/mailbox-address" || owner public key). Deriving the
 * address from the owner key means nobody can create a mailbox at someone else's address, and the
 * relay can check the binding without storing anything else.
 */
export function mailboxAddress(ownerPublicKey: Uint8Array): Uint8Array {
  if (ownerPublicKey.length !== 32) throw new RangeError("ownerPublicKey: expected 32 bytes");
  return sha256(concat(label("mailboxAddress"), ownerPublicKey));
}

/** What a mailbox-ownership proof authorises. Part of the signed bytes, so proofs do not transfer. */
export const MailboxAction = { create: 1, subscribe: 2, delete: 3 } as const;
export type MailboxAction = (typeof MailboxAction)[keyof typeof MailboxAction];

/** The bytes an owner signs: label || action (u8) || server challenge (32) || address (32). */
export function mailboxProofMessage(
  action: MailboxAction,
  challenge: Uint8Array,
  address: Uint8Array,
): Uint8Array {
  if (challenge.length !== CHALLENGE_LENGTH) throw new RangeError("challenge: expected 32 bytes");
  if (address.length !== MAILBOX_ADDRESS_LENGTH) throw new RangeError("address: expected 32 bytes");
  return concat(label("mailboxProof"), Uint8Array.of(action), challenge, address);
}

/** Relay side: checks an ownership proof for `action` against this connection's challenge. */
export function verifyMailboxProof(
  ownerPublicKey: Uint8Array,
  action: MailboxAction,
  challenge: Uint8Array,
  address: Uint8Array,
  signature: Uint8Array,
): boolean {
  return verify(ownerPublicKey, mailboxProofMessage(action, challenge, address), signature);
}

/**
 * A mailbox owner key: a fresh Ed25519 key per mailbox, never the identity key, so the relay
 * cannot link mailboxes to an identity or to each other.
 */
export class MailboxKey {
  readonly publicKey: Uint8Array;
  readonly address: Uint8Array;

  private constructor(private readonly secretKey: Uint8Array) {
    this.publicKey = ed25519PublicKey(secretKey);
    this.address = mailboxAddress(this.publicKey);
  }

  static generate(random: RandomSource = systemRandom): MailboxKey {
    return new MailboxKey(ed25519KeyPair(random).secretKey);
  }

  /** Signs an ownership proof for `action` over the relay's per-connection challenge. */
  prove(action: MailboxAction, challenge: Uint8Array): Uint8Array {
    return sign(this.secretKey, mailboxProofMessage(action, challenge, this.address));
  }

  get addressHex(): string {
    return toHex(this.address);
  }

  /** 33 bytes: version (1) || Ed25519 seed. Secret: encrypt before storing. */
  serialize(): Uint8Array {
    return new Writer().u8(1).bytes(this.secretKey).finish();
  }

  static deserialize(bytes: Uint8Array): MailboxKey {
    const r = new Reader(bytes, "mailbox key");
    const version = r.u8("version");
    if (version !== 1)
      throw new DecodeError(`mailbox key: unsupported version ${version}`, "UNSUPPORTED_VERSION");
    const key = new MailboxKey(r.bytes(32, "secret key"));
    r.end();
    return key;
  }

  wipe(): void {
    wipe(this.secretKey);
  }
}
