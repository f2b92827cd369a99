// A sender whose state goes backwards (a restored backup, a VM snapshot, a synced folder) must not
// encrypt twice under one (key, nonce): PROTOCOL.md §6.2 "Nonce uniqueness" (issue 13, Medium 2).
import { describe, expect, it } from "vitest";
import {
  acceptInvitation,
  createInvitation,
  DecodeError,
  decodeEnvelope,
  decodeInvitation,
  decodePayload,
  encodePayload,
  HEADER_LENGTH,
  Identity,
  InvitationBook,
  LABELS,
  LEGACY_HEADER_LENGTH,
  MAX_ENVELOPE_LENGTH,
  MailboxKey,
  MESSAGE_NONCE_LENGTH,
  type MessageEnvelope,
  newMessageId,
  type RandomSource,
  Session,
  systemRandom,
  toHex,
} from "../src/index.js";

const RELAY = "wss://relay.example.org";
const text = (t: string) => encodePayload({ type: "text", id: newMessageId(), sentAt: 1, text: t });
const read = (b: Uint8Array) => {
  const p = decodePayload(b);
  return p.type === "text" ? p.text : p.type;
};

/** An inviter (Alice) and an accepter (Bob) with an open session; Alice has not sent yet. */
function opened(random: RandomSource = systemRandom) {
  const alice = Identity.generate();
  const bob = Identity.generate();
  const { code, pending } = createInvitation(alice, {
    postQuantum: false,
    relayUrl: RELAY,
    mailbox: MailboxKey.generate().address,
  });
  const book = new InvitationBook();
  book.add(pending);
  const accepted = acceptInvitation(bob, decodeInvitation(code), {
    mailbox: MailboxKey.generate().address,
    relayUrl: RELAY,
    plaintext: text("hello"),
  });
  const contact = book.accept(alice, accepted.message, { random });
  return { alice: contact.session, bob: accepted.session };
}

const message = (wire: Uint8Array): MessageEnvelope => {
  const e = decodeEnvelope(wire);
  return e.kind === "accept" ? e.message : e;
};

const xor = (a: Uint8Array, b: Uint8Array) => a.map((x, i) => x ^ b[i]!);

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as { code: string }).code;
  }
  throw new Error("expected a throw");
}

