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
/** A deposit token (random, chosen by the mailbox owner) and the hash a relay keeps of it. */
export const DEPOSIT_TOKEN_LENGTH = 32;

/**
 * A mailbox address: SHA-256("parley/v1/mailbox-address" || owner public key). Deriving the
 * address from the owner key means nobody can create a mailbox at someone else's address, and the
 * relay can check the binding without storing anything else.
 */
export function mailboxAddress(ownerPublicKey: Uint8Array): Uint8Array {
  if (ownerPublicKey.length !== 32) throw new RangeError("ownerPublicKey: expected 32 bytes");
  return sha256(concat(label("mailboxAddress"), ownerPublicKey));
}

/**
 * The hash a relay keeps of a mailbox's deposit token: SHA-256("parley/v1/deposit-token" || token).
 * A relay that keeps only this cannot deposit with the token after a leak of its storage.
 */
export function depositTokenHash(token: Uint8Array): Uint8Array {
  if (token.length !== DEPOSIT_TOKEN_LENGTH) throw new RangeError("deposit token: expected 32 bytes");
  return sha256(concat(label("depositToken"), token));
}

/** What a mailbox-ownership proof authorises. Part of the signed bytes, so proofs do not transfer. */
export const MailboxAction = { create: 1, subscribe: 2, delete: 3, setDepositToken: 4 } as const;
export type MailboxAction = (typeof MailboxAction)[keyof typeof MailboxAction];

/**
 * The bytes an owner signs: label || action (u8) || server challenge (32) || address (32), and for
 * `setDepositToken` (only) the token hash it sets (32), so that the proof authorises that hash alone.
 */
export function mailboxProofMessage(
  action: MailboxAction,
  challenge: Uint8Array,
  address: Uint8Array,
  tokenHash?: Uint8Array,
): Uint8Array {
  if (challenge.length !== CHALLENGE_LENGTH) throw new RangeError("challenge: expected 32 bytes");
  if (address.length !== MAILBOX_ADDRESS_LENGTH) throw new RangeError("address: expected 32 bytes");
  if (action === MailboxAction.setDepositToken) {
    if (tokenHash?.length !== DEPOSIT_TOKEN_LENGTH)
      throw new RangeError("tokenHash: a setDepositToken proof signs a 32-byte token hash");
    return concat(label("mailboxProof"), Uint8Array.of(action), challenge, address, tokenHash);
  }
  if (tokenHash !== undefined) throw new RangeError("tokenHash: only a setDepositToken proof signs one");
  return concat(label("mailboxProof"), Uint8Array.of(action), challenge, address);
}

/**
 * Relay side: checks an ownership proof for `action` against this connection's challenge (and,
 * for `setDepositToken`, the token hash of the frame). Never throws: bad input is `false`.
 */
export function verifyMailboxProof(
  ownerPublicKey: Uint8Array,
  action: MailboxAction,
  challenge: Uint8Array,
  address: Uint8Array,
  signature: Uint8Array,
  tokenHash?: Uint8Array,
): boolean {
  let message: Uint8Array;
  try {
    message = mailboxProofMessage(action, challenge, address, tokenHash);
  } catch {
    return false;
  }
  return verify(ownerPublicKey, message, signature);
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

  /**
   * Signs an ownership proof for `action` over the relay's per-connection challenge (and, for
   * `setDepositToken`, over the token hash it sets).
   */
  prove(action: MailboxAction, challenge: Uint8Array, tokenHash?: Uint8Array): Uint8Array {
    return sign(this.secretKey, mailboxProofMessage(action, challenge, this.address, tokenHash));
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
