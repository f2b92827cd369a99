// The `parley` CLI when the relay goes away: a restart of a SQLite relay mid-conversation, and
// sending while the relay is down (exit 75, the outbox, and delivery once it is back).
import { afterEach, describe, expect, it } from "vitest";
import {
  aliceAndBob,
  allDelivered,
  cleanup,
  contactEvents,
  contacts,
  fails,
  hasAll,
  history,
  init,
  invite,
  latestStatus,
  newHome,
  type ParleyEvent,
  parley,
  readTree,
  received,
  restartableRelay,
  runParley,
  sendLines,
  sendOne,
  startRelay,
  statuses,
  syncUntil,
} from "./client-helpers.js";

const batch = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `${tag} message ${i}`);

describe("parley with a relay that goes away", () => {
  afterEach(cleanup);

  it("a relay restart in the middle of a conversation loses nothing and duplicates nothing", {
    timeout: 180_000,
  }, async () => {
    const relay = await restartableRelay();
    const url = relay.url;
    const { alice, bob } = await aliceAndBob(url);

    const aliceEvents: ParleyEvent[] = [];
    const bobEvents: ParleyEvent[] = [];
    const a1 = batch("a1", 5);
    const aliceIds = await sendLines(alice, "Bob", a1);
    bobEvents.push(...(await syncUntil(bob, hasAll("alice", a1))));
    const b1 = batch("b1", 5);
    const bobIds = await sendLines(bob, "alice", b1);
    const a2 = batch("a2", 5);
    aliceIds.push(...(await sendLines(alice, "Bob", a2)));
    // b1 and a2 wait on the relay, unsynced, while it restarts.

    expect(await relay.stop()).toBe(0);
    await relay.start();

    bobEvents.push(...(await syncUntil(bob, (e) => hasAll("alice", a2)([...bobEvents, ...e]))));
    aliceEvents.push(...(await syncUntil(alice, (e) => hasAll("Bob", b1)([...aliceEvents, ...e]))));

    const a3 = batch("a3", 5);
    aliceIds.push(await sendOne(alice, "Bob", a3[0]!));
    aliceIds.push(...(await sendLines(alice, "Bob", a3.slice(1))));
    const b2 = batch("b2", 5);
    bobIds.push(...(await sendLines(bob, "alice", b2)));
    bobEvents.push(...(await syncUntil(bob, (e) => hasAll("alice", a3)([...bobEvents, ...e]))));
    aliceEvents.push(...(await syncUntil(alice, (e) => hasAll("Bob", b2)([...aliceEvents, ...e]))));

    // Receipts make it across the restart too.
    aliceEvents.push(...(await syncUntil(alice, (e) => allDelivered(aliceIds)([...aliceEvents, ...e]))));
    bobEvents.push(...(await syncUntil(bob, (e) => allDelivered(bobIds)([...bobEvents, ...e]))));

    expect(received(bobEvents, "alice")).toEqual([...a1, ...a2, ...a3]);
    expect(received(aliceEvents, "Bob")).toEqual([...b1, ...b2]);
    const aliceHistory = await history(alice, "Bob");
    expect(aliceHistory.filter((m) => m.direction === "in").map((m) => m.text)).toEqual([...b1, ...b2]);
    expect(aliceHistory.filter((m) => m.direction === "out").map((m) => m.text)).toEqual([
      ...a1,
      ...a2,
      ...a3,
    ]);
    for (const m of aliceHistory.filter((x) => x.direction === "out")) expect(m.status).toBe("delivered");
    const bobHistory = await history(bob, "alice");
    expect(bobHistory.filter((m) => m.direction === "in").map((m) => m.text)).toEqual([...a1, ...a2, ...a3]);
    expect(bobHistory.filter((m) => m.direction === "out").map((m) => m.text)).toEqual([...b1, ...b2]);
  });

  it("with the relay down, send exits 75 and queues; once it is back the message arrives once", {
    timeout: 180_000,
  }, async () => {
    const relay = await restartableRelay();
    const url = relay.url;
    const { alice, bob } = await aliceAndBob(url);
    await sendOne(alice, "Bob", "before the outage");

    expect(await relay.stop()).toBe(0);
    const down1 = await runParley(alice, ["send", "Bob", "sent while the relay is down"]);
    const line = fails(down1, 75);
    expect(line).toMatch(/relay|reach|connect|outbox|queue/i);
    const down2 = await runParley(alice, ["send", "Bob", "also sent while down", "--json"]);
    fails(down2, 75);
    // With --json, anything on stdout is still JSON Lines (a `queued` status, if anything).
    expect(down2.badLines).toEqual([]);
    for (const e of down2.events) expect(e).toMatchObject({ type: "status", status: "queued" });

    const queued = (await history(alice, "Bob")).filter((m) => m.direction === "out");
    expect(queued.map((m) => [m.text, m.status])).toEqual([
      ["before the outage", "stored"],
      ["sent while the relay is down", "queued"],
      ["also sent while down", "queued"],
    ]);
    expect((await contacts(alice)).get("Bob")).toMatchObject({ outbox: 2 });
    // Bob cannot reach the relay either: sync says so with 75, and nothing is lost.
    fails(await runParley(bob, ["sync", "--json"]), 75);

    await relay.start();
    // A later send delivers the outbox first.
    await sendOne(alice, "Bob", "after the relay is back");
    expect((await contacts(alice)).get("Bob")).toMatchObject({ outbox: 0 });
    const expected = [
      "before the outage",
      "sent while the relay is down",
      "also sent while down",
      "after the relay is back",
    ];
    const bobEvents = await syncUntil(bob, hasAll("alice", expected));
    expect(received(bobEvents, "alice")).toEqual(expected);
    const outgoing = (await history(alice, "Bob")).filter((m) => m.direction === "out");
    expect(outgoing.map((m) => m.text)).toEqual(expected);
    for (const m of outgoing) expect(["stored", "delivered"]).toContain(m.status);
    const bobHistory = (await history(bob, "alice")).filter((m) => m.direction === "in");
    expect(bobHistory.map((m) => m.text)).toEqual(expected);
  });

  it("with the relay down, a later sync (not a send) flushes the outbox", { timeout: 180_000 }, async () => {
    const relay = await restartableRelay();
    const url = relay.url;
    const { alice, bob } = await aliceAndBob(url);

    expect(await relay.stop()).toBe(0);
    fails(await runParley(bob, ["send", "alice", "queued by bob"]), 75);
    await relay.start();
    await parley(bob, ["sync", "--json"]);
    expect((await contacts(bob)).get("alice")).toMatchObject({ outbox: 0 });
    const aliceEvents = await syncUntil(alice, hasAll("Bob", ["queued by bob"]));
    expect(received(aliceEvents, "Bob")).toEqual(["queued by bob"]);
    // And it stays delivered once: another sync brings nothing new.
    const again = await runParley(alice, ["sync", "--json"]);
    expect(received(again.events, "Bob")).toEqual([]);
  });

  it("with the relay down, invite and accept exit 75 and change nothing; run again, they work", {
    timeout: 180_000,
  }, async () => {
    const relay = await restartableRelay();
    const url = relay.url;
    const alice = await newHome();
    const bob = await newHome();
    await init(alice, "Alice", url);
    await init(bob, "Bob", url);
    const code = await invite(alice);

    expect(await relay.stop()).toBe(0);
    // README, status 75: "an invite or accept that could not create its mailbox changed nothing
    // and can simply be run again".
    const bobBefore = await readTree(bob);
    fails(await runParley(bob, ["accept", code, "--name", "alice", "--json"]), 75);
    expect((await contacts(bob)).size).toBe(0);
    const failedInvite = await runParley(alice, ["invite", "--json"]);
    fails(failedInvite, 75);
    expect(failedInvite.events.filter((e) => e.type === "invitation")).toEqual([]);
    expect([...(await readTree(bob)).keys()].sort()).toEqual([...bobBefore.keys()].sort());

    await relay.start();
    await parley(bob, ["accept", code, "--name", "alice", "--json"]);
    const aliceEvents = await syncUntil(alice, (e) =>
      contactEvents(e).some((c) => c.contact === "Bob" && c.event === "added"),
    );
    expect(contactEvents(aliceEvents).filter((c) => c.event === "added")).toHaveLength(1);
    expect([...(await contacts(bob)).keys()]).toEqual(["alice"]);
    await sendOne(bob, "alice", "hello after the outage");
    expect(received(await syncUntil(alice, hasAll("Bob", ["hello after the outage"])), "Bob")).toEqual([
      "hello after the outage",
    ]);
  });

  it("a message the relay forgot before it was fetched becomes expired; the conversation goes on", {
    timeout: 300_000,
  }, async () => {
    // The relay keeps undelivered messages 20 s; the client calls a message expired once that
    // retention (and its slack) passed without a receipt.
    const relay = await startRelay(["--storage", "memory", "--ttl", "20s", "--sweep-interval", "1s"]);
    const { alice, bob } = await aliceAndBob(relay.url);
    const lost = await sendOne(alice, "Bob", "nobody will read this");
    const events = await syncUntil(alice, (e) => latestStatus(e).get(lost) === "expired", {
      timeoutMs: 240_000,
    });
    expect(statuses(events).filter((s) => s.id === lost && s.status === "expired")).toHaveLength(1);
    const outgoing = (await history(alice, "Bob")).filter((m) => m.direction === "out");
    expect(outgoing.map((m) => [m.text, m.status])).toEqual([["nobody will read this", "expired"]]);

    // The relay forgot it; later messages still decrypt.
    const next = await sendOne(alice, "Bob", "but this one arrives");
    const bobEvents = await syncUntil(bob, hasAll("alice", ["but this one arrives"]));
    expect(received(bobEvents, "alice")).toEqual(["but this one arrives"]);
    await syncUntil(alice, allDelivered([next]));
    await sendOne(bob, "alice", "got it");
    expect(received(await syncUntil(alice, hasAll("Bob", ["got it"])), "Bob")).toEqual(["got it"]);
  });
});
