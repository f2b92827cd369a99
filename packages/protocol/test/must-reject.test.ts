// PROTOCOL.md §12, the MUST-reject list, walked in its order: one case (or a few) per entry, each
// asserting the exact error class and code the list gives, and that a rejected Accept leaves the
// invitation usable. The sections the entries point to have their own, deeper tests.
import { describe, expect, it } from "vitest";
import { concat } from "../src/_bytes.js";
import { dh, open, seal, verify, x25519KeyPair } from "../src/crypto.js";
import {
  acceptInvitation,
  base32Decode,
  createInvitation,
  decodeEnvelope,
  decodeFrame,
  decodeInvitation,
  decodePayload,
  encodeFrame,
  encodePayload,
  fromHex,
  type GroupPayload,
  groupFileSignedBytes,
  groupTextSignedBytes,
  Identity,
  InvitationBook,
  kemCommitment,
  MailboxAction,
  MailboxKey,
  mlKemKeyPair,
  PendingInvitation,
  Session,
  safetyNumber,
  verifyGroupFile,
  verifyGroupText,
  verifyMailboxProof,
  verifySafetyNumber,
} from "../src/index.js";
import {
  codeOfBody,
  conversation,
  failure,
  NOW,
  RELAY,
  resealDetails,
  seeded,
  text,
} from "./spec-fixture.js";

