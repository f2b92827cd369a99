// Groups with the `parley` CLI end to end (PROTOCOL.md §13), on two real relay processes: Alice
// creates a group with Bob and Carol; everyone talks; Dave is added while Carol is offline, and
// she catches up with each author's messages in order; Bob is removed and nothing sent after
// reaches him; a member whose key changed blocks sending until it is confirmed, and then the admin
// who confirms it replaces the old key with the new one.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cleanup,
  connect,
  fails,
  history,
  init,
  type MessageEvent,
  newHome,
  type ParleyEvent,
  parley,
  type Relay,
  runParley,
  startRelay,
  syncUntil,
} from "./client-helpers.js";

/** "Author: text" of the messages of `group` among `events`, in the order printed. */
const said = (events: ParleyEvent[], group: string) =>
  events
    .filter((e): e is MessageEvent => e.type === "message" && e.group === group)
    .map((m) => `${m.contact}: ${m.text}`);

const groupEvent = (events: ParleyEvent[], event: string, fields: Record<string, unknown> = {}) =>
  events.some(
    (e) => e.type === "group" && e.event === event && Object.entries(fields).every(([k, v]) => e[k] === v),
  );

/** Syncs until every one of `lines` ("Author: text") has arrived in `group`. */
const hears = (home: string, group: string, lines: string[]) =>
  syncUntil(home, (e) => lines.every((l) => said(e, group).includes(l)));

/** `send GROUP --lines` (one message per text); returns the status objects. */
async function say(home: string, group: string, ...texts: string[]): Promise<ParleyEvent[]> {
  const r = await parley(home, ["send", group, "--lines", "--json"], { input: `${texts.join("\n")}\n` });
  const statuses = r.events.filter((e) => e.type === "status");
  expect(statuses, r.stdout).toHaveLength(texts.length);
  for (const s of statuses) expect(s, r.stdout).toMatchObject({ group, status: "stored" });
  return statuses;
}

