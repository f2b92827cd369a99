// Groups through the Client API against the real relay process (PROTOCOL.md §13): a group of
// contacts is created, everyone talks, receipts count per member, a member added later gets the
// whole log, a removed member receives nothing after its removal, and a member whose key changed
// blocks sending.
import { afterEach, describe, expect, it } from "vitest";
import type { Client, ClientEvent } from "../src/client.js";
import type { Core } from "../src/core/assemble.js";
import { cleanupLive, client, relay } from "./live-helpers.js";

afterEach(cleanupLive);

/** `a` invites, `b` accepts naming `a` by `aName`; both sync. */
async function connect(a: Client, b: Client, aName: string): Promise<void> {
  const { code } = await a.invite();
  await b.accept(code, { name: aName });
  await a.sync();
  await b.sync();
}

/** Ann, Ben and Cat on one relay: Ben and Cat each know Ann, and each other when `acquainted`. */
async function trio(acquainted = false): Promise<[Client, Client, Client]> {
  const r = await relay();
  const url = `ws://127.0.0.1:${r.port}`;
  const [ann, ben, cat] = ["Ann", "Ben", "Cat"].map((n) => client(n, url)) as [Client, Client, Client];
  await connect(ann, ben, "Ann");
  await connect(ann, cat, "Ann");
  if (acquainted) await connect(ben, cat, "Ben");
  return [ann, ben, cat];
}

/** Syncs and returns the events of that sync. */
async function synced(c: Client): Promise<ClientEvent[]> {
  const events: ClientEvent[] = [];
  const on = (e: ClientEvent) => events.push(e);
  c.on("event", on);
  try {
    await c.sync();
  } finally {
    c.off("event", on);
  }
  return events;
}

const texts = (events: ClientEvent[]) =>
  events.flatMap((e) => (e.type === "message" && e.group ? [`${e.contact}: ${e.text}`] : []));

/** A group's conversation without its membership changes (marking it read, as history does). */
const said = (c: Client, group: string) => c.history(group).filter((m) => !m.note);

