// The Redis backend beyond the shared contract (storage.test.ts runs that against it too): several
// storages on one real redis-server, as several relays share it; what is left in Redis after
// deletion; what else Redis keeps, and what the relay says about it; Redis errors, lost replies, a
// counter that goes back, and a Redis that goes away and comes back.
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { inspect } from "node:util";
import { toHex } from "@parley/protocol";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { createLogger } from "../src/log.js";
import { RedisStorage } from "../src/storage/redis.js";
import { depositDigest, StorageUnavailableError } from "../src/storage/types.js";
import { transparencyStatement } from "../src/transparency.js";
import { until } from "./helpers.js";
import { type RedisServer, replyLosingProxy, startRedis, stopAllRedis } from "./redis-server.js";

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

const admins: Redis[] = [];
/** A plain client of the test's own, to look at and tamper with what the storages keep. */
async function admin(server = redis): Promise<Redis> {
  const c = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  admins.push(c);
  await c.connect();
  return c;
}

/** A logger whose JSON lines the test can read. */
function capturedLogger() {
  const lines: string[] = [];
  const logger = createLogger("debug", { write: (line: string) => void lines.push(line) });
  const records = () => lines.map((l) => JSON.parse(l) as { level: number; msg: string });
  return { logger, text: () => lines.join(""), warnings: () => records().filter((r) => r.level === 40) };
}

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
  for (const c of admins.splice(0)) c.disconnect();
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await redis?.dispose();
  await stopAllRedis();
});

