// PROTOCOL.md §1.1: the conventions every structure follows — deterministic bytes, u64 values of at
// most 2^53 − 1, strict UTF-8, exact layouts — checked across every decoder that the rule applies to.
import { describe, expect, it } from "vitest";
import {
  acceptInvitation,
  bucketFor,
  createInvitation,
  decodeEnvelope,
  decodeFrame,
  decodeInvitation,
  decodePayload,
  decodePublicIdentity,
  encodeFrame,
  encodePayload,
  encodePublicIdentity,
  type Frame,
  fromHex,
  Identity,
  InvitationBook,
  MailboxKey,
  PendingInvitation,
  Session,
  toHex,
} from "../src/index.js";
import { codeOfBody, conversation, failure, NOW, RELAY, resealDetails, text } from "./spec-fixture.js";

const MAX_U64 = Number.MAX_SAFE_INTEGER; // 2^53 − 1
const u64be = (v: bigint) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v);
  return b;
};
/** ISO/IEC 7816-4 padding to the smallest bucket (§7.2), written out here. */
const pad = (raw: Uint8Array): Uint8Array => {
  const out = new Uint8Array(bucketFor(raw.length)!);
  out.set(raw);
  out[raw.length] = 0x80;
  return out;
};
const u16 = (n: number) => [n >> 8, n & 0xff];
const u32 = (n: number) => [n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
/** A raw text payload (§7.1) carrying exactly `bytes` as its text. */
const rawText = (bytes: number[]) =>
  new Uint8Array([1, 1, ...new Uint8Array(16).fill(3), ...u64be(1n), ...u32(bytes.length), ...bytes]);
/** An error frame (§8.2) whose message is exactly `bytes`. */
const errorFrame = (bytes: number[]) =>
  new Uint8Array([1, 0x84, ...u32(9), ...u16(6), ...u16(bytes.length), ...bytes]);

const fx = conversation("conventions");
const address = fx.aliceMailbox.address;
const id16 = new Uint8Array(16).fill(5);
const sig64 = new Uint8Array(64).fill(6);
/** One of every frame (§8.2). */
const frames: Frame[] = [
  { type: "hello", requestId: 1, maxVersion: 1 },
  { type: "createMailbox", requestId: 2, ownerKey: fx.aliceMailbox.publicKey, signature: sig64 },
  { type: "deposit", requestId: 3, address, clientMessageId: id16, ciphertext: new Uint8Array([1, 2, 3]) },
  { type: "subscribe", requestId: 4, address, signature: sig64 },
  { type: "unsubscribe", requestId: 5, address },
  { type: "ack", requestId: 6, address, messageId: id16 },
  { type: "deleteMailbox", requestId: 7, address, signature: sig64 },
  {
    type: "welcome",
    requestId: 1,
    version: 1,
    challenge: address,
    maxCiphertext: 65536,
    retentionSeconds: 3600,
  },
  { type: "ok", requestId: 8 },
  {
    type: "deliver",
    requestId: 0,
    address,
    messageId: id16,
    receivedAt: NOW,
    ciphertext: new Uint8Array([4]),
  },
  { type: "error", requestId: 9, code: "QUOTA", message: "full" },
];
/** Bytes of a frame's fixed part: everything before a trailing ciphertext, or the whole frame. */
const fixedLength = (f: Frame, bytes: Uint8Array) =>
  f.type === "deposit" || f.type === "deliver" ? bytes.length - f.ciphertext.length : bytes.length;

/** Every fixed-layout structure with its decoder: [name, bytes, decode]. */
function fixedLayouts(): [string, Uint8Array, (b: Uint8Array) => unknown][] {
  const c = conversation("conventions");
  const pending = c.pending.serialize();
  const book = new InvitationBook();
  book.add(PendingInvitation.deserialize(pending));
  const alice = c.book.accept(c.alice, c.accept, { now: NOW }).session;
  // A post-quantum invitation's pending half and its accepter, whose wrapped Accept holds a KEM
  // ciphertext (§3.4, §5.4).
  const pq = createInvitation(c.alice, { relayUrl: RELAY, mailbox: c.aliceMailbox.address, now: NOW });
  const pqAccepter = acceptInvitation(c.bob, decodeInvitation(pq.code, { now: NOW }), {
    mailbox: c.bobMailbox.address,
    relayUrl: RELAY,
    plaintext: text("pq"),
    kemPublicKey: pq.pending.kemPublicKey,
  }).session;
  return [
    ["public identity (§3.2)", encodePublicIdentity(fx.alice.publicIdentity), decodePublicIdentity],
    ["Identity (§3.4)", fx.alice.serialize(), Identity.deserialize],
    ["MailboxKey (§3.4)", fx.aliceMailbox.serialize(), MailboxKey.deserialize],
    ["PendingInvitation (§3.4)", pending, PendingInvitation.deserialize],
    ["PendingInvitation, version 2 (§3.4)", pq.pending.serialize(), PendingInvitation.deserialize],
    ["InvitationBook (§3.4)", book.serialize(), InvitationBook.deserialize],
    ["Session of the inviter (§6.5)", alice.serialize(), Session.deserialize],
    ["Session of the accepter, wrapping (§6.5)", fx.bobSession.serialize(), Session.deserialize],
    ["Session of a post-quantum accepter, wrapping (§6.5)", pqAccepter.serialize(), Session.deserialize],
    ...frames
      .filter((f) => f.type !== "deposit" && f.type !== "deliver")
      .map((f): [string, Uint8Array, (b: Uint8Array) => unknown] => [
        `${f.type} frame (§8.2)`,
        encodeFrame(f),
        decodeFrame,
      ]),
  ];
}

describe("§1.1 conventions", () => {
  it("§1.1 protocol rules are exact: the same inputs and draws give the same bytes, and those bytes are accepted", () => {
    const again = conversation("conventions");
    expect(again.code).toBe(fx.code);
    expect(toHex(again.accept)).toBe(toHex(fx.accept));
    const contact = again.book.accept(again.alice, again.accept, { now: NOW });
    expect(decodePayload(contact.plaintext)).toMatchObject({ type: "text", text: "hello Alice" });
    expect(decodePayload(again.bobSession.decrypt(contact.session.encrypt(text("hi Bob"))))).toMatchObject({
      text: "hi Bob",
    });
  });

  it("§1.1 encoders MUST NOT write a u64 above 2^53 − 1 (payload sentAt, deliver receivedAt)", () => {
    for (const bad of [MAX_U64 + 1, 2 ** 60, -1, 1.5]) {
      expect(
        failure(() => encodePayload({ type: "text", id: id16, sentAt: bad, text: "" })),
        `${bad}`,
      ).toBe("RangeError");
      const deliver = { ...frames[9]!, receivedAt: bad } as Frame;
      expect(
        failure(() => encodeFrame(deliver)),
        `${bad}`,
      ).toBe("RangeError");
    }
    expect(decodePayload(encodePayload({ type: "text", id: id16, sentAt: MAX_U64, text: "" })).sentAt).toBe(
      MAX_U64,
    );
  });

  it("§1.1 decoders reject a u64 above 2^53 − 1 as a malformed structure (payload sentAt, deliver receivedAt)", () => {
    const deliver = encodeFrame({ ...frames[9]!, receivedAt: MAX_U64 } as Frame);
    const receivedAt = 1 + 1 + 4 + 32 + 16;
    for (const v of [BigInt(MAX_U64) + 1n, 2n ** 63n, 2n ** 64n - 1n]) {
      const payload = encodePayload({ type: "text", id: id16, sentAt: MAX_U64, text: "x" });
      payload.set(u64be(v), 18);
      expect(
        failure(() => decodePayload(payload)),
        `sentAt ${v}`,
      ).toBe("PayloadError BAD_FRAME");
      const frame = deliver.slice();
      frame.set(u64be(v), receivedAt);
      expect(
        failure(() => decodeFrame(frame)),
        `receivedAt ${v}`,
      ).toBe("DecodeError BAD_FRAME");
    }
    expect((decodeFrame(deliver) as { receivedAt: number }).receivedAt).toBe(MAX_U64);
  });

  describe("§1.1 strict UTF-8", () => {
    const bad: [string, number[]][] = [
      ["an invalid byte 0xFF", [0xff]],
      ["a lone continuation byte", [0x80]],
      ["a lead byte followed by ASCII", [0xc3, 0x28]],
      ["an overlong '/' (2 bytes)", [0xc0, 0xaf]],
      ["an overlong '/' (3 bytes)", [0xe0, 0x80, 0xaf]],
      ["an overlong '/' (4 bytes)", [0xf0, 0x80, 0x80, 0xaf]],
      ["a surrogate U+D800", [0xed, 0xa0, 0x80]],
      ["a surrogate U+DFFF", [0xed, 0xbf, 0xbf]],
      ["a code point above U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
      ["a truncated 3-byte sequence", [0xe2, 0x82]],
      ["a truncated 4-byte sequence", [0xf0, 0x9f, 0x98]],
    ];

    it.each(bad)("§1.1 decoders MUST decode strictly, never replace: %s is refused", (_what, seq) => {
      const body = [0x68, 0x69, ...seq]; // "hi" then the bad sequence, at the end (so truncation is real)
      expect(failure(() => decodePayload(pad(rawText(body))))).toBe("PayloadError BAD_FRAME");
      expect(failure(() => decodeFrame(errorFrame(body)))).toBe("DecodeError BAD_FRAME");
      // The same bytes in the middle of the string.
      const middle = [...seq, 0x21];
      expect(failure(() => decodePayload(pad(rawText(middle))))).toBe("PayloadError BAD_FRAME");
      expect(failure(() => decodeFrame(errorFrame(middle)))).toBe("DecodeError BAD_FRAME");
      // In a signed invitation's relay URL (its checksum recomputed): MALFORMED.
      const url = [...new TextEncoder().encode("wss://r.example/"), ...seq];
      const body0 = invitationBody();
      const forged = new Uint8Array([...body0.subarray(0, 133), url.length, ...url, ...body0.subarray(-64)]);
      expect(failure(() => decodeInvitation(codeOfBody(forged), { now: NOW }))).toBe(
        "InvitationError MALFORMED",
      );
      // In the accepter's sealed details: BAD_FRAME at the inviter.
      const accept = resealDetails(fx.accept, fx.ephemeralSecret, fx.invitation.prekey, (d) =>
        detailsWithUrl(d, url),
      );
      const book = conversation("conventions").book;
      expect(failure(() => book.accept(fx.alice, accept, { now: NOW }))).toBe("DecodeError BAD_FRAME");
    });

    it("§1.1 the valid sequences next to them decode, and a leading U+FEFF is kept as an ordinary character", () => {
      for (const s of ["\ufeffhi", "\ufeff", "é€𝄞", "\ufffd", "\u{10ffff}", "\ud7ff\ue000"]) {
        const p = decodePayload(encodePayload({ type: "text", id: id16, sentAt: 1, text: s }));
        expect(p.type === "text" && p.text).toBe(s);
        const f = decodeFrame(encodeFrame({ type: "error", requestId: 1, code: "AUTH", message: s }));
        expect(f.type === "error" && f.message).toBe(s);
      }
    });
  });

  it("§1.1 a decoder MUST reject a structure shorter than its layout (truncated)", () => {
    for (const [name, bytes, decode] of fixedLayouts()) {
      for (let n = 0; n < bytes.length; n++) {
        expect(
          failure(() => decode(bytes.subarray(0, n))),
          `${name} cut to ${n} bytes`,
        ).toBe("DecodeError BAD_FRAME");
      }
    }
    for (const f of frames.filter((x) => x.type === "deposit" || x.type === "deliver")) {
      const bytes = encodeFrame(f);
      for (let n = 0; n <= fixedLength(f, bytes); n++)
        expect(
          failure(() => decodeFrame(bytes.subarray(0, n))),
          `${f.type} cut to ${n}`,
        ).toBe("DecodeError BAD_FRAME");
    }
    // Envelopes: a Message needs its 42-byte header and a 16-byte tag; an Accept also its 52 + S bytes.
    const env = decodeEnvelope(fx.accept);
    const message = fx.accept.subarray(52 + (env.kind === "accept" ? env.sealedIdentity.length : 0));
    expect(decodeEnvelope(message).kind).toBe("message");
    for (const wire of [message, fx.accept]) {
      for (let n = 0; n < wire.length - (message.length - 42 - 16); n++)
        expect(
          failure(() => decodeEnvelope(wire.subarray(0, n))),
          `envelope cut to ${n}`,
        ).toBe("DecodeError BAD_FRAME");
    }
    // A payload cut inside its text, then padded correctly.
    const raw = rawText([0x61, 0x62, 0x63]);
    for (let n = 0; n < raw.length; n++)
      expect(
        failure(() => decodePayload(pad(raw.subarray(0, n)))),
        `payload cut to ${n}`,
      ).toBe("PayloadError BAD_FRAME");
    // An invitation body cut after the fixed 198 bytes' worth (checksum recomputed): MALFORMED.
    const body = invitationBody();
    for (const n of [198, 199, body.length - 1])
      expect(failure(() => decodeInvitation(codeOfBody(body.subarray(0, n)), { now: NOW }))).toBe(
        "InvitationError MALFORMED",
      );
    // The accepter's details cut by one byte.
    const cut = resealDetails(fx.accept, fx.ephemeralSecret, fx.invitation.prekey, (d) =>
      d.subarray(0, d.length - 1),
    );
    expect(failure(() => conversation("conventions").book.accept(fx.alice, cut, { now: NOW }))).toBe(
      "DecodeError BAD_FRAME",
    );
  });

  it("§1.1 a decoder MUST reject bytes left over after the last field (trailing data)", () => {
    for (const [name, bytes, decode] of fixedLayouts()) {
      for (const extra of [[0], [1], [0xff, 0xff]]) {
        const longer = new Uint8Array([...bytes, ...extra]);
        expect(
          failure(() => decode(longer)),
          `${name} + ${extra}`,
        ).toBe("DecodeError BAD_FRAME");
      }
    }
    const raw = rawText([0x61]);
    expect(failure(() => decodePayload(pad(new Uint8Array([...raw, 0]))))).toBe("PayloadError BAD_FRAME");
    const body = invitationBody();
    expect(failure(() => decodeInvitation(codeOfBody(new Uint8Array([...body, 0])), { now: NOW }))).toBe(
      "InvitationError MALFORMED",
    );
    const longer = resealDetails(
      fx.accept,
      fx.ephemeralSecret,
      fx.invitation.prekey,
      (d) => new Uint8Array([...d, 0]),
    );
    expect(failure(() => conversation("conventions").book.accept(fx.alice, longer, { now: NOW }))).toBe(
      "DecodeError BAD_FRAME",
    );
  });

  it("§1.1 a decoder MUST reject a field out of its stated range", () => {
    const frame = (hex: string) => () => decodeFrame(fromHex(hex));
    const cases: [string, () => unknown, string][] = [
      ["hello.maxVersion = 0", frame("010100000001" + "00"), "DecodeError BAD_FRAME"],
      [
        "welcome.version = 0",
        frame(`018100000001${"00"}${"00".repeat(32)}0001000000000e10`),
        "DecodeError BAD_FRAME",
      ],
      ["error code 11 (reserved)", frame("018400000001000b0000"), "DecodeError BAD_FRAME"],
      ["error code 0", frame("01840000000100000000"), "DecodeError BAD_FRAME"],
      [
        "error message of 1025 bytes",
        () => decodeFrame(errorFrame(new Array(1025).fill(0x61))),
        "DecodeError BAD_FRAME",
      ],
      [
        "receipt listing 0 ids",
        () => decodePayload(pad(new Uint8Array([1, 2, ...id16, ...u64be(1n), 0, 0]))),
        "PayloadError BAD_FRAME",
      ],
      [
        "receipt listing 257 ids",
        () =>
          decodePayload(
            pad(new Uint8Array([1, 2, ...id16, ...u64be(1n), ...u16(257), ...new Uint8Array(257 * 16)])),
          ),
        "PayloadError BAD_FRAME",
      ],
      [
        "text length 32738",
        () => decodePayload(pad(new Uint8Array([1, 1, ...id16, ...u64be(1n), ...u32(32738)]))),
        "PayloadError BAD_FRAME",
      ],
      ["sealed identity length 433", () => decodeEnvelope(withSealedLength(433)), "DecodeError BAD_FRAME"],
      ["sealed identity length 15", () => decodeEnvelope(withSealedLength(15)), "DecodeError BAD_FRAME"],
      ["session flags 16", () => Session.deserialize(sessionWithFlags(16)), "DecodeError BAD_FRAME"],
      [
        "InvitationBook pending entry of 1025 bytes",
        () =>
          InvitationBook.deserialize(
            new Uint8Array([1, ...u32(1), ...u16(1025), ...new Uint8Array(1025), ...u32(0)]),
          ),
        "DecodeError BAD_FRAME",
      ],
      [
        "invitation body version 2",
        () => {
          const body = invitationBody();
          body[0] = 2;
          return decodeInvitation(codeOfBody(body), { now: NOW });
        },
        "InvitationError MALFORMED",
      ],
    ];
    for (const [what, f, expected] of cases) expect(failure(f), what).toBe(expected);
  });
});

/** The body of the fixture's invitation code (§4.1). */
function invitationBody(): Uint8Array {
  const text = fx.code.slice("PARLEY1-".length).split("-")[0]!;
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const bits = [...text].map((c) => alphabet.indexOf(c).toString(2).padStart(5, "0")).join("");
  return new Uint8Array((bits.match(/.{8}/g) ?? []).map((b) => Number.parseInt(b, 2)));
}

/** Accepter details (§5.2) with the relay URL replaced by `url` (signature kept). */
function detailsWithUrl(details: Uint8Array, url: number[]): Uint8Array {
  const m = details[96]!;
  return new Uint8Array([...details.subarray(0, 96), url.length, ...url, ...details.subarray(97 + m)]);
}

/** The fixture's Accept with its u16 sealed-identity length field set to `s`. */
function withSealedLength(s: number): Uint8Array {
  const out = fx.accept.slice();
  out.set(u16(s), 50);
  return out;
}

/** The inviter's session state (flags at byte 177, §6.5) with `flags` written in. */
function sessionWithFlags(flags: number): Uint8Array {
  const state = conversation("conventions")
    .book.accept(fx.alice, fx.accept, { now: NOW })
    .session.serialize();
  state[177] = flags;
  return state;
}
