import { describe, expect, it } from "vitest";
import { concat } from "../src/_bytes.js";
import { dh, hkdfSha256, open, type RandomSource, seal, systemRandom, x25519KeyPair } from "../src/crypto.js";
import { encodeAccept, encodeAcceptPrefix, encodeHeader } from "../src/envelope.js";
import {
  acceptInvitation,
  checkInvitationKeys,
  createInvitation,
  DecodeError,
  decodeEnvelope,
  decodeInvitation,
  decodePayload,
  encodePayload,
  Identity,
  type Invitation,
  InvitationBook,
  MAX_ENVELOPE_LENGTH,
  MailboxKey,
  newMessageId,
  type PendingInvitation,
  RatchetError,
  Session,
  toHex,
} from "../src/index.js";

const RELAY = "wss://relay.example.org";
const text = (t: string) => encodePayload({ type: "text", id: newMessageId(), sentAt: 1, text: t });
const read = (b: Uint8Array) => {
  const p = decodePayload(b);
  return p.type === "text" ? p.text : p.type;
};

function setup() {
  const alice = Identity.generate();
  const bob = Identity.generate();
  const aliceMailbox = MailboxKey.generate();
  const bobMailbox = MailboxKey.generate();
  const { code, pending } = createInvitation(alice, {
    postQuantum: false,
    relayUrl: RELAY,
    mailbox: aliceMailbox.address,
  });
  const book = new InvitationBook();
  book.add(pending);
  const invitation = decodeInvitation(code);
  const accepted = acceptInvitation(bob, invitation, {
    mailbox: bobMailbox.address,
    relayUrl: "ws://127.0.0.1:7070",
    plaintext: text("hello"),
  });
  return { alice, bob, bobMailbox, book, pending, invitation, ...accepted };
}

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as { code: string }).code;
  }
  throw new Error("expected a throw");
}

/** Re-seals an Accept's identity block after `edit`, using the spec's seal key (PROTOCOL.md §5.2). */
function resealIdentity(
  wire: Uint8Array,
  pending: PendingInvitation,
  edit: (details: Uint8Array) => void,
): Uint8Array {
  const env = decodeEnvelope(wire);
  if (env.kind !== "accept") throw new Error("not an accept");
  const info = concat(new TextEncoder().encode("parley/v1/accept-seal"), env.ephemeralKey, pending.prekey);
  const key = hkdfSha256(dh(pending.prekeySecret, env.ephemeralKey), new Uint8Array(0), info, 32);
  const nonce = new Uint8Array(12);
  const details = open(key, nonce, env.sealedIdentity, env.prefixBytes);
  edit(details);
  const sealed = seal(key, nonce, details, env.prefixBytes);
  const out = Uint8Array.from(wire);
  out.set(sealed, 52);
  return out;
}

