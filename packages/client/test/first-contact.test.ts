// Issue 13, medium 1: the invitation's mailbox, whose address anyone who saw the code can derive,
// must not become a permanent, floodable inbox. The inviter's intro names a fresh inbox; the
// first-contact mailbox is deleted once the contact writes there with nothing missing before it.
// Against the real relay process.
import { fromHex, MailboxKey, x25519KeyPair } from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import type { Client } from "../src/client.js";
import { introPayload } from "../src/core/invitations.js";
import { RelayConnection, RelayRequestError } from "../src/relay-connection.js";
import { cleanupLive, client, freePort, relay } from "./live-helpers.js";

afterEach(cleanupLive);

/** A stranger's deposit: the error code the relay answers, or "ok". */
async function depositAs(url: string, address: Uint8Array, wire: Uint8Array): Promise<string> {
  const conn = await RelayConnection.open(url);
  try {
    await conn.deposit(address, crypto.getRandomValues(new Uint8Array(16)), wire);
    return "ok";
  } catch (e) {
    if (e instanceof RelayRequestError) return e.code;
    throw e;
  } finally {
    conn.close();
  }
}

/** A forged Message (§6.3): a fresh ratchet key, the given counters, and a tag that cannot verify. */
function forged(pn: number, n: number): Uint8Array {
  const wire = new Uint8Array(42 + 64);
  const view = new DataView(wire.buffer);
  wire[0] = 0x02;
  wire[1] = 0x01;
  wire.set(x25519KeyPair().publicKey, 2);
  view.setUint32(34, pn);
  view.setUint32(38, n);
  wire.set(crypto.getRandomValues(new Uint8Array(64)), 42);
  return wire;
}

async function pair(
  url: string,
): Promise<{ alice: Client; bob: Client; first: MailboxKey; inbox: MailboxKey }> {
  const alice = client("Alice", url);
  const bob = client("Bob", url);
  const { code } = await alice.invite();
  const inv = alice.store.invitations()[0]!.value;
  const first = MailboxKey.deserialize(fromHex(inv.mailboxKey));
  const inbox = MailboxKey.deserialize(fromHex(inv.inboxKey!));
  await bob.accept(code, { name: "alice" });
  return { alice, bob, first, inbox };
}

