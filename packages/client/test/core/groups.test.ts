// The group modules (core/groups.ts, group-changes.ts, group-send.ts, group-receive.ts,
// group-history.ts, group-introductions.ts) over real stores and real pairwise sessions, carried by an in-memory wire
// through each core's own receiving path.
import {
  createInvitation,
  encodePublicIdentity,
  fingerprint,
  fromHex,
  Identity,
  MailboxKey,
  signGroupEntry,
  toHex,
} from "@parley/protocol";
import { afterEach, describe, expect, it, vi } from "vitest";
import { identityOf } from "../../src/core/contacts.js";
import { groupChangeWords } from "../../src/group-words.js";
import { befriend, deliver, drain, groupTexts, type Member, members } from "./group-helpers.js";
import { cleanupStores } from "./helpers.js";

afterEach(cleanupStores);

const placeholder = (m: Member) =>
  `contact-${fingerprint(m.h.ctx.identity.publicIdentity).replace(/ /g, "").slice(0, 8)}`;

/** Ann, Ben and Cat, all contacts of each other (unless `strangers`: Ben and Cat are not), in "G". */
async function trio(strangers = false): Promise<[Member, Member, Member]> {
  const [ann, ben, cat] = members("Ann", "Ben", "Cat") as [Member, Member, Member];
  befriend(ann, ben);
  befriend(ann, cat);
  if (!strangers) befriend(ben, cat);
  await ann.core.groupChanges.create("G", ["Ben", "Cat"]);
  await deliver([ann, ben, cat]);
  for (const m of [ann, ben, cat]) drain(m);
  return [ann, ben, cat];
}

/** As accepting an invitation under a contact's name from another key does: held until confirmed. */
function markKeyChanged(m: Member, name: string): void {
  m.h.store.tx(() => {
    const { id, contact } = m.core.contacts.find(name);
    m.core.contacts.put(id, {
      ...contact,
      previousFingerprint: fingerprint(identityOf(contact)),
      identity: toHex(encodePublicIdentity(Identity.generate().publicIdentity)),
      keyChanged: true,
    });
  });
}

/** The conversation as lines: a message as "Author: text", a membership change as "* words". */
const history = (m: Member, group = "G") =>
  m.core.groupHistory
    .history(group)
    .map((v) => (v.note ? `* ${groupChangeWords(v.note)}` : `${v.contact}: ${v.text}`));
/** The messages of the conversation, without its membership changes. */
const said = (m: Member, group = "G") => m.core.groupHistory.history(group).filter((v) => !v.note);

