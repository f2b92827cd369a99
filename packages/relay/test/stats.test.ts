// The totals behind /metrics and /transparency (issue 18, item 6): every storage keeps them as they
// change, so that a request reads a few numbers instead of every mailbox, and they always equal
// what is stored.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { MEMORY_DEFAULT_MAX_BYTES, MemoryStorage } from "../src/storage/memory.js";
import { SqliteStorage } from "../src/storage/sqlite.js";
import { STATS_SQL } from "../src/storage/sqlite-schema.js";
import {
  ACCOUNTED_MAILBOX_BYTES,
  ACCOUNTED_MESSAGE_BYTES,
  type Storage,
  type StorageStats,
} from "../src/storage/types.js";
import { storageBackends } from "./backends.js";
import { http, metrics, startInProcessRelay } from "./helpers.js";

const { backends, tempDir, keep } = storageBackends("stats");

const roomy = { maxMessages: 1000, maxBytes: 1e9 };
const deposit = (address: Uint8Array, size: number, expiresAt: number) => ({
  address,
  clientMessageId: randomBytes(16),
  ciphertext: randomBytes(size),
  receivedAt: 1000,
  expiresAt,
  id: randomBytes(16),
});

/**
 * The stats equal the model's totals; what counts against --max-storage is the ciphertext plus the
 * fixed costs for memory and Redis, and for SQLite at least the ciphertext (its files).
 */
function expectTotals(
  name: string,
  stats: StorageStats,
  t: { mailboxes: number; messages: number; bytes: number },
  note?: string,
): void {
  const { countedBytes, blobs, blobBytes, blobReservedBytes, ...totals } = stats;
  expect(totals, note).toEqual(t);
  expect({ blobs, blobBytes, blobReservedBytes }, note).toEqual({
    blobs: 0,
    blobBytes: 0,
    blobReservedBytes: 0,
  });
  if (name === "sqlite") expect(countedBytes, note).toBeGreaterThan(t.bytes);
  else
    expect(countedBytes, note).toBe(
      t.bytes + t.messages * ACCOUNTED_MESSAGE_BYTES + t.mailboxes * ACCOUNTED_MAILBOX_BYTES,
    );
}

for (const [name, make] of Object.entries(backends)) {
  it(`${name}: the totals follow every change (create, deposit, ack, sweep, delete) and equal what is stored`, async () => {
    const s = make();
    const boxes = Array.from({ length: 12 }, () => randomBytes(32));
    const model = new Map<string, Map<string, { size: number; expiresAt: number }>>();
    const totals = () => {
      let messages = 0;
      let bytes = 0;
      for (const m of model.values()) {
        messages += m.size;
        for (const x of m.values()) bytes += x.size;
      }
      return { mailboxes: model.size, messages, bytes };
    };
    for (const a of boxes) {
      expect(await s.createMailbox(a, randomBytes(32))).toBe("created");
      model.set(a.toString("hex"), new Map());
    }
    expectTotals(name, await s.stats(), totals());
    // Seeded churn: deposits of many sizes, some expiring early; acks; sweeps; deletions.
    let seed = 7;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let step = 0; step < 300; step++) {
      const a = boxes[next(boxes.length)]!;
      const box = model.get(a.toString("hex"));
      const op = next(10);
      if (op < 6) {
        const r = deposit(a, 1 + next(500), next(4) === 0 ? 2000 : 10_000);
        const result = await s.deposit(r, roomy);
        expect(result.status).toBe(box ? "stored" : "unknown-mailbox");
        box?.set(r.id.toString("hex"), { size: r.ciphertext.length, expiresAt: r.expiresAt });
      } else if (op < 8 && box && box.size > 0) {
        const [id] = [...box.keys()].slice(next(box.size));
        expect(await s.ack(a, Buffer.from(id!, "hex"))).toBe(true);
        box.delete(id!);
      } else if (op === 8) {
        let expired = 0;
        for (const m of model.values())
          for (const [id, x] of m) {
            if (x.expiresAt > 3000) continue;
            m.delete(id);
            expired++;
          }
        expect(await s.sweep(3000)).toBe(expired);
      } else if (box && next(4) === 0) {
        expect(await s.deleteMailbox(a)).toBe(true);
        model.delete(a.toString("hex"));
      }
      expectTotals(name, await s.stats(), totals(), `step ${step}`);
    }
  });
}

