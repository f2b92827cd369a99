// Forgetting, by construction (issue 18, item 8). The relay seals every ciphertext it stores under a
// key of its own, kept in relay.keys and nowhere else, and overwrites that key before it answers the
// ack (or when the message expires, or its mailbox is deleted). SQLite may keep stale copies of the
// sealed bytes (its WAL, free pages, the unused space of a live page): without the key they are
// noise. The tests read the data directory as an attacker with every file would: while a message
// waits, they find its key and check that it opens the message (so the scans can find what they
// look for); once it is deleted, a byte-level scan of every file at every offset finds neither its
// key nor its ciphertext, and the fullest stale copy there can be (the database as it was before
// the ack) no longer opens with anything the directory holds.
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MailboxAction, MailboxKey, toHex } from "@parley/protocol";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { openMessage } from "../src/storage/sealed.js";
import { metric, type RelayProcess, startRelay, TestClient, until } from "./helpers.js";

/** relay.keys: a 32-byte header, then 32-byte slots. */
const KEY_HEADER = 32;
const KEY_LENGTH = 32;

/** Every file under `dir`, read whole (free pages and page slack included). */
function files(dir: string): { path: string; bytes: Buffer }[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile())
    .map((path) => ({ path, bytes: readFileSync(path) }));
}

/** 32-byte windows that identify a byte string: the whole of a key, or head, middle and tail. */
function probes(bytes: Uint8Array): Buffer[] {
  const b = Buffer.from(bytes);
  if (b.length <= 32) return [b];
  const mid = Math.floor(b.length / 2) - 16;
  return [b.subarray(0, 32), b.subarray(mid, mid + 32), b.subarray(-32)];
}

/**
 * Which of the byte strings (by name) occur in any file under `dir`, at any offset: a string counts
 * as found when any of its probes is. One pass per file, with a 4-byte prefilter, itself behind a
 * table with a bit for each 3-byte prefix (the relay's reserve file alone is megabytes of random
 * bytes: one table lookup turns away almost every offset, where a Map lookup each took seconds).
 */
function scan(dir: string, wanted: Map<string, Uint8Array>): Map<string, string[]> {
  const byPrefix = new Map<number, { name: string; probe: Buffer }[]>();
  const starts = new Uint8Array(1 << 21);
  for (const [name, bytes] of wanted) {
    for (const probe of probes(bytes)) {
      if (probe.length < 4) throw new Error("probe too short");
      const prefix = probe.readUInt32LE(0);
      const list = byPrefix.get(prefix) ?? [];
      list.push({ name, probe });
      byPrefix.set(prefix, list);
      const three = prefix & 0xffffff;
      starts[three >>> 3]! |= 1 << (three & 7);
    }
  }
  const found = new Map<string, string[]>();
  for (const { path, bytes } of files(dir)) {
    for (let off = 0; off + 4 <= bytes.length; off++) {
      const three = bytes[off]! | (bytes[off + 1]! << 8) | (bytes[off + 2]! << 16);
      if ((starts[three >>> 3]! & (1 << (three & 7))) === 0) continue;
      const list = byPrefix.get(bytes.readUInt32LE(off));
      if (!list) continue;
      for (const { name, probe } of list) {
        if (
          off + probe.length > bytes.length ||
          bytes.compare(probe, 0, probe.length, off, off + probe.length) !== 0
        )
          continue;
        const where = found.get(name) ?? [];
        if (!where.includes(path)) where.push(path);
        found.set(name, where);
      }
    }
  }
  return found;
}

interface StoredRow {
  id: Buffer;
  address: Buffer;
  slot: number;
  sealed: Buffer;
  key: Buffer;
}

/** The 32-byte key in slot `slot` of a key file's bytes (zeros beyond its end). */
function slotKey(keyFile: Buffer, slot: number): Buffer {
  const at = KEY_HEADER + slot * KEY_LENGTH;
  return at + KEY_LENGTH <= keyFile.length
    ? Buffer.from(keyFile.subarray(at, at + KEY_LENGTH))
    : Buffer.alloc(32);
}

/** Copies the data directory (relay.sqlite, its WAL, relay.keys) as it is now. */
function snapshot(dir: string): string {
  const copy = mkdtempSync(join(tmpdir(), "parley-forget-copy-"));
  cpSync(dir, copy, { recursive: true });
  copies.push(copy);
  return copy;
}

/** Every message row of a copied data directory, with the key its slot holds in that copy. */
function rows(copy: string): StoredRow[] {
  const db = new Database(join(copy, "relay.sqlite"));
  try {
    const keys = readFileSync(join(copy, "relay.keys"));
    return (
      db.prepare("SELECT id, address, key_slot AS slot, sealed FROM messages").all() as StoredRow[]
    ).map((r) => ({ ...r, key: slotKey(keys, r.slot) }));
  } finally {
    db.close();
  }
}