describe("creating a group", () => {
  it("sends the create to each member, who joins it under the same name", async () => {
    const [ann, ben, cat] = members("Ann", "Ben", "Cat") as [Member, Member, Member];
    befriend(ann, ben);
    befriend(ann, cat);
    const created = await ann.core.groupChanges.create("G", ["Ben", "Cat"]);
    expect(created).toMatchObject([{ type: "group", event: "created", group: "G", members: 3, admin: true }]);
    // One entry item per member, over each one's session.
    expect(ann.core.outbox.size()).toBe(2);
    await deliver([ann, ben, cat]);
    expect(drain(ben)).toContainEqual(
      expect.objectContaining({ event: "joined", group: "G", by: "Ann", admin: false }),
    );
    expect(cat.core.groups.list()).toMatchObject([{ group: "G", members: 3, active: true, pending: 1 }]);
    // Ben and Cat are not contacts: each is pending for the other, named from its fingerprint.
    expect(cat.core.groups.members("G").map((m) => [m.member, m.pendingSession, m.contact, m.me])).toEqual([
      ["Ann", false, true, false],
      [placeholder(ben), true, false, false],
      ["Cat", false, false, true],
    ]);
  });

  it("refuses a member who is not a contact, a contact whose key changed, and a taken name", async () => {
    const [ann, ben] = members("Ann", "Ben") as [Member, Member];
    befriend(ann, ben);
    await expect(ann.core.groupChanges.create("G", ["Zed"])).rejects.toMatchObject({
      code: "UNKNOWN_CONTACT",
    });
    await expect(ann.core.groupChanges.create("ben", ["Ben"])).rejects.toThrow(
      /looks the same as a contact's, "Ben"/,
    );
    await expect(ann.core.groupChanges.create("G", [])).rejects.toMatchObject({ code: "USAGE" });
    await expect(ann.core.groupChanges.create("G\u200b", ["Ben"])).rejects.toMatchObject({ code: "USAGE" });
    await ann.core.groupChanges.create("G", ["Ben"]);
    await expect(ann.core.groupChanges.create("g", ["Ben"])).rejects.toThrow(/another group's, "G"/);
    // A contact cannot take a group's name either.
    expect(() => ann.core.contacts.rename("Ben", "G")).toThrow(/another group is already called "G"/);
    expect(ann.core.contacts.uniqueName("G")).toBe("G 2");
    markKeyChanged(ann, "Ben");
    await expect(ann.core.groupChanges.create("H", ["Ben"])).rejects.toMatchObject({ code: "KEY_CHANGED" });
  });
});

describe("group messages", () => {
  it("go to every member with their author, and count who received and read them", async () => {
    const [ann, ben, cat] = await trio();
    const [sent] = await ann.core.groupSend.send("G", ["hello"]);
    expect(sent).toMatchObject({ group: "G", contact: "Ann", status: "queued", recipients: 2, delivered: 0 });
    await deliver([ann, ben, cat]);
    expect(groupTexts(drain(ben))).toEqual(["Ann: hello"]);
    expect(groupTexts(drain(cat))).toEqual(["Ann: hello"]);
    const statuses = drain(ann).flatMap((e) =>
      e.type === "status" ? [[e.status, e.delivered, e.read]] : [],
    );
    expect(statuses[0]).toEqual(["stored", 0, 0]);
    expect(statuses.at(-1)).toEqual(["delivered", 2, 0]);
    // Ben reads it: his read receipt counts, and once Cat reads it too, it is read by 2 of 2.
    expect(history(ben)).toEqual(["* Ann added you (3 members)", "Ann: hello"]);
    await deliver([ann, ben, cat]);
    expect(drain(ann).at(-1)).toMatchObject({ type: "status", status: "delivered", read: 1, recipients: 2 });
    cat.core.groupHistory.markRead("G");
    await deliver([ann, ben, cat]);
    expect(drain(ann).at(-1)).toMatchObject({ type: "status", status: "read", read: 2 });
    expect(said(ann, "G")).toMatchObject([{ text: "hello", status: "read", read: 2 }]);
    expect(ben.core.groups.list()[0]).toMatchObject({ unread: 0 });
    expect(cat.core.groups.list()[0]).toMatchObject({ unread: 0 });
  });

  it("reach a member I have no session with through the member who introduced us, once", async () => {
    const [ann, ben, cat] = await trio(true);
    await ben.core.groupSend.send("G", ["from Ben"]);
    // Ben's copy for Cat is a forward item, deposited with Ann.
    expect(ben.core.outbox.size()).toBe(2);
    await deliver([ann, ben, cat]);
    expect(groupTexts(drain(cat))).toEqual([`${placeholder(ben)}: from Ben`]);
    expect(said(cat, "G")).toMatchObject([{ text: "from Ben", forwarded: true }]);
    expect(groupTexts(drain(ann))).toEqual(["Ben: from Ben"]);
    // Ann passed it on once: nothing more moves.
    expect(await deliver([ann, ben, cat])).toBe(0);
  });

  it("show each author's messages in sequence order and the gap before one that overtook another", async () => {
    const [ann, ben, cat] = await trio();
    await ann.core.groupSend.send("G", ["a1"]);
    // Ann's first message to Ben is lost on the way; the second arrives.
    const lost = ann.core.outbox.seqs();
    ann.h.store.tx(() => {
      for (const s of lost) {
        const e = ann.core.outbox.get(s)!;
        if (ben.core.mailboxes.owner(e.value.address, true)) ann.core.outbox.remove(s);
      }
    });
    await ann.core.groupSend.send("G", ["a2"]);
    await deliver([ann, ben, cat]);
    expect(said(ben, "G")).toMatchObject([{ text: "a2", authorSeq: 2, missing: 1 }]);
    expect(history(cat)).toEqual(["* Ann added you (3 members)", "Ann: a1", "Ann: a2"]);
  });

  it("are refused while a member's key changed, and once I am no longer a member", async () => {
    const [ann, ben, cat] = await trio();
    markKeyChanged(ann, "Cat");
    await expect(ann.core.groupSend.send("G", ["x"])).rejects.toThrow(
      /Cat's identity key changed: nothing is sent to G until you compare safety numbers/,
    );
    expect(ann.core.outbox.size()).toBe(0);
    await ben.core.groupChanges.leave("G");
    await expect(ben.core.groupSend.send("G", ["x"])).rejects.toMatchObject({ code: "NOT_ALLOWED" });
    await deliver([ann, ben, cat]);
    expect(drain(cat)).toContainEqual(expect.objectContaining({ event: "left", member: "Ben", members: 2 }));
  });
});

describe("membership changes", () => {
  it("give a new member the whole log, and its first message waits for the entry that adds it", async () => {
    const [ann, ben, cat] = await trio();
    const [dan] = members("Dan") as [Member];
    befriend(ann, dan);
    befriend(cat, dan);
    await ann.core.groupSend.send("G", ["before Dan"]);
    await deliver([ann, ben, cat]);
    drain(cat);
    await ann.core.groupChanges.rename("G", "Club");
    await ann.core.groupChanges.add("Club", "Dan");
    // Dan hears of it before Cat does, and writes: his message reaches Cat before Ann's add.
    await deliver([ann, ben, cat, dan], [cat]);
    expect(drain(dan)).toContainEqual(
      expect.objectContaining({ event: "joined", group: "Club", members: 4 }),
    );
    await dan.core.groupSend.send("Club", ["hi all"]);
    const danToCat = dan.core.outbox
      .seqs()
      .filter((s) => cat.core.mailboxes.owner(dan.core.outbox.get(s)!.value.address, true));
    expect(danToCat).toHaveLength(1);
    await deliver([cat, dan]);
    expect(groupTexts(drain(cat))).toEqual([]);
    await deliver([ann, ben, cat, dan]);
    const catSaw = drain(cat);
    expect(catSaw).toContainEqual(
      expect.objectContaining({ event: "renamed", group: "Club", previousName: "G" }),
    );
    expect(catSaw).toContainEqual(expect.objectContaining({ event: "added", member: "Dan", by: "Ann" }));
    expect(groupTexts(catSaw)).toEqual(["Dan: hi all"]);
    // What Ann wrote before Dan joined never reaches him, and is not shown to him as missing.
    await ann.core.groupSend.send("Club", ["after Dan"]);
    await deliver([ann, ben, cat, dan]);
    expect(said(dan, "Club")).toEqual([
      expect.objectContaining({ contact: "Dan", text: "hi all" }),
      expect.not.objectContaining({ missing: expect.anything() }),
    ]);
    expect(said(dan, "Club")[1]).toMatchObject({ text: "after Dan", authorSeq: 2 });
  });

  it("cut a removed member off: nothing more is sent to it, and what it sends is dropped", async () => {
    const [ann, ben, cat] = await trio();
    await ann.core.groupChanges.remove("G", "Cat");
    await deliver([ann, ben, cat]);
    expect(drain(cat)).toContainEqual(
      expect.objectContaining({ event: "removed", member: "Cat", active: false }),
    );
    await ben.core.groupSend.send("G", ["after"]);
    // Only Ann's copy is queued.
    expect(ben.core.outbox.size()).toBe(1);
    // A client that ignores its removal still writes: dropped by both.
    cat.h.store.tx(() => {
      const found = cat.core.groups.find("G");
      const stale = { ...found.group, entries: found.group.entries.slice(0, 1) };
      cat.core.groups.put(found.key, stale);
    });
    await cat.core.groupSend.send("G", ["ignored"]);
    await deliver([ann, ben, cat]);
    expect(groupTexts(drain(ann))).toEqual(["Ben: after"]);
    expect(groupTexts(drain(ben))).toEqual([]);
  });

  // Which of two entries on one parent wins is decided by their hashes; each case is made here
  // by choosing the second entry's time (its signature, and so its hash, follows from it).
  it.each(["add", "remove"])(
    "resolve concurrent changes the same way everywhere, the lost one issued again (the %s wins)",
    async (winner) => {
      const [ann, ben, cat] = await trio();
      const [dan] = members("Dan") as [Member];
      for (const m of [ann, ben, cat]) befriend(m, dan);
      await ann.core.groupChanges.promote("G", "Ben");
      await deliver([ann, ben, cat]);
      // Both admins change the group at once, on the same head.
      vi.useFakeTimers({ toFake: ["Date"] });
      try {
        const g = ann.core.groups.find("G");
        const head = g.state!.head;
        await ben.core.groupChanges.remove("G", "Cat");
        const removal = ben.core.groups.find("G").state!.head;
        let t = Date.now();
        for (; ; t++) {
          const add = signGroupEntry(ann.h.ctx.identity, {
            groupId: fromHex(g.group.groupId),
            parent: fromHex(head),
            createdAt: t,
            op: { op: "add", member: dan.h.ctx.identity.publicIdentity },
          });
          if (toHex(add.hash) < removal === (winner === "add")) break;
        }
        vi.setSystemTime(t);
        await ann.core.groupChanges.add("G", "Dan");
      } finally {
        vi.useRealTimers();
      }
      await deliver([ann, ben, cat, dan]);
      const lists = [ann, ben, dan].map((m) => m.core.groups.members("G").map((v) => v.fingerprint));
      expect(lists[1]).toEqual(lists[0]);
      expect(lists[2]).toEqual(lists[0]);
      // Both changes hold in the end: Dan is in and Cat is out; the loser shows as a fork.
      expect(ann.core.groups.members("G").map((v) => v.member)).toEqual(["Ann", "Ben", "Dan"]);
      expect(ann.core.groups.list()[0]!.forks).toBe(1);
      const loser = winner === "add" ? ben : ann;
      expect(drain(loser)).toContainEqual(
        expect.objectContaining({ event: "fork", op: winner === "add" ? "remove" : "add" }),
      );
    },
  );

  it("are refused to a member who is not an admin", async () => {
    const [, ben] = await trio();
    await expect(ben.core.groupChanges.rename("G", "Mine")).rejects.toThrow(
      /only an admin may rename G; ask Ann/,
    );
    await expect(ben.core.groupChanges.remove("G", "Ben")).rejects.toMatchObject({ code: "NOT_ALLOWED" });
  });
});

describe("introductions (PROTOCOL.md §13.4)", () => {
  it("are owed by the later of two members without a session, and a code is taken only from its member", async () => {
    const [ann, ben, cat] = await trio(true);
    const key = (m: Member) => m.core.groups.find("G").key;
    // Cat joined after Ben: she owes him an invitation; he owes nothing, and Ann has sessions.
    expect(cat.core.groups.get(key(cat))!.invites).toEqual([{ member: ben.key }]);
    expect(ben.core.groups.get(key(ben))!.invites).toEqual([]);
    expect(ann.core.groups.get(key(ann))!.invites).toEqual([]);
    expect(cat.core.introductions.due).toBe(true);
    // A code made by someone else, claiming to be Cat's, is dropped; Cat's own is kept to accept.
    const relayUrl = "ws://relay.example";
    const mailbox = MailboxKey.generate().address;
    const other = createInvitation(Identity.generate(), { relayUrl, mailbox }).code;
    const own = createInvitation(cat.h.ctx.identity, { relayUrl, mailbox }).code;
    ben.h.store.tx(() => ben.core.introductions.introduced(key(ben), cat.key, other));
    expect(ben.h.warnings.at(-1)).toMatch(/its code is not the member's own/);
    expect(ben.core.groups.get(key(ben))!.accepts ?? []).toEqual([]);
    ben.h.store.tx(() => ben.core.introductions.introduced(key(ben), cat.key, own));
    expect(ben.core.groups.get(key(ben))!.accepts).toEqual([{ member: cat.key, code: own }]);
    expect(ben.core.introductions.due).toBe(true);
  });
});

describe("what waits in a group", () => {
  it("an item kept for entries that never came is dropped once a relay would have dropped it", async () => {
    const [ann, ben] = await trio();
    const items = ann.h.store.tables.groupItems;
    const groupId = ann.core.groups.find("G").group.groupId;
    const day = 86_400_000;
    const now = Date.now();
    ann.h.store.tx(() => {
      items.add(groupId, { from: ben.key, payload: "01", receivedAt: now - 40 * day });
      items.add(groupId, { from: ben.key, payload: "02", receivedAt: now - day });
    });
    ann.core.delivery.checkExpired(now);
    // maxRetentionSeconds is 7 days in this harness.
    expect(items.all().map((i) => i.value.payload)).toEqual(["02"]);
    expect(ann.h.warnings.at(-1)).toMatch(
      /dropped 1 group item\(s\) that waited longer than a relay keeps a message/,
    );
  });
});
