import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import {
  BLOB_TOKEN_LENGTH,
  blobSizeProblem,
  blobTokenHash,
  CHALLENGE_LENGTH,
  DEPOSIT_TOKEN_LENGTH,
  DecodeError,
  decodeFrame,
  depositTokenHash,
  encodeFrame,
  type Frame,
  fromHex,
  isClientFrame,
  MAX_BLOB_READERS,
  MailboxAction,
  MailboxKey,
  mailboxAddress,
  mailboxProofMessage,
  SEALED_CHUNK_BYTES,
  sealedChunkLength,
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

  it("§8.4 errors: code 11 is reserved (never sent), so a decoder refuses it; 1–10 and 12–14 decode", () => {
    const bytes = encodeFrame({ type: "error", requestId: 9, code: "RATE_LIMITED", message: "" });
    const withCode = (code: number) => {
      const b = Uint8Array.from(bytes);
      b[6] = code >> 8;
      b[7] = code & 0xff;
      return b;
    };
    expect(decodeCode(withCode(11))).toBe("BAD_FRAME");
    for (const code of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14]) {
      expect(decodeFrame(withCode(code)).type).toBe("error");
    }
    expect(decodeFrame(withCode(14))).toMatchObject({ code: "UNKNOWN_BLOB" });
    expect(decodeCode(withCode(15))).toBe("BAD_FRAME");
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

describe("blob frames (§8.2, §14.2)", () => {
  const blobId = new Uint8Array(32).fill(0xb1);
  const writeToken = new Uint8Array(32).fill(0x77);
  const hash = (n: number) => new Uint8Array(32).fill(n);
  const create = (over: Partial<Extract<Frame, { type: "createBlob" }>> = {}): Frame => ({
    type: "createBlob",
    requestId: 11,
    blobId,
    writeTokenHash: hash(1),
    chunkCount: 2,
    sealedSize: SEALED_CHUNK_BYTES + 17,
    readTokenHashes: [hash(2), hash(3)],
    ...over,
  });

  it("§8.2 lay out every blob frame in the table's order, with the table's sizes", () => {
    const sealed = new Uint8Array(40).fill(0x5e);
    const cases: [Frame, number, string][] = [
      [create(), 83 + 32 * 2, "010a0000000b"],
      [
        { type: "putChunk", requestId: 12, blobId, writeToken, index: 1, sealedChunk: sealed },
        74 + 40,
        "010b0000000c",
      ],
      [{ type: "blobStatus", requestId: 13, blobId, token: writeToken }, 70, "010c0000000d"],
      [{ type: "getChunk", requestId: 14, blobId, readToken: writeToken, index: 7 }, 74, "010d0000000e"],
      [{ type: "blobDone", requestId: 15, blobId, readToken: writeToken }, 70, "010e0000000f"],
      [{ type: "deleteBlob", requestId: 16, blobId, writeToken }, 70, "010f00000010"],
      [
        {
          type: "blobInfo",
          requestId: 13,
          chunkCount: 2,
          written: 1,
          readersLeft: 2,
          expiresAt: 1767225600000,
        },
        23,
        "01850000000d",
      ],
      [{ type: "chunk", requestId: 14, index: 7, sealedChunk: sealed }, 10 + 40, "01860000000e"],
    ];
    for (const [frame, size, head] of cases) {
      const bytes = encodeFrame(frame);
      expect(bytes.length, frame.type).toBe(size);
      expect(toHex(bytes.subarray(0, 6)), frame.type).toBe(head);
      expect(decodeFrame(bytes), frame.type).toEqual(frame);
      expect(isClientFrame(frame), frame.type).toBe(frame.type !== "blobInfo" && frame.type !== "chunk");
      // Strict like every frame: one byte short, or one too many (a sealed chunk excepted: its
      // length is the rest of the frame).
      expect(
        decodeCode(
          bytes.subarray(
            0,
            6 + (size - 6) - 1 - (frame.type === "putChunk" || frame.type === "chunk" ? 24 : 0),
          ),
        ),
        frame.type,
      ).toBe("BAD_FRAME");
      if (frame.type !== "putChunk" && frame.type !== "chunk")
        expect(decodeCode(Uint8Array.of(...bytes, 0)), frame.type).toBe("BAD_FRAME");
    }
    // createBlob: id, write hash, count (u32), size (u64), K, hashes.
    const c = encodeFrame(create());
    expect([c[6], c[38], c[73], c[82], c[83], c[115]]).toEqual([0xb1, 1, 2, 2, 2, 3]);
    expect(toHex(c.subarray(70, 74))).toBe("00000002");
    expect(toHex(c.subarray(74, 82))).toBe((SEALED_CHUNK_BYTES + 17).toString(16).padStart(16, "0"));
  });

  it("§8.4 a sealedChunk is 16 … 65 552 bytes whatever maxCiphertext is: shorter BAD_FRAME, longer TOO_LARGE", () => {
    const put = (n: number) => ({
      type: "putChunk" as const,
      requestId: 1,
      blobId,
      writeToken,
      index: 0,
      sealedChunk: new Uint8Array(n),
    });
    const full = encodeFrame(put(SEALED_CHUNK_BYTES));
    expect(full.length).toBe(65626);
    // Above the default maxCiphertext (65 536) and a small relay's one: still decodes.
    expect(decodeFrame(full, { maxCiphertext: 1000 })).toEqual(put(SEALED_CHUNK_BYTES));
    expect(decodeCode(Uint8Array.of(...full, 0))).toBe("TOO_LARGE");
    expect(decodeFrame(encodeFrame(put(16)))).toEqual(put(16));
    expect(decodeCode(encodeFrame(put(16)).subarray(0, 74 + 15))).toBe("BAD_FRAME");
    expect(decodeCode(encodeFrame(put(16)).subarray(0, 74))).toBe("BAD_FRAME");
    const chunk = encodeFrame({
      type: "chunk",
      requestId: 1,
      index: 0,
      sealedChunk: new Uint8Array(SEALED_CHUNK_BYTES),
    });
    expect(decodeCode(Uint8Array.of(...chunk, 0))).toBe("TOO_LARGE");
    expect(() => encodeFrame(put(15))).toThrow(RangeError);
    expect(() => encodeFrame(put(SEALED_CHUNK_BYTES + 1))).toThrow(RangeError);
  });

  it("§14.2 createBlob: a size that is not the total of chunkCount sealed chunks, K outside 1 … 64, or repeated hashes are BAD_FRAME", () => {
    const good = encodeFrame(create());
    // sealedSize at offset 74 (u64), chunkCount at 70 (u32), K at 82.
    const edit = (at: number, ...b: number[]) => {
      const bytes = Uint8Array.from(good);
      bytes.set(b, at);
      return bytes;
    };
    const size = (n: number) => edit(74, ...fromHex(n.toString(16).padStart(16, "0")));
    expect(decodeFrame(size(SEALED_CHUNK_BYTES + 16)).type).toBe("createBlob");
    expect(decodeFrame(size(2 * SEALED_CHUNK_BYTES)).type).toBe("createBlob");
    expect(decodeCode(size(SEALED_CHUNK_BYTES + 15))).toBe("BAD_FRAME");
    expect(decodeCode(size(2 * SEALED_CHUNK_BYTES + 1))).toBe("BAD_FRAME");
    expect(decodeCode(edit(70, 0, 0, 0, 0))).toBe("BAD_FRAME"); // chunkCount 0
    expect(decodeCode(edit(82, 0))).toBe("BAD_FRAME"); // K = 0 (and then trailing bytes)
    expect(decodeCode(edit(82, 3))).toBe("BAD_FRAME"); // K = 3, only two hashes
    expect(decodeCode(edit(83, ...hash(3)))).toBe("BAD_FRAME"); // two equal read hashes
    expect(decodeCode(edit(83, ...hash(1)))).toBe("BAD_FRAME"); // a read hash equal to the write hash
    const k65 = Uint8Array.of(...good.subarray(0, 82), 65, ...new Uint8Array(65 * 32).map((_, i) => i >> 5));
    expect(decodeCode(k65)).toBe("BAD_FRAME");
    const k64 = create({ readTokenHashes: Array.from({ length: MAX_BLOB_READERS }, (_, i) => hash(i + 2)) });
    expect(encodeFrame(k64).length).toBe(83 + 32 * 64);
    expect(decodeFrame(encodeFrame(k64))).toEqual(k64);
    // The encoder refuses what the decoder would.
    expect(() => encodeFrame(create({ sealedSize: 15 }))).toThrow(RangeError);
    expect(() => encodeFrame(create({ chunkCount: 0, sealedSize: 16 }))).toThrow(RangeError);
    expect(() => encodeFrame(create({ readTokenHashes: [] }))).toThrow(RangeError);
    expect(() => encodeFrame(create({ readTokenHashes: [hash(2), hash(2)] }))).toThrow(RangeError);
    expect(() => encodeFrame(create({ readTokenHashes: [new Uint8Array(31)] }))).toThrow(RangeError);
  });

  it("§8.4 blobInfo: written above chunkCount, chunkCount 0 or readersLeft above 64 are BAD_FRAME", () => {
    const info = {
      type: "blobInfo" as const,
      requestId: 1,
      chunkCount: 3,
      written: 3,
      readersLeft: 64,
      expiresAt: 5,
    };
    const bytes = encodeFrame(info);
    expect(decodeFrame(bytes)).toEqual(info);
    const edit = (at: number, v: number) => {
      const b = Uint8Array.from(bytes);
      b[at] = v;
      return b;
    };
    expect(decodeCode(edit(13, 4))).toBe("BAD_FRAME"); // written 4 of 3
    expect(decodeCode(edit(9, 0))).toBe("BAD_FRAME"); // chunkCount 0
    expect(decodeCode(edit(14, 65))).toBe("BAD_FRAME");
    expect(() => encodeFrame({ ...info, written: 4 })).toThrow(RangeError);
  });

  it("§14.2 blobTokenHash is SHA-256 of the label and the token; sealed chunk lengths follow from the size", () => {
    const token = new Uint8Array(BLOB_TOKEN_LENGTH).fill(9);
    expect(toHex(blobTokenHash(token))).toBe(
      toHex(sha256(Uint8Array.of(...new TextEncoder().encode("parley/v1/blob-token"), ...token))),
    );
    expect(() => blobTokenHash(new Uint8Array(31))).toThrow(RangeError);
    expect(sealedChunkLength(2, SEALED_CHUNK_BYTES + 17, 0)).toBe(SEALED_CHUNK_BYTES);
    expect(sealedChunkLength(2, SEALED_CHUNK_BYTES + 17, 1)).toBe(17);
    expect(() => sealedChunkLength(2, SEALED_CHUNK_BYTES + 17, 2)).toThrow(RangeError);
    expect(blobSizeProblem(1, 16)).toBeUndefined();
    expect(blobSizeProblem(1, 15)).toMatch(/not the total/);
  });
});