/** What a row opens to with `key`, or null. */
function open(row: StoredRow, key: Uint8Array): Uint8Array | null {
  try {
    return openMessage(key, row.id, row.address, row.sealed);
  } catch {
    return null;
  }
}

/** Every key (non-zero slot) in a data directory's relay.keys. */
function allKeys(dir: string): Buffer[] {
  const file = readFileSync(join(dir, "relay.keys"));
  const out: Buffer[] = [];
  for (let at = KEY_HEADER; at + KEY_LENGTH <= file.length; at += KEY_LENGTH) {
    const key = file.subarray(at, at + KEY_LENGTH);
    if (!key.equals(Buffer.alloc(KEY_LENGTH))) out.push(Buffer.from(key));
  }
  return out;
}

let relay: RelayProcess | undefined;
let dir = "";
const copies: string[] = [];
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await relay?.stop();
  relay = undefined;
  rmSync(dir, { recursive: true, force: true });
  for (const c of copies.splice(0)) rmSync(c, { recursive: true, force: true });
});

async function setup(args: string[]) {
  dir = mkdtempSync(join(tmpdir(), "parley-forget-"));
  relay = await startRelay(["--data-dir", dir, "--sweep-interval", "1s", ...args]);
  const owner = MailboxKey.generate();
  const c = await TestClient.connect(relay.port);
  clients.push(c);
  await c.createMailbox(owner);
  return { owner, c, relay };
}

/** The row of a copy that holds `ciphertext` (opened with its own key), checking that it does. */
function rowOf(all: StoredRow[], ciphertext: Uint8Array): StoredRow {
  const row = all.find((r) => {
    const plain = open(r, r.key);
    return plain !== null && Buffer.from(plain).equals(ciphertext);
  });
  if (!row) throw new Error("no row of the copy opens to that ciphertext");
  return row;
}

const named = (entries: [string, Uint8Array][]) => new Map(entries);

