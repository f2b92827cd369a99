import { describe, expect, it } from "vitest";
import {
  CHALLENGE_LENGTH,
  DEPOSIT_TOKEN_LENGTH,
  DecodeError,
  decodeFrame,
  depositTokenHash,
  encodeFrame,
  type Frame,
  isClientFrame,
  MailboxAction,
  MailboxKey,
  mailboxAddress,
  mailboxProofMessage,
  toHex,
  verifyMailboxProof,
} from "../src/index.js";

const address = new Uint8Array(32).fill(7);
const deposit: Frame = {
  type: "deposit",
  requestId: 42,
  address,
  clientMessageId: new Uint8Array(16).fill(1),
  ciphertext: new Uint8Array(100).fill(2),
};

function decodeCode(bytes: Uint8Array, maxCiphertext?: number): string {
  try {
    decodeFrame(bytes, maxCiphertext ? { maxCiphertext } : {});
  } catch (e) {
    expect(e).toBeInstanceOf(DecodeError);
    return (e as DecodeError).code;
  }
  throw new Error("expected a throw");
}

describe("relay frames", () => {
  it("lay out a deposit as version, type, request id, address, client id, ciphertext", () => {
    const bytes = encodeFrame(deposit);
    expect(bytes.length).toBe(1 + 1 + 4 + 32 + 16 + 100);
    expect(toHex(bytes.subarray(0, 6))).toBe("01030000002a");
    expect(decodeFrame(bytes)).toEqual(deposit);
    expect(isClientFrame(deposit)).toBe(true);
  });

  it("refuse another version, an unknown type, trailing or missing bytes", () => {
    const bytes = encodeFrame({ type: "ack", requestId: 1, address, messageId: new Uint8Array(16) });
    expect(decodeCode(Uint8Array.of(2, ...bytes.subarray(1)))).toBe("UNSUPPORTED_VERSION");
    expect(decodeCode(Uint8Array.of(1, 0x7f, 0, 0, 0, 0))).toBe("BAD_FRAME");
    expect(decodeCode(Uint8Array.of(...bytes, 0))).toBe("BAD_FRAME");
    expect(decodeCode(bytes.subarray(0, bytes.length - 1))).toBe("BAD_FRAME");
    expect(decodeCode(new Uint8Array(0))).toBe("BAD_FRAME");
  });

  it("refuse an empty or oversized ciphertext", () => {
    const bytes = encodeFrame(deposit);
    expect(decodeCode(bytes.subarray(0, bytes.length - 100))).toBe("BAD_FRAME");
    expect(decodeCode(bytes, 99)).toBe("TOO_LARGE");
    expect(decodeFrame(bytes, { maxCiphertext: 100 })).toEqual(deposit);
  });

  it("carry typed errors by name and refuse unknown error codes", () => {
    const err: Frame = { type: "error", requestId: 9, code: "RATE_LIMITED", message: "slow down" };
    const bytes = encodeFrame(err);
    expect(decodeFrame(bytes)).toEqual(err);
    const unknown = Uint8Array.from(bytes);
    unknown[7] = 200;
    expect(decodeCode(unknown)).toBe("BAD_FRAME");
  });

  it("§8.4 errors: code 11 is reserved (never sent), so a decoder refuses it; 1–10, 12 and 13 decode", () => {
    const bytes = encodeFrame({ type: "error", requestId: 9, code: "RATE_LIMITED", message: "" });
    const withCode = (code: number) => {
      const b = Uint8Array.from(bytes);
      b[6] = code >> 8;
      b[7] = code & 0xff;
      return b;
    };
    expect(decodeCode(withCode(11))).toBe("BAD_FRAME");
    for (const code of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]) {
      expect(decodeFrame(withCode(code)).type).toBe("error");
    }
  });

  it("refuse values that do not fit when encoding", () => {
    expect(() => encodeFrame({ ...deposit, requestId: -1 })).toThrow(RangeError);
    expect(() => encodeFrame({ ...deposit, address: new Uint8Array(31) })).toThrow(RangeError);
    expect(() => encodeFrame({ ...deposit, ciphertext: new Uint8Array(0) })).toThrow(RangeError);
  });
});

