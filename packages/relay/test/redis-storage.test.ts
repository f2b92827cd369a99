// The Redis backend beyond the shared contract (storage.test.ts runs that against it too): several
// storages on one real redis-server, as several relays share it; what is left in Redis after
// deletion; and a Redis that goes away and comes back.
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RedisStorage } from "../src/storage/redis.js";
import { StorageUnavailableError } from "../src/storage/types.js";
import { until } from "./helpers.js";
import { type RedisServer, startRedis } from "./redis-server.js";

let redis: RedisServer;
let prefixes = 0;
const open: RedisStorage[] = [];

/** A storage on the shared server; `prefix` shared by the storages of one test, as by relays. */
function storage(prefix: string, server = redis, timeoutMs = 5000): RedisStorage {
  const s = new RedisStorage({ target: server.target, prefix, timeoutMs });
  open.push(s);
  return s;
}
const freshPrefix = () => `parley:test:${++prefixes}:`;

/** Plain Uint8Arrays, views into a larger buffer, as the fields of a decoded frame are. */
function bytes(n: number): Uint8Array {
  const b = randomBytes(n + 8);
  return new Uint8Array(b.buffer, b.byteOffset + 4, n);
}
function request(address: Uint8Array, size = 10, now = 1000, ttl = 5000) {
  return {
    address,
    clientMessageId: bytes(16),
    ciphertext: bytes(size),
    receivedAt: now,
    expiresAt: now + ttl,
    id: bytes(16),
  };
}
const roomy = { maxMessages: 1000, maxBytes: 1_000_000 };

beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await redis?.dispose();
});