describe("the first-contact mailbox", () => {
  it("is deleted once the contact writes to the inbox named in the inviter's intro", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const { alice, bob, first, inbox } = await pair(url);
    await alice.sync();
    // Until Bob has moved, the first-contact mailbox is still read (and still exists).
    expect(await depositAs(url, first.address, forged(0, 0))).toBe("ok");
    await bob.sync();
    const bobsContact = bob.store.contacts()[0]!.value;
    expect(bobsContact.outbox.address).toBe(Buffer.from(inbox.address).toString("hex"));
    await bob.send("alice", ["hi"]);
    await alice.sync();
    expect(alice.history("Bob").map((m) => m.text)).toEqual(["hi"]);
    expect(alice.store.contacts()[0]!.value.firstContact).toBeUndefined();
    // Whoever saw the code can no longer deposit anything there.
    expect(await depositAs(url, first.address, forged(0, 0))).toBe("UNKNOWN_MAILBOX");
    // The conversation goes on in the new inbox, both ways.
    await alice.send("Bob", ["hello"]);
    await bob.sync();
    await bob.send("alice", ["still here"]);
    await alice.sync();
    expect(alice.history("Bob").map((m) => m.text)).toEqual(["hi", "hello", "still here"]);
    expect(bob.history("alice").map((m) => m.text)).toEqual(["hi", "hello", "still here"]);
  });

  it("is read until nothing sent before the move is missing, then deleted", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const { alice, bob, first } = await pair(url);
    await alice.sync();
    // Bob writes before he has read Alice's intro (send does not receive): to the first-contact
    // mailbox. Then he reads it and writes again, to the new inbox; Alice gets both at once, in
    // whichever order the relay pushes the two mailboxes.
    await bob.send("alice", ["one"]);
    await bob.sync();
    await bob.send("alice", ["two"]);
    await alice.sync();
    expect(
      alice
        .history("Bob")
        .map((m) => m.text)
        .sort(),
    ).toEqual(["one", "two"]);
    expect(alice.store.contacts()[0]!.value.firstContact).toBeUndefined();
    expect(await depositAs(url, first.address, forged(0, 0))).toBe("UNKNOWN_MAILBOX");
  });

  it("is deleted when the invitation expires even if the contact never moves", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const { alice, first } = await pair(url);
    await alice.sync();
    const until = alice.store.contacts()[0]!.value.firstContact!.until;
    await alice.prune(until - 1);
    expect(await depositAs(url, first.address, forged(0, 0))).toBe("ok");
    await alice.prune(until);
    expect(alice.store.contacts()[0]!.value.firstContact).toBeUndefined();
    expect(await depositAs(url, first.address, forged(0, 0))).toBe("UNKNOWN_MAILBOX");
  });

  it("a flood of forged messages from someone who saw the code is dropped, and the conversation goes on", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const { alice, bob, first } = await pair(url);
    await alice.sync();
    const warnings: string[] = [];
    alice.on("warning", (w) => warnings.push(w));
    // Costly forgeries (a new ratchet key skipping 1000 keys in each chain) are refused before any
    // key is derived; those within the bound fail authentication. All are acknowledged.
    for (let i = 0; i < 40; i++) {
      expect(await depositAs(url, first.address, forged(1000, 1000))).toBe("ok");
      expect(await depositAs(url, first.address, forged(30, 30))).toBe("ok");
    }
    await alice.sync();
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.length).toBeLessThan(80);
    for (const w of warnings)
      expect(w).toMatch(/dropped \d+ undecryptable messages? for Bob \((TOO_FAR_AHEAD|AUTH)/);
    const dropped = warnings.map((w) => Number(/dropped (\d+)/.exec(w)![1])).reduce((a, b) => a + b, 0);
    expect(dropped).toBe(80);
    // Nothing is left on the relay for Alice: a second sync gets nothing more.
    warnings.length = 0;
    await alice.sync();
    expect(warnings).toEqual([]);
    await bob.sync();
    await bob.send("alice", ["hi"]);
    await alice.sync();
    expect(alice.history("Bob").map((m) => m.text)).toEqual(["hi"]);
  });
});