const u16 = (n: number) => [n >> 8, n & 0xff];
const u32 = (n: number) => [n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const LOW_ORDER = new Uint8Array(32); // u = 0, the first of the five points of §1.2 DH
const flip = (bytes: Uint8Array, index: number) => {
  const out = bytes.slice();
  out[index < 0 ? out.length + index : index]! ^= 1;
  return out;
};
const codeParts = (code: string) => code.slice("PARLEY1-".length).split("-") as [string, string];
const bodyOf = (code: string) => base32Decode(codeParts(code)[0]) as Uint8Array;
const pad = (raw: number[]) => {
  const out = new Uint8Array(raw.length + 1 <= 256 ? 256 : 1024);
  out.set(raw);
  out[raw.length] = 0x80;
  return out;
};
const id16 = new Array(16).fill(4);
const sentAt = [0, 0, 0, 0, 0, 0, 0, 1];

describe("§12 MUST-reject list", () => {
  const fx = conversation("must-reject");

  it("§12 base32 (§1.3): a length ≡ 1, 3, 6 (mod 8) or unused bits set is CHECKSUM in an invitation and no match for a safety number", () => {
    const [body, sum] = codeParts(fx.code);
    expect(body.length % 8).toBe(2);
    expect(failure(() => decodeInvitation(`PARLEY1-${body}A-${sum}`, { now: NOW }))).toBe(
      "InvitationError CHECKSUM",
    );
    // 354 characters carry 1770 bits: the last character's two low bits are unused, so zero.
    const unusedBitSet = body.slice(0, -1) + ALPHABET[ALPHABET.indexOf(body.at(-1)!) | 1];
    expect(failure(() => decodeInvitation(`PARLEY1-${unusedBitSet}-${sum}`, { now: NOW }))).toBe(
      "InvitationError CHECKSUM",
    );
    const safety = safetyNumber(fx.alice.publicIdentity, fx.bob.publicIdentity);
    const compact = safety.compact; // 103 base32 characters: 103 ≡ 7 (mod 8), 3 unused bits
    expect(verifySafetyNumber(safety, compact)).toBe(true);
    expect(verifySafetyNumber(safety, `${compact}A`)).toBe(false);
    expect(
      verifySafetyNumber(safety, compact.slice(0, -1) + ALPHABET[ALPHABET.indexOf(compact.at(-1)!) | 1]),
    ).toBe(false);
    expect(verifySafetyNumber(safety, `${compact.slice(0, -1)}0`)).toBe(false);
  });

  it("§12 primitives (§1.2): a low-order X25519 key is LOW_ORDER, a strictly invalid signature is invalid, a short or forged AEAD input is AUTH", () => {
    expect(failure(() => dh(seeded("dh")(32), LOW_ORDER))).toBe("CryptoError LOW_ORDER");
    const msg = new Uint8Array([1, 2, 3]);
    const sig = fx.alice.sign(msg);
    const pk = fx.alice.publicIdentity.signingKey;
    expect(verify(pk, msg, sig)).toBe(true);
    expect(verify(pk, msg, flip(sig, 0))).toBe(false); // the equation fails
    expect(verify(fromHex(`01${"00".repeat(31)}`), msg, sig)).toBe(false); // small-order A
    expect(verify(pk, msg, sig.subarray(0, 63))).toBe(false); // wrong length
    const key = seeded("aead")(32);
    const nonce = new Uint8Array(12);
    expect(failure(() => open(key, nonce, new Uint8Array(15), new Uint8Array(0)))).toBe("CryptoError AUTH");
    const sealed = seal(key, nonce, msg, new Uint8Array(0));
    expect(failure(() => open(key, nonce, flip(sealed, -1), new Uint8Array(0)))).toBe("CryptoError AUTH");
  });

  it("§12 invitation code (§4.2): each failure, first one wins, with its error", () => {
    const [body, sum] = codeParts(fx.code);
    const raw = bodyOf(fx.code);
    const withBody = (edit: (b: Uint8Array) => void) => {
      const b = raw.slice();
      edit(b);
      return codeOfBody(b);
    };
    const long = createInvitation(fx.alice, {
      postQuantum: false,
      relayUrl: RELAY,
      mailbox: fx.aliceMailbox.address,
      now: NOW,
      ttlSeconds: 90 * 86400,
    }).code;
    const cases: [string, string, number, string][] = [
      ["1 not starting with PARLEY", `XARLEY1-${body}-${sum}`, NOW, "BAD_PREFIX"],
      ["2 not PARLEY<digits>-", `PARLEYX-${body}-${sum}`, NOW, "BAD_PREFIX"],
      ["3 another version", `PARLEY3-${body}-${sum}`, NOW, "UNSUPPORTED_VERSION"],
      ["3 another version (leading zero)", `PARLEY01-${body}-${sum}`, NOW, "UNSUPPORTED_VERSION"],
      [
        "4 a character outside the alphabet",
        `PARLEY1-${body.slice(0, 9)}0${body.slice(10)}-${sum}`,
        NOW,
        "BAD_CHARACTER",
      ],
      [
        "4 a no-break space",
        `PARLEY1-${body.slice(0, 9)}\u00a0${body.slice(9)}-${sum}`,
        NOW,
        "BAD_CHARACTER",
      ],
      ["5 no checksum part", `PARLEY1-${body}`, NOW, "TRUNCATED"],
      ["5 a checksum part of 7", `PARLEY1-${body}-${sum.slice(1)}`, NOW, "TRUNCATED"],
      ["6 a third part", `PARLEY1-${body}-${sum}-A`, NOW, "MALFORMED"],
      ["6 a checksum part of 9", `PARLEY1-${body}-${sum}A`, NOW, "MALFORMED"],
      ["7 body not base32", `PARLEY1-${body}A-${sum}`, NOW, "CHECKSUM"],
      ["8 body shorter than 198 bytes", codeOfBody(raw.subarray(0, 197)), NOW, "TRUNCATED"],
      [
        "9 checksum mismatch",
        `PARLEY1-${body}-${sum === "AAAAAAAA" ? "BAAAAAAA" : "AAAAAAAA"}`,
        NOW,
        "CHECKSUM",
      ],
      [
        "10 body version 2",
        withBody((b) => {
          b[0] = 2;
        }),
        NOW,
        "MALFORMED",
      ],
      ["10 trailing byte", codeOfBody(new Uint8Array([...raw, 0])), NOW, "MALFORMED"],
      [
        "10 relay URL breaking §4.3",
        withBody((b) => {
          b[134 + 22] = 0x23;
        }),
        NOW,
        "MALFORMED",
      ], // '#'
      [
        "11 signature invalid",
        withBody((b) => {
          b[b.length - 1]! ^= 1;
        }),
        NOW,
        "BAD_SIGNATURE",
      ],
      ["12 expiresAt beyond now + 91 days", long, NOW - 86_400_000 - 1000, "MALFORMED"],
      ["13 expired", fx.code, fx.invitation.expiresAt * 1000, "EXPIRED"],
    ];
    for (const [what, input, now, code] of cases)
      expect(
        failure(() => decodeInvitation(input, { now })),
        what,
      ).toBe(`InvitationError ${code}`);
    // The last second before each limit is still accepted.
    expect(decodeInvitation(long, { now: NOW - 86_400_000 }).relayUrl).toBe(RELAY);
    expect(decodeInvitation(fx.code, { now: fx.invitation.expiresAt * 1000 - 1 }).relayUrl).toBe(RELAY);
  });

  it("§12 relay URL (§4.3): MALFORMED in an invitation, BAD_FRAME in the accepter's details, RangeError for the accepter's own", () => {
    const urls: [number, string][] = [
      [1, `wss://r.example/${"a".repeat(240)}`],
      [2, "wss://relay example"],
      [3, "https://relay.example"],
      [4, "wss://relay.example:65536"],
      [7, "wss://user@relay.example"],
      [8, "wss://relay.example/#"],
    ];
    for (const [rule, url] of urls) {
      expect(
        failure(() =>
          createInvitation(fx.alice, { postQuantum: false, relayUrl: url, mailbox: fx.aliceMailbox.address }),
        ),
        `rule ${rule}`,
      ).toBe("InvitationError MALFORMED");
      const options = { mailbox: fx.bobMailbox.address, relayUrl: url, plaintext: text("x") };
      expect(
        failure(() => acceptInvitation(fx.bob, fx.invitation, options)),
        `rule ${rule}`,
      ).toBe("RangeError");
    }
    // The accepter's details carry "wss://relay.example.org" (23 bytes); the same length with a '#'.
    const url = [...new TextEncoder().encode("wss://relay.example.or#")];
    const accept = resealDetails(
      fx.accept,
      fx.ephemeralSecret,
      fx.invitation.prekey,
      (d) => new Uint8Array([...d.subarray(0, 97), ...url, ...d.subarray(97 + url.length)]),
    );
    const c = conversation("must-reject");
    expect(failure(() => c.book.accept(c.alice, accept, { now: NOW }))).toBe("DecodeError BAD_FRAME");
  });

  it("§12 invitation creation (§4.1): a bad relay URL is MALFORMED; a lifetime outside 1 … 90 days or an expiry past u32 is a RangeError", () => {
    const base = { relayUrl: RELAY, mailbox: fx.aliceMailbox.address, now: NOW };
    expect(
      failure(() => createInvitation(fx.alice, { postQuantum: false, ...base, relayUrl: "ws:relay" })),
    ).toBe("InvitationError MALFORMED");
    for (const ttlSeconds of [0, -1, 1.5, 90 * 86400 + 1])
      expect(
        failure(() => createInvitation(fx.alice, { postQuantum: false, ...base, ttlSeconds })),
        `ttl ${ttlSeconds}`,
      ).toBe("RangeError");
    expect(
      failure(() => createInvitation(fx.alice, { postQuantum: false, ...base, now: 2 ** 32 * 1000 })),
    ).toBe("RangeError");
    expect(
      createInvitation(fx.alice, { postQuantum: false, ...base, ttlSeconds: 1 }).invitation.expiresAt,
    ).toBe(NOW / 1000 + 1);
  });

  it("§12 envelopes (§5.4, §6.3): malformed is BAD_FRAME, another version UNSUPPORTED_VERSION", () => {
    const accept = fx.accept;
    const env = decodeEnvelope(accept);
    if (env.kind !== "accept") throw new Error("not an Accept");
    const s = env.sealedIdentity.length;
    const message = accept.subarray(52 + s);
    const withAt = (bytes: Uint8Array, at: number, values: number[]) => {
      const out = bytes.slice();
      out.set(values, at);
      return out;
    };
    const cases: [string, Uint8Array, string][] = [
      ["empty", new Uint8Array(0), "BAD_FRAME"],
      ["unknown kind 3", withAt(message, 0, [3]), "BAD_FRAME"],
      ["truncated Accept", accept.subarray(0, 40), "BAD_FRAME"],
      ["Accept version 3", withAt(accept, 1, [3]), "UNSUPPORTED_VERSION"],
      ["Accept version 0", withAt(accept, 1, [0]), "UNSUPPORTED_VERSION"],
      ["Message version 4", withAt(message, 1, [4]), "UNSUPPORTED_VERSION"],
      ["Message version 0", withAt(message, 1, [0]), "UNSUPPORTED_VERSION"],
      ["sealed identity length 433", withAt(accept, 50, u16(433)), "BAD_FRAME"],
      [
        "sealed identity length 15",
        concat(accept.subarray(0, 50), new Uint8Array([0, 15]), new Uint8Array(15), message),
        "BAD_FRAME",
      ],
      ["sealed message of 15 bytes", message.subarray(0, 66 + 15), "BAD_FRAME"],
      ["sealed message of 32 785 bytes", concat(message.subarray(0, 66), new Uint8Array(32785)), "BAD_FRAME"],
      ["embedded part not a Message", withAt(accept, 52 + s, [1]), "BAD_FRAME"],
      ["embedded Message version 4", withAt(accept, 52 + s + 1, [4]), "UNSUPPORTED_VERSION"],
    ];
    for (const [what, bytes, code] of cases)
      expect(
        failure(() => decodeEnvelope(bytes)),
        what,
      ).toBe(`DecodeError ${code}`);
    expect(decodeEnvelope(concat(message.subarray(0, 66), new Uint8Array(32784))).kind).toBe("message");
  });

  it("§12 Accept at the inviter (§5.4): each step's error, in order, and the invitation stays pending", () => {
    const c0 = conversation("must-reject");
    const env = decodeEnvelope(c0.accept);
    if (env.kind !== "accept") throw new Error("not an Accept");
    const s = env.sealedIdentity.length;
    const reseal = (edit: (d: Uint8Array) => Uint8Array) =>
      resealDetails(c0.accept, c0.ephemeralSecret, c0.invitation.prekey, edit);
    /** Details signed again by Bob after `edit` (§5.2 signature), so that only the edit is wrong. */
    const resigned = (edit: (d: Uint8Array) => void) =>
      reseal((d) => {
        const out = d.slice();
        edit(out);
        const m = out[96]!;
        const signed = concat(
          new TextEncoder().encode("parley/v1/accept-signature"),
          env.prefixBytes,
          out.subarray(0, 97 + m),
          c0.alice.publicIdentity.signingKey,
          c0.alice.publicIdentity.agreementKey,
        );
        out.set(c0.bob.sign(signed), 97 + m);
        return out;
      });
    const other = conversation("must-reject/other");
    // Step 4: a post-quantum Accept (the classical side of DOWNGRADE is in pq-handshake.test.ts).
    const kem = mlKemKeyPair(seeded("must-reject/kem"));
    const postQuantumAccept = acceptInvitation(
      c0.bob,
      { ...c0.invitation, version: 2, kemCommitment: kemCommitment(kem.publicKey) },
      { mailbox: c0.bobMailbox.address, relayUrl: RELAY, plaintext: text("x"), kemPublicKey: kem.publicKey },
    ).message;
    const cases: [string, Uint8Array, number, string][] = [
      ["1 truncated envelope", c0.accept.subarray(0, 30), NOW, "DecodeError BAD_FRAME"],
      [
        "1 Accept version 3",
        Uint8Array.from(c0.accept, (b, i) => (i === 1 ? 3 : b)),
        NOW,
        "DecodeError UNSUPPORTED_VERSION",
      ],
      [
        "1 a Message instead of an Accept",
        c0.accept.subarray(52 + s),
        NOW,
        "HandshakeError UNKNOWN_INVITATION",
      ],
      ["2 an invitation never issued", other.accept, NOW, "HandshakeError UNKNOWN_INVITATION"],
      ["3 the invitation expired", c0.accept, c0.invitation.expiresAt * 1000, "HandshakeError EXPIRED"],
      [
        "4 a version 2 Accept for this version 1 invitation",
        postQuantumAccept,
        NOW,
        "HandshakeError VERSION_MISMATCH",
      ],
      [
        "5 low-order EK_B",
        concat(c0.accept.subarray(0, 18), LOW_ORDER, c0.accept.subarray(50)),
        NOW,
        "HandshakeError LOW_ORDER",
      ],
      ["6 sealed identity failing authentication", flip(c0.accept, 60), NOW, "HandshakeError AUTH"],
      ["7 malformed details", reseal((d) => d.subarray(0, d.length - 1)), NOW, "DecodeError BAD_FRAME"],
      ["8 accepter signature invalid", reseal((d) => flip(d, -1)), NOW, "HandshakeError BAD_SIGNATURE"],
      [
        "9 low-order accepter agreement key",
        resigned((d) => d.set(LOW_ORDER, 32)),
        NOW,
        "HandshakeError LOW_ORDER",
      ],
      ["10 embedded message refused", flip(c0.accept, -1), NOW, "RatchetError AUTH"],
    ];
    for (const [what, wire, now, expected] of cases) {
      const c = conversation("must-reject");
      expect(
        failure(() => c.book.accept(c.alice, wire, { now })),
        what,
      ).toBe(expected);
      // Nothing was consumed: the genuine Accept still opens the session.
      expect(c.book.accept(c.alice, c.accept, { now: NOW }).relayUrl, what).toBe(RELAY);
    }
    // 2, consumed: the same Accept a second time.
    const c = conversation("must-reject");
    c.book.accept(c.alice, c.accept, { now: NOW });
    expect(failure(() => c.book.accept(c.alice, c.accept, { now: NOW }))).toBe("HandshakeError CONSUMED");
  });

  it("§12 Accept at the accepter (§5.4): low-order invitation keys, a bad mailbox or relay URL, a first plaintext over 32 768 bytes", () => {
    const base = { mailbox: fx.bobMailbox.address, relayUrl: RELAY, plaintext: text("x") };
    expect(failure(() => acceptInvitation(fx.bob, { ...fx.invitation, prekey: LOW_ORDER }, base))).toBe(
      "HandshakeError LOW_ORDER",
    );
    const identity = { ...fx.invitation.identity, agreementKey: LOW_ORDER };
    expect(failure(() => acceptInvitation(fx.bob, { ...fx.invitation, identity }, base))).toBe(
      "HandshakeError LOW_ORDER",
    );
    expect(
      failure(() => acceptInvitation(fx.bob, fx.invitation, { ...base, mailbox: new Uint8Array(31) })),
    ).toBe("RangeError");
    expect(failure(() => acceptInvitation(fx.bob, fx.invitation, { ...base, relayUrl: "wss://a/#" }))).toBe(
      "RangeError",
    );
    expect(
      failure(() => acceptInvitation(fx.bob, fx.invitation, { ...base, plaintext: new Uint8Array(32769) })),
    ).toBe("PayloadError TOO_LARGE");
  });

  it("§12 ratchet messages (§6.4): AUTH, DUPLICATE, TOO_FAR_AHEAD, LOW_ORDER, EXHAUSTED, TOO_LARGE", () => {
    const c = conversation("must-reject");
    const alice = c.book.accept(c.alice, c.accept, { now: NOW }).session;
    const bob = c.bobSession;
    const repeat = bob.encrypt(text("repeat")); // still wrapped in the Accept
    expect(
      failure(() =>
        alice.decrypt(
          concat(repeat.subarray(0, 18), x25519KeyPair(seeded("ek2")).publicKey, repeat.subarray(50)),
        ),
      ),
    ).toBe("RatchetError AUTH"); // another handshake id
    expect(failure(() => alice.decrypt(flip(repeat, 60)))).toBe("RatchetError AUTH"); // accept digest differs
    expect(alice.decrypt(repeat)).toEqual(text("repeat"));

    const m0 = alice.encrypt(text("m0"));
    expect(failure(() => bob.decrypt(flip(m0, -1)))).toBe("RatchetError AUTH"); // tag
    expect(failure(() => bob.decrypt(concat(m0.subarray(0, 2), LOW_ORDER, m0.subarray(34))))).toBe(
      "RatchetError LOW_ORDER",
    );
    bob.decrypt(m0);
    expect(failure(() => bob.decrypt(m0))).toBe("RatchetError DUPLICATE");
    let far = m0;
    for (let i = 0; i < 1002; i++) far = alice.encrypt(text("skip"));
    // N = 1002 with Nr = 1: 1001 keys to skip in one chain.
    expect(failure(() => bob.decrypt(far))).toBe("RatchetError TOO_FAR_AHEAD");

    // EXHAUSTED: no sending chain (flag 2 cleared), or Ns = 2^32 − 1. Alice's state has flags 7.
    const state = alice.serialize();
    expect(state[177]).toBe(7);
    const noChain = concat(
      state.subarray(0, 177),
      new Uint8Array([5]),
      state.subarray(178, 210),
      state.subarray(242),
    );
    expect(failure(() => Session.deserialize(noChain).encrypt(text("x")))).toBe("RatchetError EXHAUSTED");
    const last = state.slice();
    last.set(u32(2 ** 32 - 1), 178 + 96);
    expect(failure(() => Session.deserialize(last).encrypt(text("x")))).toBe("RatchetError EXHAUSTED");
    last.set(u32(2 ** 32 - 2), 178 + 96);
    expect(decodeEnvelope(Session.deserialize(last).encrypt(text("x")))).toMatchObject({
      header: { index: 2 ** 32 - 2 },
    });
    expect(failure(() => alice.encrypt(new Uint8Array(32769)))).toBe("PayloadError TOO_LARGE");
  });

  it("§12 payloads (§7.3): BAD_PADDING, BAD_FRAME, UNSUPPORTED_VERSION, UNSUPPORTED_TYPE; TOO_LARGE when encoding", () => {
    const head = [1, 1, ...id16, ...sentAt];
    const cases: [string, Uint8Array, string][] = [
      ["a length that is not a bucket", new Uint8Array(255), "BAD_PADDING"],
      ["no 0x80 marker", new Uint8Array(256).fill(0x41), "BAD_PADDING"],
      ["all zero", new Uint8Array(256), "BAD_PADDING"],
      [
        "padded past its bucket",
        Uint8Array.from({ length: 1024 }, (_, i) => (i < 40 ? 1 : i === 40 ? 0x80 : 0)),
        "BAD_PADDING",
      ],
      ["empty content", pad([]), "BAD_FRAME"],
      ["version 2", pad([2, 1, ...id16]), "UNSUPPORTED_VERSION"],
      ["unknown type, however short", pad([1, 9]), "UNSUPPORTED_TYPE"],
      ["truncation", pad([...head, 0, 0, 0, 5, 0x61]), "BAD_FRAME"],
      ["text longer than 32 737 bytes", pad([...head, ...u32(32738)]), "BAD_FRAME"],
      ["invalid UTF-8", pad([...head, 0, 0, 0, 1, 0xff]), "BAD_FRAME"],
      ["receipt of 0 ids", pad([1, 2, ...id16, ...sentAt, 0, 0]), "BAD_FRAME"],
      ["receipt of 257 ids", pad([1, 3, ...id16, ...sentAt, ...u16(257)]), "BAD_FRAME"],
      ["sentAt above 2^53 − 1", pad([1, 1, ...id16, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), "BAD_FRAME"],
      ["bytes between the body and the marker", pad([...head, 0, 0, 0, 0, 0]), "BAD_FRAME"],
    ];
    for (const [what, bytes, code] of cases)
      expect(
        failure(() => decodePayload(bytes)),
        what,
      ).toMatch(new RegExp(` ${code}$`));
    expect(failure(() => decodePayload(pad([1, 9])))).toBe("PayloadError UNSUPPORTED_TYPE");
    const id = new Uint8Array(16);
    expect(failure(() => encodePayload({ type: "text", id, sentAt: 1, text: "a".repeat(32738) }))).toBe(
      "PayloadError TOO_LARGE",
    );
    expect(failure(() => encodePayload({ type: "read", id, sentAt: 1, ids: [] }))).toBe(
      "PayloadError TOO_LARGE",
    );
    expect(failure(() => encodePayload({ type: "read", id, sentAt: 1, ids: new Array(257).fill(id) }))).toBe(
      "PayloadError TOO_LARGE",
    );
  });

  it("§12 groups (§13.3, §14.3): a malformed group payload is BAD_FRAME; a text's or a file's signature verifies only as its author's over exactly its signed bytes, the read token excepted", () => {
    const groupId = new Uint8Array(16).fill(7);
    const id = new Uint8Array(16).fill(4);
    const me = fx.alice;
    const file = {
      name: "a.txt",
      mediaType: "",
      size: 1,
      sha256: new Uint8Array(32).fill(1),
      chunkCount: 1,
      relay: RELAY,
      blobId: new Uint8Array(32).fill(2),
      readToken: new Uint8Array(32).fill(3),
      fileKey: new Uint8Array(32).fill(4),
      expiresAt: NOW + 1000,
    };
    const signedFile = { groupId, id, sentAt: NOW, seq: 1, file };
    const fileSig = me.sign(groupFileSignedBytes(signedFile));
    const item = (body: GroupPayload["body"]) =>
      encodePayload({ type: "group", id, sentAt: NOW, groupId, body } as GroupPayload);
    const content = (padded: Uint8Array) => Array.from(padded.subarray(0, padded.lastIndexOf(0x80)));
    const at = 26 + 16; // the kind byte
    const fileItem = content(item({ kind: "file", seq: 1, file, signature: fileSig }));
    const withKind = (raw: number[], kind: number) => raw.map((b, i) => (i === at ? kind : b));
    const setM = (raw: number[], m: number) =>
      raw.map((b, i) => (i === at + 5 ? m >> 8 : i === at + 6 ? m & 0xff : b));
    const m = (fileItem[at + 5]! << 8) | fileItem[at + 6]!;
    const cases: [string, number[]][] = [
      ["an unknown kind", withKind(fileItem, 7)],
      ["an empty entry", [...fileItem.slice(0, at), 2, 0, 0]],
      ["an empty invitation code", [...fileItem.slice(0, at), 3, ...new Array(64).fill(1), 0, 0]],
      ["a text over MAX_GROUP_TEXT_BYTES", [...fileItem.slice(0, at), 1, 0, 0, 0, 1, ...u32(32589)]],
      ["a file whose M is over 788", setM(fileItem, 789)],
      ["a file whose M is short of its manifest", setM(fileItem, m - 1)],
      ["a file whose M runs past its manifest", setM(fileItem, m + 1)],
      [
        "a file whose manifest's chunk count does not match its size",
        fileItem.map((b, i) => (i === at + 7 + 1 + 5 + 1 + 8 + 32 + 3 ? 2 : b)),
      ],
      ["a file cut short", fileItem.slice(0, -1)],
      ["a file with a trailing byte", [...fileItem, 0]],
    ];
    for (const [what, raw] of cases)
      expect(
        failure(() => decodePayload(pad(raw))),
        what,
      ).toBe("PayloadError BAD_FRAME");

    const text = { groupId, id, sentAt: NOW, seq: 1, text: "hi" };
    const textSig = me.sign(groupTextSignedBytes(text));
    expect(verifyGroupText(me.publicIdentity.signingKey, text, textSig)).toBe(true);
    expect(verifyGroupText(fx.bob.publicIdentity.signingKey, text, textSig)).toBe(false);
    expect(verifyGroupText(me.publicIdentity.signingKey, { ...text, seq: 2 }, textSig)).toBe(false);
    expect(verifyGroupText(me.publicIdentity.signingKey, text, flip(textSig, 0))).toBe(false);
    const author = me.publicIdentity.signingKey;
    expect(verifyGroupFile(author, signedFile, fileSig)).toBe(true);
    // Each member's copy has its own read token under the one signature.
    const otherToken = { ...signedFile, file: { ...file, readToken: new Uint8Array(32).fill(9) } };
    expect(verifyGroupFile(author, otherToken, fileSig)).toBe(true);
    expect(verifyGroupFile(fx.bob.publicIdentity.signingKey, signedFile, fileSig)).toBe(false);
    expect(verifyGroupFile(author, { ...signedFile, seq: 2 }, fileSig)).toBe(false);
    expect(verifyGroupFile(author, { ...signedFile, file: { ...file, size: 2 } }, fileSig)).toBe(false);
    expect(verifyGroupFile(author, signedFile, flip(fileSig, -1))).toBe(false);
    // A signature over the text label does not pass for a file, nor the other way round.
    expect(verifyGroupFile(author, signedFile, textSig)).toBe(false);
  });

  it("§12 frames (§8.4): UNSUPPORTED_VERSION, TOO_LARGE, BAD_FRAME; the encoder refuses version 0", () => {
    const address = new Array(32).fill(1);
    const frame = (bytes: number[]) => new Uint8Array(bytes);
    const req = [0, 0, 0, 1];
    const cases: [string, Uint8Array, string][] = [
      ["version 2", frame([2, 0x82, ...req]), "UNSUPPORTED_VERSION"],
      ["empty", frame([]), "BAD_FRAME"],
      ["unknown type 0x08", frame([1, 0x08, ...req]), "BAD_FRAME"],
      ["short body", frame([1, 0x05, ...req, ...address.slice(1)]), "BAD_FRAME"],
      ["long body", frame([1, 0x82, ...req, 0]), "BAD_FRAME"],
      ["empty ciphertext", frame([1, 0x03, ...req, ...address, ...id16]), "BAD_FRAME"],
      ["unknown error code", frame([1, 0x84, ...req, ...u16(99), 0, 0]), "BAD_FRAME"],
      [
        "error message over 1024 bytes",
        frame([1, 0x84, ...req, ...u16(6), ...u16(1025), ...new Array(1025).fill(0x61)]),
        "BAD_FRAME",
      ],
      ["error message not UTF-8", frame([1, 0x84, ...req, ...u16(6), 0, 1, 0xff]), "BAD_FRAME"],
      ["hello.maxVersion = 0", frame([1, 0x01, ...req, 0]), "BAD_FRAME"],
      [
        "welcome.version = 0",
        frame([1, 0x81, ...req, 0, ...address, ...u32(65536), ...u32(60)]),
        "BAD_FRAME",
      ],
      [
        "a u64 above 2^53 − 1",
        frame([1, 0x83, ...req, ...address, ...id16, 0, 0x20, 0, 0, 0, 0, 0, 0, 7]),
        "BAD_FRAME",
      ],
    ];
    for (const [what, bytes, code] of cases)
      expect(
        failure(() => decodeFrame(bytes)),
        what,
      ).toBe(`DecodeError ${code}`);
    const deposit = frame([1, 0x03, ...req, ...address, ...id16, ...new Array(101).fill(7)]);
    expect(failure(() => decodeFrame(deposit, { maxCiphertext: 100 }))).toBe("DecodeError TOO_LARGE");
    expect(decodeFrame(deposit, { maxCiphertext: 101 }).type).toBe("deposit");
    expect(failure(() => encodeFrame({ type: "hello", requestId: 1, maxVersion: 0 }))).toBe("RangeError");
    const welcome = {
      type: "welcome",
      requestId: 1,
      version: 0,
      challenge: new Uint8Array(32),
      maxCiphertext: 1,
      retentionSeconds: 1,
    } as const;
    expect(failure(() => encodeFrame(welcome))).toBe("RangeError");
  });

  it("§12 mailbox proofs (§8.3): a proof verifies only for exactly its action, challenge and address under its owner key", () => {
    const owner = MailboxKey.generate(seeded("owner"));
    const stranger = MailboxKey.generate(seeded("stranger"));
    const challenge = seeded("challenge")(32);
    const proof = owner.prove(MailboxAction.subscribe, challenge);
    expect(
      verifyMailboxProof(owner.publicKey, MailboxAction.subscribe, challenge, owner.address, proof),
    ).toBe(true);
    expect(verifyMailboxProof(owner.publicKey, MailboxAction.delete, challenge, owner.address, proof)).toBe(
      false,
    );
    expect(
      verifyMailboxProof(owner.publicKey, MailboxAction.subscribe, flip(challenge, 0), owner.address, proof),
    ).toBe(false);
    expect(
      verifyMailboxProof(owner.publicKey, MailboxAction.subscribe, challenge, stranger.address, proof),
    ).toBe(false);
    expect(
      verifyMailboxProof(stranger.publicKey, MailboxAction.subscribe, challenge, owner.address, proof),
    ).toBe(false);
  });

  it("§12 serializations (§3.4, §6.5): another version is UNSUPPORTED_VERSION; every listed inconsistency is BAD_FRAME", () => {
    const c = conversation("must-reject");
    const pending = c.pending.serialize();
    const book = new InvitationBook();
    book.add(PendingInvitation.deserialize(pending));
    const alice = c.book.accept(c.alice, c.accept, { now: NOW }).session;
    const bob = c.bobSession;
    const decoders: [string, Uint8Array, (b: Uint8Array) => unknown][] = [
      ["Identity", c.alice.serialize(), Identity.deserialize],
      ["MailboxKey", c.aliceMailbox.serialize(), MailboxKey.deserialize],
      ["PendingInvitation", pending, PendingInvitation.deserialize],
      ["InvitationBook", book.serialize(), InvitationBook.deserialize],
      ["Session", alice.serialize(), Session.deserialize],
    ];
    for (const [what, bytes, decode] of decoders) {
      expect(
        failure(() => decode(Uint8Array.from(bytes, (b, i) => (i === 0 ? 3 : b)))),
        what,
      ).toBe("DecodeError UNSUPPORTED_VERSION");
      expect(
        failure(() => decode(bytes.subarray(0, bytes.length - 1))),
        what,
      ).toBe("DecodeError BAD_FRAME");
      expect(
        failure(() => decode(concat(bytes, new Uint8Array(1)))),
        what,
      ).toBe("DecodeError BAD_FRAME");
    }
    const bad = (bytes: Uint8Array, at: number, values: number[]) => {
      const out = bytes.slice();
      out.set(values, at);
      return out;
    };
    const aliceState = alice.serialize(); // flags 7
    const bobState = bob.serialize(); // flags 11: DHr, CKs, then the Accept (prefix at 242, S at 292)
    expect([aliceState[177], bobState[177]]).toEqual([7, 11]);
    // Bob has one skipped key after message 1 arrives before message 0.
    const [m0, m1] = [alice.encrypt(text("0")), alice.encrypt(text("1"))];
    bob.decrypt(m1);
    const skipped = bob.serialize();
    const entry = skipped.subarray(skipped.length - 68);
    const k = skipped.length - 68 - 4;
    expect(skipped.subarray(k, k + 4)).toEqual(new Uint8Array(u32(1)));
    const twoEntries = (second: Uint8Array) => concat(bad(skipped, k, u32(2)), second);
    const cases: [string, () => unknown][] = [
      [
        "a PendingInvitation whose prekey is not X25519(secret)",
        () => PendingInvitation.deserialize(flip(pending, 68)),
      ],
      [
        "an InvitationBook pending entry over 1024 bytes",
        () =>
          InvitationBook.deserialize(
            new Uint8Array([1, ...u32(1), ...u16(1025), ...new Uint8Array(1025), ...u32(0)]),
          ),
      ],
      ["session flags 16", () => Session.deserialize(bad(aliceState, 177, [16]))],
      ["session flag 8 without flag 2", () => Session.deserialize(bad(bobState, 177, [9]))],
      ["session flag 4 without flag 1", () => Session.deserialize(bad(aliceState, 177, [6]))],
      [
        "a stored Accept body over 1520 bytes",
        () => Session.deserialize(concat(bad(bobState, 292, u16(1521)), new Uint8Array(2000))),
      ],
      ["a stored sealed identity under 16 bytes", () => Session.deserialize(bad(bobState, 292, u16(15)))],
      [
        "a stored Accept that does not match the accept digest",
        () => Session.deserialize(flip(bobState, 300)),
      ],
      [
        "a stored Accept that does not match the handshake id",
        () => Session.deserialize(flip(bobState, 100)),
      ],
      ["more than 2000 skipped keys", () => Session.deserialize(bad(skipped, k, u32(2001)))],
      ["a duplicate skipped key", () => Session.deserialize(twoEntries(entry))],
    ];
    for (const [what, f] of cases) expect(failure(f), what).toBe("DecodeError BAD_FRAME");
    // A second entry with another index is fine: it is the duplicate that is refused.
    expect(Session.deserialize(twoEntries(bad(entry, 32, u32(7)))).serialize()).toHaveLength(
      skipped.length + 68,
    );
    expect(bob.decrypt(m0)).toEqual(text("0"));
  });

  it("§12 safety numbers (§9.3): only the exact compact form or exactly the 60 digits match", () => {
    const safety = safetyNumber(fx.alice.publicIdentity, fx.bob.publicIdentity);
    const other = safetyNumber(fx.alice.publicIdentity, Identity.generate(seeded("carol")).publicIdentity);
    for (const ok of [
      safety.digits,
      safety.display,
      safety.compact,
      safety.compact.toLowerCase(),
      ` ${safety.display}\n`,
    ])
      expect(verifySafetyNumber(safety, ok), JSON.stringify(ok)).toBe(true);
    const changed = safety.digits.slice(0, -1) + (safety.digits.endsWith("0") ? "1" : "0");
    for (const no of [
      changed,
      safety.digits.slice(1),
      `${safety.digits}0`,
      safety.display.replace(/ /g, "-"),
      safety.display.replace(/ /g, "\u00a0"),
      other.compact,
      other.digits,
      safety.compact.replace("PARLEYSN1-", "PARLEYSN2-"),
      "",
    ])
      expect(verifySafetyNumber(safety, no), JSON.stringify(no)).toBe(false);
  });
});