describe("stats() reads no mailbox", () => {
  it("memory: it walks no map, with thousands of mailboxes", async () => {
    const s = new MemoryStorage();
    keep(s);
    for (let i = 0; i < 5000; i++) {
      const a = randomBytes(32);
      await s.createMailbox(a, randomBytes(32));
      await s.deposit(deposit(a, 10, 10_000), roomy);
    }
    // Count every walk over any Map while stats() runs.
    let walks = 0;
    const proto = Map.prototype as unknown as Record<string | symbol, (...args: unknown[]) => unknown>;
    const names = ["values", "entries", "keys", "forEach", Symbol.iterator] as const;
    const originals = names.map((n) => proto[n]!);
    names.forEach((n, i) => {
      proto[n] = function (this: unknown, ...args: unknown[]) {
        walks++;
        return originals[i]!.apply(this, args);
      };
    });
    let stats: Awaited<ReturnType<Storage["stats"]>>;
    try {
      stats = await s.stats();
    } finally {
      names.forEach((n, i) => {
        proto[n] = originals[i]!;
      });
    }
    expect(stats).toEqual({
      mailboxes: 5000,
      messages: 5000,
      bytes: 50_000,
      blobs: 0,
      blobBytes: 0,
      blobReservedBytes: 0,
      countedBytes: 50_000 + 5000 * (ACCOUNTED_MESSAGE_BYTES + ACCOUNTED_MAILBOX_BYTES),
    });
    expect(walks).toBe(0);
  });

  it("SQLite: its query reads the one row of totals, and a database without them is counted once at open", async () => {
    const dir = tempDir();
    const s = new SqliteStorage(dir);
    for (let i = 0; i < 50; i++) {
      const a = randomBytes(32);
      await s.createMailbox(a, randomBytes(32));
      await s.deposit(deposit(a, 100, 10_000), roomy);
    }
    await s.close();
    const db = new Database(join(dir, "relay.sqlite"));
    try {
      const plan = (db.prepare(`EXPLAIN QUERY PLAN ${STATS_SQL}`).all() as { detail: string }[]).map(
        (r) => r.detail,
      );
      expect(plan.join("; ")).toMatch(/totals/);
      expect(plan.join("; ")).not.toMatch(/mailboxes|messages/);
      // A database as an older relay left it: no totals, no triggers.
      db.exec(
        "DROP TRIGGER totals_insert; DROP TRIGGER totals_delete; DROP TRIGGER totals_usage; DROP TABLE totals;",
      );
    } finally {
      db.close();
    }
    const reopened = new SqliteStorage(dir);
    keep(reopened);
    expect(await reopened.stats()).toMatchObject({ mailboxes: 50, messages: 50, bytes: 5000 });
    const a = randomBytes(32);
    await reopened.createMailbox(a, randomBytes(32));
    await reopened.deposit(deposit(a, 7, 10_000), roomy);
    expect(await reopened.stats()).toMatchObject({ mailboxes: 51, messages: 51, bytes: 5007 });
  });

  it("the relay: /metrics and /transparency ask the storage for its totals and nothing else", async () => {
    const storage = new MemoryStorage();
    for (let i = 0; i < 200; i++) await storage.createMailbox(randomBytes(32), randomBytes(32));
    const calls = new Map<string, number>();
    const counted = new Proxy(storage, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== "function" || typeof prop !== "string") return value;
        return (...args: unknown[]) => {
          calls.set(prop, (calls.get(prop) ?? 0) + 1);
          return value.apply(target, args);
        };
      },
    });
    const relay = await startInProcessRelay(counted, ["--sweep-interval", "1d"]);
    try {
      calls.clear();
      for (let i = 0; i < 20; i++) {
        expect((await http(relay.port, "/metrics")).status).toBe(200);
        const t = await http(relay.port, "/transparency");
        expect(JSON.parse(t.body).counters.mailboxes).toBe(200);
      }
      expect(Object.fromEntries(calls)).toEqual({ stats: 40 });
      // How full the storage is, for an operator's alerts: the same totals, and the limits.
      const m = await metrics(relay.port);
      expect({
        mailboxes: m.get("parley_relay_mailboxes"),
        mailboxLimit: m.get("parley_relay_mailbox_limit"),
        storage: m.get("parley_relay_storage_bytes"),
        storageLimit: m.get("parley_relay_storage_limit_bytes"),
        writable: m.get("parley_relay_storage_writable"),
      }).toEqual({
        mailboxes: 200,
        mailboxLimit: storage.capacity.maxMailboxes,
        storage: 200 * ACCOUNTED_MAILBOX_BYTES,
        storageLimit: MEMORY_DEFAULT_MAX_BYTES,
        writable: 1,
      });
    } finally {
      await relay.stop();
    }
  });
});
