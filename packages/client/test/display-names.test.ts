// Names contacts announce (their intro), through the Client API against the real relay process:
// invisible and bidi characters are stripped, two contacts never look the same on screen, and an
// intro renames only as the first message of a session.
import { newMessageId } from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import type { Client, ClientEvent } from "../src/client.js";
import { encryptTo } from "../src/core/contacts.js";
import { outboxEntry } from "../src/core/outbox.js";
import { encodeIntro } from "../src/intro.js";
import { cleanupLive, client, pair, relay } from "./live-helpers.js";

afterEach(cleanupLive);

/** A client that announces `name`, as a modified client could (init refuses such names). */
function announcing(c: Client, name: string): Client {
  Object.defineProperty(c, "name", { value: name });
  return c;
}

/** Bob accepts Alice's invitation, naming her; Alice learns Bob's announced name. */
async function connect(alice: Client, bob: Client): Promise<void> {
  const { code } = await alice.invite();
  await bob.accept(code, { name: "alice" });
  await alice.sync();
}

/**
 * Sends an intro in the middle of a conversation, as a modified client could (send() refuses it),
 * with the client core's own encryption and queueing; returns once the relay has stored it.
 */
async function sendIntro(from: Client, to: string, name: string): Promise<void> {
  from.store.tx(() => {
    const { id, contact } = from.findContact(to);
    const text = encodeIntro({ name });
    const wire = encryptTo(contact, { type: "text", id: newMessageId(), sentAt: Date.now(), text });
    from.store.putContact(id, contact);
    from.store.enqueue(id, outboxEntry("message", contact.outbox, wire));
  });
  await from.sync();
  // Deposited: nothing of it waits in the outbox (so the receiver really gets it).
  expect(from.store.outbox()).toEqual([]);
}

const shortFp = (c: Client) => c.fingerprint.replace(/ /g, "").slice(0, 4);

describe("announced display names", () => {
  it("are stripped of zero-width, bidi-control and compatibility characters", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const alice = client("Alice", url);
    // Fullwidth B, a zero-width space, a right-to-left override, a word joiner and an isolate.
    const bob = announcing(client("Bob", url), "\uff22\u200bo\u202eb\u2060\u2066");
    await connect(alice, bob);
    expect(alice.contacts().map((c) => c.contact)).toEqual(["Bob"]);
  });

  it("never look the same as another contact's: the later one gets a fingerprint suffix", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const alice = client("Alice", url);
    const bob = client("Bob", url);
    await connect(alice, bob);
    // Cyrillic Ve and o, which look like Latin B and o.
    const mallory = announcing(client("Mallory", url), "\u0412\u043eb");
    await connect(alice, mallory);
    // The same name in another case, and with a Greek capital Beta.
    const eve = announcing(client("Eve", url), "bob");
    await connect(alice, eve);
    const trudy = announcing(client("Trudy", url), "\u0392ob");
    await connect(alice, trudy);
    const names = alice
      .contacts()
      .map((c) => c.contact)
      .sort();
    expect(names).toEqual(
      [
        "Bob",
        `\u0412\u043eb (${shortFp(mallory)})`,
        `bob (${shortFp(eve)})`,
        `\u0392ob (${shortFp(trudy)})`,
      ].sort(),
    );
    // Each is the fingerprint of the contact it names.
    for (const c of alice.contacts()) {
      const suffix = /\(([0-9a-f]{4})\)$/.exec(c.contact)?.[1];
      if (suffix) expect(c.fingerprint.replace(/ /g, "").startsWith(suffix)).toBe(true);
    }
    // A local rename to a look-alike of another contact's name is refused too.
    expect(() => alice.rename(`bob (${shortFp(eve)})`, "B\u043eb")).toThrow(/looks the same/);
    // And so is naming a new contact so when accepting.
    const { code } = await client("Zed", url).invite();
    await expect(alice.accept(code, { name: "\u0392\u03bfb" })).rejects.toThrow(/looks the same/);
  });

  it("rename a contact only as the first message of a session, not mid-conversation", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const alice = client("Alice", url);
    const bob = client("Bob", url);
    // Bob names no one: Alice's intro, her first message, names her on his side.
    const { code } = await alice.invite();
    await bob.accept(code);
    await alice.sync();
    await bob.sync();
    expect(bob.contacts().map((c) => c.contact)).toEqual(["Alice"]);
    expect(alice.contacts().map((c) => c.contact)).toEqual(["Bob"]);

    await bob.send("Alice", ["hi"]);
    await alice.sync();
    const events: ClientEvent[] = [];
    alice.on("event", (e) => events.push(e));
    await sendIntro(bob, "Alice", "Alice");
    await alice.sync();
    expect(alice.contacts().map((c) => c.contact)).toEqual(["Bob"]);
    expect(events.filter((e) => e.type === "contact")).toEqual([]);
    // The conversation goes on as before.
    await bob.send("Alice", ["still me"]);
    await alice.sync();
    expect(alice.history("Bob").map((m) => m.text)).toEqual(["hi", "still me"]);

    // Nor in the other direction, once the session is under way.
    const [carol, dave] = await pair(url);
    await dave.send("alice", ["hello"]);
    await carol.sync();
    await sendIntro(dave, "alice", "Mallory");
    await carol.sync();
    expect(carol.contacts().map((c) => c.contact)).toEqual(["Bob"]);
  });
});
