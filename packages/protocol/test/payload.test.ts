import { describe, expect, it } from "vitest";
import {
  bucketFor,
  decodePayload,
  encodePayload,
  MAX_RECEIPT_IDS,
  MAX_TEXT_BYTES,
  newMessageId,
  PADDING_BUCKETS,
  type Payload,
  PayloadError,
} from "../src/index.js";

const id = newMessageId();
const textOf = (bytes: number): Payload => ({
  type: "text",
  id,
  sentAt: 1_767_225_600_000,
  text: "a".repeat(bytes),
});

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PayloadError);
    return (e as PayloadError).code;
  }
  throw new Error("expected a throw");
}

describe("payloads", () => {
  it("round-trips text, delivery receipts and read receipts", () => {
    const samples: Payload[] = [
      { type: "text", id, sentAt: 0, text: "" },
      { type: "text", id, sentAt: Number.MAX_SAFE_INTEGER, text: "héllo 🌍\n\u0000tabs\t" },
      { type: "delivered", id, sentAt: 5, ids: [newMessageId()] },
      { type: "read", id, sentAt: 6, ids: Array.from({ length: MAX_RECEIPT_IDS }, () => newMessageId()) },
    ];
    for (const p of samples) expect(decodePayload(encodePayload(p))).toEqual(p);
  });

  it("pads to the smallest bucket that fits, so the relay learns only the bucket", () => {
    // 30 bytes of fixed fields plus one padding marker byte.
    expect(encodePayload(textOf(0)).length).toBe(256);
    expect(encodePayload(textOf(256 - 31)).length).toBe(256);
    expect(encodePayload(textOf(256 - 30)).length).toBe(1024);
    expect(encodePayload(textOf(4000)).length).toBe(4096);
    expect(encodePayload(textOf(MAX_TEXT_BYTES)).length).toBe(32768);
    for (const n of [0, 100, 1000, 5000, 20000])
      expect(PADDING_BUCKETS).toContain(encodePayload(textOf(n)).length);
  });

  it("refuses text beyond the largest bucket, and too many or no receipt ids", () => {
    expect(code(() => encodePayload(textOf(MAX_TEXT_BYTES + 1)))).toBe("TOO_LARGE");
    expect(code(() => encodePayload({ type: "read", id, sentAt: 1, ids: [] }))).toBe("TOO_LARGE");
    const many = Array.from({ length: MAX_RECEIPT_IDS + 1 }, () => id);
    expect(code(() => encodePayload({ type: "delivered", id, sentAt: 1, ids: many }))).toBe("TOO_LARGE");
  });

  it("refuses bad padding, a non-bucket length, an unknown type or version, invalid UTF-8", () => {
    const good = encodePayload(textOf(3));
    expect(code(() => decodePayload(good.subarray(0, 255)))).toBe("BAD_PADDING");
    expect(code(() => decodePayload(new Uint8Array(256)))).toBe("BAD_PADDING");
    const noMarker = Uint8Array.from(good);
    noMarker[33] = 0x81;
    expect(code(() => decodePayload(noMarker))).toBe("BAD_PADDING");
    const unknownType = Uint8Array.from(good);
    unknownType[1] = 99;
    expect(code(() => decodePayload(unknownType))).toBe("UNSUPPORTED_TYPE");
    const newer = Uint8Array.from(good);
    newer[0] = 2;
    expect(code(() => decodePayload(newer))).toBe("UNSUPPORTED_VERSION");
    const badUtf8 = Uint8Array.from(good);
    badUtf8[30] = 0xff;
    expect(code(() => decodePayload(badUtf8))).toBe("BAD_FRAME");
    const badLength = Uint8Array.from(good);
    badLength[29] = 200;
    expect(code(() => decodePayload(badLength))).toBe("BAD_FRAME");
  });

  it("draws a fresh random message id each time", () => {
    const ids = new Set(Array.from({ length: 100 }, () => Buffer.from(newMessageId()).toString("hex")));
    expect(ids.size).toBe(100);
  });
});

describe("§7.2 padding", () => {
  /** raw = the payload before its padding: everything up to the last 0x80. */
  const rawOf = (padded: Uint8Array) => padded.subarray(0, padded.lastIndexOf(0x80));

  it("§7.2 an encoder MUST use the smallest bucket that holds the payload and its 0x80 marker", () => {
    const receipt = (k: number): Payload => ({
      type: "read",
      id,
      sentAt: 1,
      ids: Array.from({ length: k }, () => id),
    });
    const cases: [string, Payload, number][] = [];
    for (const [i, b] of PADDING_BUCKETS.entries()) {
      // A text's raw length is 30 + T: it fills bucket b exactly when 30 + T + 1 = b.
      cases.push([`text filling ${b}`, textOf(b - 31), b]);
      if (i + 1 < PADDING_BUCKETS.length)
        cases.push([`text one byte over ${b}`, textOf(b - 30), PADDING_BUCKETS[i + 1]!]);
    }
    cases.push(
      ["receipt of 14 ids (252 bytes)", receipt(14), 256],
      ["receipt of 15 ids (268 bytes)", receipt(15), 1024],
    );
    cases.push(["the largest receipt (4124 bytes)", receipt(MAX_RECEIPT_IDS), 16384]);
    for (const [what, payload, bucket] of cases) {
      const padded = encodePayload(payload);
      const raw = rawOf(padded);
      expect(padded.length, what).toBe(bucket);
      expect(bucketFor(raw.length), what).toBe(bucket);
      // padded = raw || 0x80 || 0x00 * (b − |raw| − 1)
      expect(padded[raw.length], what).toBe(0x80);
      expect(
        padded.subarray(raw.length + 1).every((x) => x === 0),
        what,
      ).toBe(true);
      expect(decodePayload(padded), what).toEqual(payload);
    }
  });

  it("§7.2 a decoder refuses a payload padded to any bucket but the smallest (BAD_PADDING)", () => {
    for (const payload of [textOf(0), textOf(225), textOf(226), textOf(4000)]) {
      const raw = rawOf(encodePayload(payload));
      for (const b of PADDING_BUCKETS.filter((x) => x > bucketFor(raw.length)!)) {
        const padded = new Uint8Array(b);
        padded.set(raw);
        padded[raw.length] = 0x80;
        expect(
          code(() => decodePayload(padded)),
          `${raw.length} bytes in ${b}`,
        ).toBe("BAD_PADDING");
      }
    }
  });
});