describe("parley groups", () => {
  let r1: Relay;
  let r2: Relay;
  beforeAll(async () => {
    [r1, r2] = await Promise.all([startRelay(), startRelay()]);
  });
  afterAll(cleanup);

  it("create, talk, add while a member is offline, remove, and a key change that blocks", {
    timeout: 600_000,
  }, async () => {
    const [alice, bob, carol, dave, erin] = await Promise.all([1, 2, 3, 4, 5].map(() => newHome()));
    await init(alice!, "Alice", r1.url);
    await init(bob!, "Bob", r2.url);
    await init(carol!, "Carol", r1.url);
    await init(dave!, "Dave", r2.url);
    await init(erin!, "Erin", r1.url);
    const people = { alice: alice!, bob: bob!, carol: carol!, dave: dave!, erin: erin! };
    const { alice: a, bob: b, carol: c, dave: d, erin: e } = people;
    for (const [x, y, xName, yName] of [
      [a, b, "Alice", "Bob"],
      [a, c, "Alice", "Carol"],
      [b, c, "Bob", "Carol"],
      [a, d, "Alice", "Dave"],
      [b, d, "Bob", "Dave"],
      [c, d, "Carol", "Dave"],
      [a, e, "Alice", "Erin"],
    ] as const)
      await connect(x, y, xName, yName);

    // Alice creates the group; Bob and Carol join it.
    const created = await parley(a, ["group", "create", "Friends", "--members", "Bob,Carol", "--json"]);
    expect(created.events).toMatchObject([{ type: "group", event: "created", group: "Friends", members: 3 }]);
    for (const home of [b, c]) {
      const joined = await syncUntil(home, (ev) => groupEvent(ev, "joined"));
      expect(joined).toContainEqual(
        expect.objectContaining({
          type: "group",
          event: "joined",
          group: "Friends",
          by: "Alice",
          admin: false,
        }),
      );
    }
    const members = await parley(c, ["group", "members", "Friends", "--json"]);
    expect(members.events.map((m) => [m.type, m.member, m.admin, m.me, m.pendingSession])).toEqual([
      ["member", "Alice", true, false, false],
      ["member", "Bob", false, false, false],
      ["member", "Carol", false, true, false],
    ]);

    // Everyone talks.
    const [a1] = await say(a, "Friends", "a1");
    expect(a1).toMatchObject({ contact: "Alice", recipients: 2 });
    await say(b, "Friends", "b1");
    await say(c, "Friends", "c1");
    const heard = await hears(c, "Friends", ["Alice: a1", "Bob: b1"]);
    expect(heard.find((ev) => ev.type === "message" && ev.text === "a1")).toMatchObject({
      type: "message",
      group: "Friends",
      contact: "Alice",
      direction: "in",
      authorSeq: 1,
    });
    await hears(b, "Friends", ["Alice: a1", "Carol: c1"]);
    // Alice hears both, and learns that both received her message: receipts stay pairwise.
    const aEvents = await syncUntil(a, (ev) =>
      ev.some((s) => s.type === "status" && s.id === a1!.id && s.delivered === 2),
    );
    expect(said(aEvents, "Friends").sort()).toEqual(["Bob: b1", "Carol: c1"]);

    // Carol is offline while Alice adds Dave and everyone else writes.
    const added = await parley(a, ["group", "add", "Friends", "Dave", "--json"]);
    expect(added.events).toMatchObject([
      { type: "group", event: "added", member: "Dave", by: "Alice", members: 4 },
    ]);
    await say(a, "Friends", "a2", "a3");
    await syncUntil(b, (ev) => groupEvent(ev, "added", { member: "Dave" }));
    await say(b, "Friends", "b2");
    const dEvents = await hears(d, "Friends", ["Alice: a2", "Alice: a3", "Bob: b2"]);
    expect(groupEvent(dEvents, "joined", { by: "Alice", members: 4 })).toBe(true);
    await say(d, "Friends", "d1");
    // Carol comes back and catches up: Dave's arrival, and each author's messages in order.
    const cEvents = await hears(c, "Friends", ["Alice: a2", "Alice: a3", "Bob: b2", "Dave: d1"]);
    expect(groupEvent(cEvents, "added", { member: "Dave", by: "Alice" })).toBe(true);
    const cHistory = (await history(c, "Friends")).map((m) => `${m.contact}: ${m.text}`);
    expect(cHistory.filter((l) => l.startsWith("Alice"))).toEqual(["Alice: a1", "Alice: a2", "Alice: a3"]);
    expect(cHistory.filter((l) => l.startsWith("Bob"))).toEqual(["Bob: b1", "Bob: b2"]);
    expect(cHistory).toHaveLength(7);
    // The history holds the changes too, where they happened, by the names members had then.
    const cFull = await parley(c, ["history", "Friends", "--json"]);
    expect(cFull.events.filter((e) => e.type === "group")).toMatchObject([
      { type: "group", event: "joined", by: "Alice", group: "Friends" },
      { type: "group", event: "added", member: "Dave", by: "Alice", group: "Friends" },
    ]);
    expect((await parley(c, ["history", "Friends"])).stdout).toMatch(/\[Friends\] \* Alice added Dave\n/);
    const groups = await parley(c, ["groups", "--json"]);
    expect(groups.events).toMatchObject([
      { type: "group", event: "listed", group: "Friends", members: 4, admin: false, active: true, unread: 0 },
    ]);

    // Only an admin changes the group.
    expect(fails(await runParley(c, ["group", "remove", "Friends", "Bob"]), 14)).toMatch(
      /only an admin may remove members from Friends; ask Alice/,
    );

    // Alice removes Bob: everything sent after is for the others only.
    const removed = await parley(a, ["group", "remove", "Friends", "Bob", "--json"]);
    expect(removed.events).toMatchObject([{ event: "removed", member: "Bob", by: "Alice", members: 3 }]);
    await syncUntil(b, (ev) => groupEvent(ev, "removed", { member: "Bob", active: false }));
    for (const home of [c, d]) await syncUntil(home, (ev) => groupEvent(ev, "removed", { member: "Bob" }));
    const [after] = await say(a, "Friends", "after the removal");
    expect(after).toMatchObject({ recipients: 2 });
    expect((await say(c, "Friends", "Carol after"))[0]).toMatchObject({ recipients: 2 });
    await hears(d, "Friends", ["Alice: after the removal", "Carol: Carol after"]);
    const bobAfter = await runParley(b, ["sync", "--json"]);
    expect(said(bobAfter.events, "Friends")).toEqual([]);
    expect(fails(await runParley(b, ["send", "Friends", "still here?"]), 14)).toMatch(
      /no longer a member of Friends/,
    );
    expect((await history(b, "Friends")).map((m) => m.text)).not.toContain("after the removal");

    // Erin joins; then someone with another key is accepted under her name: sending blocks.
    await parley(a, ["group", "add", "Friends", "Erin"]);
    await syncUntil(e, (ev) => groupEvent(ev, "joined"));
    const other = await newHome();
    await init(other, "Erin", r2.url);
    const code = (await parley(other, ["invite", "--json"])).events[0]!.code as string;
    await parley(a, ["accept", code, "--name", "Erin"]);
    expect(fails(await runParley(a, ["send", "Friends", "blocked"]), 11)).toMatch(
      /Erin's identity key changed: nothing is sent to Friends until you compare safety numbers/,
    );
    // Confirmed by Alice, an admin: in Friends, Erin's old key is removed and her new one added.
    const confirmed = (await parley(a, ["verify", "Erin", "--confirm", "--json"])).events;
    expect(groupEvent(confirmed, "removed", { group: "Friends", by: "Alice" })).toBe(true);
    expect(groupEvent(confirmed, "added", { group: "Friends", member: "Erin", members: 4 })).toBe(true);
    const [unblocked] = await say(a, "Friends", "unblocked");
    expect(unblocked).toMatchObject({ recipients: 3 });
    const aMembers = (await parley(a, ["group", "members", "Friends", "--json"])).events;
    expect(aMembers.map((m) => [m.member, m.pendingSession])).toEqual([
      ["Alice", false],
      ["Carol", false],
      ["Dave", false],
      ["Erin", false],
    ]);
    const erinAgain = await hears(other, "Friends", ["Alice: unblocked"]);
    expect(groupEvent(erinAgain, "joined", { by: "Alice", members: 4 })).toBe(true);

    // Errors: an unknown group or member, a bad subcommand.
    expect(fails(await runParley(a, ["history", "Nope"]), 5)).toMatch(/no contact named "Nope"/);
    expect(fails(await runParley(a, ["group", "remove", "Friends", "Zed"]), 5)).toMatch(
      /no member named "Zed"/,
    );
    expect(fails(await runParley(a, ["group", "explode", "Friends"]), 2)).toMatch(/unknown subcommand/);
    expect(fails(await runParley(a, ["group", "create", "X"]), 2)).toMatch(/--members/);
  });

  it("members who are not contacts are introduced: forwarded through the creator until their own session is up", {
    timeout: 300_000,
  }, async () => {
    const [a, b, c] = (await Promise.all([1, 2, 3].map(() => newHome()))) as [string, string, string];
    await init(a, "Alice", r1.url);
    await init(b, "Bob", r2.url);
    await init(c, "Carol", r1.url);
    await connect(a, b, "Alice", "Bob");
    await connect(a, c, "Alice", "Carol");
    await parley(a, ["group", "create", "Club", "--members", "Bob,Carol"]);
    await syncUntil(b, (ev) => groupEvent(ev, "joined"));
    // Carol joined after Bob: her sync makes an invitation for him, sent to Alice.
    await syncUntil(c, (ev) => groupEvent(ev, "joined"));
    const pending = (await parley(c, ["group", "members", "Club", "--json"])).events;
    expect(pending.map((m) => m.pendingSession)).toEqual([false, true, false]);
    // Bob writes before they have a session: Alice passes it on.
    await say(b, "Club", "through Alice");
    await syncUntil(a, (ev) => said(ev, "Club").includes("Bob: through Alice"));
    const heard = await syncUntil(c, (ev) =>
      ev.some((m) => m.type === "message" && m.text === "through Alice"),
    );
    expect(heard.find((m) => m.type === "message")).toMatchObject({ group: "Club", forwarded: true });
    // Bob accepts Carol's invitation (it came through Alice); Carol gets his acceptance.
    const deadline = Date.now() + 120_000;
    for (;;) {
      for (const home of [b, c]) await parley(home, ["sync"]);
      const members = (await parley(c, ["group", "members", "Club", "--json"])).events;
      if (members.every((m) => m.pendingSession === false)) {
        expect(members.map((m) => [m.member, m.contact])).toEqual([
          ["Alice", true],
          ["Bob", false],
          ["Carol", false],
        ]);
        break;
      }
      if (Date.now() > deadline)
        throw new Error(`no session between Bob and Carol: ${JSON.stringify(members)}`);
    }
    // Now directly; and the session is the group's only: not among Carol's contacts.
    await say(b, "Club", "directly");
    const direct = await syncUntil(c, (ev) => said(ev, "Club").includes("Bob: directly"));
    expect(direct.find((m) => m.type === "message" && m.text === "directly")).not.toHaveProperty("forwarded");
    const listed = (await parley(c, ["contacts", "--json"])).events.map((e) => e.contact);
    expect(listed).toEqual(["Alice"]);
    expect(fails(await runParley(c, ["send", "Bob", "hi"]), 5)).toMatch(/parley group contact GROUP Bob/);
    const made = await parley(c, ["group", "contact", "Club", "Bob", "--json"]);
    expect(made.events).toMatchObject([{ type: "contact", event: "added", contact: "Bob" }]);
    await parley(c, ["send", "Bob", "hi"]);
    const bobSide = await syncUntil(b, (ev) => ev.some((m) => m.type === "message" && m.text === "hi"));
    expect(bobSide).toContainEqual(
      expect.objectContaining({ type: "contact", event: "added", contact: "Carol" }),
    );
  });
});
