// Messages a relay will not take, against the real relay process: each says why in words
// (MessageView.failure, and the status event), waits while the reason may pass, is given up once
// it cannot, and the reason clears once the message gets through.
import { afterEach, describe, expect, it } from "vitest";
import type { ClientEvent } from "../src/client.js";
import { ClientError } from "../src/errors.js";
import { cleanupLive, client, eventually, pair, relay } from "./live-helpers.js";

afterEach(cleanupLive);

const last = (c: ReturnType<typeof client>, name: string) => c.history(name).at(-1)!;
const statusOf = (id: string) => (e: ClientEvent) => e.type === "status" && e.id === id;

describe("a message that cannot be delivered says why", () => {
  it("to a contact whose mailbox was deleted: waits, saying so, then is given up", {
    timeout: 120_000,
  }, async () => {
    // The relay keeps messages 2 s: past that (and its sweep, and the client's slack) a refused
    // mailbox is given up, as nothing sent before could still be waiting there either.
    const r = await relay(["--storage", "memory", "--ttl", "2s", "--sweep-interval", "1s"]);
    const [alice, bob] = await pair(`ws://127.0.0.1:${r.port}`);
    await bob.deleteContact("alice");

    const events: ClientEvent[] = [];
    alice.on("event", (e) => events.push(e));
    const refused = await alice.send("Bob", ["are you there?"]).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ClientError);
    expect((refused as ClientError).code).toBe("RELAY_REFUSED");
    const waiting = last(alice, "Bob");
    expect(waiting).toMatchObject({ status: "queued", failure: "Bob's mailbox no longer exists" });
    expect(events).toContainEqual({
      type: "status",
      contact: "Bob",
      id: waiting.id,
      status: "queued",
      failure: "Bob's mailbox no longer exists",
    });
    // A second message waits behind the first, for the same reason.
    await alice.send("Bob", ["hello?"]).catch(() => {});
    expect(last(alice, "Bob")).toMatchObject({ status: "queued", failure: "Bob's mailbox no longer exists" });
    // A rename shows in the reason: the words are made when it is shown.
    alice.rename("Bob", "Robert");
    expect(last(alice, "Robert").failure).toBe("Robert's mailbox no longer exists");

    const givenUp = eventually(
      alice,
      (e) => statusOf(waiting.id)(e) && (e as { status: string }).status === "failed",
      60_000,
    );
    await alice.start();
    expect(await givenUp).toMatchObject({ status: "failed", failure: "Robert's mailbox no longer exists" });
    expect(alice.history("Robert").map((m) => [m.text, m.status, m.failure])).toEqual([
      ["are you there?", "failed", "Robert's mailbox no longer exists"],
      ["hello?", "failed", "Robert's mailbox no longer exists"],
    ]);
    expect(alice.contacts()[0]).toMatchObject({ contact: "Robert", outbox: 0 });
    // The conversation view (what the UI pages through) carries it too.
    expect(alice.conversation("Robert", {}, 10).map((e) => e.message.failure)).toEqual([
      "Robert's mailbox no longer exists",
      "Robert's mailbox no longer exists",
    ]);
  });

  it("too large for the contact's relay: given up at once, saying the relay's limit", async () => {
    const r = await relay(["--storage", "memory", "--max-message-size", "2048", "--unsafe-small-messages"]);
    const [alice] = await pair(`ws://127.0.0.1:${r.port}`);
    const e = await alice.send("Bob", ["x".repeat(3000)]).catch((x: unknown) => x);
    expect((e as ClientError).code).toBe("RELAY_REFUSED");
    expect((e as ClientError).message).toBe(
      "not delivered: too large for Bob's relay (it takes at most 2048 bytes); the message was not sent",
    );
    expect(last(alice, "Bob")).toMatchObject({
      status: "failed",
      failure: "too large for Bob's relay (it takes at most 2048 bytes)",
    });
    expect(alice.store.outbox()).toEqual([]);
    // The conversation goes on with messages that fit.
    const [ok] = await alice.send("Bob", ["short"]);
    expect(ok).toMatchObject({ status: "stored", failure: null });
  });

  it("to a full mailbox: waits, saying so, and the reason clears once it is taken", async () => {
    const r = await relay(["--storage", "memory", "--mailbox-max-messages", "2"]);
    const [alice, bob] = await pair(`ws://127.0.0.1:${r.port}`);
    await alice.send("Bob", ["one", "two"]);
    const e = await alice.send("Bob", ["three"]).catch((x: unknown) => x);
    expect((e as ClientError).code).toBe("RELAY_REFUSED");
    const three = last(alice, "Bob");
    expect(three).toMatchObject({
      status: "queued",
      failure: "Bob's mailbox, or their relay, is full for now",
    });

    await bob.sync(); // reads (and so empties) the mailbox
    const cleared = eventually(
      alice,
      (x) => statusOf(three.id)(x) && (x as { status: string }).status === "stored",
    );
    await alice.flush({ force: true });
    expect(await cleared).toMatchObject({ status: "stored", failure: null });
    expect(last(alice, "Bob")).toMatchObject({ text: "three", status: "stored", failure: null });
    await bob.sync();
    expect(bob.history("alice").map((m) => m.text)).toEqual(["one", "two", "three"]);
  });

  it("to a relay this client no longer accepts (its retention): waits, saying why", async () => {
    const r = await relay(["--storage", "memory", "--ttl", "20d"]);
    const url = `ws://127.0.0.1:${r.port}`;
    const [alice] = await pair(url);
    // The user lowers the maximum below what the relay keeps (as --max-retention would).
    alice.settings.maxRetentionSeconds = 7 * 86400;
    const e = await alice.send("Bob", ["kept too long"]).catch((x: unknown) => x);
    expect((e as ClientError).code).toBe("RELAY_REFUSED");
    expect(last(alice, "Bob")).toMatchObject({
      status: "queued",
      failure: `relay ${url} keeps undelivered messages for 20d, longer than your maximum of 7d (see --max-retention)`,
    });
    // Raised again, the message goes and the reason clears.
    alice.settings.maxRetentionSeconds = 30 * 86400;
    await alice.flush({ force: true });
    expect(last(alice, "Bob")).toMatchObject({ status: "stored", failure: null });
  });

  it("held while the contact's key changed: says what releases it; offline alone says nothing", async () => {
    const r = await relay();
    const [alice] = await pair(`ws://127.0.0.1:${r.port}`);
    await r.stop();
    await alice.send("Bob", ["written offline"]).catch(() => {});
    expect(last(alice, "Bob")).toMatchObject({ status: "queued", failure: null });
    // As when a new key for Bob arrives (client-errors.test.ts and the UI test show how): mark it.
    alice.store.tx(() => {
      const [row] = alice.store.contacts();
      alice.store.putContact(row!.key, { ...row!.value, keyChanged: true });
    });
    expect(last(alice, "Bob").failure).toBe(
      "held until you compare safety numbers with Bob and confirm the new key",
    );
  });

  it("an acceptance whose invitation mailbox is gone is reported, not retried in silence", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const alice = client("Alice", url);
    const bob = client("Bob", url);
    const { code } = await alice.invite();
    // Alice withdraws it: long past its expiry, prune deletes its mailbox on the relay.
    await alice.prune(Date.now() + 400 * 86_400_000);
    const warnings: string[] = [];
    bob.on("warning", (w) => warnings.push(w));
    const e = await bob.accept(code, { name: "alice" }).catch((x: unknown) => x);
    expect((e as ClientError).code).toBe("RELAY_REFUSED");
    expect(warnings).toEqual([
      "your acceptance of their invitation to alice waits: alice's mailbox no longer exists",
    ]);
    // Reported once: the next attempt says nothing new.
    await bob.flush({ force: true });
    expect(warnings).toHaveLength(1);
  });
});

describe("an invitation accepted", () => {
  it("tells the inviter who accepted it; the accepter's own event does not say so", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const alice = client("Alice", url);
    const bob = client("Bob", url);
    const { code } = await alice.invite();
    const own = await bob.accept(code, { name: "alice" });
    expect(own).toMatchObject({ type: "contact", event: "added", contact: "alice" });
    expect(own).not.toHaveProperty("invitationAccepted");
    const events: ClientEvent[] = [];
    alice.on("event", (e) => events.push(e));
    await alice.sync();
    expect(events).toContainEqual(
      expect.objectContaining({ type: "contact", event: "added", contact: "Bob", invitationAccepted: true }),
    );
  });
});
