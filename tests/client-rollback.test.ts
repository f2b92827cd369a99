// A data directory restored from an older copy (a backup, a VM snapshot, a synced folder) rewinds
// the sender's ratchet. The next message then sits at a chain position already used; it must still
// be encrypted under a (key, nonce) never used before, so XOR of the two ciphertexts tells nothing
// about the plaintexts (PROTOCOL.md §6.2, issue 13 Medium 2). Real `parley` processes, a real relay
// process and its real SQLite storage: the ciphertexts are read as deposited, while Bob is offline.
import { cp, rm } from "node:fs/promises";
import { join } from "node:path";
import { decodeEnvelope, fromHex, MailboxKey, type MessageEnvelope } from "@parley/protocol";
import { afterAll, describe, expect, it } from "vitest";
import { resolvePaths } from "../packages/client/src/paths.js";
import { RelayConnection, RelayRequestError } from "../packages/client/src/relay-connection.js";
import { Store } from "../packages/client/src/store.js";
import {
  aliceAndBob,
  cleanup,
  history,
  messages,
  newDir,
  PASSPHRASE,
  parley,
  sendOne,
  startRelay,
} from "./client-helpers.js";

afterAll(cleanup);

interface Row {
  address: Uint8Array;
  messageId: Uint8Array;
  ciphertext: Uint8Array;
}

/** Bob's mailbox key for his one contact, read from his store (no parley process runs on it). */
function bobsMailbox(home: string): MailboxKey {
  const store = Store.open(resolvePaths(home).database, PASSPHRASE);
  try {
    return MailboxKey.deserialize(fromHex(store.contacts()[0]!.value.inbox.key));
  } finally {
    store.close();
  }
}

/**
 * The first `count` ciphertexts waiting in Bob's mailbox, exactly as deposited: read by playing
 * Bob at the relay (a subscription with his mailbox key), without acknowledging them, so that
 * they stay there for Bob. (The relay's SQLite file holds them sealed under keys of its own.)
 */
async function waiting(url: string, key: MailboxKey, count: number): Promise<Row[]> {
  const conn = await RelayConnection.open(url);
  try {
    const rows: Row[] = [];
    const all = new Promise<void>((resolve) => {
      conn.on("deliver", (f) => {
        rows.push({ address: f.address, messageId: f.messageId, ciphertext: f.ciphertext });
        if (rows.length === count) resolve();
      });
    });
    await conn.subscribe(key);
    await all;
    return rows;
  } finally {
    conn.close();
  }
}

