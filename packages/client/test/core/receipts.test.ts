// Receipt grouping (core/receipts.ts): per contact, delivered before read, at most 256 ids each.
import {
  acceptInvitation,
  createInvitation,
  decodeInvitation,
  decodePayload,
  Identity,
  InvitationBook,
  toHex,
} from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { Contacts } from "../../src/core/contacts.js";
import { groupReceipts, MAX_RECEIPT_IDS, Receipts } from "../../src/core/receipts.js";
import type { ReceiptRow } from "../../src/store/receipts.js";
import { cleanupStores, contactRecord, harness } from "./helpers.js";

afterEach(cleanupStores);

const row = (
  seq: number,
  contact: string,
  kind: "delivered" | "read",
  id = seq.toString(16),
): ReceiptRow => ({
  seq,
  contact,
  value: { kind, id },
});

describe("groupReceipts", () => {
  it("groups by contact in order of each one's first receipt, delivered before read, ids in queue order", () => {
    const groups = groupReceipts([
      row(1, "b", "read"),
      row(2, "a", "delivered"),
      row(3, "b", "delivered"),
      row(4, "b", "read"),
      row(5, "a", "delivered"),
    ]);
    expect(groups).toEqual([
      {
        contact: "b",
        batches: [
          { kind: "delivered", ids: ["3"] },
          { kind: "read", ids: ["1", "4"] },
        ],
        seqs: [1, 3, 4],
      },
      { contact: "a", batches: [{ kind: "delivered", ids: ["2", "5"] }], seqs: [2, 5] },
    ]);
  });

  it("splits a kind into receipts of at most 256 ids, keeping every row to remove", () => {
    const pending = Array.from({ length: 600 }, (_, i) => row(i + 1, "a", "read"));
    const [group] = groupReceipts(pending);
    expect(group!.batches.map((b) => b.ids.length)).toEqual([MAX_RECEIPT_IDS, MAX_RECEIPT_IDS, 88]);
    expect(group!.batches.flatMap((b) => b.ids)).toEqual(pending.map((r) => r.value.id));
    expect(group!.seqs).toHaveLength(600);
  });

  it("makes nothing of nothing", () => {
    expect(groupReceipts([])).toEqual([]);
  });
});

describe("Receipts.seal", () => {
  it("encrypts each contact's pending receipts into its session, for the outbox, and clears them", () => {
    const { store, ctx } = harness();
    const contacts = new Contacts(ctx, store.tables.contacts);
    const receipts = new Receipts(ctx, store.tables.receipts, contacts);
    // A real session: I invited Bob, Bob accepted.
    const bob = Identity.generate();
    const mailbox = new Uint8Array(32).fill(1);
    const { code, pending } = createInvitation(ctx.identity, { relayUrl: "ws://r.example", mailbox });
    const accepted = acceptInvitation(bob, decodeInvitation(code), {
      mailbox,
      relayUrl: "ws://r.example",
      plaintext: new Uint8Array(0),
      kemPublicKey: pending.kemPublicKey,
    });
    const book = new InvitationBook();
    book.add(pending);
    const mine = book.accept(ctx.identity, accepted.message);
    const id = contacts.put(null, contactRecord("Bob", { session: toHex(mine.session.serialize()) }));
    const ids = ["01".repeat(16), "02".repeat(16)];
    store.tx(() => {
      receipts.queue(id, "read", ids[1]!);
      receipts.queue(id, "delivered", ids[0]!);
      receipts.queue("a-deleted-contact", "read", ids[0]!);
    });
    const sealed: { contact: string; wire: Uint8Array }[] = [];
    const before = contacts.get(id)!.session;
    receipts.seal((contact, _record, wire) => sealed.push({ contact, wire }));
    expect(sealed.map((s) => s.contact)).toEqual([id, id]);
    const opened = sealed.map((s) => decodePayload(accepted.session.decrypt(s.wire)));
    expect(opened.map((p) => p.type)).toEqual(["delivered", "read"]);
    expect(opened.map((p) => (p.type === "delivered" || p.type === "read" ? p.ids.map(toHex) : []))).toEqual([
      [ids[0]],
      [ids[1]],
    ]);
    // The ratchet step is saved with the contact; nothing is left pending, not even the orphan.
    expect(contacts.get(id)!.session).not.toBe(before);
    expect(store.tables.receipts.all()).toEqual([]);
  });
});
