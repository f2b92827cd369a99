// A relay that replays an Accept it already delivered cannot make the inviter warn that someone
// else used the code: the replay is dropped silently and counted. A genuinely different second
// Accept (another person with the same code) still warns. Against the real relay process.
import { fromHex, MailboxKey } from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { RelayConnection } from "../src/relay-connection.js";
import { cleanupLive, client, relay } from "./live-helpers.js";

afterEach(cleanupLive);

describe("an Accept delivered again", () => {
  it("is dropped silently when it is a replay; a different second Accept still warns", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const alice = client("Alice", url);
    const bob = client("Bob", url);
    const carol = client("Carol", url);
    const { code } = await alice.invite();
    await bob.accept(code, { name: "alice" });

    // Play the relay: read Bob's Accept from the invitation's mailbox (without acknowledging it).
    const key = MailboxKey.deserialize(fromHex(alice.store.invitations()[0]!.value.mailboxKey));
    const raw = await RelayConnection.open(url);
    const copy = new Promise<Uint8Array>((resolve) => raw.once("deliver", (f) => resolve(f.ciphertext)));
    await raw.subscribe(key);
    const accept = await copy;
    raw.close();
    expect(accept[0]).toBe(0x01); // an Accept envelope

    const warnings: string[] = [];
    alice.on("warning", (w) => warnings.push(w));
    await alice.sync();
    expect(alice.contacts().map((c) => c.contact)).toEqual(["Bob"]);

    // Carol accepts the same code while its mailbox is still open: that is a different Accept,
    // and Alice is told.
    await carol.accept(code, { name: "alice" });
    await alice.sync();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/someone else used the same code/);
    warnings.length = 0;

    // The conversation goes on, so the ratchet has moved past the Accept's keys (and Bob now
    // writes to the inbox Alice's intro named).
    await bob.sync();
    await bob.send("alice", ["hi"]);
    await alice.sync();
    await alice.send("Bob", ["hello"]);
    await bob.sync();
    await bob.send("alice", ["how are you?"]);
    await alice.sync();
    expect(alice.history("Bob").map((m) => m.text)).toEqual(["hi", "hello", "how are you?"]);
    expect(warnings).toEqual([]);
    const before = alice.status().replaysDropped;

    // The relay deposits the same Accept again, into the mailbox where Bob now writes (a relay
    // needs no deposit token in its own storage; this test, a client, uses the one Bob's deposits
    // showed the relay).
    const inbox = MailboxKey.deserialize(fromHex(alice.store.contacts()[0]!.value.inbox.key));
    const token = fromHex(bob.store.contacts()[0]!.value.outbox.token!);
    const again = await RelayConnection.open(url);
    await again.deposit(inbox.address, crypto.getRandomValues(new Uint8Array(16)), accept, token);
    again.close();
    await alice.sync();
    expect(warnings).toEqual([]);
    expect(alice.status().replaysDropped).toBe(before + 1);
    expect(alice.contacts().map((c) => c.contact)).toEqual(["Bob"]);
    // Acknowledged: nothing is delivered again.
    await alice.sync();
    expect(alice.status().replaysDropped).toBe(before + 1);
  });
});
