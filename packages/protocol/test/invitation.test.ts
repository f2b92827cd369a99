import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { verify } from "../src/crypto.js";
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
  postQuantum: false,
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
    expect(refusal(code.replace("PARLEY1-", "PARLEY3-"))).toBe("UNSUPPORTED_VERSION");
    expect(refusal(code.replace("PARLEY1-", "PARLEY02-"))).toBe("UNSUPPORTED_VERSION");
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
      postQuantum: false,
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
      postQuantum: false,
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
      expect(() => createInvitation(alice, { postQuantum: false, relayUrl, mailbox, now: NOW })).toThrow(
        InvitationError,
      );
    }
  });

  it("refuses an out-of-range lifetime", () => {
    expect(() =>
      createInvitation(alice, { postQuantum: false, relayUrl: "wss://r.example", mailbox, ttlSeconds: 0 }),
    ).toThrow(RangeError);
    expect(() =>
      createInvitation(alice, {
        postQuantum: false,
        relayUrl: "wss://r.example",
        mailbox,
        ttlSeconds: 91 * 86400,
      }),
    ).toThrow(RangeError);
  });
});

describe("§4.1 the code string", () => {
  const sha256 = (...parts: (string | Uint8Array)[]) => {
    const h = createHash("sha256");
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  };
  /** RFC 4648 §6 base32 without padding, written out independently of src/base32.ts. */
  const b32 = (bytes: Uint8Array) => {
    const bits = [...bytes].map((b) => b.toString(2).padStart(8, "0")).join("");
    const groups = bits.padEnd(Math.ceil(bits.length / 5) * 5, "0").match(/.{5}/g) ?? [];
    return groups.map((g) => "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[Number.parseInt(g, 2)]).join("");
  };
  const u32 = (n: number) => new Uint8Array([n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);

  it("§4.1 an encoder MUST emit exactly PARLEY1- || B32(body) || - || B32(checksum), the body laid out field by field", () => {
    const urls = [
      "ws://a",
      "wss://relay.example.org",
      "wss://relay.example.org:8443",
      `wss://r.example/${"p".repeat(239)}`,
    ];
    for (const relayUrl of urls) {
      const created = createInvitation(alice, { postQuantum: false, relayUrl, mailbox, now: NOW });
      const inv = created.invitation;
      const url = new TextEncoder().encode(relayUrl);
      expect(inv.expiresAt).toBe(Math.floor(NOW / 1000) + 604_800);
      const signed = new Uint8Array([
        1,
        ...u32(inv.expiresAt),
        ...mailbox,
        ...alice.publicIdentity.signingKey,
        ...alice.publicIdentity.agreementKey,
        ...inv.prekey,
        url.length,
        ...url,
      ]);
      expect(
        verify(
          alice.publicIdentity.signingKey,
          new Uint8Array([...new TextEncoder().encode("parley/v1/invitation-signature"), ...signed]),
          inv.signature,
        ),
      ).toBe(true);
      const body = new Uint8Array([...signed, ...inv.signature]);
      expect(body.length).toBe(198 + url.length);
      const checksum = sha256("parley/v1/invitation-checksum", body).subarray(0, 5);
      expect(created.code).toBe(`PARLEY1-${b32(body)}-${b32(checksum)}`);
      expect(created.code).toHaveLength(17 + Math.ceil((8 * (198 + url.length)) / 5));
      expect(created.code).toMatch(/^PARLEY1-[A-Z2-7]+-[A-Z2-7]{8}$/);
      expect(encodeInvitation(decodeInvitation(created.code, { now: NOW }))).toBe(created.code);
    }
    expect(
      createInvitation(alice, { postQuantum: false, relayUrl: "wss://relay.example.org", mailbox, now: NOW })
        .code,
    ).toHaveLength(371);
  });
});
