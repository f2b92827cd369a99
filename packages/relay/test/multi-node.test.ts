// Several relay processes sharing one real redis-server, as an operator runs them behind a load
// balancer: a deposit on one node reaches a subscriber on another at once; a node killed with
// SIGKILL loses nothing and the others keep serving; Redis restarted (AOF) keeps every message, and
// the nodes ride out the outage with a clear error to clients and recover without a restart.
//
// Redis that comes back with its arrival counter behind (restored from an older copy, or tampered
// with) still has every new message delivered.
//
// Every relay here runs with --sweep-interval 1h and --heartbeat 1h: the relay has no polling timer
// of its own, so nothing but Redis's notification can bring a message deposited on another node.
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DeliverFrame, type Frame, MailboxKey, toHex } from "@parley/protocol";
import { Redis } from "ioredis";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { RedisStorage } from "../src/storage/redis.js";
import {
  http,
  type InProcessRelay,
  metric,
  type RelayProcess,
  startInProcessRelay,
  startRelay,
  TestClient,
  until,
} from "./helpers.js";
import { type RedisServer, startRedis, stopAllRedis } from "./redis-server.js";

const NO_TIMERS = ["--sweep-interval", "1h", "--heartbeat", "1h"];
const clients: TestClient[] = [];
const relays: RelayProcess[] = [];
const inProcess: InProcessRelay[] = [];
const servers: RedisServer[] = [];
const admins: Redis[] = [];

async function node(redis: RedisServer, extra: string[] = []): Promise<RelayProcess> {
  const r = await startRelay(["--storage", redis.url, ...NO_TIMERS, "--redis-timeout", "2s", ...extra]);
  relays.push(r);
  return r;
}
async function redisServer(options: Parameters<typeof startRedis>[0] = {}): Promise<RedisServer> {
  const s = await startRedis(options);
  servers.push(s);
  return s;
}
async function connect(port: number): Promise<TestClient> {
  const c = await TestClient.connect(port);
  clients.push(c);
  return c;
}
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const a of admins.splice(0)) a.disconnect();
  await Promise.all(relays.splice(0).map((r) => r.stop("SIGKILL")));
  await Promise.all(inProcess.splice(0).map((r) => r.stop()));
  await Promise.all(servers.splice(0).map((s) => s.dispose()));
});
afterAll(async () => {
  await stopAllRedis();
});

/** A relay in this process on `redis` (its storage opened as the CLI opens it). */
async function inProcessNode(redis: RedisServer): Promise<InProcessRelay> {
  const r = await startInProcessRelay(async (logger) => {
    const storage = new RedisStorage({ target: redis.target, timeoutMs: 2000, logger });
    await storage.open();
    return storage;
  }, NO_TIMERS);
  inProcess.push(r);
  return r;
}
async function admin(redis: RedisServer): Promise<Redis> {
  const c = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  admins.push(c);
  await c.connect();
  return c;
}
/** Resolves once `n` relays listen on the deposit channel. */
async function listening(c: Redis, n: number): Promise<void> {
  await until(`${n} relays subscribed`, async () => {
    const [, count] = (await c.pubsub("NUMSUB", "parley:v1:deposits")) as [string, number];
    return count === n;
  });
}

let counter = 0;
const cid = () => {
  const b = new Uint8Array(16);
  new DataView(b.buffer).setUint32(0, ++counter);
  return b;
};
const text = (s: string) => new TextEncoder().encode(s);
const read = (f: DeliverFrame) => new TextDecoder().decode(f.ciphertext);

/** The next `n` frames, each of which must be a delivery. */
async function deliveries(c: TestClient, n: number): Promise<DeliverFrame[]> {
  const out: DeliverFrame[] = [];
  while (out.length < n) {
    const f: Frame = await c.next();
    if (f.type !== "deliver") throw new Error(`expected a delivery, got ${f.type}`);
    out.push(f);
  }
  return out;
}

async function deposit(c: TestClient, key: MailboxKey, body: string): Promise<Frame> {
  return c.deposit(key.address, text(body), cid());
}

