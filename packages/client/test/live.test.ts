// The client core in process against the real relay process: live delivery and receipts,
// the outbox across a relay restart, a relay that replays a delivery, expiry, and transparency
// refusal. (Reconnection: reconnect.test.ts; messages that cannot be delivered: undelivered.test.ts.)
import { fromHex, MailboxKey } from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import type { ClientEvent } from "../src/client.js";
import { ClientError } from "../src/errors.js";
import { RelayConnection, RelayUnreachableError } from "../src/relay-connection.js";
import { cleanupLive, client, eventually, freePort, pair, relay, tmp } from "./live-helpers.js";

afterEach(cleanupLive);

describe("live mode", () => {
  it("delivers messages and receipts as they happen", async () => {
    const r = await relay();
    const [alice, bob] = await pair(`ws://127.0.0.1:${r.port}`);
    expect(alice.contacts().map((c) => c.contact)).toEqual(["Bob"]);
    await alice.start();
    await bob.start();
    const arrived = eventually(alice, (e) => e.type === "message" && e.text === "live hello");
    const [sent] = await bob.send("alice", ["live hello"]);
    expect(sent!.status).toBe("stored");
    const delivered = eventually(
      bob,
      (e) => e.type === "status" && e.id === sent!.id && e.status === "delivered",
    );
    expect(await arrived).toMatchObject({ contact: "Bob", direction: "in", id: sent!.id });
    await delivered;
    const read = eventually(bob, (e) => e.type === "status" && e.id === sent!.id && e.status === "read");
    expect(alice.history("Bob").map((m) => m.text)).toEqual(["live hello"]);
    await read;
    expect(bob.history("alice")[0]!.status).toBe("read");
  });

  it("keeps the outbox while the relay is down and delivers after it comes back", async () => {
    const port = await freePort();
    const data = tmp();
    const args = ["--storage", "sqlite", "--data-dir", data, "--port", String(port)];
    let r = await relay(args);
    const [alice, bob] = await pair(`ws://127.0.0.1:${port}`);
    await bob.start();
    await r.stop();
    const failure = await bob.send("alice", ["sent while down"]).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ClientError);
    expect((failure as ClientError).code).toBe("UNREACHABLE");
    expect(bob.history("alice").at(-1)).toMatchObject({ text: "sent while down", status: "queued" });
    const stored = eventually(bob, (e) => e.type === "status" && e.status === "stored");
    r = await relay(args);
    await stored;
    const got = eventually(alice, (e) => e.type === "message" && e.text === "sent while down");
    await alice.sync();
    await got;
    expect(alice.history("Bob").filter((m) => m.text === "sent while down")).toHaveLength(1);
  });
});

describe("receiving", () => {
  it("shows a message the relay delivers twice only once", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const [alice, bob] = await pair(url);
    await bob.send("alice", ["only once"]);
    // Play a relay that replays: read Bob's deposit from Alice's mailbox and deposit a copy.
    const inbox = alice.store.contacts()[0]!.value.inbox.key;
    const key = MailboxKey.deserialize(fromHex(inbox));
    const raw = await RelayConnection.open(url);
    const copy = new Promise<Uint8Array>((resolve) => raw.once("deliver", (f) => resolve(f.ciphertext)));
    await raw.subscribe(key);
    // (The copy goes in with the deposit token Bob's deposits showed the relay.)
    const token = fromHex(bob.store.contacts()[0]!.value.outbox.token!);
    await raw.deposit(key.address, crypto.getRandomValues(new Uint8Array(16)), await copy, token);
    raw.close();
    const events: ClientEvent[] = [];
    alice.on("event", (e) => events.push(e));
    await alice.sync();
    expect(events.filter((e) => e.type === "message").map((e) => (e as { text: string }).text)).toEqual([
      "only once",
    ]);
    expect(alice.history("Bob").map((m) => m.text)).toEqual(["only once"]);
    // Nothing is left waiting on the relay: both copies were acknowledged.
    const again: ClientEvent[] = [];
    alice.on("event", (e) => again.push(e));
    await alice.sync();
    expect(again).toEqual([]);
  });

  it("reports a message that expired on the relay undelivered as expired", async () => {
    const r = await relay(["--storage", "memory", "--ttl", "1s", "--sweep-interval", "1s"]);
    const [alice, bob] = await pair(`ws://127.0.0.1:${r.port}`);
    const [sent] = await bob.send("alice", ["too late"]);
    // Alice stays away longer than the relay keeps it: the relay sweeps it (watched via its counter).
    await waitForExpiry(r.port);
    await alice.sync();
    expect(alice.history("Bob")).toEqual([]);
    const events: ClientEvent[] = [];
    bob.on("event", (e) => events.push(e));
    bob.checkExpired(Date.now() + 3_600_000);
    const failure = "alice did not fetch it before the relay dropped it (it keeps messages 1s)";
    expect(events).toEqual([{ type: "status", contact: "alice", id: sent!.id, status: "expired", failure }]);
    expect(bob.history("alice")[0]).toMatchObject({ status: "expired", failure });
  });

  it("refuses a relay that keeps messages longer than the user's maximum, saying why", async () => {
    const r = await relay(["--storage", "memory", "--ttl", "20d"]);
    const alice = client("Alice", `ws://127.0.0.1:${r.port}`, 7 * 86400);
    const e = await alice.invite().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ClientError);
    expect((e as ClientError).code).toBe("RELAY_REFUSED");
    expect((e as ClientError).message).toMatch(/20d, longer than your maximum of 7d/);
    expect(alice.store.invitations()).toEqual([]);
  });
});

