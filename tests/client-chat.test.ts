// The `parley` CLI end to end: invitations, a long conversation with receipts, and three people on
// two relays, all through real relay processes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  aliceAndBob,
  allDelivered,
  allReached,
  cleanup,
  connect,
  contactEvents,
  contacts,
  fails,
  hasAll,
  history,
  init,
  invite,
  latestStatus,
  messages,
  newHome,
  ok,
  type ParleyEvent,
  parley,
  type Relay,
  received,
  runParley,
  sendLines,
  sendOne,
  startRelay,
  statuses,
  syncUntil,
} from "./client-helpers.js";

const SAFETY = /^\d{5}( \d{5}){11}$/;
const CONTACT_FIELDS = [
  "contact",
  "event",
  "fingerprint",
  "verified",
  "keyChanged",
  "relay",
  "unread",
  "lastActivity",
  "outbox",
] as const;
const missingFields = (e: object) => CONTACT_FIELDS.filter((f) => !(f in e));

describe("parley: invitations and conversations", () => {
  let relay: Relay;
  beforeAll(async () => {
    relay = await startRelay(["--storage", "memory"]);
  });
  afterAll(cleanup);

  it("invite and accept: both sides list each other and see the same safety number", async () => {
    const alice = await newHome();
    const bob = await newHome();
    const aliceId = await init(alice, "Alice", relay.url);
    expect(aliceId).toMatchObject({ type: "identity", name: "Alice", relay: relay.url });
    expect(typeof aliceId.fingerprint).toBe("string");
    const before = Date.now();
    const inv = (await parley(alice, ["invite", "--json"])).events;
    expect(inv).toHaveLength(1);
    expect(inv[0]).toMatchObject({ type: "invitation", relay: relay.url });
    const code = inv[0]!.code as string;
    expect(code).toMatch(/^PARLEY1-[A-Z2-7]+-[A-Z2-7]+$/);
    // Valid for 7 days by default (the code carries whole seconds).
    const week = 7 * 86400_000;
    expect(inv[0]!.expiresAt as number).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + week);
    expect(inv[0]!.expiresAt as number).toBeLessThanOrEqual(Date.now() + week);
    // Without --json: the code on one line, and with --qr a QR code after it.
    const qr = await parley(alice, ["invite", "--qr"]);
    const qrLines = qr.stdout.split("\n");
    expect(qrLines[0]).toMatch(/^PARLEY1-[A-Z2-7]+-[A-Z2-7]+$/);
    expect(qrLines[0]).not.toBe(code);
    expect(qrLines.filter((l) => l.trim() !== "").length).toBeGreaterThan(10);

    const bobId = await init(bob, "Bob", relay.url);
    const accepted = await parley(bob, ["accept", code, "--name", "alice", "--json"]);
    const bobSide = contactEvents(accepted.events);
    expect(bobSide, accepted.stdout).toHaveLength(1);
    expect(bobSide[0]).toMatchObject({ contact: "alice", event: "added", fingerprint: aliceId.fingerprint });
    // README: a `contact` object (printed by accept, sync and contacts) carries all these fields.
    expect.soft(missingFields(bobSide[0]!), `accept: ${accepted.stdout}`).toEqual([]);

    const events = await syncUntil(alice, (e) => contactEvents(e).some((c) => c.event === "added"));
    const added = contactEvents(events).filter((c) => c.event === "added");
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({ contact: "Bob", fingerprint: bobId.fingerprint });
    expect.soft(missingFields(added[0]!), `sync: ${JSON.stringify(added[0])}`).toEqual([]);

    const aliceContacts = await contacts(alice);
    const bobContacts = await contacts(bob);
    expect([...aliceContacts.keys()]).toEqual(["Bob"]);
    expect([...bobContacts.keys()]).toEqual(["alice"]);
    expect(aliceContacts.get("Bob")).toMatchObject({
      event: "listed",
      fingerprint: bobId.fingerprint,
      verified: false,
      keyChanged: false,
    });
    expect(bobContacts.get("alice")).toMatchObject({
      event: "listed",
      fingerprint: aliceId.fingerprint,
      verified: false,
      keyChanged: false,
    });

    const aliceSafety = (await parley(alice, ["verify", "Bob", "--json"])).events;
    const bobSafety = (await parley(bob, ["verify", "alice", "--json"])).events;
    expect(aliceSafety).toHaveLength(1);
    expect(bobSafety).toHaveLength(1);
    expect(aliceSafety[0]).toMatchObject({ type: "safety", contact: "Bob", verified: false });
    expect(bobSafety[0]).toMatchObject({ type: "safety", contact: "alice", verified: false });
    const number = aliceSafety[0]!.safetyNumber as string;
    expect(number).toMatch(SAFETY);
    expect(bobSafety[0]!.safetyNumber).toBe(number);
    expect(aliceSafety[0]!.compact).toMatch(/^PARLEYSN1-[A-Z2-7]+$/);
    expect(bobSafety[0]!.compact).toBe(aliceSafety[0]!.compact);

    // The human-readable form prints the same 60 digits.
    const plain = await parley(bob, ["verify", "alice"]);
    expect(plain.stdout.replace(/\D+/g, " ")).toContain(number);

    const confirmed = await parley(bob, ["verify", "alice", "--confirm", "--json"]);
    expect(confirmed.events[0]).toMatchObject({ type: "safety", contact: "alice", verified: true });
    expect(confirmed.events[0]!.safetyNumber).toBe(number);
    expect((await contacts(bob)).get("alice")).toMatchObject({ verified: true, keyChanged: false });
    // Only Bob confirmed.
    expect((await contacts(alice)).get("Bob")).toMatchObject({ verified: false });
  });

  it("100 messages each way with interleaved syncs arrive once, in order, and reach delivered", {
    timeout: 300_000,
  }, async () => {
    const { alice, bob } = await aliceAndBob(relay.url);

    const aliceSent: string[] = [];
    const bobSent: string[] = [];
    const aliceIds: string[] = [];
    const bobIds: string[] = [];
    const aliceEvents: ParleyEvent[] = [];
    const bobEvents: ParleyEvent[] = [];
    for (let round = 0; round < 10; round++) {
      const fromAlice = Array.from(
        { length: 10 },
        (_, i) => `a→b ${round}.${i} ünïcödé ${"x".repeat(i + 1)}`,
      );
      if (round % 3 === 2) {
        // Now and then one message at a time, without --lines.
        for (const t of fromAlice) aliceIds.push(await sendOne(alice, "Bob", t));
      } else {
        aliceIds.push(...(await sendLines(alice, "Bob", fromAlice)));
      }
      aliceSent.push(...fromAlice);
      bobEvents.push(...(await syncUntil(bob, (e) => hasAll("alice", fromAlice)([...bobEvents, ...e]))));

      const fromBob = Array.from({ length: 10 }, (_, i) => `b→a ${round}.${i} "quoted" \\ tab\there`);
      bobIds.push(...(await sendLines(bob, "alice", fromBob)));
      bobSent.push(...fromBob);
      aliceEvents.push(...(await syncUntil(alice, (e) => hasAll("Bob", fromBob)([...aliceEvents, ...e]))));
    }
    expect(new Set(aliceIds).size).toBe(100);
    expect(new Set(bobIds).size).toBe(100);

    // Each side received exactly the 100 texts, in order, each once.
    expect(received(bobEvents, "alice")).toEqual(aliceSent);
    expect(received(aliceEvents, "Bob")).toEqual(bobSent);
    // Both sides name a message by the same id.
    expect(messages(bobEvents, "alice", "in").map((m) => m.id)).toEqual(aliceIds);
    expect(messages(aliceEvents, "Bob", "in").map((m) => m.id)).toEqual(bobIds);
    for (const m of messages([...aliceEvents, ...bobEvents])) {
      expect(m.id).toMatch(/^[0-9a-f]{32}$/);
      expect(typeof m.sentAt).toBe("number");
      expect(typeof m.receivedAt).toBe("number");
    }

    // Receipts: each sender syncs until all its messages are delivered.
    aliceEvents.push(...(await syncUntil(alice, (e) => allDelivered(aliceIds)([...aliceEvents, ...e]))));
    bobEvents.push(...(await syncUntil(bob, (e) => allDelivered(bobIds)([...bobEvents, ...e]))));
    // No text arrived again with those syncs.
    expect(received(bobEvents, "alice")).toEqual(aliceSent);
    expect(received(aliceEvents, "Bob")).toEqual(bobSent);
    // No one has opened the history yet, so nothing is `read`.
    for (const s of latestStatus([...aliceEvents, ...bobEvents]).values()) expect(s).toBe("delivered");

    // Unread until the history is opened.
    expect((await contacts(alice)).get("Bob")).toMatchObject({ unread: 100, outbox: 0 });
    expect((await contacts(bob)).get("alice")).toMatchObject({ unread: 100, outbox: 0 });

    const aliceHistory = await history(alice, "Bob");
    expect(aliceHistory.filter((m) => m.direction === "out").map((m) => m.text)).toEqual(aliceSent);
    expect(aliceHistory.filter((m) => m.direction === "in").map((m) => m.text)).toEqual(bobSent);
    for (const m of aliceHistory.filter((x) => x.direction === "out")) expect(m.status).toBe("delivered");
    expect(aliceHistory.filter((m) => m.direction === "out").map((m) => m.id)).toEqual(aliceIds);

    const bobHistory = await history(bob, "alice");
    expect(bobHistory.filter((m) => m.direction === "out").map((m) => m.text)).toEqual(bobSent);
    expect(bobHistory.filter((m) => m.direction === "in").map((m) => m.text)).toEqual(aliceSent);
    // Alice's history queued read receipts, which Bob has not synced yet: delivered (read at most).
    for (const m of bobHistory.filter((x) => x.direction === "out")) {
      expect(["delivered", "read"]).toContain(m.status);
    }
    // --limit: the last N, oldest first; 50 by default.
    const last5 = await history(bob, "alice", 5);
    expect(last5.map((m) => m.text)).toEqual(bobHistory.slice(-5).map((m) => m.text));
    const byDefault = messages((await parley(bob, ["history", "alice", "--json"])).events);
    expect(byDefault.map((m) => m.id)).toEqual(bobHistory.slice(-50).map((m) => m.id));
    expect(bobHistory).toHaveLength(200);

    // Opening the history marked everything read and queued read receipts: once both have
    // synced, every message of both reaches `read`.
    expect((await contacts(alice)).get("Bob")).toMatchObject({ unread: 0 });
    expect((await contacts(bob)).get("alice")).toMatchObject({ unread: 0 });
    aliceEvents.push(...(await parley(alice, ["sync", "--json"])).events);
    bobEvents.push(...(await syncUntil(bob, (e) => allReached(bobIds, "read")([...bobEvents, ...e]))));
    aliceEvents.push(
      ...(await syncUntil(alice, (e) => allReached(aliceIds, "read")([...aliceEvents, ...e]))),
    );
    for (const m of (await history(alice, "Bob")).filter((x) => x.direction === "out")) {
      expect(m.status).toBe("read");
    }
    // And still nothing arrived twice.
    expect(received(bobEvents, "alice")).toEqual(aliceSent);
    expect(received(aliceEvents, "Bob")).toEqual(bobSent);
  });

  describe("three parties on two relays", () => {
    let relay2: Relay;
    beforeAll(async () => {
      relay2 = await startRelay(["--storage", "memory"]);
    });

    // Some forty runs of the CLI one after another: more than the default minute on a busy machine.
    it("Alice on relay 1, Carol on relay 2, Bob with both: messages flow in all directions", {
      timeout: 150_000,
    }, async () => {
      const alice = await newHome();
      const bob = await newHome();
      const carol = await newHome();
      await init(alice, "Alice", relay.url);
      await init(carol, "Carol", relay2.url);
      await init(bob, "Bob", relay.url);
      // Bob accepts both invitations (his mailboxes on relay 1); Carol also accepts Alice's.
      await connect(alice, bob, "alice", "Bob");
      await connect(carol, bob, "carol", "Bob");
      // Carol's mailbox for Alice is on relay 1, not on her default relay.
      await connect(alice, carol, "alice", "Carol", ["--relay", relay.url]);
      expect([...(await contacts(bob)).keys()].sort()).toEqual(["alice", "carol"]);
      expect([...(await contacts(alice)).keys()].sort()).toEqual(["Bob", "Carol"]);
      expect([...(await contacts(carol)).keys()].sort()).toEqual(["Bob", "alice"]);

      const t = (from: string, to: string) =>
        [1, 2, 3].map(
          (i) => `${from} to ${to} #${i}${from === "carol" && to === "alice" && i === 3 ? "\nline 2" : ""}`,
        );
      await sendLines(alice, "Bob", t("alice", "bob"));
      await sendLines(alice, "Carol", t("alice", "carol"));
      await sendOne(bob, "alice", t("bob", "alice")[0]!);
      await sendLines(bob, "alice", t("bob", "alice").slice(1));
      await sendLines(bob, "carol", t("bob", "carol"));
      await sendLines(carol, "Bob", t("carol", "bob"));
      await sendLines(carol, "alice", t("carol", "alice").slice(0, 2));
      // `send CONTACT -` reads one message (here of two lines) from stdin.
      const multi = await parley(carol, ["send", "alice", "-", "--json"], {
        input: "carol to alice #3\nline 2",
      });
      expect(statuses(multi.events).map((s) => s.status)).toContain("stored");

      const bobGot = await syncUntil(
        bob,
        (e) => hasAll("alice", t("alice", "bob"))(e) && hasAll("carol", t("carol", "bob"))(e),
      );
      const aliceGot = await syncUntil(
        alice,
        (e) => hasAll("Bob", t("bob", "alice"))(e) && hasAll("Carol", t("carol", "alice"))(e),
      );
      const carolGot = await syncUntil(
        carol,
        (e) => hasAll("Bob", t("bob", "carol"))(e) && hasAll("alice", t("alice", "carol"))(e),
      );
      expect(received(bobGot, "alice")).toEqual(t("alice", "bob"));
      expect(received(bobGot, "carol")).toEqual(t("carol", "bob"));
      expect(received(aliceGot, "Bob")).toEqual(t("bob", "alice"));
      expect(received(aliceGot, "Carol")).toEqual(t("carol", "alice"));
      expect(received(carolGot, "Bob")).toEqual(t("bob", "carol"));
      expect(received(carolGot, "alice")).toEqual(t("alice", "carol"));
      // Nothing else arrived (no message delivered to the wrong person).
      expect(messages(bobGot, undefined, "in")).toHaveLength(6);
      expect(messages(aliceGot, undefined, "in")).toHaveLength(6);
      expect(messages(carolGot, undefined, "in")).toHaveLength(6);

      // And the histories agree.
      expect((await history(bob, "carol")).map((m) => m.text)).toEqual([
        ...t("bob", "carol"),
        ...t("carol", "bob"),
      ]);
    });
  });

  it("two sends from the same home at once: both finish (or report the lock) and nothing forks", {
    timeout: 120_000,
  }, async () => {
    const { alice, bob } = await aliceAndBob(relay.url);
    const xs = Array.from({ length: 20 }, (_, i) => `concurrent x${i}`);
    const ys = Array.from({ length: 20 }, (_, i) => `concurrent y${i}`);
    const [rx, ry, rc] = await Promise.all([
      runParley(bob, ["send", "alice", "--lines", "--json"], { input: `${xs.join("\n")}\n` }),
      runParley(bob, ["send", "alice", "--lines", "--json"], { input: `${ys.join("\n")}\n` }),
      runParley(bob, ["contacts", "--json"]),
    ]);
    // Exit 10 (locked, busy beyond the timeout) is allowed; anything else is not.
    const expected: string[] = [];
    for (const [r, texts] of [
      [rx, xs],
      [ry, ys],
    ] as const) {
      if (r.code === 10) fails(r, 10);
      else {
        ok(r);
        expected.push(...texts);
      }
    }
    if (rc.code === 10) fails(rc, 10);
    else expect(contactEvents(ok(rc).events).map((c) => c.contact)).toEqual(["alice"]);
    expect(expected.length).toBeGreaterThan(0);

    const got = await syncUntil(alice, hasAll("Bob", expected));
    const texts = received(got, "Bob");
    expect([...texts].sort()).toEqual([...expected].sort());
    // Each process's messages keep their order.
    expect(texts.filter((t) => t.includes(" x"))).toEqual(expected.filter((t) => t.includes(" x")));
    expect(texts.filter((t) => t.includes(" y"))).toEqual(expected.filter((t) => t.includes(" y")));
    // The ratchet did not fork: the conversation goes on both ways.
    await sendOne(alice, "Bob", "still in sync?");
    await sendOne(bob, "alice", "yes");
    expect(received(await syncUntil(bob, hasAll("alice", ["still in sync?"])), "alice")).toEqual([
      "still in sync?",
    ]);
    expect(received(await syncUntil(alice, hasAll("Bob", ["yes"])), "Bob")).toEqual(["yes"]);
  });

  it("sync --wait returns with a message that arrives while it waits", { timeout: 120_000 }, async () => {
    const { alice, bob } = await aliceAndBob(relay.url);
    // Nothing pending for Bob now (his accept was his last command); he waits up to 90 s.
    const waiting = runParley(bob, ["sync", "--wait", "90", "--json"], { timeoutMs: 120_000 });
    await sendOne(alice, "Bob", "are you there?");
    const r = ok(await waiting);
    expect(received(r.events, "alice")).toEqual(["are you there?"]);
  });

  it("an invitation opens one conversation: a second accepter is not added", async () => {
    const alice = await newHome();
    const bob = await newHome();
    const mallory = await newHome();
    await init(alice, "Alice", relay.url);
    await init(bob, "Bob", relay.url);
    await init(mallory, "Mallory", relay.url);
    const code = await invite(alice);
    await parley(bob, ["accept", code, "--name", "alice", "--json"]);
    await syncUntil(alice, (e) => contactEvents(e).some((c) => c.contact === "Bob" && c.event === "added"));
    // Mallory got the same code. Whatever her client says, Alice must not gain a contact.
    const second = await runParley(mallory, ["accept", code, "--name", "alice", "--json"]);
    expect([0, 6]).toContain(second.code);
    await sendOne(bob, "alice", "after mallory");
    const later = await syncUntil(alice, hasAll("Bob", ["after mallory"]));
    expect(contactEvents(later).filter((c) => c.event === "added")).toEqual([]);
    expect([...(await contacts(alice)).keys()]).toEqual(["Bob"]);
    if (second.code === 0) {
      // And a message from Mallory reaches no one.
      await runParley(mallory, ["send", "alice", "hi from mallory"]);
      const after = await runParley(alice, ["sync", "--json"]);
      expect(after.code).toBe(0);
      expect(messages(after.events).map((m) => m.text)).not.toContain("hi from mallory");
      expect([...(await contacts(alice)).keys()]).toEqual(["Bob"]);
    }
  });

  it("accept without --name: the contact takes the name the inviter announces", async () => {
    const ana = await newHome();
    const bob = await newHome();
    const anaName = "Ana María 🌸";
    await init(ana, anaName, relay.url);
    await init(bob, "Bob", relay.url);
    const code = await invite(ana);
    // Letters may be in either case in a code.
    const accepted = await parley(bob, ["accept", code.toLowerCase(), "--json"]);
    const first = contactEvents(accepted.events);
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ event: "added" });
    await syncUntil(ana, (e) => contactEvents(e).some((c) => c.contact === "Bob" && c.event === "added"));
    await sendOne(ana, "Bob", "hola");
    const events = await syncUntil(bob, hasAll(anaName, ["hola"]));
    if (first[0]!.contact !== anaName) {
      expect(contactEvents(events)).toContainEqual(
        expect.objectContaining({ event: "renamed", contact: anaName }),
      );
    }
    expect([...(await contacts(bob)).keys()]).toEqual([anaName]);
    await sendOne(bob, anaName, "¡hola!");
    expect(received(await syncUntil(ana, hasAll("Bob", ["¡hola!"])), "Bob")).toEqual(["¡hola!"]);
  });
});
