import { describe, expect, it } from "vitest";
import {
  CHALLENGE_LENGTH,
  DecodeError,
  decodeFrame,
  encodeFrame,
  type Frame,
  isClientFrame,
  MailboxAction,
  MailboxKey,
  mailboxAddress,
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
});
