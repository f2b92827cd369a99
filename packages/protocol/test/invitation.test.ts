import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  base32Encode,
  createInvitation,
  decodeInvitation,
  encodeInvitation,
  Identity,
  INVITATION_PREFIX,
  InvitationError,
  type InvitationErrorCode,
  MailboxKey,
} from "../src/index.js";

const NOW = Date.UTC(2026, 5, 1);
const alice = Identity.generate();
const mailbox = MailboxKey.generate().address;
const { code, invitation } = createInvitation(alice, {
  relayUrl: "wss://relay.example.org:8443",
  mailbox,
  now: NOW,
});

function refusal(text: string, now = NOW): InvitationErrorCode {
  try {
    decodeInvitation(text, { now });
  } catch (e) {
    expect(e).toBeInstanceOf(InvitationError);
    return (e as InvitationError).code;
  }
  throw new Error("expected the code to be refused");
}

/** Replaces the character at `i` with another character of the base32 alphabet. */
function substitute(text: string, i: number): string {
  const c = text[i] === "A" ? "B" : "A";
  return text.slice(0, i) + c + text.slice(i + 1);
}

describe("invitation codes", () => {
  it("round-trips: decode gives the signed fields, and re-encoding gives the same code", () => {
    const decoded = decodeInvitation(code, { now: NOW });
    expect(decoded).toEqual(invitation);
    expect(encodeInvitation(decoded)).toBe(code);
  });

  it("is one line of QR-alphanumeric characters, short enough for a terminal QR code", () => {
    expect(code).toMatch(/^PARLEY1-[A-Z2-7]+-[A-Z2-7]{8}$/);
    expect(code.length).toBeLessThan(400);
  });

  it("tolerates line wrapping and lower case when pasted", () => {
    const wrapped = `  ${code.slice(0, 60)}\n${code.slice(60, 200).toLowerCase()}\r\n ${code.slice(200)} `;
    expect(decodeInvitation(wrapped, { now: NOW })).toEqual(invitation);
  });

  it("names a wrong prefix", () => {
    expect(refusal("hello there")).toBe("BAD_PREFIX");
    expect(refusal(code.replace("PARLEY1-", "PARLEY1"))).toBe("BAD_PREFIX");
    expect(refusal("")).toBe("BAD_PREFIX");
  });

  it("names a newer format version", () => {
    expect(refusal(code.replace("PARLEY1-", "PARLEY2-"))).toBe("UNSUPPORTED_VERSION");
  });

  it("names a character that cannot occur, with its position", () => {
    const bad = `${code.slice(0, 20)}0${code.slice(21)}`;
    expect(refusal(bad)).toBe("BAD_CHARACTER");
    expect(() => decodeInvitation(bad, { now: NOW })).toThrow(/character '0' at position 21/);
  });

  it("names a truncated code wherever it was cut", () => {
    for (const keep of [9, 40, 200, code.length - 9, code.length - 3, code.length - 1]) {
      expect(refusal(code.slice(0, keep)), `cut to ${keep}`).toBe("TRUNCATED");
    }
  });

  it("names a mistyped code: every single substitution is caught by the checksum", () => {
    for (let i = INVITATION_PREFIX.length; i < code.length; i++) {
      if (code[i] === "-") continue;
      expect(refusal(substitute(code, i)), `position ${i}`).toBe("CHECKSUM");
    }
  });

  it("names an altered code whose checksum was recomputed: the signature fails", () => {
    const other = createInvitation(alice, {
      relayUrl: "wss://evil.example.org",
      mailbox,
      now: NOW,
    }).invitation;
    // Swap in another relay URL but keep the original signature.
    const forged = encodeInvitation({ ...other, signature: invitation.signature });
    expect(refusal(forged)).toBe("BAD_SIGNATURE");
  });

  it("names a code signed by another identity than the one it carries", () => {
    const mallory = Identity.generate();
    const signedByMallory = createInvitation(mallory, {
      relayUrl: "wss://relay.example.org",
      mailbox,
      now: NOW,
    });
    const forged = encodeInvitation({ ...signedByMallory.invitation, identity: alice.publicIdentity });
    expect(refusal(forged)).toBe("BAD_SIGNATURE");
  });

  it("names an expired code, at and after its expiry", () => {
    expect(refusal(code, invitation.expiresAt * 1000)).toBe("EXPIRED");
    expect(refusal(code, invitation.expiresAt * 1000 + 1)).toBe("EXPIRED");
    expect(decodeInvitation(code, { now: invitation.expiresAt * 1000 - 1000 })).toEqual(invitation);
  });

  it("names a well-checksummed body that does not parse as MALFORMED", () => {
    // A correct checksum over garbage: the body is long enough but its relay URL length is wrong.
    const body = new Uint8Array(300).fill(1);
    const sum = createHash("sha256")
      .update("parley/v1/invitation-checksum")
      .update(body)
      .digest()
      .subarray(0, 5);
    expect(refusal(`${INVITATION_PREFIX}${base32Encode(body)}-${base32Encode(sum)}`)).toBe("MALFORMED");
  });

  it("refuses to create an invitation for a relay URL that is not ws: or wss:", () => {
    for (const relayUrl of [
      "https://relay.example.org",
      "not a url",
      "wss://user:pw@relay.example.org",
      "ws://x/#f",
    ]) {
      expect(() => createInvitation(alice, { relayUrl, mailbox, now: NOW })).toThrow(InvitationError);
    }
  });

  it("refuses an out-of-range lifetime", () => {
    expect(() => createInvitation(alice, { relayUrl: "wss://r.example", mailbox, ttlSeconds: 0 })).toThrow(
      RangeError,
    );
    expect(() =>
      createInvitation(alice, { relayUrl: "wss://r.example", mailbox, ttlSeconds: 91 * 86400 }),
    ).toThrow(RangeError);
  });
});