describe("forgetting (SQLite, real process)", () => {
  for (const size of [200, 40_000]) {
    it(`an acknowledged ${size}-byte ciphertext cannot be read from any file once the ack is answered`, async () => {
      const { owner, c } = await setup(["--sweep-interval", "1h"]);
      const secret = randomBytes(size);
      const others = [randomBytes(size), randomBytes(size)];
      await c.deposit(owner.address, secret, randomBytes(16));
      for (const o of others) await c.deposit(owner.address, o, randomBytes(16));
      // While it waits, its key is in the directory and opens it (the scans can find what they seek),
      // and the ciphertext itself is in no file: it is stored sealed.
      const before = rows(snapshot(dir));
      const row = rowOf(before, secret);
      const kept = rowOf(before, others[1]!);
      expect(scan(dir, named([["key", row.key]])).get("key")).toBeDefined();
      expect(scan(dir, named([["secret", secret]])).size).toBe(0);

      await c.subscribe(owner);
      const d = await c.next();
      if (d.type !== "deliver") throw new Error("expected a delivery");
      expect(Buffer.from(d.ciphertext).equals(secret)).toBe(true);
      expect(await c.ack(owner.address, d.messageId)).toMatchObject({ type: "ok" });
      // At once (no sweep runs, nothing is waited for): the key is in no file at any offset.
      const after = scan(
        dir,
        named([
          ["key", row.key],
          ["secret", secret],
          ["kept key", kept.key],
        ]),
      );
      expect([...after.keys()]).toEqual(["kept key"]);
      // The database as it was before the ack, the fullest stale copy there can be, opens with no
      // key the directory now holds, except for the messages still waiting.
      const keysNow = allKeys(dir);
      expect(keysNow.some((k) => open(row, k) !== null)).toBe(false);
      expect(keysNow.some((k) => open(kept, k) !== null)).toBe(true);
    });
  }

  it("an acknowledged ciphertext stays unreadable when the relay is killed right after answering the ack, and a restart erases keys left by a crash", async () => {
    const { owner, c, relay: first } = await setup(["--sweep-interval", "1h"]);
    const secret = randomBytes(5000);
    const waiting = randomBytes(5000);
    await c.deposit(owner.address, secret, randomBytes(16));
    await c.deposit(owner.address, waiting, randomBytes(16));
    const row = rowOf(rows(snapshot(dir)), secret);
    await c.subscribe(owner);
    const d = await c.next();
    if (d.type !== "deliver") throw new Error("expected a delivery");
    expect(await c.ack(owner.address, d.messageId)).toMatchObject({ type: "ok" });
    expect(await first.stop("SIGKILL")).toBe("SIGKILL");
    relay = undefined;
    expect(scan(dir, named([["key", row.key]])).size).toBe(0); // no sweep ran, no clean shutdown either
    // A crash between a commit that deleted and the erasure of its keys leaves a key that no
    // message refers to: plant one in a free slot, as that crash would.
    const keyFile = readFileSync(join(dir, "relay.keys"));
    const stray = randomBytes(KEY_LENGTH);
    writeFileSync(join(dir, "relay.keys"), Buffer.concat([keyFile, stray]));
    expect(scan(dir, named([["stray", stray]])).size).toBe(1);
    relay = await startRelay(["--data-dir", dir, "--sweep-interval", "1h"]);
    expect(scan(dir, named([["stray", stray]])).size).toBe(0);
    expect(scan(dir, named([["key", row.key]])).size).toBe(0);
    // What waits is still there, and readable.
    const again = await TestClient.connect(relay.port);
    clients.push(again);
    await again.subscribe(owner);
    const w = await again.next();
    expect(w.type === "deliver" && Buffer.from(w.ciphertext).equals(waiting)).toBe(true);
  });

  it("an expired ciphertext's key is erased by the sweep", async () => {
    const { owner, c, relay } = await setup(["--ttl", "2s"]);
    const secret = randomBytes(3000);
    await c.deposit(owner.address, secret, randomBytes(16));
    const row = rowOf(rows(snapshot(dir)), secret);
    expect(scan(dir, named([["key", row.key]])).size).toBe(1);
    await until("the expiry", async () => (await metric(relay.port, "parley_relay_expirations_total")) === 1);
    expect(scan(dir, named([["key", row.key]])).size).toBe(0);
  });

  it("a deleted mailbox's keys are erased before the deletion is answered", async () => {
    const { owner, c } = await setup(["--sweep-interval", "1h"]);
    const secrets = [randomBytes(300), randomBytes(30_000)];
    for (const s of secrets) await c.deposit(owner.address, s, randomBytes(16));
    const all = rows(snapshot(dir));
    const keys = secrets.map((s) => rowOf(all, s).key);
    expect(scan(dir, named(keys.map((k, i) => [`key ${i}`, k]))).size).toBe(2);
    const deleted = await c.request({
      type: "deleteMailbox",
      requestId: 0,
      address: owner.address,
      signature: owner.prove(MailboxAction.delete, c.challenge),
    });
    expect(deleted).toMatchObject({ type: "ok" });
    expect(scan(dir, named(keys.map((k, i) => [`key ${i}`, k]))).size).toBe(0);
  });

  it("after churn (many deposits and acks, small and large, pages rearranged), no file holds an acknowledged message's key or any ciphertext, though stale sealed copies remain", async () => {
    const { owner, c } = await setup(["--sweep-interval", "1h", "--rate-limit", "100000"]);
    const sender = await TestClient.connect(relay!.port);
    clients.push(sender);
    await c.subscribe(owner);
    const sizes = [60, 200, 700, 3000, 12_000, 40_000];
    /** Every row seen in a snapshot while its message waited, by relay id. */
    const seen = new Map<string, StoredRow>();
    const deposited: Buffer[] = [];
    /** Delivered, not acked: relay id -> ciphertext. */
    const inFlight = new Map<string, Buffer>();
    const acked = new Set<string>();
    for (let round = 0; round < 8; round++) {
      for (let i = 0; i < 40; i++) {
        const ct = randomBytes(sizes[(round * 40 + i) % sizes.length]!);
        deposited.push(ct);
        expect(await sender.deposit(owner.address, ct, randomBytes(16))).toMatchObject({ type: "ok" });
      }
      while (inFlight.size < 40 * (round + 1) - acked.size) {
        const d = await c.next();
        if (d.type !== "deliver") throw new Error(`expected a delivery, got ${d.type}`);
        inFlight.set(toHex(d.messageId), Buffer.from(d.ciphertext));
      }
      for (const r of rows(snapshot(dir))) seen.set(toHex(r.id), r);
      // Ack most of what waits, in an order unlike the arrival order, and keep the rest a while.
      const ids = [...inFlight.keys()].sort(() => Math.random() - 0.5);
      for (const id of ids.slice(0, Math.ceil(ids.length * 0.8))) {
        const [address, messageId] = [owner.address, Buffer.from(id, "hex")];
        expect(await c.ack(address, messageId)).toMatchObject({ type: "ok" });
        inFlight.delete(id);
        acked.add(id);
      }
    }
    const kept = [...inFlight.keys()];
    expect(acked.size).toBeGreaterThan(200);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.every((id) => seen.has(id)) && [...acked].every((id) => seen.has(id))).toBe(true);

    const check = (where: string) => {
      const wanted = new Map<string, Uint8Array>();
      for (const id of acked) wanted.set(`acked key ${id}`, seen.get(id)!.key);
      for (const id of kept) wanted.set(`kept key ${id}`, seen.get(id)!.key);
      for (const [i, ct] of deposited.entries()) wanted.set(`ciphertext ${i}`, ct);
      // The middle of each acknowledged message's sealed bytes: stale copies SQLite left behind.
      for (const id of acked) wanted.set(`stale ${id}`, seen.get(id)!.sealed.subarray(24));
      const found = scan(dir, wanted);
      const names = [...found.keys()];
      expect(
        names.filter((n) => n.startsWith("acked key")),
        where,
      ).toEqual([]);
      expect(
        names.filter((n) => n.startsWith("ciphertext")),
        where,
      ).toEqual([]);
      expect(names.filter((n) => n.startsWith("kept key")).length, where).toBe(kept.length);
      return names.filter((n) => n.startsWith("stale")).length;
    };
    const staleLive = check("while the relay runs");
    // Without stale copies this test would show nothing about shredding: SQLite does leave them.
    expect(staleLive).toBeGreaterThan(0);
    // Every stale row, as each snapshot had it, against every key the directory holds now.
    const keysNow = allKeys(dir);
    for (const id of acked) expect(keysNow.some((k) => open(seen.get(id)!, k) !== null)).toBe(false);
    // After a clean stop (the WAL checkpointed into the database and emptied) the same holds for
    // the database file alone, with its free pages and the slack of its live pages.
    expect(await relay!.stop()).toBe(0);
    relay = undefined;
    check("after a clean stop");
  });

  it("a database of 0.1.0 (plain ciphertext) is sealed at the first start, its old pages zeroed", async () => {
    dir = mkdtempSync(join(tmpdir(), "parley-forget-"));
    const owner = MailboxKey.generate();
    const secrets = [randomBytes(100), randomBytes(20_000)];
    const db = new Database(join(dir, "relay.sqlite"));
    db.pragma("journal_mode = WAL");
    db.exec(`
      CREATE TABLE mailboxes (address BLOB PRIMARY KEY, owner BLOB NOT NULL,
        message_count INTEGER NOT NULL DEFAULT 0, byte_count INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
      CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL UNIQUE,
        address BLOB NOT NULL, ciphertext BLOB NOT NULL, received_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
      CREATE INDEX messages_by_mailbox ON messages (address, seq);
      CREATE INDEX messages_by_expiry ON messages (expires_at);
      CREATE TABLE seen (address BLOB NOT NULL, client_id BLOB NOT NULL, expires_at INTEGER NOT NULL,
        PRIMARY KEY (address, client_id)) WITHOUT ROWID;
      CREATE INDEX seen_by_expiry ON seen (expires_at);`);
    const now = Date.now();
    db.prepare("INSERT INTO mailboxes VALUES (?, ?, ?, ?)").run(
      owner.address,
      owner.publicKey,
      2,
      secrets[0]!.length + secrets[1]!.length,
    );
    const clientId = randomBytes(16);
    for (const [i, s] of secrets.entries()) {
      db.prepare(
        "INSERT INTO messages (id, address, ciphertext, received_at, expires_at) VALUES (?, ?, ?, ?, ?)",
      ).run(randomBytes(16), owner.address, s, now, now + 86_400_000);
      db.prepare("INSERT INTO seen VALUES (?, ?, ?)").run(
        owner.address,
        i === 0 ? clientId : randomBytes(16),
        now + 86_400_000,
      );
    }
    db.close();
    expect(scan(dir, named(secrets.map((s, i) => [`secret ${i}`, s]))).size).toBe(2);

    relay = await startRelay(["--data-dir", dir, "--sweep-interval", "1h"]);
    expect(relay.output()).toMatch(/"sealed":2.*database brought to layout 3/);
    expect(scan(dir, named(secrets.map((s, i) => [`secret ${i}`, s]))).size).toBe(0);
    const c = await TestClient.connect(relay.port);
    clients.push(c);
    // A client id remembered by 0.1.0 has no digest: a retry, whatever the ciphertext, as then.
    expect(await c.deposit(owner.address, randomBytes(50), clientId)).toMatchObject({ type: "ok" });
    await c.subscribe(owner);
    for (const s of secrets) {
      const d = await c.next();
      expect(d.type === "deliver" && Buffer.from(d.ciphertext).equals(s)).toBe(true);
    }
    await expect(c.next(300)).rejects.toThrow(/no frame/);
    // The old mailbox takes a deposit token (layout 2) like a new one.
    const token = randomBytes(32);
    expect(await c.setDepositToken(owner, token)).toMatchObject({ type: "ok" });
    expect(await c.deposit(owner.address, randomBytes(50), randomBytes(16))).toMatchObject({ code: "AUTH" });
    expect(await c.deposit(owner.address, randomBytes(50), randomBytes(16), token)).toMatchObject({
      type: "ok",
    });
  });
});
