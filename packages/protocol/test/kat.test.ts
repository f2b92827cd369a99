import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildTranscript } from "../scripts/kat-transcript.js";
import {
  acceptInvitation,
  decodeFrame,
  decodeInvitation,
  decodePayload,
  encodeFrame,
  encodeInvitation,
  fromHex,
  Identity,
  InvitationBook,
  invitationId,
  PendingInvitation,
  type RandomSource,
  type Session,
  safetyNumber,
  toHex,
} from "../src/index.js";

interface Kat {
  now: number;
  random: Record<string, string>;
  identities: Record<
    "alice" | "bob",
    { signingKey: string; agreementKey: string; fingerprint: string; secret: string }
  >;
  invitation: {
    code: string;
    prekey: string;
    expiresAt: number;
    relayUrl: string;
    mailbox: string;
    id: string;
  };
  handshake: { acceptPayload: string; accept: string };
  messages: { from: "alice" | "bob"; payload: string; wire: string }[];
  frames: { hex: string }[];
  safetyNumber: { digits: string; compact: string };
}

const committed = JSON.parse(readFileSync(new URL("../vectors/kat.json", import.meta.url), "utf8")) as Kat;

/** Replays the named draws from the committed file, in order. */
const draws =
  (...names: string[]): RandomSource =>
  () =>
    fromHex(committed.random[names.shift()!]!);

describe("known-answer vectors (vectors/kat.json)", () => {
  it("the implementation reproduces the committed transcript byte for byte", () => {
    expect(buildTranscript()).toEqual(committed);
  });

  it("the invitation code decodes to the recorded fields and re-encodes identically", () => {
    const inv = decodeInvitation(committed.invitation.code, { now: committed.now });
    expect(toHex(inv.prekey)).toBe(committed.invitation.prekey);
    expect(toHex(inv.mailbox)).toBe(committed.invitation.mailbox);
    expect(inv.relayUrl).toBe(committed.invitation.relayUrl);
    expect(inv.expiresAt).toBe(committed.invitation.expiresAt);
    expect(toHex(invitationId(inv.prekey))).toBe(committed.invitation.id);
    expect(encodeInvitation(inv)).toBe(committed.invitation.code);
  });

  it("the recorded Accept and messages decrypt, from the recorded secrets alone, to the recorded payloads", () => {
    const alice = Identity.deserialize(fromHex(committed.identities.alice.secret));
    const bob = Identity.deserialize(fromHex(committed.identities.bob.secret));
    expect(toHex(alice.publicIdentity.signingKey)).toBe(committed.identities.alice.signingKey);
    expect(toHex(bob.publicIdentity.agreementKey)).toBe(committed.identities.bob.agreementKey);
    expect(alice.fingerprint).toBe(committed.identities.alice.fingerprint);

    const prekey = fromHex(committed.invitation.prekey);
    const book = new InvitationBook();
    book.add(
      new PendingInvitation(
        invitationId(prekey),
        fromHex(committed.random["alice/prekey-secret"]!),
        prekey,
        committed.invitation.expiresAt,
      ),
    );
    const contact = book.accept(alice, fromHex(committed.handshake.accept), {
      now: committed.now,
      random: draws("alice/ratchet-1", "alice/ratchet-2"),
    });
    expect(toHex(contact.plaintext)).toBe(committed.handshake.acceptPayload);
    expect(toHex(contact.identity.signingKey)).toBe(committed.identities.bob.signingKey);

    // Bob's side is replayed from his recorded draws; his Accept must come out identical.
    const bobSide = acceptInvitation(
      bob,
      decodeInvitation(committed.invitation.code, { now: committed.now }),
      {
        mailbox: contact.mailbox,
        relayUrl: contact.relayUrl,
        plaintext: fromHex(committed.handshake.acceptPayload),
        random: draws("bob/ephemeral-secret", "bob/ratchet-1", "bob/ratchet-2", "bob/ratchet-3"),
      },
    );
    expect(toHex(bobSide.message)).toBe(committed.handshake.accept);

    const sessions: Record<"alice" | "bob", Session> = { alice: contact.session, bob: bobSide.session };
    for (const m of committed.messages) {
      const receiver = m.from === "alice" ? sessions.bob : sessions.alice;
      const plaintext = receiver.decrypt(fromHex(m.wire));
      expect(toHex(plaintext)).toBe(m.payload);
      expect(() => decodePayload(plaintext)).not.toThrow();
    }
  });

  it("every recorded frame decodes and re-encodes to the same bytes", () => {
    expect(committed.frames).toHaveLength(11);
    for (const f of committed.frames) expect(toHex(encodeFrame(decodeFrame(fromHex(f.hex))))).toBe(f.hex);
  });

  it("the safety number is the recorded one, whichever side computes it", () => {
    const a = {
      signingKey: fromHex(committed.identities.alice.signingKey),
      agreementKey: fromHex(committed.identities.alice.agreementKey),
    };
    const b = {
      signingKey: fromHex(committed.identities.bob.signingKey),
      agreementKey: fromHex(committed.identities.bob.agreementKey),
    };
    expect(safetyNumber(a, b).digits).toBe(committed.safetyNumber.digits);
    expect(safetyNumber(b, a).compact).toBe(committed.safetyNumber.compact);
  });
});