describe("Redis storage shared by several relays", () => {
  it("announces a deposit to the other storages at once, with its mailbox and seq, and not to itself", async () => {
    const prefix = freshPrefix();
    const a = storage(prefix);
    const b = storage(prefix);
    const heardByA: number[] = [];
    const heardByB: { address: string; seq: number }[] = [];
    let resyncsOfB = 0;
    a.watch({ deposited: (_, seq) => heardByA.push(seq), resync: () => {} });
    b.watch({
      deposited: (address, seq) => heardByB.push({ address: Buffer.from(address).toString("hex"), seq }),
      resync: () => {
        resyncsOfB++;
      },
    });
    // Subscribed (the first resync follows the subscription) before anything is deposited.
    await until("b subscribed", () => resyncsOfB > 0);
    await until("a subscribed", async () => await a.ready());
    const address = randomBytes(32);
    await a.createMailbox(address, randomBytes(32));
    const result = await a.deposit(request(address), roomy);
    expect(result.status).toBe("stored");
    const seq = result.status === "stored" ? result.message.seq : -1;
    await until("b hears of the deposit", () => heardByB.length > 0);
    expect(heardByB).toEqual([{ address: Buffer.from(address).toString("hex"), seq }]);
    // B's own deposit: A hears of it, B does not.
    const second = await b.deposit(request(address), roomy);
    await until("a hears of b's deposit", () => heardByA.length > 0);
    expect(heardByA).toEqual([second.status === "stored" ? second.message.seq : -1]);
    expect(heardByB).toHaveLength(1);
  });

  it("enforces a quota atomically across storages: concurrent deposits never exceed it", async () => {
    const prefix = freshPrefix();
    const relays = [storage(prefix), storage(prefix), storage(prefix)];
    const address = randomBytes(32);
    await relays[0]!.createMailbox(address, randomBytes(32));
    const limits = { maxMessages: 10, maxBytes: 1_000_000 };
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => relays[i % 3]!.deposit(request(address), limits)),
    );
    expect(results.filter((r) => r.status === "stored")).toHaveLength(10);
    expect(results.filter((r) => r.status === "quota")).toHaveLength(50);
    expect(await relays[1]!.stats()).toMatchObject({ messages: 10, bytes: 100 });
    // A retry through another relay is recognised as the same message.
    const r = request(address);
    const freed = (await relays[0]!.pending(address, 0, 1))[0]!;
    expect(await relays[2]!.ack(address, freed.id)).toBe(true);
    expect((await relays[0]!.deposit(r, limits)).status).toBe("stored");
    expect((await relays[1]!.deposit({ ...r, id: randomBytes(16) }, limits)).status).toBe("duplicate");
  });

  it("gives seqs that increase across storages, and a cursor that works from any of them", async () => {
    const prefix = freshPrefix();
    const [a, b] = [storage(prefix), storage(prefix)];
    const address = randomBytes(32);
    await a.createMailbox(address, randomBytes(32));
    const seqs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await (i % 2 === 0 ? a : b).deposit(request(address, 10 + i), roomy);
      if (r.status === "stored") seqs.push(r.message.seq);
    }
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(10);
    const firstFour = await b.pending(address, 0, 4);
    const rest = await a.pending(address, 0, 100, firstFour[3]!.seq);
    expect([...firstFour, ...rest].map((m) => m.ciphertext.length)).toEqual(
      Array.from({ length: 10 }, (_, i) => 10 + i),
    );
  });

  it("sweeps safely from several storages at once: each expired message is deleted once", async () => {
    const prefix = freshPrefix();
    const [a, b] = [storage(prefix), storage(prefix)];
    const mailboxes = Array.from({ length: 30 }, () => randomBytes(32));
    for (const m of mailboxes) await a.createMailbox(m, randomBytes(32));
    let expiring = 0;
    for (const [i, m] of mailboxes.entries()) {
      for (let k = 0; k < 20; k++) {
        const ttl = k % 4 === 0 ? 100_000 : 100; // one in four outlives the sweep
        if (ttl === 100) expiring++;
        await (i % 2 ? a : b).deposit(request(m, 10, 1000, ttl), roomy);
      }
    }
    const counts = await Promise.all([a.sweep(2000), b.sweep(2000), a.sweep(2000)]);
    expect(counts.reduce((x, y) => x + y, 0)).toBe(expiring);
    expect(await a.sweep(2000)).toBe(0);
    expect(await b.stats()).toEqual({ mailboxes: 30, messages: 30 * 5, bytes: 30 * 5 * 10 });
    expect(await b.sweep(200_000)).toBe(30 * 5);
    expect(await a.stats()).toEqual({ mailboxes: 30, messages: 0, bytes: 0 });
  });

  it("after ack, expiry and mailbox deletion, Redis holds no trace of the message", async () => {
    const prefix = freshPrefix();
    const s = storage(prefix);
    const address = randomBytes(32);
    const owner = randomBytes(32);
    await s.createMailbox(address, owner);
    const acked = request(address, 40, 1000, 100);
    const expired = request(address, 40, 1000, 100);
    await s.deposit(acked, roomy);
    await s.deposit(expired, roomy);
    const client = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    try {
      await client.connect();
      // DUMP uses the RDB encoding: uncompressed, so that a byte string shows as itself.
      await client.config("SET", "rdbcompression", "no");
      const everything = async () => {
        const keys = await client.keys(`${prefix}*`);
        const dumps = await Promise.all(keys.map((k) => client.dumpBuffer(k)));
        return { keys: keys.map((k) => k.slice(prefix.length).replace(/:[0-9a-f]{64}$/, ":A")), dumps };
      };
      const holds = (dumps: (Buffer | null)[], bytes: Uint8Array) =>
        dumps.some((d) => d?.includes(Buffer.from(bytes)));
      const before = await everything();
      expect(before.keys.sort()).toEqual(
        ["due", "expiry:A", "mailbox:A", "messages:A", "queue:A", "seen:A", "seq", "stats"].sort(),
      );
      expect(holds(before.dumps, acked.ciphertext)).toBe(true);
      // Acked: the ciphertext is gone at once, the client id stays until the expiry.
      expect(await s.ack(address, acked.id)).toBe(true);
      const afterAck = await everything();
      expect(holds(afterAck.dumps, acked.ciphertext)).toBe(false);
      expect(holds(afterAck.dumps, acked.clientMessageId)).toBe(true);
      // Expired and swept: the other ciphertext and both client ids are gone too.
      expect(await s.sweep(1100)).toBe(1);
      const afterSweep = await everything();
      expect(afterSweep.keys.sort()).toEqual(["mailbox:A", "seq", "stats"]);
      for (const secret of [expired.ciphertext, acked.clientMessageId, expired.clientMessageId, acked.id]) {
        expect(holds(afterSweep.dumps, secret)).toBe(false);
      }
      // Deleted: the owner key and the address go with the mailbox.
      expect(await s.deleteMailbox(address)).toBe(true);
      const afterDelete = await everything();
      expect(afterDelete.keys.sort()).toEqual(["seq", "stats"]);
      expect(holds(afterDelete.dumps, owner)).toBe(false);
      expect(holds(afterDelete.dumps, address)).toBe(false);
    } finally {
      client.disconnect();
    }
  });
});

