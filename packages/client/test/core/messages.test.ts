// Outgoing statuses (core/messages.ts) over a real store: they only move forward, and a message's
// failure is recorded only while it waits and cleared once it gets through.
import { afterEach, describe, expect, it } from "vitest";
import { Contacts } from "../../src/core/contacts.js";
import { advances, Messages } from "../../src/core/messages.js";
import { Receipts } from "../../src/core/receipts.js";
import type { MessageRecord, MessageStatus } from "../../src/store.js";
import { cleanupStores, contactRecord, harness } from "./helpers.js";

afterEach(cleanupStores);

function setup() {
  const h = harness();
  const contacts = new Contacts(h.ctx, h.store.tables.contacts);
  const receipts = new Receipts(h.ctx, h.store.tables.receipts, contacts);
  const messages = new Messages(h.ctx, h.store.tables.messages, contacts, receipts, () => 7 * 86400);
  const id = contacts.put(null, contactRecord("Bob"));
  return { ...h, contacts, receipts, messages, id };
}

const out = (n: number, status: MessageStatus): MessageRecord => ({
  id: n.toString(16).padStart(32, "0"),
  direction: "out",
  text: `m${n}`,
  sentAt: 1,
  receivedAt: 1,
  status,
});

describe("advances", () => {
  it("orders queued < stored < expired < delivered < read, and failed last", () => {
    const order: MessageStatus[] = ["queued", "stored", "expired", "delivered", "read", "failed"];
    for (const [i, from] of order.entries()) {
      for (const [j, to] of order.entries()) expect(advances(from, to)).toBe(i < j);
    }
  });
});

describe("Messages", () => {
  it("moves a queued message to stored, clearing why it waited; nothing else", () => {
    const { store, messages, id } = setup();
    const seq = store.tx(() => messages.add(id, out(1, "queued"))!);
    const failure = { code: "mailbox-full" as const };
    expect(store.tx(() => messages.noteFailure(id, seq, failure))?.failure).toEqual(failure);
    expect(store.tx(() => messages.noteFailure(id, seq, failure))).toBeNull();
    const stored = store.tx(() => messages.markStored(id, seq));
    expect(stored).toEqual(out(1, "stored"));
    expect(store.tx(() => messages.markStored(id, seq))).toBeNull();
    expect(store.tx(() => messages.markFailed(id, seq, failure))).toBeNull();
    expect(messages.bySeq(id, seq)?.status).toBe("stored");
  });

  it("takes a receipt only forward: an expired message can still be delivered, a read one is not un-read", () => {
    const { store, messages, id } = setup();
    const seq = store.tx(() => messages.add(id, out(2, "stored"))!);
    expect(store.tx(() => messages.markExpired(id, seq))?.status).toBe("expired");
    const hex = out(2, "stored").id;
    expect(store.tx(() => messages.acknowledge(id, hex, "delivered"))).toEqual({
      seq,
      value: out(2, "delivered"),
    });
    expect(store.tx(() => messages.acknowledge(id, hex, "read"))?.value.status).toBe("read");
    expect(store.tx(() => messages.acknowledge(id, hex, "delivered"))).toBeNull();
    expect(store.tx(() => messages.markExpired(id, seq))).toBeNull();
    expect(messages.bySeq(id, seq)?.status).toBe("read");
  });

  it("never takes a receipt for an incoming message, or one it does not have", () => {
    const { store, messages, id } = setup();
    const incoming: MessageRecord = { ...out(3, "received"), direction: "in" };
    store.tx(() => messages.add(id, incoming));
    expect(store.tx(() => messages.acknowledge(id, incoming.id, "read"))).toBeNull();
    expect(store.tx(() => messages.acknowledge(id, "ff".repeat(16), "read"))).toBeNull();
  });

  it("says why an outgoing message is not delivered, with the contact's name as it is now", () => {
    const { contacts, messages, id } = setup();
    const bob = contacts.get(id)!;
    expect(messages.failureOf(bob, out(1, "expired"))).toBe(
      "Bob did not fetch it before the relay dropped it (it keeps messages 7d)",
    );
    expect(messages.failureOf({ ...bob, keyChanged: true }, out(1, "queued"))).toMatch(
      /^held until you compare/,
    );
    expect(messages.failureOf(bob, { ...out(1, "failed"), failure: { code: "mailbox-gone" } })).toBe(
      "Bob's mailbox no longer exists",
    );
    expect(messages.failureOf(bob, out(1, "delivered"))).toBeNull();
  });

  it("marks shown messages read and queues a read receipt for each, once", () => {
    const { store, contacts, messages, id } = setup();
    const incoming = (n: number): MessageRecord => ({ ...out(n, "received"), direction: "in" });
    store.tx(() => {
      messages.add(id, incoming(1));
      messages.add(id, incoming(2));
      contacts.put(id, { ...contacts.get(id)!, unread: 2 });
    });
    expect(messages.history("Bob").map((m) => m.text)).toEqual(["m1", "m2"]);
    expect(messages.conversation("Bob", {}, 10).map((e) => e.message.status)).toEqual(["read", "read"]);
    expect(contacts.get(id)?.unread).toBe(0);
    messages.history("Bob");
    expect(store.tables.receipts.all().map((r) => r.value)).toEqual([
      { kind: "read", id: incoming(1).id },
      { kind: "read", id: incoming(2).id },
    ]);
  });

  it("marks unread messages read even when my own replies (more than the unread count) came after them", () => {
    const { store, contacts, messages, id } = setup();
    const incoming = (n: number): MessageRecord => ({ ...out(n, "received"), direction: "in" });
    store.tx(() => {
      messages.add(id, incoming(1));
      messages.add(id, incoming(2));
      for (let n = 3; n < 40; n++) messages.add(id, out(n, "stored"));
      contacts.put(id, { ...contacts.get(id)!, unread: 2 });
    });
    messages.markRead("Bob");
    expect(contacts.get(id)?.unread).toBe(0);
    const statuses = messages.conversation("Bob", {}, 100).map((e) => e.message.status);
    expect(statuses.slice(0, 2)).toEqual(["read", "read"]);
    expect(
      store.tables.receipts
        .all()
        .map((r) => r.value.id)
        .sort(),
    ).toEqual([incoming(1).id, incoming(2).id].sort());
  });
});
