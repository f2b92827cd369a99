// What group changes and group messages look like (core/group-events.ts, core/group-views.ts,
// core/group-peers.ts): events made from two states, each author's messages in sequence order,
// the gap before a message, and a member's session used without writing the caller's copy.
import { GroupLog, type GroupOp, Identity, signGroupEntry, toHex } from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { changeEvents } from "../../src/core/group-events.js";
import { Peers } from "../../src/core/group-peers.js";
import { inAuthorOrder, missingBefore } from "../../src/core/group-views.js";
import type { GroupView } from "../../src/core/types.js";
import type { MessageRecord } from "../../src/store.js";
import { befriend, members } from "./group-helpers.js";
import { cleanupStores } from "./helpers.js";

afterEach(cleanupStores);

const [ann, ben, cat] = [Identity.generate(), Identity.generate(), Identity.generate()] as const;
const k = (i: Identity) => toHex(i.publicIdentity.signingKey);
const groupId = new Uint8Array(16).fill(7);
const names = new Map([
  [k(ann), "Ann"],
  [k(ben), "Ben"],
  [k(cat), "Cat"],
]);
const name = (key: string) => names.get(key) ?? "?";
const view = { group: "G" } as GroupView;
const entry = (author: Identity, op: GroupOp, parent?: Uint8Array, createdAt = 1) =>
  signGroupEntry(author, { groupId, op, createdAt, ...(parent ? { parent } : {}) });

describe("changeEvents", () => {
  const create = entry(ann, {
    op: "create",
    name: "G",
    members: [{ identity: ben.publicIdentity, admin: false }],
  });

  it("says created to the creator, joined (and by whom) to a member, and nothing to others", () => {
    const log = new GroupLog(groupId);
    log.add(create);
    const s = log.state()!;
    expect(changeEvents(null, s, k(ann), name, view)).toMatchObject([{ event: "created" }]);
    expect(changeEvents(null, s, k(ben), name, view)).toMatchObject([{ event: "joined", by: "Ann" }]);
    expect(changeEvents(null, s, k(cat), name, view)).toEqual([]);
  });

  it("names each change applied since, a change undone by a fork, and a refused one", () => {
    const log = new GroupLog(groupId);
    log.add(create);
    const before = log.state()!;
    const add = entry(ann, { op: "add", member: cat.publicIdentity }, create.hash);
    log.add(add);
    const promote = entry(ann, { op: "promote", member: cat.publicIdentity.signingKey }, add.hash);
    log.add(promote);
    // Ben (not an admin) renames: refused.
    log.add(entry(ben, { op: "rename", name: "Mine" }, promote.hash));
    const after = log.state()!;
    expect(changeEvents(before, after, k(ann), name, view)).toMatchObject([
      { event: "added", member: "Cat", by: "Ann" },
      { event: "promoted", member: "Cat", by: "Ann" },
      { event: "rejected", op: "rename", by: "Ben", reason: "its author is not an admin" },
    ]);
    // A concurrent removal of Ben on the create, with a lower hash than the add, undoes the add.
    let removal = entry(ann, { op: "remove", member: ben.publicIdentity.signingKey }, create.hash);
    for (let t = 2; toHex(removal.hash) > toHex(add.hash); t++)
      removal = entry(ann, { op: "remove", member: ben.publicIdentity.signingKey }, create.hash, t);
    log.add(removal);
    expect(changeEvents(after, log.state()!, k(ann), name, view)).toMatchObject([
      { event: "fork", op: "add", member: "Cat" },
      { event: "fork", op: "promote", member: "Cat" },
      { event: "removed", member: "Ben", by: "Ann" },
    ]);
  });
});

const msg = (author: string, seq: number, text: string): { value: MessageRecord } => ({
  value: {
    id: text,
    direction: "in",
    text,
    sentAt: 0,
    receivedAt: 0,
    status: "received",
    group: { author, seq, signature: "" },
  },
});

describe("group views", () => {
  it("put each author's messages in sequence order, in the places that author's messages take", () => {
    const rows = [
      msg("a", 2, "a2"),
      msg("b", 1, "b1"),
      msg("a", 1, "a1"),
      msg("b", 2, "b2"),
      msg("a", 3, "a3"),
    ];
    expect(inAuthorOrder(rows).map((r) => r.value.text)).toEqual(["a1", "b1", "a2", "b2", "a3"]);
  });

  it("count the messages of an author missing before one", () => {
    expect(missingBefore(undefined, 1)).toBe(0);
    expect(missingBefore(undefined, 3)).toBe(2);
    expect(missingBefore({ through: 1, above: [3, 5] }, 5)).toBe(2);
    expect(missingBefore({ through: 1, above: [3, 5] }, 2)).toBe(0);
    // Below the floor (sent before I joined) nothing counts.
    expect(missingBefore({ through: 0, above: [6] }, 6, 5)).toBe(0);
    expect(missingBefore({ through: 0, above: [6, 9] }, 9, 5)).toBe(2);
  });
});

describe("Peers", () => {
  it("encrypts with the caller's copy of a contact and never writes that copy", () => {
    const [me, other] = members("Me", "Other");
    befriend(me!, other!);
    const row = me!.core.contacts.all()[0]!;
    const held = { id: row.key, contact: row.value };
    const before = held.contact.session;
    me!.h.store.tx(() => {
      const peers = new Peers(me!.core.contacts, held);
      expect(peers.has(toHex(other!.h.ctx.identity.publicIdentity.signingKey))).toBe(true);
      peers.encrypt(toHex(other!.h.ctx.identity.publicIdentity.signingKey), {
        type: "text",
        id: new Uint8Array(16),
        sentAt: 1,
        text: "x",
      });
      peers.save();
    });
    // The ratchet moved in the caller's copy only: the store still has the old one (the caller saves).
    expect(held.contact.session).not.toBe(before);
    expect(me!.core.contacts.get(row.key)!.session).toBe(before);
  });
});