describe("Redis storage and the append-only file", () => {
  it("asks for AOF rewrites, so an acknowledged ciphertext leaves Redis's data directory", async () => {
    const server = await startRedis();
    try {
      const s = new RedisStorage({ target: server.target, prefix: freshPrefix(), rewriteIntervalMs: 300 });
      open.push(s);
      const address = randomBytes(32);
      await s.createMailbox(address, randomBytes(32));
      const marker = Buffer.from(`CIPHERTEXT-MARKER-${randomBytes(8).toString("hex")}`);
      const r = { ...request(address, 1, Date.now(), 3_600_000), ciphertext: marker };
      expect((await s.deposit(r, roomy)).status).toBe("stored");
      const files = () => {
        const dir = join(server.dir, "appendonlydir");
        return readdirSync(dir).map((f) => readFileSync(join(dir, f)));
      };
      await until("the deposit is in the AOF", () => files().some((f) => f.includes(marker)));
      expect(await s.ack(address, r.id)).toBe(true);
      // open() starts the rewrite timer (the relay's --redis-aof-rewrite).
      await s.open();
      await until("no file of the data directory holds the ciphertext", () =>
        files().every((f) => !f.includes(marker)),
      );
    } finally {
      await server.dispose();
    }
  });
});

describe("Redis storage when Redis goes away", () => {
  it("fails at once with StorageUnavailableError while Redis is down, and reconnects by itself", async () => {
    let server = await startRedis();
    try {
      const s = storage(freshPrefix(), server, 1000);
      let resyncs = 0;
      s.watch({ deposited: () => {}, resync: () => resyncs++ });
      await s.open();
      await until("ready", () => s.ready());
      const address = randomBytes(32);
      await s.createMailbox(address, randomBytes(32));
      const before = request(address, 33, Date.now(), 3_600_000);
      expect((await s.deposit(before, roomy)).status).toBe("stored");

      expect(await server.stop("SIGTERM")).toBe(0);
      await until("not ready", async () => !(await s.ready()));
      const failures = await Promise.allSettled([
        s.deposit(request(address), roomy),
        s.pending(address, 0, 10),
        s.ack(address, before.id),
        s.stats(),
        s.sweep(Date.now()),
      ]);
      for (const f of failures) {
        expect(f.status).toBe("rejected");
        expect((f as PromiseRejectedResult).reason).toBeInstanceOf(StorageUnavailableError);
      }

      const resyncsBefore = resyncs;
      server = await server.restart();
      await until("ready again", () => s.ready(), 20_000);
      await until("resync after the reconnect", () => resyncs > resyncsBefore);
      // The deposit acknowledged before the restart came back from the append-only file.
      const [m] = await s.pending(address, Date.now(), 10);
      expect(Buffer.from(m!.ciphertext).equals(before.ciphertext)).toBe(true);
      expect((await s.deposit(request(address), roomy)).status).toBe("stored");
    } finally {
      await server.dispose();
    }
  });

  it("keeps an acknowledged deposit through SIGKILL of redis-server (appendfsync always)", async () => {
    let server = await startRedis({ appendfsync: "always" });
    try {
      const s = storage(freshPrefix(), server, 1000);
      await s.open();
      expect(s.persistence).toMatchObject({ appendonly: "yes", appendfsync: "always" });
      expect(s.durability).toMatch(/survives a crash of Redis or of its machine/);
      const address = randomBytes(32);
      await s.createMailbox(address, randomBytes(32));
      const deposits = Array.from({ length: 50 }, () => request(address, 100, Date.now(), 3_600_000));
      const results = await Promise.all(deposits.map((r) => s.deposit(r, roomy)));
      expect(results.every((r) => r.status === "stored")).toBe(true);
      expect(await server.stop("SIGKILL")).toBe("SIGKILL");
      server = await server.restart();
      await until("ready again", () => s.ready(), 20_000);
      const pending = await s.pending(address, Date.now(), 100);
      expect(pending.map((m) => Buffer.from(m.id).toString("hex")).sort()).toEqual(
        deposits.map((r) => Buffer.from(r.id).toString("hex")).sort(),
      );
    } finally {
      await server.dispose();
    }
  });

  it("refuses to open when Redis is unreachable, within the timeout", async () => {
    const server = await startRedis();
    const { target } = server;
    await server.dispose();
    const s = new RedisStorage({ target, timeoutMs: 500 });
    open.push(s);
    await expect(s.open()).rejects.toBeInstanceOf(StorageUnavailableError);
    expect(await s.ready()).toBe(false);
  });
});