describe("Redis storage shared by several relays", () => {
  it("announces a deposit to the other storages at once, with its mailbox and seq, and not to itself", async () => {
    const prefix = freshPrefix();
    const a = storage(prefix);
    const b = storage(prefix);
    const heardByA: number[] = [];
    const heardByB: { address: string; seq: number }[] = [];
    let resyncsOfA = 0;
    let resyncsOfB = 0;
    a.watch({
      deposited: (_, seq) => heardByA.push(seq),
      resync: () => {
        resyncsOfA++;
      },
    });
    b.watch({
      deposited: (address, seq) => heardByB.push({ address: Buffer.from(address).toString("hex"), seq }),
      resync: () => {
        resyncsOfB++;
      },
    });
    // Both subscribed (the first resync follows the subscription) before anything is deposited.
    await until("b subscribed", () => resyncsOfB > 0);
    await until("a subscribed", () => resyncsOfA > 0);
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
    expect(await b.stats()).toMatchObject({ mailboxes: 30, messages: 30 * 5, bytes: 30 * 5 * 10 });
    expect(await b.sweep(200_000)).toBe(30 * 5);
    expect(await a.stats()).toMatchObject({ mailboxes: 30, messages: 0, bytes: 0 });
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
        [
          "digests:A",
          "due",
          "expiry:A",
          "mailbox:A",
          "messages:A",
          "queue:A",
          "seen:A",
          "seq",
          "stats",
        ].sort(),
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
      for (const secret of [
        expired.ciphertext,
        acked.clientMessageId,
        expired.clientMessageId,
        acked.id,
        depositDigest(acked.ciphertext),
        depositDigest(expired.ciphertext),
      ]) {
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
      // Every file of the data directory: appendonlydir/ (Redis 7) or appendonly.aof (6.2). Redis
      // deletes old files as it rewrites, so one listed a moment ago may be gone when read.
      const files = () =>
        readdirSync(server.dir, { recursive: true, encoding: "utf8" }).flatMap((name) => {
          try {
            return [readFileSync(join(server.dir, name))];
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            if (code === "ENOENT" || code === "EISDIR") return [];
            throw e;
          }
        });
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
      // A command timeout far longer than the test waits: a failure must come from knowing the
      // connection is down, not from a timeout running out.
      const s = storage(freshPrefix(), server, 30_000);
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
      let timer: NodeJS.Timeout | undefined;
      const failures = await Promise.race([
        Promise.allSettled([
          s.deposit(request(address), roomy),
          s.pending(address, 0, 10),
          s.ack(address, before.id),
          s.stats(),
          s.sweep(Date.now()),
        ]),
        new Promise<"still waiting">((resolve) => {
          timer = setTimeout(() => resolve("still waiting"), 3_000);
        }),
      ]);
      clearTimeout(timer);
      expect(failures).not.toBe("still waiting");
      for (const f of failures as PromiseSettledResult<unknown>[]) {
        expect(f.status).toBe("rejected");
        const reason = (f as PromiseRejectedResult).reason;
        expect(reason).toBeInstanceOf(StorageUnavailableError);
        // The message of the offline path, not of a timeout.
        expect(reason.message).toBe(`Redis at ${s.display} is not connected`);
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

describe("Redis storage: errors, lost replies, a counter that goes back", () => {
  it("throws errors that carry neither the mailbox address nor the ciphertext (ioredis attaches both)", async () => {
    const prefix = freshPrefix();
    const s = storage(prefix);
    const c = await admin();
    const address = randomBytes(32);
    const hex = toHex(address);
    await s.createMailbox(address, randomBytes(32));
    const marker = Buffer.from(`CIPHERTEXT-MARKER-${randomBytes(8).toString("hex")}`);
    const r = { ...request(address), ciphertext: marker };
    // A key of the wrong type under the prefix: the deposit script fails inside Redis (WRONGTYPE),
    // and so does a plain HGET on the mailbox.
    await c.set(`${prefix}messages:${hex}`, "not a hash");
    const failures = [
      await s.deposit(r, roomy).catch((e: unknown) => e),
      await (async () => {
        await c.del(`${prefix}mailbox:${hex}`);
        await c.set(`${prefix}mailbox:${hex}`, "not a hash");
        return s.mailboxOwner(address).catch((e: unknown) => e);
      })(),
    ];
    for (const e of failures) {
      expect(e).toBeInstanceOf(Error);
      expect(e).not.toBeInstanceOf(StorageUnavailableError); // a bug or a tampered key, not an outage
      expect((e as Error).message).toMatch(/^Redis (parleyDeposit|HGET): .*WRONGTYPE/);
      expect(e).not.toHaveProperty("command");
      expect((e as Error).cause).toBeUndefined();
      const everything = inspect(e, { depth: Number.POSITIVE_INFINITY, showHidden: true });
      expect(everything).not.toContain(hex);
      expect(everything).not.toContain(marker.toString());
      expect(everything).not.toContain(marker.toString("hex"));
    }
  });

  it("redacts the failed command from logged errors too (the logger's second line of defence)", () => {
    const { logger, text } = capturedLogger();
    const hex = randomBytes(32).toString("hex");
    const e = Object.assign(new Error("boom"), {
      command: { name: "evalsha", args: [`parley:v1:mailbox:${hex}`, Buffer.from("SECRET-BYTES")] },
    });
    logger.error({ err: e }, "request failed");
    logger.error({ err: new Error("outer", { cause: e }) }, "request failed");
    logger.error({ error: e }, "request failed");
    expect(text()).toContain("boom");
    expect(text()).not.toContain(hex);
    expect(text()).not.toContain("SECRET-BYTES");
    expect(text()).not.toContain(JSON.stringify([...Buffer.from("SECRET-BYTES")]).slice(1, -1));
  });

  it("stores a deposit once when its reply is lost and the relay retries it with the same client id", async () => {
    const proxy = await replyLosingProxy(redis.port);
    try {
      const prefix = freshPrefix();
      const s = new RedisStorage({ target: { ...redis.target, port: proxy.port }, prefix, timeoutMs: 500 });
      open.push(s);
      await s.open();
      const address = randomBytes(32);
      await s.createMailbox(address, randomBytes(32));
      // Once through, so that Redis has the script (a lost NOSCRIPT reply would mean no deposit).
      const warmUp = randomBytes(32);
      await s.createMailbox(warmUp, randomBytes(32));
      expect((await s.deposit(request(warmUp), roomy)).status).toBe("stored");

      const r = request(address, 20, Date.now(), 3_600_000);
      proxy.loseReplies = true;
      await expect(s.deposit(r, roomy)).rejects.toBeInstanceOf(StorageUnavailableError);
      proxy.loseReplies = false;
      // Redis ran it all the same: only the reply was lost.
      const c = await admin();
      expect(await c.hget(`${prefix}mailbox:${toHex(address)}`, "messages")).toBe("1");
      await until("reconnected", () => s.ready());
      // The retry: the same client message id, with a fresh relay id as every attempt gets one.
      expect((await s.deposit({ ...r, id: bytes(16) }, roomy)).status).toBe("duplicate");
      const pending = await s.pending(address, Date.now(), 10);
      expect(pending.map((m) => toHex(m.id))).toEqual([toHex(r.id)]);
      expect(await s.stats()).toMatchObject({ messages: 2, bytes: 30 });
    } finally {
      await proxy.close();
    }
  });

  it("ends a sweep, and cleans up, when a message's entry is missing (evicted, deleted by hand)", async () => {
    const prefix = freshPrefix();
    const s = storage(prefix);
    const c = await admin();
    const address = randomBytes(32);
    const hex = toHex(address);
    await s.createMailbox(address, randomBytes(32));
    const missing = request(address, 10, 1000, 100);
    const present = request(address, 10, 1000, 100);
    await s.deposit(missing, roomy);
    await s.deposit(present, roomy);
    expect(await c.hdel(`${prefix}messages:${hex}`, Buffer.from(missing.id))).toBe(1);
    expect(await s.sweep(2000)).toBe(1);
    expect(await c.zcard(`${prefix}queue:${hex}`)).toBe(0);
    expect(await c.zcard(`${prefix}expiry:${hex}`)).toBe(0);
    expect(await c.zscore(`${prefix}due`, hex)).toBeNull();
    expect(await s.sweep(2000)).toBe(0);
    expect(await s.pending(address, 0, 10)).toEqual([]);
  });

  it("keeps a mailbox's order and cursor when the arrival counter goes back", async () => {
    const prefix = freshPrefix();
    const s = storage(prefix);
    const c = await admin();
    const address = randomBytes(32);
    await s.createMailbox(address, randomBytes(32));
    const before: number[] = [];
    for (const size of [11, 12, 13]) {
      const r = await s.deposit(request(address, size), roomy);
      if (r.status === "stored") before.push(r.message.seq);
    }
    // As after a crash with appendfsync everysec, or a restore from an older snapshot.
    await c.set(`${prefix}seq`, "0");
    const after = await s.deposit(request(address, 14), roomy);
    expect(after.status === "stored" && after.message.seq).toBeGreaterThan(before[2]!);
    // Read one at a time with the cursor, as a relay with a full window does.
    const sizes: number[] = [];
    for (let cursor = 0; ; ) {
      const [m] = await s.pending(address, 0, 1, cursor);
      if (!m) break;
      sizes.push(m.ciphertext.length);
      cursor = m.seq;
    }
    expect(sizes).toEqual([11, 12, 13, 14]);
  });

  it("asks for a resync when a notification's seq is not above the last one heard", async () => {
    const prefix = freshPrefix();
    const [a, b] = [storage(prefix), storage(prefix)];
    const c = await admin();
    const heard: number[] = [];
    let resyncs = 0;
    b.watch({ deposited: (_, seq) => heard.push(seq), resync: () => resyncs++ });
    await until("b subscribed", () => resyncs > 0);
    const [m1, m2] = [randomBytes(32), randomBytes(32)];
    await a.createMailbox(m1, randomBytes(32));
    await a.createMailbox(m2, randomBytes(32));
    await a.deposit(request(m1), roomy);
    await a.deposit(request(m1), roomy);
    await until("b heard both", () => heard.length === 2);
    expect(resyncs).toBe(1);
    await c.set(`${prefix}seq`, "0");
    await a.deposit(request(m2), roomy);
    await until("b heard the third", () => heard.length === 3);
    expect(heard).toEqual([heard[0], heard[0]! + 1, 1]);
    expect(resyncs).toBe(2);
  });

  it("ignores notifications of an unexpected shape, counting them, and keeps hearing good ones", async () => {
    const prefix = freshPrefix();
    const [a, b] = [storage(prefix), storage(prefix)];
    const c = await admin();
    const heard: string[] = [];
    let resyncs = 0;
    b.watch({ deposited: (address) => heard.push(toHex(address)), resync: () => resyncs++ });
    await until("b subscribed", () => resyncs > 0);
    const hex = randomBytes(32).toString("hex");
    for (const bad of [
      "garbage",
      `zz:5:${a.node}`,
      `${hex.slice(1)}:5:${a.node}`,
      `${hex}:x:${a.node}`,
      `${hex}:5`,
    ]) {
      await c.publish(`${prefix}deposits`, bad);
    }
    const address = randomBytes(32);
    await a.createMailbox(address, randomBytes(32));
    await a.deposit(request(address), roomy);
    await until("b heard the deposit", () => heard.length > 0);
    expect(heard).toEqual([toHex(address)]);
    expect(b.ignoredNotifications).toBe(5);
  });
});

describe("Redis storage: what else Redis keeps, and what the relay says about it", () => {
  const { config } = loadConfig(["--storage", "redis://127.0.0.1"]);
  const counters = {
    connections: 0,
    mailboxes: 0,
    storedMessages: 0,
    storedBytes: 0,
    blobs: 0,
    blobBytes: 0,
    deposits: 0,
    deliveries: 0,
    acks: 0,
    expirations: 0,
  };
  async function opened(options: Parameters<typeof startRedis>[0], rewriteIntervalMs = 3_600_000) {
    const server = await startRedis(options);
    const log = capturedLogger();
    const s = new RedisStorage({ target: server.target, logger: log.logger, rewriteIntervalMs });
    open.push(s);
    await s.open();
    const statement = () =>
      transparencyStatement(config, s, counters) as {
        storageCopies: string[];
        neverStored: string[];
        retention: { appendOnlyFileRewriteSeconds: number | null };
      };
    return { server, s, log, statement };
  }

  it("warns about RDB snapshots and a slow log when Redis keeps them, and states them", async () => {
    // Debian's redis.conf has save rules; the slow log is on by default (10 ms, 128 entries).
    const { server, s, log, statement } = await opened({ save: "3600 1 300 100" });
    try {
      expect(s.persistence).toMatchObject({
        save: "3600 1 300 100",
        slowlogSlowerThan: 10_000,
        slowlogMaxLen: 128,
        configRefused: false,
      });
      const warnings = log.warnings().map((w) => w.msg);
      expect(warnings).toContainEqual(
        expect.stringMatching(/RDB snapshots: dump.rdb keeps deleted messages/),
      );
      expect(warnings).toContainEqual(expect.stringMatching(/slow log keeps mailbox addresses/));
      const copies = statement().storageCopies.join("\n");
      expect(copies).toMatch(/Redis writes RDB snapshots \(dump\.rdb, save "3600 1 300 100"\)/);
      expect(copies).toMatch(/last 128 commands that took longer than 10000 µs/);
      expect(copies).toMatch(/which the relays ask Redis to do every 3600 s/);
      expect(copies).toMatch(/freed but not overwritten/);
      expect(statement().retention.appendOnlyFileRewriteSeconds).toBe(3600);
    } finally {
      await server.dispose();
    }
  });

  it('says Redis keeps no snapshots or slow log under save "" and slowlog-log-slower-than -1', async () => {
    const { server, log, statement } = await opened({ args: ["--slowlog-log-slower-than", "-1"] });
    try {
      expect(log.warnings()).toEqual([]);
      const copies = statement().storageCopies;
      expect(copies).toContain('snapshots: none (save "")');
      expect(copies).toContainEqual(expect.stringMatching(/^slow log: keeps nothing/));
    } finally {
      await server.dispose();
    }
  });

  it("says what it cannot know when Redis refuses CONFIG", async () => {
    const { server, s, log, statement } = await opened({ args: ["--rename-command", "CONFIG", ""] });
    try {
      expect(s.persistence).toMatchObject({ appendonly: "yes", save: null, configRefused: true });
      expect(log.warnings().map((w) => w.msg)).toContainEqual(expect.stringMatching(/refuses CONFIG GET/));
      const copies = statement().storageCopies.join("\n");
      expect(copies).toMatch(/could not be read whether Redis writes RDB snapshots/);
      expect(copies).toMatch(/could not be read whether Redis keeps slow commands/);
    } finally {
      await server.dispose();
    }
  });

  it("promises no AOF rewrites when Redis refuses BGREWRITEAOF, or has no append-only file", async () => {
    const refusing = await opened({ args: ["--rename-command", "BGREWRITEAOF", ""] }, 200);
    const noAof = await opened({ args: ["--appendonly", "no"] }, 200);
    try {
      await until("the refusal is noticed", () => refusing.s.appendOnlyFileRewriteSeconds === null);
      expect(refusing.log.warnings().map((w) => w.msg)).toContainEqual(
        expect.stringMatching(/refuses BGREWRITEAOF/),
      );
      expect(refusing.log.text()).not.toContain("with args beginning with");
      expect(refusing.statement().retention.appendOnlyFileRewriteSeconds).toBeNull();
      expect(refusing.statement().storageCopies.join("\n")).toMatch(
        /append-only file: keeps a deleted message until Redis next rewrites the file of its own accord/,
      );
      expect(noAof.statement().retention.appendOnlyFileRewriteSeconds).toBeNull();
      expect(noAof.statement().storageCopies).toContain("append-only file: none (appendonly no)");
    } finally {
      await refusing.server.dispose();
      await noAof.server.dispose();
    }
  });
});
