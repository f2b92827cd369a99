// The rules of first contact (core/first-contact.ts, core/invitations.ts): when the first-contact
// mailbox is due for deletion, Accept replays remembered, earlier conversations kept on renewal.
import { describe, expect, it } from "vitest";
import { digestOf, rememberAccept, secondAccept, settleFirstContact } from "../../src/core/first-contact.js";
import { introPayload, retire } from "../../src/core/invitations.js";
import { decodeIntro } from "../../src/intro.js";
import { contactRecord, mailboxKeyHex } from "./helpers.js";

const NOW = 1_800_000_000_000;
const first = (patch: { moved?: boolean; until?: number } = {}) => ({
  relay: "ws://relay.example",
  key: mailboxKeyHex(),
  until: NOW + 3_600_000,
  ...patch,
});

describe("settleFirstContact", () => {
  it("is due once the contact wrote to the new inbox with nothing skipped, and is due now", () => {
    const f = first();
    expect(settleFirstContact(f, true, 0, NOW)).toBe(true);
    expect(f).toMatchObject({ moved: true, until: NOW });
  });

  it("waits while something sent before is missing, remembering that the contact moved", () => {
    const f = first();
    expect(settleFirstContact(f, true, 2, NOW)).toBe(false);
    expect(f).toMatchObject({ moved: true, until: NOW + 3_600_000 });
    // The missing message arrives, through the first-contact mailbox: now it is due.
    expect(settleFirstContact(f, false, 0, NOW + 5)).toBe(true);
    expect(f.until).toBe(NOW + 5);
  });

  it("is not due while the contact still writes to the first-contact mailbox", () => {
    const f = first();
    expect(settleFirstContact(f, false, 0, NOW)).toBe(false);
    expect(f.moved).toBeUndefined();
  });

  it("never moves a deadline that has already passed later", () => {
    const f = first({ until: NOW - 10 });
    expect(settleFirstContact(f, true, 0, NOW)).toBe(true);
    expect(f.until).toBe(NOW - 10);
  });
});

describe("Accept replays", () => {
  it("remembers each Accept once, newest last, at most 64", () => {
    const c = contactRecord("Bob");
    const digests = Array.from({ length: 70 }, (_, i) => digestOf(new Uint8Array([1, i])));
    for (const d of digests) rememberAccept(c, d);
    rememberAccept(c, digests[69]!);
    expect(c.accepts).toEqual(digests.slice(6));
    rememberAccept(c, digests[10]!);
    expect(c.accepts).toHaveLength(64);
    expect(c.accepts!.at(-1)).toBe(digests[10]);
    expect(c.accepts!.filter((d) => d === digests[10])).toHaveLength(1);
  });

  it("names a second acceptance only for an Accept-wrapped delivery that fails to authenticate", () => {
    const accept = new Uint8Array([0x01, 2, 3]);
    expect(secondAccept("Bob", accept, "AUTH")).toMatch(/second acceptance .* with Bob/);
    expect(secondAccept("Bob", accept, "DUPLICATE")).toBeNull();
    expect(secondAccept("Bob", new Uint8Array([0x02, 2, 3]), "AUTH")).toBeNull();
  });
});

describe("retire", () => {
  it("keeps the replaced conversation (and its open first-contact mailbox) readable until `until`", () => {
    const old = contactRecord("Bob", {
      session: "s-old",
      firstContact: first(),
      previous: [
        { inbox: { relay: "r", key: "gone" }, session: "s0", until: NOW - 1 },
        { inbox: { relay: "r", key: "kept" }, session: "s1", until: NOW + 1 },
      ],
    });
    const kept = retire(old, NOW, NOW + 99);
    expect(kept.map((p) => p.inbox.key)).toEqual(["kept", old.firstContact!.key, old.inbox.key]);
    expect(kept.slice(1).every((p) => p.session === "s-old" && p.until === NOW + 99)).toBe(true);
  });

  it("keeps at most three earlier conversations, the newest", () => {
    const previous = [1, 2, 3].map((i) => ({
      inbox: { relay: "r", key: `k${i}` },
      session: "s",
      until: NOW + i,
    }));
    const old = contactRecord("Bob", { previous });
    expect(retire(old, NOW, NOW + 9).map((p) => p.inbox.key)).toEqual(["k2", "k3", old.inbox.key]);
  });
});

describe("introPayload", () => {
  it("is a control text naming me and, when given, the inbox and its token", () => {
    const inbox = new Uint8Array(32).fill(7);
    const token = new Uint8Array(32).fill(9);
    const p = introPayload("Alice", { inbox, token });
    expect(p.type).toBe("text");
    const intro = decodeIntro(p.type === "text" ? p.text : "");
    expect(intro).toEqual({ name: "Alice", inbox, token });
    const bare = introPayload("Alice");
    expect(decodeIntro(bare.type === "text" ? bare.text : "")).toEqual({ name: "Alice" });
  });
});