describe("§6.2 a rewound sender reuses no (key, nonce)", () => {
  it("§6.2 encrypting again from a restored copy of the state gives a fresh nonce, so XOR of the ciphertexts is not XOR of the plaintexts", () => {
    const { alice, bob } = opened();
    const backup = alice.serialize();
    const ptA = text("attack at dawn");
    const wireA = alice.encrypt(ptA);
    // The backup comes back: the state that produced A is rewound, and encrypts B.
    const restored = Session.deserialize(backup);
    const ptB = text("retreat at six");
    const wireB = restored.encrypt(ptB);
    expect(ptB.length).toBe(ptA.length);

    const a = message(wireA);
    const b = message(wireB);
    // The rewind is real: both messages sit at the same chain position, so under the same key.
    expect(toHex(b.header.ratchetKey)).toBe(toHex(a.header.ratchetKey));
    expect(b.header.index).toBe(a.header.index);
    expect(b.sealed.length).toBe(a.sealed.length);
    // ...but the keystreams differ: the ciphertexts' XOR does not reveal the plaintexts' XOR, not
    // even in the zero padding, where a reused keystream makes the two ciphertexts equal.
    const bodies = xor(a.sealed.subarray(0, ptA.length), b.sealed.subarray(0, ptB.length));
    expect(toHex(bodies)).not.toBe(toHex(xor(ptA, ptB)));
    const tail = ptA.length - 40;
    expect(toHex(a.sealed.subarray(tail, ptA.length))).not.toBe(toHex(b.sealed.subarray(tail, ptB.length)));
    // That is because the (key, nonce) pairs differ: each encryption drew its own nonce.
    expect(a.header.nonce).toBeInstanceOf(Uint8Array);
    expect(b.header.nonce).toBeInstanceOf(Uint8Array);
    expect(toHex(b.header.nonce!)).not.toBe(toHex(a.header.nonce!));

    // The receiver takes the first; the rewound sender's reuse of that index is refused as a
    // DUPLICATE, which leaves its state as it was: that message is lost, not exposed.
    expect(read(bob.decrypt(wireA))).toBe("attack at dawn");
    const before = toHex(bob.serialize());
    expect(code(() => bob.decrypt(wireB))).toBe("DUPLICATE");
    expect(toHex(bob.serialize())).toBe(before);
  });

  it("§6.2 a clone of a state (the same bytes deserialized twice) also encrypts under different nonces", () => {
    const { alice } = opened();
    const bytes = alice.serialize();
    const one = message(Session.deserialize(bytes).encrypt(text("x")));
    const two = message(Session.deserialize(bytes).encrypt(text("x")));
    expect(one.header.index).toBe(two.header.index);
    expect(toHex(one.header.nonce!)).not.toBe(toHex(two.header.nonce!));
    expect(toHex(one.sealed)).not.toBe(toHex(two.sealed));
  });

  it("§1.4 encryption draws one 24-byte nonce per message, after its checks; the nonce is the header's", () => {
    const draws: number[] = [];
    let last: Uint8Array = new Uint8Array(0);
    const counting: RandomSource = (n) => {
      draws.push(n);
      last = systemRandom(n);
      return last;
    };
    const { alice } = opened(counting);
    draws.length = 0;
    const wire = alice.encrypt(text("one"));
    expect(draws).toEqual([24]);
    expect(toHex(message(wire).header.nonce!)).toBe(toHex(last));
    // A refused encryption (TOO_LARGE) draws nothing.
    expect(() => alice.encrypt(new Uint8Array(32769))).toThrow(/exceeds/);
    expect(draws).toEqual([24]);
  });

  it("§6.3 Messages are sent as version 2 with a 66-byte header; the nonce is authenticated", () => {
    const { alice, bob } = opened();
    const wire = alice.encrypt(text("v2"));
    expect(wire[0]).toBe(0x02);
    expect(wire[1]).toBe(0x02);
    expect(wire.length).toBe(66 + 256 + 16);
    const m = message(wire);
    expect(m.headerBytes.length).toBe(66);
    expect(toHex(m.headerBytes.subarray(42, 66))).toBe(toHex(m.header.nonce!));
    const tampered = Uint8Array.from(wire);
    tampered[50]! ^= 1; // a nonce byte
    expect(code(() => bob.decrypt(tampered))).toBe("AUTH");
    expect(read(bob.decrypt(wire))).toBe("v2");
  });

  it("§6.3 decoding: a Message version other than 1, 2 or 3 is UNSUPPORTED_VERSION; a v2 header cut inside its nonce is BAD_FRAME", () => {
    const { alice } = opened();
    const wire = alice.encrypt(text("v"));
    const v4 = Uint8Array.from(wire);
    v4[1] = 4;
    expect(() => decodeEnvelope(v4)).toThrow(DecodeError);
    expect(code(() => decodeEnvelope(v4))).toBe("UNSUPPORTED_VERSION");
    expect(code(() => decodeEnvelope(wire.subarray(0, 60)))).toBe("BAD_FRAME");
    // Cut to a v1 header's length plus a tag: as v2 it is a header truncated in its nonce.
    expect(code(() => decodeEnvelope(wire.subarray(0, 42 + 16)))).toBe("BAD_FRAME");
  });

  it("§6.4 a v2 message whose version byte is set to 1 fails authentication (AUTH), never decrypts", () => {
    const { alice, bob } = opened();
    const wire = alice.encrypt(text("downgrade"));
    const v1 = Uint8Array.from(wire);
    v1[1] = 1;
    // Read as v1, the nonce becomes ciphertext; the tag cannot verify under the v1 key and nonce.
    expect(code(() => bob.decrypt(v1))).toBe("AUTH");
    expect(read(bob.decrypt(wire))).toBe("downgrade");
  });

  it("§8.4 MAX_ENVELOPE_LENGTH is a version 2 Accept with the largest body wrapping the largest v3 Message, 34 424 bytes; with a v2 Message, 34 422", () => {
    expect([HEADER_LENGTH, LEGACY_HEADER_LENGTH, MESSAGE_NONCE_LENGTH]).toEqual([66, 42, 24]);
    expect(MAX_ENVELOPE_LENGTH).toBe(50 + 2 + 1088 + 432 + 67 + 32785);
    expect(MAX_ENVELOPE_LENGTH).toBe(34424);
    const alice = Identity.generate();
    const { code, pending } = createInvitation(alice, {
      relayUrl: RELAY,
      mailbox: MailboxKey.generate().address,
    });
    const longUrl = `wss://relay.example.org/${"a".repeat(255 - 24)}`;
    expect(longUrl.length).toBe(255);
    const { message: wire } = acceptInvitation(Identity.generate(), decodeInvitation(code), {
      mailbox: MailboxKey.generate().address,
      relayUrl: longUrl,
      plaintext: new Uint8Array(32768),
      kemPublicKey: pending.kemPublicKey,
    });
    // A hybrid Accept starts a post-quantum session: it wraps a v3 Message (header 67), whose
    // largest plaintext leaves no room for the flags' extra byte, 1 byte below the limit.
    expect(wire.length).toBe(50 + 2 + 1088 + 432 + 67 + 32784);
    expect(wire.length).toBe(MAX_ENVELOPE_LENGTH - 1);
    expect(decodeEnvelope(wire).kind).toBe("accept");
  });

  it("§2 the v2 message-key label is listed, and no label is a prefix of another", () => {
    expect(LABELS.messageKeyV2).toBe("parley/v2/message-key");
    const labels = Object.values(LABELS);
    expect(new Set(labels).size).toBe(labels.length);
    for (const a of labels)
      for (const b of labels) if (a !== b) expect(b.startsWith(a), `${a} / ${b}`).toBe(false);
  });
});