describe("groups of contacts", () => {
  it("are created, everyone talks, and each message says how many members received it", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const ann = client("Ann", url);
    const ben = client("Ben", url);
    const cat = client("Cat", url);
    await connect(ann, ben, "Ann");
    await connect(ann, cat, "Ann");
    await connect(ben, cat, "Ben");
    expect(
      cat
        .contacts()
        .map((c) => c.contact)
        .sort(),
    ).toEqual(["Ann", "Ben"]);

    const created = await ann.createGroup("Friends", ["Ben", "Cat"]);
    expect(created).toMatchObject([
      { type: "group", event: "created", group: "Friends", members: 3, admin: true },
    ]);
    const joined = await synced(ben);
    expect(joined).toContainEqual(
      expect.objectContaining({ type: "group", event: "joined", group: "Friends", by: "Ann" }),
    );
    await synced(cat);
    expect(ben.groupMembers("Friends").map((m) => [m.member, m.admin, m.me])).toEqual([
      ["Ann", true, false],
      ["Ben", false, true],
      ["Cat", false, false],
    ]);

    const [sent] = await ann.send("Friends", ["hello all"]);
    expect(sent).toMatchObject({ group: "Friends", status: "stored", recipients: 2, delivered: 0 });
    await ben.send("Friends", ["hi Ann"]);
    // Between authors, arrival order is each mailbox's: compared as a set.
    expect(texts(await synced(cat)).sort()).toEqual(["Ann: hello all", "Ben: hi Ann"]);
    expect(texts(await synced(ben))).toEqual(["Ann: hello all"]);
    // Delivered receipts come back pairwise: Ben's and Cat's each count once.
    const statuses = (await synced(ann)).filter((e) => e.type === "status" && e.id === sent!.id);
    expect(statuses.at(-1)).toMatchObject({ status: "delivered", delivered: 2, recipients: 2 });
    // The conversation holds the group's changes too, as lines of their own.
    expect(
      ann.history("Friends").map((m) => (m.note ? `* ${m.note.event}` : `${m.contact}: ${m.text}`)),
    ).toEqual(["* created", "Ann: hello all", "Ben: hi Ann"]);
  });

  it("give a member added later the whole log; a removed member receives nothing after its removal", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const [ann, ben, cat, dan] = ["Ann", "Ben", "Cat", "Dan"].map((n) => client(n, url)) as [
      Client,
      Client,
      Client,
      Client,
    ];
    for (const other of [ben, cat, dan]) await connect(ann, other, "Ann");
    await connect(ben, cat, "Ben");
    await connect(ben, dan, "Ben");
    await connect(cat, dan, "Cat");
    await ann.createGroup("Club", ["Ben", "Cat"]);
    await ann.renameGroup("Club", "Book club");
    await ann.promoteInGroup("Book club", "Ben");
    for (const c of [ben, cat]) await c.sync();
    expect(cat.groups().map((g) => [g.group, g.members])).toEqual([["Book club", 3]]);
    // Cat is offline while Ben (now an admin) adds Dan and everyone writes.
    await ben.addToGroup("Book club", "Dan");
    // Ann learns of Dan (the add Ben sent her) before she writes.
    expect(await synced(ann)).toContainEqual(expect.objectContaining({ event: "added", member: "Dan" }));
    await ann.send("Book club", ["a1", "a2"]);
    await ben.send("Book club", ["b1"]);
    const danEvents = await synced(dan);
    expect(danEvents).toContainEqual(
      expect.objectContaining({ type: "group", event: "joined", by: "Ben", members: 4 }),
    );
    expect(texts(danEvents).sort()).toEqual(["Ann: a1", "Ann: a2", "Ben: b1"]);
    await dan.send("Book club", ["d1"]);
    await ann.sync();
    const catEvents = await synced(cat);
    expect(catEvents).toContainEqual(
      expect.objectContaining({ type: "group", event: "added", member: "Dan", by: "Ben" }),
    );
    expect(
      cat
        .history("Book club")
        .map((m) => `${m.contact}: ${m.text}`)
        .filter((t) => t.startsWith("Ann")),
    ).toEqual(["Ann: a1", "Ann: a2"]);
    expect(texts(catEvents).sort()).toEqual(["Ann: a1", "Ann: a2", "Ben: b1", "Dan: d1"]);

    // Ann removes Cat: Cat learns it, and nothing sent after reaches her.
    const removed = await ann.removeFromGroup("Book club", "Cat");
    expect(removed).toMatchObject([{ event: "removed", member: "Cat", by: "Ann", members: 3 }]);
    for (const c of [ben, dan]) await c.sync();
    await ben.send("Book club", ["after"]);
    await dan.send("Book club", ["after too"]);
    const last = await synced(cat);
    expect(last).toContainEqual(
      expect.objectContaining({ type: "group", event: "removed", member: "Cat", active: false }),
    );
    expect(texts(last)).toEqual([]);
    await expect(cat.send("Book club", ["still here?"])).rejects.toThrow(/no longer a member/);
    // What she might still send (a client that ignores the removal) is dropped by everyone.
    expect(texts(await synced(ann)).sort()).toEqual(["Ben: after", "Dan: after too"]);
  });

  it("refuse changes from a member who is not an admin, and names that look like another conversation's", async () => {
    const [ann, ben, cat] = await trio(true);
    await expect(ann.createGroup("ben", ["Ben"])).rejects.toThrow(/looks the same as a contact's, "Ben"/);
    await ann.createGroup("Team", ["Ben"]);
    await ben.sync();
    await expect(ben.addToGroup("Team", "Cat")).rejects.toMatchObject({ code: "NOT_ALLOWED" });
    await expect(ben.removeFromGroup("Team", "Ann")).rejects.toThrow(
      /only an admin may remove members from Team; ask Ann/,
    );
    expect(() => ann.rename("Ben", "team")).toThrow(/another group is already called "team"/);
    // Someone else's group may take a name I use already: mine stays, theirs gets a suffix.
    await ann.createGroup("Reading", ["Cat"]);
    await cat.sync();
    await ben.createGroup("Reading", ["Cat"]);
    await cat.sync();
    expect(
      cat
        .groups()
        .map((g) => g.group)
        .sort(),
    ).toEqual(["Reading", "Reading 2"]);
    await ann.leaveGroup("Team");
    await ben.sync();
    // The last admin left: the member who joined first becomes one.
    expect(ben.groups().find((g) => g.group === "Team")).toMatchObject({ members: 1, admin: true });
  });

  it("introduce members who are not contacts: forwarded until their own session is up, which is not a contact", async () => {
    const [ann, ben, cat] = await trio();
    await ann.createGroup("G", ["Ben", "Cat"]);
    await ben.sync();
    // Cat joined after Ben: she makes an invitation for him and sends it to Ann.
    await cat.sync();
    expect(cat.groupMembers("G").find((m) => !m.me && !m.admin)).toMatchObject({ pendingSession: true });
    // Meanwhile Ben writes: his copy for Cat goes through Ann.
    const [viaAnn] = await ben.send("G", ["through Ann"]);
    expect(viaAnn).toMatchObject({ status: "stored", recipients: 2 });
    await ann.sync(); // passes on Ben's message and Cat's introduction
    const benSaw = await synced(ben); // accepts Cat's invitation: a session for the group
    expect(benSaw.filter((e) => e.type === "contact")).toEqual([]);
    const catSaw = await synced(cat); // Ben's message, forwarded; and Ben's acceptance
    expect(catSaw).toContainEqual(
      expect.objectContaining({ type: "message", text: "through Ann", forwarded: true }),
    );
    expect(catSaw.filter((e) => e.type === "contact")).toEqual([]);
    await ben.sync(); // Cat's intro names her
    // Each now has a session with the other, named by what the other announced, and not listed.
    expect(cat.groupMembers("G").map((m) => [m.member, m.pendingSession, m.contact])).toEqual([
      ["Ann", false, true],
      ["Ben", false, false],
      ["Cat", false, false],
    ]);
    expect(ben.groupMembers("G").map((m) => [m.member, m.pendingSession, m.contact])).toEqual([
      ["Ann", false, true],
      ["Ben", false, false],
      ["Cat", false, false],
    ]);
    expect(cat.contacts().map((c) => c.contact)).toEqual(["Ann"]);
    // From now on Ben reaches Cat directly.
    await ben.send("G", ["direct"]);
    const direct = await synced(cat);
    expect(direct.find((e) => e.type === "message" && e.text === "direct")).toMatchObject({
      contact: "Ben",
      group: "G",
    });
    expect(direct.find((e) => e.type === "message" && e.text === "direct")).not.toHaveProperty("forwarded");
    // Not a conversation of its own until Cat makes Ben a contact; then he is one on both sides.
    await expect(cat.send("Ben", ["hello"])).rejects.toThrow(
      /not one of your contacts.*parley group contact/,
    );
    expect(cat.makeContact("G", "Ben")).toMatchObject({ type: "contact", event: "added", contact: "Ben" });
    expect(
      cat
        .contacts()
        .map((c) => c.contact)
        .sort(),
    ).toEqual(["Ann", "Ben"]);
    await cat.send("Ben", ["hello"]);
    const benContacts = await synced(ben);
    expect(benContacts).toContainEqual(
      expect.objectContaining({ type: "contact", event: "added", contact: "Cat" }),
    );
    expect(ben.history("Cat").map((m) => m.text)).toEqual(["hello"]);
  });

  it("count a member who received a message only forwarded once its own session with the author is up", async () => {
    const [ann, ben, cat] = await trio();
    await ann.createGroup("G", ["Ben", "Cat"]);
    await ben.sync();
    await cat.sync(); // her invitation for Ben goes to Ann
    const [sent] = await ben.send("G", ["through Ann"]);
    await ann.sync(); // passes on Ben's message and Cat's invitation
    // Cat gets Ben's message through Ann before she has a session with him, and reads it.
    // (She names him from his fingerprint until his own session tells her his name.)
    expect(texts(await synced(cat))).toEqual([expect.stringMatching(/: through Ann$/)]);
    expect(said(cat, "G").map((m) => [m.text, m.forwarded])).toEqual([["through Ann", true]]);
    const early = (await synced(ben)).filter((e) => e.type === "status" && e.id === sent!.id);
    expect(early.at(-1)).toMatchObject({ delivered: 1, read: 0, recipients: 2 });
    await cat.sync(); // Ben accepted her invitation: their session is up, her receipts go over it
    const late = (await synced(ben)).filter((e) => e.type === "status" && e.id === sent!.id);
    expect(late.at(-1)).toMatchObject({ status: "delivered", delivered: 2, read: 1, recipients: 2 });
  });

  it("pass on an introduction and a forward for a member the introducer has no session with yet, once it has one", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const [ann, ben, cat, dan] = ["Ann", "Ben", "Cat", "Dan"].map((n) => client(n, url)) as [
      Client,
      Client,
      Client,
      Client,
    ];
    await connect(ann, ben, "Ann");
    await connect(ann, cat, "Ann");
    await connect(ben, dan, "Ben");
    await ann.createGroup("G", ["Ben", "Cat"]);
    await ann.promoteInGroup("G", "Ben");
    await ben.sync();
    // Ben adds Dan before Ben and Cat have a session of their own.
    await ben.addToGroup("G", "Dan");
    await dan.sync(); // his invitations for Ann and Cat go to Ben
    await dan.send("G", ["hi from Dan"]);
    await ben.sync(); // Ben has no session with Cat yet: her invitation and copy wait with him
    await cat.sync(); // her invitation for Ben goes to Ann
    await ann.sync(); // passes it on; accepts Dan's
    await ben.sync(); // accepts Cat's: now he passes on what waited for her
    const catSaw = await synced(cat);
    expect(texts(catSaw)).toEqual([expect.stringMatching(/: hi from Dan$/)]);
    await dan.sync(); // Cat's acceptance
    await cat.sync(); // Dan's intro names him
    expect(cat.groupMembers("G").map((m) => [m.member, m.pendingSession])).toEqual([
      ["Ann", false],
      ["Ben", false],
      ["Cat", false],
      ["Dan", false],
    ]);
  });

  it("delete a session made for a group once no group needs it, with its mailboxes on the relay, unless it was made a contact", async () => {
    const [ann, ben, cat] = await trio();
    await ann.createGroup("G", ["Ben", "Cat"]);
    await ben.sync();
    await cat.sync(); // her invitation for Ben goes to Ann
    await ann.sync(); // and on to Ben
    await ben.sync(); // who accepts it
    await cat.sync();
    await ben.sync(); // her intro names her
    const core = (c: Client) => (c as unknown as { core: Core }).core;
    const scoped = (c: Client) =>
      core(c)
        .contacts.all()
        .filter((x) => x.value.groupScoped)
        .map((x) => x.value);
    expect(scoped(ben)).toHaveLength(1);
    expect(scoped(cat)).toHaveLength(1);
    const forgotten = (c: Client) => {
      const keys: string[] = [];
      const pool = core(c).pool;
      const forget = pool.forgetMailbox.bind(pool);
      pool.forgetMailbox = (relayUrl, key) => {
        keys.push(key);
        return forget(relayUrl, key);
      };
      return keys;
    };
    const [benInbox, catInbox] = [scoped(ben)[0]!.inbox.key, scoped(cat)[0]!.inbox.key];
    const [benForgot, catForgot] = [forgotten(ben), forgotten(cat)];
    // Ben makes Cat a contact; Cat does not make Ben one.
    ben.makeContact("G", "Cat");
    // Cat leaves G, the only group she shares with Ben: once her leave has gone out, she forgets
    // her session with Ben; Ben keeps his with her, a contact now. Ann stays a contact of both.
    await cat.leaveGroup("G");
    await cat.sync();
    await ben.sync();
    expect(scoped(cat)).toEqual([]);
    expect(catForgot).toContain(catInbox);
    expect(cat.contacts().map((c) => c.contact)).toEqual(["Ann"]);
    expect(scoped(ben)).toEqual([]);
    expect(benForgot).not.toContain(benInbox);
    expect(
      ben
        .contacts()
        .map((c) => c.contact)
        .sort(),
    ).toEqual(["Ann", "Cat"]);
    expect(ben.groupMembers("G").map((m) => m.member)).toEqual(["Ann", "Ben"]);
  });

  it("fail a message held for a member it never had a route to, once the relays' retention has passed", async () => {
    const [ann] = await trio();
    await ann.createGroup("G", ["Ben", "Cat"]);
    await ann.createGroup("H", ["Cat"]);
    // Ann deletes her only session with Cat, who stays a member: her texts for Cat are held.
    await ann.deleteContact("Cat");
    const [inG] = await ann.send("G", ["for both"]);
    const [inH] = await ann.send("H", ["for Cat"]);
    expect(inG).toMatchObject({
      status: "stored",
      failure: expect.stringMatching(/1 member\(s\) cannot be reached yet/),
    });
    expect(inH).toMatchObject({ status: "queued" });
    const events: ClientEvent[] = [];
    ann.on("event", (e) => events.push(e));
    ann.checkExpired(Date.now() + 24 * 3600_000);
    expect(events).toEqual([]); // not yet
    ann.checkExpired(Date.now() + 31 * 86400_000);
    expect(events.find((e) => e.type === "status" && e.id === inG!.id)).toMatchObject({
      status: "stored",
      failure: expect.stringMatching(/1 member\(s\) never got it/),
    });
    expect(events.find((e) => e.type === "status" && e.id === inH!.id)).toMatchObject({
      status: "failed",
      failure: expect.stringMatching(/1 member\(s\) never got it/),
    });
    expect(said(ann, "H").map((m) => [m.text, m.status])).toEqual([["for Cat", "failed"]]);
  });

  it("replace a member whose new key is confirmed by an admin; a member who is not an admin is told whom to ask", async () => {
    const [ann, ben, cat] = await trio(true);
    await ann.createGroup("G", ["Ben", "Cat"]);
    await ben.sync();
    await cat.sync();
    // Ben starts again with a new key; Ann and Cat accept his new invitation under his name.
    const ben2 = client("Ben", ann.settings.relay!);
    for (const c of [ann, cat]) {
      const { code } = await ben2.invite();
      await c.accept(code, { name: "Ben" });
    }
    await ben2.sync();
    await expect(cat.send("G", ["blocked"])).rejects.toMatchObject({ code: "KEY_CHANGED" });
    const catWarnings: string[] = [];
    cat.on("warning", (w) => catWarnings.push(w));
    cat.confirm("Ben");
    expect(catWarnings).toEqual([
      expect.stringMatching(/Ben's old key is still a member of G.*only an admin can replace it: ask Ann/),
    ]);
    // Ann, the admin, confirms: in G the old key is removed and the new one added.
    ann.confirm("Ben");
    expect(ann.groupMembers("G").map((m) => [m.member, m.pendingSession])).toEqual([
      ["Ann", false],
      ["Cat", false],
      ["Ben", false],
    ]);
    const [sent] = await ann.send("G", ["welcome back"]);
    expect(sent).toMatchObject({ recipients: 2 });
    const ben2Saw = await synced(ben2);
    expect(ben2Saw).toContainEqual(expect.objectContaining({ type: "group", event: "joined", by: "Ann" }));
    expect(texts(ben2Saw)).toEqual(["Ann: welcome back"]);
    const catSaw = await synced(cat);
    expect(catSaw).toContainEqual(expect.objectContaining({ type: "group", event: "added", member: "Ben" }));
    expect(cat.groupMembers("G").map((m) => [m.member, m.pendingSession])).toEqual([
      ["Ann", false],
      ["Cat", false],
      ["Ben", false],
    ]);
  });
});
