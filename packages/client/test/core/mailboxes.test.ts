// Which mailboxes are mine (core/mailboxes.ts), from real mailbox keys: grouped by relay for
// subscribing, indexed by address for routing, and the slot of a contact's that reads each.
import { fromHex, MailboxKey } from "@parley/protocol";
import { describe, expect, it } from "vitest";
import {
  addressOf,
  FIRST_CONTACT,
  inboxSlot,
  indexInboxes,
  Mailboxes,
  mailboxesByRelay,
  relaysInUse,
} from "../../src/core/mailboxes.js";
import type { ContactRecord, InvitationRecord, Row } from "../../src/store.js";
import { contactRecord, mailboxKeyHex } from "./helpers.js";

const addressFromKey = (hex: string) => MailboxKey.deserialize(fromHex(hex)).addressHex;

function fixture() {
  const alice: Row<ContactRecord> = {
    key: "c1",
    value: contactRecord("Alice", {
      inbox: { relay: "ws://a", key: mailboxKeyHex() },
      outbox: { relay: "ws://elsewhere", address: "00".repeat(32) },
      firstContact: { relay: "ws://a", key: mailboxKeyHex(), until: 1 },
      previous: [{ inbox: { relay: "ws://b", key: mailboxKeyHex() }, session: "", until: 1 }],
    }),
  };
  const invitation: Row<InvitationRecord> = {
    key: "i1",
    value: {
      pending: "",
      mailboxKey: mailboxKeyHex(),
      inboxKey: mailboxKeyHex(),
      relay: "ws://b",
      expiresAt: 1,
    },
  };
  return { alice, invitation };
}

describe("my mailboxes", () => {
  it("are grouped by relay, a contact's first-contact mailbox before the inbox that replaces it", () => {
    const { alice, invitation } = fixture();
    const boxes = mailboxesByRelay([alice], [invitation]);
    const hex = (keys: MailboxKey[] | undefined) => (keys ?? []).map((k) => k.addressHex);
    expect(hex(boxes.get("ws://a"))).toEqual([
      addressFromKey(alice.value.firstContact!.key),
      addressFromKey(alice.value.inbox.key),
    ]);
    expect(hex(boxes.get("ws://b"))).toEqual([
      addressFromKey(alice.value.previous![0]!.inbox.key),
      addressFromKey(invitation.value.mailboxKey),
      addressFromKey(invitation.value.inboxKey!),
    ]);
  });

  it("name every relay in use: mailboxes', contacts' and the default one", () => {
    const { alice, invitation } = fixture();
    expect([...relaysInUse([alice], [invitation], "ws://default")].sort()).toEqual(
      ["ws://a", "ws://b", "ws://default", "ws://elsewhere"].sort(),
    );
  });

  it("route each address to its owner, and within a contact to the conversation that reads it", () => {
    const { alice, invitation } = fixture();
    const index = indexInboxes([alice], [invitation]);
    const c = alice.value;
    for (const key of [c.inbox.key, c.firstContact!.key, c.previous![0]!.inbox.key]) {
      expect(index.get(addressFromKey(key))).toEqual({ kind: "contact", id: "c1" });
    }
    expect(index.get(addressFromKey(invitation.value.mailboxKey))).toEqual({ kind: "invitation", id: "i1" });
    expect(inboxSlot(c, addressOf(c.inbox.key))).toBe(-1);
    expect(inboxSlot(c, addressOf(c.firstContact!.key))).toBe(FIRST_CONTACT);
    expect(inboxSlot(c, addressOf(c.previous![0]!.inbox.key))).toBe(0);
    expect(inboxSlot(c, addressOf(invitation.value.mailboxKey))).toBeNull();
  });

  it("keep the index until told a mailbox changed hands, or asked to rebuild it", () => {
    const { alice, invitation } = fixture();
    let contacts = [alice];
    const boxes = new Mailboxes({
      contacts: () => contacts,
      invitations: () => [invitation],
      defaultRelay: () => undefined,
    });
    const inbox = addressOf(alice.value.inbox.key);
    expect(boxes.owner(inbox)).toEqual({ kind: "contact", id: "c1" });
    contacts = [];
    expect(boxes.owner(inbox)).toEqual({ kind: "contact", id: "c1" });
    expect(boxes.owner(inbox, true)).toBeUndefined();
    contacts = [alice];
    expect(boxes.owner(inbox)).toBeUndefined();
    boxes.invalidate();
    expect(boxes.owner(inbox)).toEqual({ kind: "contact", id: "c1" });
  });
});