/** Two nodes on `redis`, a mailbox created through A, and its owner subscribed through B. */
async function mailboxAcrossNodes(redis: RedisServer) {
  const [a, b] = [await node(redis), await node(redis)];
  const owner = MailboxKey.generate();
  const onA = await connect(a.port);
  const onB = await connect(b.port);
  expect(await onA.createMailbox(owner)).toMatchObject({ type: "ok" });
  expect(await onB.subscribe(owner)).toMatchObject({ type: "ok" });
  return { a, b, owner, onA, onB };
}

describe("relay nodes sharing one Redis", () => {
  it("pushes a deposit made on node A to a subscriber on node B at once, both ways", async () => {
    const redis = await redisServer();
    const { a, b, owner, onA, onB } = await mailboxAcrossNodes(redis);
    expect(onB.queued).toBe(0);

    for (let i = 1; i <= 5; i++)
      expect(await deposit(onA, owner, `from A ${i}`)).toMatchObject({ type: "ok" });
    const got = await deliveries(onB, 5);
    expect(got.map(read)).toEqual([1, 2, 3, 4, 5].map((i) => `from A ${i}`));
    for (const d of got) expect(await onB.ack(owner.address, d.messageId)).toMatchObject({ type: "ok" });

    // The other way round, with the subscriber on A; B's acks were seen by A too.
    const second = await connect(a.port);
    expect(await second.subscribe(owner)).toMatchObject({ type: "ok" });
    expect(await deposit(onB, owner, "from B")).toMatchObject({ type: "ok" });
    const [d] = await deliveries(second, 1);
    expect(read(d!)).toBe("from B");
    // Delivered on both nodes' subscribers, since onB is still subscribed (on B, to its own deposit).
    expect(read((await deliveries(onB, 1))[0]!)).toBe("from B");
    expect(await onB.ack(owner.address, d!.messageId)).toMatchObject({ type: "ok" });
    // The ack on B deleted it for A: a second ack on A finds nothing.
    expect(await second.ack(owner.address, d!.messageId)).toMatchObject({ code: "UNKNOWN_MESSAGE" });
    expect(await metric(a.port, "parley_relay_stored_messages")).toBe(0);
    expect(a.output() + b.output()).not.toContain(owner.addressHex);
    // The transparency statement says where messages are kept and what an acknowledgement means.
    const t = JSON.parse((await http(b.port, "/transparency")).body);
    expect(t.storage).toMatch(/^Redis with an append-only file fsynced about once a second/);
    expect(t.neverStored.join(" ")).toMatch(/Redis may keep copies for a while \(see storageCopies\)/);
    expect(t.storageCopies.join(" ")).toMatch(/append-only file: keeps a deleted message until/);
    expect(t.storageCopies).toContain('snapshots: none (save "")');
    expect(t.retention.appendOnlyFileRewriteSeconds).toBe(3600);
  });

  it("refuses to start when Redis cannot be reached, naming host:port/db and never the password", async () => {
    const redis = await redisServer({ password: "pw-NEVER-SHOWN-77" });
    const url = redis.url;
    await redis.stop("SIGTERM");
    const failed = startRelay(["--storage", url, "--redis-timeout", "1s"]);
    await expect(failed).rejects.toThrow(/exited \(1\) before listening/);
    const message = String(await failed.catch((e: Error) => e.message));
    expect(message).toContain(
      `parley-relay: cannot use Redis: no connection to Redis at 127.0.0.1:${redis.port}/0`,
    );
    expect(message).not.toContain("pw-NEVER-SHOWN-77");
  });

  it("loses nothing when a node is killed: the subscriber moves to another node and gets everything", async () => {
    const redis = await redisServer();
    const [a, b] = [await node(redis), await node(redis)];
    const owner = MailboxKey.generate();
    const subscriber = await connect(a.port);
    const depositorA = await connect(a.port);
    const depositorB = await connect(b.port);
    expect(await subscriber.createMailbox(owner)).toMatchObject({ type: "ok" });
    expect(await subscriber.subscribe(owner)).toMatchObject({ type: "ok" });
    const sent: string[] = [];
    for (let i = 0; i < 10; i++) {
      for (const [name, c] of [
        ["A", depositorA],
        ["B", depositorB],
      ] as const) {
        const body = `${name} ${i}`;
        expect(await deposit(c, owner, body)).toMatchObject({ type: "ok" });
        sent.push(body);
      }
    }
    // Delivered on A, none acknowledged: all twenty are pending when A dies.
    expect((await deliveries(subscriber, 20)).map(read).sort()).toEqual([...sent].sort());
    expect(await a.stop("SIGKILL")).toBe("SIGKILL");
    await subscriber.closed;

    // The client reconnects, to B this time, and gets every pending message, oldest first.
    const moved = await connect(b.port);
    expect(await moved.subscribe(owner)).toMatchObject({ type: "ok" });
    const again = await deliveries(moved, 20);
    expect(again.map(read)).toEqual(sent);
    // B keeps serving: a connection it had before the kill deposits, and the subscriber gets it.
    expect(await deposit(depositorB, owner, "after the kill")).toMatchObject({ type: "ok" });
    expect(read((await deliveries(moved, 1))[0]!)).toBe("after the kill");
    for (const d of again) expect(await moved.ack(owner.address, d.messageId)).toMatchObject({ type: "ok" });
    expect(await metric(b.port, "parley_relay_stored_messages")).toBe(1);
    expect((await http(b.port, "/readyz")).status).toBe(200);
  });

  it("survives a Redis restart (AOF): clients get a clear error meanwhile, nodes recover by themselves", async () => {
    const password = "pw-NEVER-LOGGED-4f1c";
    let redis = await redisServer({ password });
    const { a, b, owner, onA, onB } = await mailboxAcrossNodes(redis);
    for (let i = 1; i <= 3; i++)
      expect(await deposit(onA, owner, `before ${i}`)).toMatchObject({ type: "ok" });
    expect((await deliveries(onB, 3)).map(read)).toEqual(["before 1", "before 2", "before 3"]);

    // Redis goes away (a clean shutdown: the AOF is flushed).
    expect(await redis.stop("SIGTERM")).toBe(0);
    for (const r of [a, b]) {
      await until("/readyz turns 503", async () => (await http(r.port, "/readyz")).status === 503);
      expect((await http(r.port, "/readyz")).body).toBe("storage unavailable\n");
      expect((await http(r.port, "/livez")).status).toBe(200);
    }
    const refused = await deposit(onA, owner, "during the outage");
    expect(refused).toMatchObject({ type: "error", code: "INTERNAL" });
    expect(refused.type === "error" && refused.message).toMatch(/storage is unavailable; retry later/);
    expect(await onA.subscribe(owner)).toMatchObject({ type: "error", code: "INTERNAL" });
    const statement = JSON.parse((await http(b.port, "/transparency")).body);
    expect(statement.counters.storedMessages).toBeNull();
    expect(await metric(a.port, "parley_relay_storage_up")).toBe(0);
    expect(a.proc.exitCode).toBeNull();
    expect(b.proc.exitCode).toBeNull();

    // Redis comes back on the same port and data directory; the nodes reconnect on their own.
    redis = await redis.restart();
    servers.push(redis);
    for (const r of [a, b]) {
      await until("/readyz is 200 again", async () => (await http(r.port, "/readyz")).status === 200, 20_000);
    }
    expect(await metric(a.port, "parley_relay_storage_up")).toBe(1);
    // The subscriber that stayed connected to B hears of a deposit on A again (pub/sub is back) ...
    expect(await deposit(onA, owner, "after")).toMatchObject({ type: "ok" });
    expect(read((await deliveries(onB, 1))[0]!)).toBe("after");
    // ... and everything deposited before the restart is still there, from the append-only file.
    const fresh = await connect(a.port);
    expect(await fresh.subscribe(owner)).toMatchObject({ type: "ok" });
    expect((await deliveries(fresh, 4)).map(read)).toEqual(["before 1", "before 2", "before 3", "after"]);

    const logs = a.output() + b.output();
    expect(logs).toMatch(/"msg":"redis connection lost"/);
    expect(logs).toMatch(/"msg":"redis connection restored"/);
    expect(logs).not.toContain(password);
    expect(logs).not.toContain(toHex(owner.address));
  });
});