describe("deposit tokens (issue 18, item 7)", () => {
  it("each side's mailbox takes deposits only with the token its intro gave the contact", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const { alice, bob, inbox } = await pair(url);
    await alice.sync();
    await bob.sync();
    const bobsContact = bob.store.contacts()[0]!.value;
    const alicesContact = alice.store.contacts()[0]!.value;
    // Bob writes to the inbox Alice's intro named, with the token it carried; Alice to Bob's
    // mailbox, with the token his intro (inside his Accept) carried.
    expect(bobsContact.outbox.address).toBe(Buffer.from(inbox.address).toString("hex"));
    expect(bobsContact.outbox.token).toMatch(/^[0-9a-f]{64}$/);
    expect(alicesContact.outbox.token).toMatch(/^[0-9a-f]{64}$/);
    expect(alicesContact.outbox.token).not.toBe(bobsContact.outbox.token);
    // A stranger who learned either address cannot deposit there: not even a single message.
    const bobsMailbox = fromHex(alicesContact.outbox.address);
    expect(await depositAs(url, inbox.address, forged(0, 0))).toBe("AUTH");
    expect(await depositAs(url, bobsMailbox, forged(0, 0))).toBe("AUTH");
    // Nor with the other direction's token.
    const conn = await RelayConnection.open(url);
    try {
      const wrong = fromHex(bobsContact.outbox.token!);
      await expect(
        conn.deposit(bobsMailbox, new Uint8Array(16).fill(1), forged(0, 0), wrong),
      ).rejects.toMatchObject({
        code: "AUTH",
      });
    } finally {
      conn.close();
    }
    // The conversation goes on, both ways, with the tokens.
    await bob.send("alice", ["hi"]);
    await alice.sync();
    await alice.send("Bob", ["hello"]);
    await bob.sync();
    expect(alice.history("Bob").map((m) => m.text)).toEqual(["hi", "hello"]);
    expect(bob.history("alice").map((m) => m.text)).toEqual(["hi", "hello"]);
  });

  it("what Bob queued for the first-contact mailbox moves to the inbox, with its token", async () => {
    const r = await relay(["--storage", "memory", "--mailbox-max-messages", "2"]);
    const url = `ws://127.0.0.1:${r.port}`;
    const { alice, bob, first } = await pair(url);
    await alice.sync();
    // A stranger fills the first-contact mailbox, so Bob's next message, written before he has
    // read Alice's intro, waits in his outbox: for the first-contact mailbox, without a token.
    expect(await depositAs(url, first.address, forged(0, 0))).toBe("ok");
    expect(await depositAs(url, first.address, forged(0, 0))).toBe("ok");
    await bob.send("alice", ["queued"]).catch(() => {});
    const queued = () => bob.store.outbox().filter((e) => e.value.kind === "message");
    expect(queued().map((e) => [e.value.address, e.value.token])).toEqual([
      [Buffer.from(first.address).toString("hex"), undefined],
    ]);
    // Reading the intro moves it to the inbox, with the inbox's token, and it is deposited there.
    await bob.sync();
    expect(queued()).toEqual([]);
    await alice.sync();
    expect(alice.history("Bob").map((m) => m.text)).toEqual(["queued"]);
    expect(alice.store.contacts()[0]!.value.firstContact).toBeUndefined();
  });

  it("a contact whose intro carries no token (an older client) is never locked out", async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const alice = client("Alice", url);
    const bob = client("Bob", url);
    // Bob plays a client from before deposit tokens: his intro has none, and he keeps none.
    const bobInvitations = (bob as unknown as { core: { invitations: { acceptIntro: unknown } } }).core
      .invitations;
    bobInvitations.acceptIntro = () => introPayload("Bob");
    // Nor does he keep tokens: his mailbox has none, and he drops the one Alice's intro gives.
    const forget = (c: Client, side: "inbox" | "outbox") => {
      const [r0] = c.store.contacts();
      const { token: _t, ...rest } = r0!.value[side];
      c.store.tx(() => c.store.putContact(r0!.key, { ...r0!.value, [side]: rest }));
    };
    const { code } = await alice.invite();
    await bob.accept(code, { name: "alice" });
    forget(bob, "inbox");
    await alice.sync();
    await bob.sync();
    forget(bob, "outbox");
    expect(alice.store.contacts()[0]!.value.inbox.lock).toBeUndefined();
    await bob.send("alice", ["plain deposits still arrive"]);
    await alice.sync();
    expect(alice.history("Bob").map((m) => m.text)).toEqual(["plain deposits still arrive"]);
    // Bob's own mailbox is not locked either: Alice's intro had a token, but his had none, so
    // Alice knows no token of his and writes plainly.
    expect(alice.store.contacts()[0]!.value.outbox.token).toBeUndefined();
    await alice.send("Bob", ["and back"]);
    await bob.sync();
    expect(bob.history("alice").map((m) => m.text)).toEqual(["plain deposits still arrive", "and back"]);
  });

  it("a mailbox the relay lost is created again with its deposit token", async () => {
    const port = await freePort();
    const args = ["--storage", "memory", "--port", String(port)];
    let r = await relay(args);
    const url = `ws://127.0.0.1:${port}`;
    const { alice, bob, inbox } = await pair(url);
    await alice.sync();
    await bob.sync();
    expect(alice.store.contacts()[0]!.value.inbox.lock).toBe("set");
    expect(await depositAs(url, inbox.address, forged(0, 0))).toBe("AUTH");
    // A memory relay restarts empty: Alice's next sync creates her mailboxes again, locked.
    await r.stop();
    r = await relay(args);
    await alice.sync();
    expect(await depositAs(url, inbox.address, forged(0, 0))).toBe("AUTH");
    await bob.send("alice", ["after the restart"]);
    await alice.sync();
    expect(alice.history("Bob").map((m) => m.text)).toEqual(["after the restart"]);
  });
});