describe("mailbox ownership", () => {
  it("derives the address from the owner key, and proofs verify only for their action and challenge", () => {
    const key = MailboxKey.generate();
    expect(toHex(key.address)).toBe(toHex(mailboxAddress(key.publicKey)));
    const challenge = new Uint8Array(CHALLENGE_LENGTH).fill(3);
    const proof = key.prove(MailboxAction.subscribe, challenge);
    expect(verifyMailboxProof(key.publicKey, MailboxAction.subscribe, challenge, key.address, proof)).toBe(
      true,
    );
    expect(verifyMailboxProof(key.publicKey, MailboxAction.delete, challenge, key.address, proof)).toBe(
      false,
    );
    const otherChallenge = new Uint8Array(CHALLENGE_LENGTH).fill(4);
    expect(
      verifyMailboxProof(key.publicKey, MailboxAction.subscribe, otherChallenge, key.address, proof),
    ).toBe(false);
    const other = MailboxKey.generate();
    expect(verifyMailboxProof(other.publicKey, MailboxAction.subscribe, challenge, key.address, proof)).toBe(
      false,
    );
    expect(MailboxKey.deserialize(key.serialize()).addressHex).toBe(key.addressHex);
  });

  it("§8.3 a setDepositToken proof signs the token hash after the 88 bytes; no other action signs one", () => {
    const key = MailboxKey.generate();
    const challenge = new Uint8Array(CHALLENGE_LENGTH).fill(3);
    const hash = depositTokenHash(new Uint8Array(DEPOSIT_TOKEN_LENGTH).fill(9));
    const message = mailboxProofMessage(MailboxAction.setDepositToken, challenge, key.address, hash);
    expect(message.length).toBe(120);
    expect(message[23]).toBe(4);
    expect(toHex(message.subarray(88))).toBe(toHex(hash));
    const proof = key.prove(MailboxAction.setDepositToken, challenge, hash);
    const check = (h?: Uint8Array) =>
      verifyMailboxProof(key.publicKey, MailboxAction.setDepositToken, challenge, key.address, proof, h);
    expect(check(hash)).toBe(true);
    expect(check(new Uint8Array(32))).toBe(false);
    expect(check()).toBe(false); // never throws
    expect(() => mailboxProofMessage(MailboxAction.setDepositToken, challenge, key.address)).toThrow(
      RangeError,
    );
    expect(() => mailboxProofMessage(MailboxAction.subscribe, challenge, key.address, hash)).toThrow(
      RangeError,
    );
    expect(() => depositTokenHash(new Uint8Array(31))).toThrow(RangeError);
  });
});

describe("deposit-token frames (§8.2)", () => {
  it("lay out setDepositToken (134 bytes) and tokenDeposit (86 + C) in the table's order", () => {
    const set: Frame = {
      type: "setDepositToken",
      requestId: 5,
      address,
      tokenHash: new Uint8Array(32).fill(8),
      signature: new Uint8Array(64).fill(9),
    };
    const setBytes = encodeFrame(set);
    expect(setBytes.length).toBe(134);
    expect(toHex(setBytes.subarray(0, 6))).toBe("010800000005");
    expect(setBytes[38]).toBe(8);
    expect(setBytes[70]).toBe(9);
    expect(decodeFrame(setBytes)).toEqual(set);
    const dep: Frame = {
      type: "tokenDeposit",
      requestId: 6,
      address,
      token: new Uint8Array(32).fill(3),
      clientMessageId: new Uint8Array(16).fill(4),
      ciphertext: new Uint8Array(10).fill(5),
    };
    const depBytes = encodeFrame(dep);
    expect(depBytes.length).toBe(86 + 10);
    expect(toHex(depBytes.subarray(0, 6))).toBe("010900000006");
    expect([depBytes[38], depBytes[70], depBytes[86]]).toEqual([3, 4, 5]);
    expect(decodeFrame(depBytes)).toEqual(dep);
    expect(isClientFrame(dep) && isClientFrame(set)).toBe(true);
    // Strict like every frame: short, long, empty or over-cap ciphertext.
    expect(decodeCode(setBytes.subarray(0, 133))).toBe("BAD_FRAME");
    expect(decodeCode(Uint8Array.of(...setBytes, 0))).toBe("BAD_FRAME");
    expect(decodeCode(depBytes.subarray(0, 86))).toBe("BAD_FRAME");
    expect(decodeCode(depBytes, 9)).toBe("TOO_LARGE");
    expect(() => encodeFrame({ ...dep, token: new Uint8Array(31) })).toThrow(RangeError);
  });
});