async function waitForExpiry(port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const res = await fetch(`http://127.0.0.1:${port}/transparency`);
    const body = (await res.json()) as { counters: { expirations: number } };
    if (body.counters.expirations > 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the relay never expired the message");
}

describe("contacts over time", () => {
  it("a renewed conversation keeps the earlier mailbox readable, and both sides go on", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const [alice, bob] = await pair(url);
    await alice.send("Bob", ["sent before the renewal"]);
    // Bob accepts a fresh invitation from the same Alice before reading what she sent.
    const { code } = await alice.invite();
    const renewed = await bob.accept(code);
    expect(renewed).toMatchObject({ type: "contact", event: "renewed", contact: "alice", keyChanged: false });
    await bob.sync();
    expect(bob.history("alice").map((m) => m.text)).toEqual(["sent before the renewal"]);
    const events: ClientEvent[] = [];
    alice.on("event", (e) => events.push(e));
    await alice.sync();
    expect(events).toContainEqual(
      expect.objectContaining({ type: "contact", event: "renewed", contact: "Bob" }),
    );
    await alice.send("Bob", ["sent after the renewal"]);
    await bob.send("alice", ["and a reply"]);
    await bob.sync();
    await alice.sync();
    // Bob's own reply was written before he received Alice's second message.
    expect(bob.history("alice").map((m) => [m.text, m.direction])).toEqual([
      ["sent before the renewal", "in"],
      ["and a reply", "out"],
      ["sent after the renewal", "in"],
    ]);
    expect(alice.history("Bob").map((m) => [m.text, m.direction])).toEqual([
      ["sent before the renewal", "out"],
      ["sent after the renewal", "out"],
      ["and a reply", "in"],
    ]);
    expect(alice.contacts()).toHaveLength(1);
  });

  it("accept refuses an inviter's relay that keeps messages too long, and changes nothing", async () => {
    const mine = await relay();
    const theirs = await relay(["--storage", "memory", "--ttl", "20d"]);
    const alice = client("Alice", `ws://127.0.0.1:${theirs.port}`);
    const bob = client("Bob", `ws://127.0.0.1:${mine.port}`, 7 * 86400);
    const { code } = await alice.invite();
    const e = await bob.accept(code, { name: "alice" }).catch((x: unknown) => x);
    expect((e as ClientError).code).toBe("RELAY_REFUSED");
    expect((e as ClientError).message).toMatch(/20d, longer than your maximum of 7d/);
    expect(bob.contacts()).toEqual([]);
    expect(bob.store.outbox()).toEqual([]);
  });

  it("confirms a safety number only when the one the other person has matches", async () => {
    const r = await relay();
    const [alice, bob] = await pair(`ws://127.0.0.1:${r.port}`);
    const theirs = alice.safety("Bob");
    const wrong = `${theirs.safetyNumber.slice(0, -1)}${theirs.safetyNumber.endsWith("0") ? "1" : "0"}`;
    expect(() => bob.confirm("alice", wrong)).toThrow(expect.objectContaining({ code: "SAFETY_MISMATCH" }));
    expect(bob.safety("alice").verified).toBe(false);
    expect(bob.matchesSafety("alice", theirs.compact)).toBe(true);
    bob.confirm("alice", theirs.safetyNumber);
    expect(bob.safety("alice").verified).toBe(true);
    expect(bob.contacts()[0]).toMatchObject({ contact: "alice", verified: true });
  });
});

describe("a relay that refuses the connection", () => {
  it("says so when it takes no more from this address (HTTP 429), and the client tries again later", async () => {
    const r = await relay([
      "--storage",
      "memory",
      "--max-connections-per-source",
      "1",
      "--trust-proxy",
      "none",
    ]);
    const url = `ws://127.0.0.1:${r.port}`;
    const first = await RelayConnection.open(url);
    try {
      const refused = await RelayConnection.open(url).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(RelayUnreachableError);
      expect((refused as RelayUnreachableError).reason).toBe(
        "HTTP 429: the relay takes no more connections from this network address for now",
      );
    } finally {
      first.close();
    }
  });
});