/** Whether the relay still holds a message with this id in Bob's mailbox (an ack answers it). */
async function held(url: string, key: MailboxKey, messageId: Uint8Array): Promise<boolean> {
  const conn = await RelayConnection.open(url);
  try {
    await conn.subscribe(key);
    await conn.ack(key.address, messageId);
    return true;
  } catch (e) {
    if (e instanceof RelayRequestError && e.code === "UNKNOWN_MESSAGE") return false;
    throw e;
  } finally {
    conn.close();
  }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function message(ciphertext: Uint8Array): MessageEnvelope {
  const e = decodeEnvelope(new Uint8Array(ciphertext));
  return e.kind === "accept" ? e.message : e;
}

/**
 * The bytes of a padded text payload (PROTOCOL.md §7) that do not depend on its random id and its
 * clock: offset → value. Version, type, text length, the text, the 0x80 marker and the zero padding.
 */
function knownBytes(text: string, bucket: number): Map<number, number> {
  const t = Buffer.from(text, "utf8");
  const known = new Map<number, number>([
    [0, 1],
    [1, 1],
  ]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(t.length);
  for (const [i, b] of length.entries()) known.set(26 + i, b);
  for (const [i, b] of t.entries()) known.set(30 + i, b);
  known.set(30 + t.length, 0x80);
  for (let i = 31 + t.length; i < bucket; i++) known.set(i, 0);
  return known;
}

describe("a restored data directory (PROTOCOL.md §6.2)", () => {
  it("§6.2 after Alice's store is rewound, her next message reuses no (key, nonce): XOR of the deposited ciphertexts is not XOR of the plaintexts; Bob gets message 1 and drops message 2 as a duplicate", {
    timeout: 240_000,
  }, async () => {
    const dataDir = await newDir("parley-relay-data-");
    const relay = await startRelay(["--storage", "sqlite", "--data-dir", dataDir]);
    const { alice, bob } = await aliceAndBob(relay.url);
    await parley(bob, ["sync", "--wait", "2"]); // Alice's intro: Bob's mailbox is empty again
    const key = bobsMailbox(bob);

    // Alice's data directory is copied while no parley process runs on it (each command has exited).
    const backup = join(await newDir("parley-backup-"), "home");
    await cp(alice, backup, { recursive: true });

    const one = "rollback 1: the code of the vault is 4711, tell no one";
    const two = "rollback 2: meet me by the old mill at six, come alone";
    expect(Buffer.byteLength(two)).toBe(Buffer.byteLength(one));
    await sendOne(alice, "Bob", one);
    // The backup comes back over Alice's directory, and she sends again.
    await rm(alice, { recursive: true, force: true });
    await cp(backup, alice, { recursive: true });
    await sendOne(alice, "Bob", two);
    expect((await history(alice, "Bob")).map((m) => m.text)).not.toContain(one);

    // Bob is offline: both ciphertexts wait at the relay exactly as Alice deposited them.
    const rows = await waiting(relay.url, key, 2);
    expect(rows).toHaveLength(2);
    expect(hex(rows[1]!.address)).toBe(hex(rows[0]!.address));
    const [a, b] = rows.map((r) => message(r.ciphertext)) as [MessageEnvelope, MessageEnvelope];
    // The rewind is real: the same chain, the same index, so the same message key...
    expect(hex(b.header.ratchetKey)).toBe(hex(a.header.ratchetKey));
    expect(b.header.index).toBe(a.header.index);
    expect(b.sealed.length).toBe(a.sealed.length);
    const bucket = a.sealed.length - 16;
    expect(bucket).toBe(256);

    // ...yet the keystreams differ. Under a reused (key, nonce), at every byte whose plaintext is
    // known (everything but the random id and the clock), c1 ^ c2 = p1 ^ p2.
    const known1 = knownBytes(one, bucket);
    const known2 = knownBytes(two, bucket);
    const offsets = [...known1.keys()];
    expect(offsets.length).toBeGreaterThan(200);
    const cipherXor = offsets.map((i) => a.sealed[i]! ^ b.sealed[i]!);
    const plainXor = offsets.map((i) => known1.get(i)! ^ known2.get(i)!);
    expect(hex(Uint8Array.from(cipherXor))).not.toBe(hex(Uint8Array.from(plainXor)));
    // In the zero padding a reused keystream would make the two ciphertexts identical.
    const tail = bucket - 64;
    expect(hex(a.sealed.subarray(tail, bucket))).not.toBe(hex(b.sealed.subarray(tail, bucket)));
    // What differs is the nonce each encryption drew (the v2 header's last 24 bytes).
    expect(hex(b.header.nonce!)).not.toBe(hex(a.header.nonce!));

    // Bob comes online: message 1 is shown; message 2, at a position he has already received, is
    // refused as a DUPLICATE and dropped silently (acknowledged, never shown); nothing crashes.
    const sync = await parley(bob, ["sync", "--wait", "5", "--json"]);
    expect(messages(sync.events, "alice", "in").map((m) => m.text)).toEqual([one]);
    expect(sync.stderr).toBe("");
    expect((await history(bob, "alice")).filter((m) => m.direction === "in").map((m) => m.text)).toEqual([
      one,
    ]);
    // Both deliveries were acknowledged, so Bob's mailbox at the relay holds neither any more.
    for (const r of rows) expect(await held(relay.url, key, r.messageId)).toBe(false);

    // The session still works afterwards, in both directions.
    await sendOne(bob, "alice", "still talking");
    const back = await parley(alice, ["sync", "--wait", "5", "--json"]);
    expect(messages(back.events, "Bob", "in").map((m) => m.text)).toEqual(["still talking"]);
    const three = await sendOne(alice, "Bob", "rollback 3: after the reply");
    const last = await parley(bob, ["sync", "--wait", "5", "--json"]);
    expect(messages(last.events, "alice", "in").map((m) => m.id)).toEqual([three]);
  });
});