describe("relay nodes when Redis's arrival counter goes back", () => {
  it("still delivers when the counter is set back under connected nodes (in one process)", async () => {
    const redis = await redisServer();
    const [a, b] = [await inProcessNode(redis), await inProcessNode(redis)];
    const c = await admin(redis);
    await listening(c, 2);
    const owner = MailboxKey.generate();
    const onA = await connect(a.port);
    const onB = await connect(b.port);
    expect(await onA.createMailbox(owner)).toMatchObject({ type: "ok" });
    expect(await onB.subscribe(owner)).toMatchObject({ type: "ok" });
    for (let i = 1; i <= 3; i++)
      expect(await deposit(onA, owner, `before ${i}`)).toMatchObject({ type: "ok" });
    for (const d of await deliveries(onB, 3)) {
      expect(await onB.ack(owner.address, d.messageId)).toMatchObject({ type: "ok" });
    }
    // B's cursor for the mailbox is now 3. The counter goes back under it.
    await c.set("parley:v1:seq", "0");
    expect(await deposit(onA, owner, "after")).toMatchObject({ type: "ok" });
    expect((await deliveries(onB, 1)).map(read)).toEqual(["after"]);
    expect(b.logs()).toMatch(/"msg":"redis arrival counter went back: reading every mailbox again"/);
    expect(a.logs() + b.logs()).not.toContain(owner.addressHex);
  });

  it("still delivers after Redis is restored from an older copy of its data (separate processes)", async () => {
    let redis = await redisServer();
    const { a, b, owner, onA, onB } = await mailboxAcrossNodes(redis);
    // A copy of Redis's data as it is now: the mailbox, no message, the counter at 0.
    expect(await redis.stop("SIGTERM")).toBe(0);
    const copy = mkdtempSync(join(tmpdir(), "parley-redis-copy-"));
    try {
      cpSync(redis.dir, copy, { recursive: true });
      redis = await redis.restart();
      servers.push(redis);
      for (const r of [a, b]) {
        await until("/readyz is 200", async () => (await http(r.port, "/readyz")).status === 200, 20_000);
      }
      for (let i = 1; i <= 3; i++)
        expect(await deposit(onA, owner, `before ${i}`)).toMatchObject({ type: "ok" });
      for (const d of await deliveries(onB, 3)) {
        expect(await onB.ack(owner.address, d.messageId)).toMatchObject({ type: "ok" });
      }
      // Restored from the copy: the counter is back at 0, below the cursor of B's subscriber.
      expect(await redis.stop("SIGTERM")).toBe(0);
      rmSync(redis.dir, { recursive: true, force: true });
      cpSync(copy, redis.dir, { recursive: true });
      redis = await redis.restart();
      servers.push(redis);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
    for (const r of [a, b]) {
      await until("/readyz is 200 again", async () => (await http(r.port, "/readyz")).status === 200, 20_000);
    }
    await listening(await admin(redis), 2);
    expect(await deposit(onA, owner, "after the restore")).toMatchObject({ type: "ok" });
    expect((await deliveries(onB, 1)).map(read)).toEqual(["after the restore"]);
  });
});

describe("relay logs when Redis refuses a command", () => {
  it("log the failure without the mailbox address or the ciphertext", async () => {
    const redis = await redisServer();
    const r = await inProcessNode(redis);
    const c = await admin(redis);
    const owner = MailboxKey.generate();
    const client = await connect(r.port);
    expect(await client.createMailbox(owner)).toMatchObject({ type: "ok" });
    // A key of the wrong type where the mailbox's messages go: the deposit script fails (WRONGTYPE).
    await c.set(`parley:v1:messages:${owner.addressHex}`, "not a hash");
    const marker = `CIPHERTEXT-MARKER-${owner.addressHex.slice(0, 8)}`;
    const refused = await deposit(client, owner, marker);
    expect(refused).toMatchObject({ type: "error", code: "INTERNAL" });
    expect(refused.type === "error" && refused.message).toBe("the relay could not complete this request");
    await until("the failure is logged", () => r.logs().includes('"msg":"request failed"'));
    const logs = r.logs();
    expect(logs).toMatch(/Redis parleyDeposit: .*WRONGTYPE/);
    expect(logs).not.toContain(owner.addressHex);
    expect(logs).not.toContain(marker);
    expect(logs).not.toContain(JSON.stringify([...new TextEncoder().encode(marker)]).slice(1, 30));
  });
});