describe("handshake", () => {
  it("opens a session: the inviter learns the accepter's identity, mailbox, relay and first message", () => {
    const { alice, bob, bobMailbox, book, message, session } = setup();
    const contact = book.accept(alice, message);
    expect(toHex(contact.identity.signingKey)).toBe(toHex(bob.publicIdentity.signingKey));
    expect(toHex(contact.identity.agreementKey)).toBe(toHex(bob.publicIdentity.agreementKey));
    expect(toHex(contact.mailbox)).toBe(toHex(bobMailbox.address));
    expect(contact.relayUrl).toBe("ws://127.0.0.1:7070");
    expect(read(contact.plaintext)).toBe("hello");
    expect(book.size).toBe(0);
    expect(read(session.decrypt(contact.session.encrypt(text("hi bob"))))).toBe("hi bob");
  });

  it("keeps the accepter's identity out of the relay's sight: it is sealed to the prekey", () => {
    const { bob, message } = setup();
    const hex = toHex(message);
    expect(hex).not.toContain(toHex(bob.publicIdentity.signingKey));
    expect(hex).not.toContain(toHex(bob.publicIdentity.agreementKey));
  });

  it("a replayed Accept opens no second session; its message belongs to the first session", () => {
    const { alice, book, message } = setup();
    const contact = book.accept(alice, message);
    const before = book.serialize();
    expect(code(() => book.accept(alice, message))).toBe("CONSUMED");
    expect(toHex(book.serialize())).toBe(toHex(before));
    expect(code(() => contact.session.decrypt(message))).toBe("DUPLICATE");
  });

  it("wraps the accepter's messages in the Accept until the inviter replies, then stops", () => {
    const { alice, book, message, session } = setup();
    const second = session.encrypt(text("second"));
    expect(decodeEnvelope(second).kind).toBe("accept");
    expect(session.awaitingReply).toBe(true);
    // The second message overtakes the first: it opens the session by itself.
    const contact = book.accept(alice, second);
    expect(read(contact.plaintext)).toBe("second");
    expect(read(contact.session.decrypt(message))).toBe("hello");
    session.decrypt(contact.session.encrypt(text("reply")));
    expect(session.awaitingReply).toBe(false);
    expect(decodeEnvelope(session.encrypt(text("third"))).kind).toBe("message");
  });

  it("refuses an Accept for an unknown invitation", () => {
    const { alice, message } = setup();
    expect(code(() => new InvitationBook().accept(alice, message))).toBe("UNKNOWN_INVITATION");
  });

  it("refuses an Accept after the invitation expired, and expire() forgets it", () => {
    const { alice, book, message, pending } = setup();
    const late = pending.expiresAt * 1000;
    expect(code(() => book.accept(alice, message, { now: late }))).toBe("EXPIRED");
    expect(book.expire(late)).toBe(1);
    expect(code(() => book.accept(alice, message))).toBe("UNKNOWN_INVITATION");
  });

  it("refuses a tampered Accept anywhere, leaving the invitation usable", () => {
    const { alice, book, message } = setup();
    for (const offset of [20, 60, message.length - 60, message.length - 1]) {
      const bad = Uint8Array.from(message);
      bad[offset]! ^= 0x01;
      expect(() => book.accept(alice, bad)).toThrow(/authentication|rejected|low-order/);
    }
    expect(read(book.accept(alice, message).plaintext)).toBe("hello");
  });

  it("refuses an Accept whose identity is not the signer's (BAD_SIGNATURE)", () => {
    const { alice, book, message, pending } = setup();
    const mallory = Identity.generate();
    const forged = resealIdentity(message, pending, (details) =>
      details.set(mallory.publicIdentity.signingKey, 0),
    );
    expect(code(() => book.accept(alice, forged))).toBe("BAD_SIGNATURE");
    const badSig = resealIdentity(message, pending, (details) => {
      details[details.length - 1]! ^= 0x80;
    });
    expect(code(() => book.accept(alice, badSig))).toBe("BAD_SIGNATURE");
  });

  it("refuses a low-order prekey (accepter side) and a low-order ephemeral key (inviter side)", () => {
    const { bob, alice, book, message, invitation } = setup();
    const lowOrder = new Uint8Array(32);
    lowOrder[0] = 1;
    const evil: Invitation = { ...invitation, prekey: lowOrder };
    const options = { mailbox: new Uint8Array(32), relayUrl: RELAY, plaintext: text("x") };
    expect(code(() => acceptInvitation(bob, evil, options))).toBe("LOW_ORDER");
    expect(code(() => acceptInvitation(bob, { ...invitation, prekey: new Uint8Array(32) }, options))).toBe(
      "LOW_ORDER",
    );
    const bad = Uint8Array.from(message);
    bad.set(lowOrder, 18);
    expect(code(() => book.accept(alice, bad))).toBe("LOW_ORDER");
  });

  it("checkInvitationKeys names the low-order key of an invitation, and passes a good one (§4.2)", () => {
    const { invitation } = setup();
    const lowOrder = new Uint8Array(32); // u = 0
    expect(() => checkInvitationKeys(invitation)).not.toThrow();
    const badPrekey = { ...invitation, prekey: lowOrder };
    expect(code(() => checkInvitationKeys(badPrekey))).toBe("LOW_ORDER");
    expect(() => checkInvitationKeys(badPrekey)).toThrow(/prekey/);
    const badAgreement = { ...invitation, identity: { ...invitation.identity, agreementKey: lowOrder } };
    expect(code(() => checkInvitationKeys(badAgreement))).toBe("LOW_ORDER");
    expect(() => checkInvitationKeys(badAgreement)).toThrow(/agreement key/);
  });

  it("MAX_ENVELOPE_LENGTH is the largest envelope the decoder accepts (§8.4): a version 2 Accept wrapping a v3 Message at the limit decodes, one byte more does not", () => {
    const header = encodeHeader({
      version: 3,
      ratchetKey: new Uint8Array(32),
      previousChainLength: 0,
      index: 0,
      nonce: new Uint8Array(24),
      flags: 0,
    });
    const prefix = encodeAcceptPrefix(new Uint8Array(16), new Uint8Array(32), 2);
    const accept = (identity: number, sealed: number) =>
      encodeAccept(prefix, new Uint8Array(identity), concat(header, new Uint8Array(sealed)));
    // The largest Accept body (KEM ciphertext and sealed identity) and the largest sealed message,
    // found from the decoder's answers (a binary search: it accepts every length from its least,
    // 1104 and 16, up to its limit, and none above).
    const largest = (ok: (n: number) => boolean) => {
      let [lo, hi] = [1104, 0xffff];
      while (lo + 1 < hi) {
        const mid = (lo + hi) >>> 1;
        if (ok(mid)) lo = mid;
        else hi = mid;
      }
      return lo;
    };
    const decodes = (bytes: Uint8Array) => {
      try {
        decodeEnvelope(bytes);
        return true;
      } catch (e) {
        expect(e).toBeInstanceOf(DecodeError);
        return false;
      }
    };
    const identity = largest((n) => decodes(accept(n, 16)));
    const sealed = largest((n) => decodes(accept(1104, n)));
    expect(identity).toBe(1088 + 432);
    expect(decodes(accept(identity, sealed))).toBe(true);
    expect(accept(identity, sealed).length).toBe(MAX_ENVELOPE_LENGTH);
  });

  it("binds messages to their session: another session's message fails authentication", () => {
    const one = setup();
    const two = setup();
    const c1 = one.book.accept(one.alice, one.message);
    two.book.accept(two.alice, two.message);
    const before = toHex(two.session.serialize());
    expect(code(() => two.session.decrypt(c1.session.encrypt(text("x"))))).toBe("AUTH");
    expect(toHex(two.session.serialize())).toBe(before);
  });

  it("the invitation book survives serialization, consumed ids included", () => {
    const { alice, book, message } = setup();
    const restored = InvitationBook.deserialize(book.serialize());
    expect(restored.size).toBe(1);
    restored.accept(alice, message);
    const again = InvitationBook.deserialize(restored.serialize());
    expect(code(() => again.accept(alice, message))).toBe("CONSUMED");
  });
});

describe("double ratchet", () => {
  function pair() {
    const s = setup();
    const contact = s.book.accept(s.alice, s.message);
    return { a: contact.session, b: s.session };
  }

  it("delivers out of order and after losses", () => {
    const { a, b } = pair();
    const wires = ["m0", "m1", "m2", "m3", "m4"].map((t) => a.encrypt(text(t)));
    expect(read(b.decrypt(wires[3]!))).toBe("m3");
    expect(read(b.decrypt(wires[0]!))).toBe("m0");
    expect(b.skippedCount).toBe(2);
    expect(read(b.decrypt(wires[4]!))).toBe("m4");
    expect(read(b.decrypt(wires[2]!))).toBe("m2");
    expect(b.skippedCount).toBe(1); // m1 lost, its key kept within the bound
    // After a change of speaker the old chain's skipped keys still work.
    const back = b.encrypt(text("back"));
    expect(read(a.decrypt(back))).toBe("back");
    const next = a.encrypt(text("next"));
    expect(read(b.decrypt(next))).toBe("next");
    expect(read(b.decrypt(wires[1]!))).toBe("m1");
    expect(b.skippedCount).toBe(0);
  });

  it("rejects a replay of every message, with the state unchanged", () => {
    const { a, b } = pair();
    const w = a.encrypt(text("once"));
    b.decrypt(w);
    const before = toHex(b.serialize());
    expect(code(() => b.decrypt(w))).toBe("DUPLICATE");
    expect(toHex(b.serialize())).toBe(before);
  });

  it("refuses a gap above MAX_SKIP with the state unchanged", () => {
    const { a, b } = pair();
    for (let i = 0; i < 1001; i++) a.encrypt(text("x"));
    const far = a.encrypt(text("far"));
    const before = toHex(b.serialize());
    expect(code(() => b.decrypt(far))).toBe("TOO_FAR_AHEAD");
    expect(toHex(b.serialize())).toBe(before);
  });

  it("a failed message leaves the state byte-identical, and the good copy still decrypts", () => {
    const { a, b } = pair();
    b.decrypt(a.encrypt(text("warm up")));
    const reply = a.decrypt(b.encrypt(text("turn")));
    expect(read(reply)).toBe("turn");
    const w = a.encrypt(text("target"));
    const before = toHex(b.serialize());
    for (let i = 0; i < w.length; i += 7) {
      const bad = Uint8Array.from(w);
      bad[i]! ^= 0x04;
      expect(() => b.decrypt(bad)).toThrow();
      expect(toHex(b.serialize())).toBe(before);
    }
    expect(read(b.decrypt(w))).toBe("target");
  });

  it("§1.4 a forged message with a new ratchet key draws nothing; the genuine one draws the new ratchet secret", () => {
    const { a, b } = pair();
    b.decrypt(a.encrypt(text("warm up")));
    a.decrypt(b.encrypt(text("turn")));
    // a's next message carries a new ratchet key: for b, a DH ratchet step.
    const w = a.encrypt(text("new key"));
    const draws: number[] = [];
    const restored = Session.deserialize(b.serialize(), {
      random: (n) => {
        draws.push(n);
        return systemRandom(n);
      },
    });
    const forged = Uint8Array.from(w);
    forged[forged.length - 1]! ^= 0x01; // the tag
    expect(code(() => restored.decrypt(forged))).toBe("AUTH");
    expect(draws).toEqual([]);
    expect(read(restored.decrypt(w))).toBe("new key");
    expect(draws).toEqual([32]);
  });

  it("a session restored from serialize() carries on", () => {
    const { a, b } = pair();
    const pendingWire = a.encrypt(text("in flight"));
    a.encrypt(text("lost"));
    const restored = Session.deserialize(b.serialize());
    expect(read(restored.decrypt(a.encrypt(text("after"))))).toBe("after");
    expect(read(restored.decrypt(pendingWire))).toBe("in flight");
    expect(read(a.decrypt(restored.encrypt(text("reply"))))).toBe("reply");
  });

  it("wipe() destroys the keys: nothing decrypts afterwards", () => {
    const { a, b } = pair();
    const w = a.encrypt(text("x"));
    b.wipe();
    expect(() => b.decrypt(w)).toThrow(RatchetError);
  });

  it("throws typed errors only for a non-message", () => {
    const { b } = pair();
    expect(() => b.decrypt(new Uint8Array([9, 9, 9]))).toThrow(
      expect.objectContaining({ code: "BAD_FRAME" }),
    );
    expect(() => b.decrypt(new Uint8Array(0))).toThrow(DecodeError);
    expect(() => b.decrypt(new Uint8Array([2, 7, ...new Uint8Array(60)]))).toThrow(
      expect.objectContaining({ code: "UNSUPPORTED_VERSION" }),
    );
  });
});

describe("§5.2 the sealed identity", () => {
  /** The system random source, recording every draw. */
  const recording = () => {
    const draws: Uint8Array[] = [];
    const random: RandomSource = (n) => {
      const v = systemRandom(n);
      draws.push(v.slice());
      return v;
    };
    return { draws, random };
  };
  const sealedParts = (wire: Uint8Array) => {
    const env = decodeEnvelope(wire);
    if (env.kind !== "accept") throw new Error("not an Accept");
    return { prefix: toHex(env.prefixBytes), ek: env.ephemeralKey, sealed: toHex(env.sealedIdentity), env };
  };

  it("§5.2 an implementation MUST generate a fresh ek_B for every acceptance: EK_B is the first draw's key, and two acceptances of one code share nothing", () => {
    const alice = Identity.generate();
    const bob = Identity.generate();
    const { code, pending } = createInvitation(alice, {
      postQuantum: false,
      relayUrl: RELAY,
      mailbox: MailboxKey.generate().address,
    });
    const options = { mailbox: MailboxKey.generate().address, relayUrl: RELAY, plaintext: text("hi") };
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const { draws, random } = recording();
      const { message } = acceptInvitation(bob, decodeInvitation(code), { ...options, random });
      const { ek, sealed, env } = sealedParts(message);
      // ek_B, then the first ratchet key, then the first message's nonce (§1.4)
      expect(draws.map((d) => d.length)).toEqual([32, 32, 24]);
      expect(toHex(ek)).toBe(toHex(x25519KeyPair(() => draws[0]!.slice()).publicKey));
      // The sealed identity is sealed under this acceptance's own SealKey (DH3 with this ek_B).
      const info = concat(new TextEncoder().encode("parley/v1/accept-seal"), ek, pending.prekey);
      const key = hkdfSha256(dh(draws[0]!, pending.prekey), new Uint8Array(32), info, 32);
      expect(open(key, new Uint8Array(12), env.sealedIdentity, env.prefixBytes)).toHaveLength(
        161 + RELAY.length,
      );
      for (const part of [toHex(ek), sealed]) {
        expect(seen.has(part)).toBe(false);
        seen.add(part);
      }
    }
  });

  it("§5.2 an implementation MUST NOT seal a second plaintext under a SealKey: every repeat, before and after a restore, resends the one sealed identity", () => {
    const alice = Identity.generate();
    const bob = Identity.generate();
    const { code, pending } = createInvitation(alice, {
      postQuantum: false,
      relayUrl: RELAY,
      mailbox: MailboxKey.generate().address,
    });
    const { draws, random } = recording();
    const accepted = acceptInvitation(bob, decodeInvitation(code), {
      mailbox: MailboxKey.generate().address,
      relayUrl: RELAY,
      plaintext: text("first"),
      random,
    });
    const first = sealedParts(accepted.message);
    let session = accepted.session;
    const repeats: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) repeats.push(session.encrypt(text(`repeat ${i}`)));
    session = Session.deserialize(session.serialize(), { random });
    for (let i = 0; i < 2; i++) repeats.push(session.encrypt(text(`restored ${i}`)));
    for (const wire of repeats) {
      const again = sealedParts(wire);
      expect(again.prefix).toBe(first.prefix);
      expect(again.sealed).toBe(first.sealed);
    }
    // After ek_B and the first ratchet key, encrypting draws only each message's nonce (24 bytes),
    // never a key, so nothing could be sealed afresh.
    expect(draws.map((d) => d.length)).toEqual([32, 32, ...Array<number>(6).fill(24)]);

    // The inviter opens a repeat; once Bob has read a reply, he stops wrapping and seals nothing more.
    const book = new InvitationBook();
    book.add(pending);
    const contact = book.accept(alice, repeats[4]!);
    expect(read(contact.plaintext)).toBe("restored 1");
    session.decrypt(contact.session.encrypt(text("reply")));
    expect(decodeEnvelope(session.encrypt(text("after"))).kind).toBe("message");
  });
});
