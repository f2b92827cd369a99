// Storage limits under attack (issue 18, item 4), against the real relay process while an honest
// user deposits and receives throughout:
// - a stranger floods deposits: refused with QUOTA at --max-storage, the data directory stays under
//   it (on a 64 MiB file system of its own, which never fills), and once the junk expires every
//   honest message has arrived and the relay is back where it was;
// - a stranger creates mailboxes: refused with QUOTA at --max-mailboxes, honest traffic untouched;
// - another process fills the file system under the relay: /readyz says so (503), deposits get
//   QUOTA, acks and a shutdown still work (exit 0), a restart on the full disk serves acks, and once
//   there is room again everything resumes.
// The small file system is a tmpfs, which takes root (or passwordless sudo) to mount.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statfsSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MailboxAction, MailboxKey } from "@parley/protocol";
import { Redis } from "ioredis";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { http, metric, type RelayProcess, sleep, startRelay, TestClient, until } from "./helpers.js";
import { HonestUser } from "./honest.js";
import { type RedisServer, startRedis, stopAllRedis } from "./redis-server.js";

const MiB = 1024 * 1024;

/** Bytes the files under `dir` take on their file system (allocated blocks). */
function diskUse(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
    try {
      const st = statSync(join(dir, name));
      if (st.isFile()) total += st.blocks * 512;
    } catch {
      // deleted meanwhile
    }
  }
  return total;
}

const freeSpace = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Runs a command as root: directly, or through passwordless sudo. */
function asRoot(command: string, args: string[]): void {
  const root = process.getuid?.() === 0;
  execFileSync(root ? command : "sudo", root ? args : ["-n", command, ...args], { stdio: "pipe" });
}

/** A tmpfs of `bytes` on a fresh directory, owned by this user. */
function smallFilesystem(bytes: number): { dir: string; unmount: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "parley-small-fs-"));
  const owner = `uid=${process.getuid?.() ?? 0},gid=${process.getgid?.() ?? 0}`;
  try {
    asRoot("mount", ["-t", "tmpfs", "-o", `size=${bytes},mode=0700,${owner}`, "tmpfs", dir]);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `this test mounts a ${bytes / MiB} MiB tmpfs, which takes root or passwordless sudo: ${(e as Error).message}`,
    );
  }
  return {
    dir,
    unmount: () => {
      asRoot("umount", [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Writes `path` until the file system refuses (ENOSPC); returns the bytes written. */
function fill(path: string): number {
  const fd = openSync(path, "a");
  let written = 0;
  try {
    for (const size of [MiB, 64 * 1024, 4096, 512, 1]) {
      const chunk = randomBytes(size);
      for (;;) {
        try {
          written += writeSync(fd, chunk);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

/** Samples a value every few milliseconds until stopped; keeps the largest and the smallest. */
function sampler(read: () => number | Promise<number>) {
  let max = Number.NEGATIVE_INFINITY;
  let min = Number.POSITIVE_INFINITY;
  let busy: Promise<void> = Promise.resolve();
  const take = () => {
    busy = Promise.resolve(read()).then((v) => {
      max = Math.max(max, v);
      min = Math.min(min, v);
    });
  };
  take();
  const timer = setInterval(() => void busy.then(take), 5);
  samplers.push(timer); // stopped after the test, passed or failed
  return {
    stop: async () => {
      clearInterval(timer);
      await busy;
      take();
      await busy;
      return { max, min };
    },
  };
}

interface Attack {
  /** Deposits the relay stored, and refused because its storage was full. */
  stored: number;
  full: number;
}

/**
 * A stranger with mailboxes of its own deposits 60 KiB of junk into them as fast as the relay
 * answers, until it has been refused for a full storage `refusals` times.
 */
async function floodDeposits(port: number, mailboxes = 4, refusals = 30): Promise<Attack> {
  const c = await TestClient.connect(port);
  const boxes = Array.from({ length: mailboxes }, () => MailboxKey.generate());
  for (const b of boxes) expect(await c.createMailbox(b)).toMatchObject({ type: "ok" });
  const attack = { stored: 0, full: 0 };
  for (let i = 0; attack.full < refusals; i++) {
    const reply = await c.deposit(boxes[i % mailboxes]!.address, randomBytes(60 * 1024), randomBytes(16));
    if (reply.type === "ok") attack.stored++;
    else if (reply.type === "error" && reply.code === "QUOTA" && /storage is full/.test(reply.message))
      attack.full++;
    else throw new Error(`the flood got ${JSON.stringify(reply)}`);
  }
  c.close();
  return attack;
}

/** A stranger creates mailboxes until refused; returns their keys (to delete them later). */
async function floodMailboxes(c: TestClient): Promise<{ created: MailboxKey[]; refused: string }> {
  const created: MailboxKey[] = [];
  for (;;) {
    const key = MailboxKey.generate();
    const reply = await c.createMailbox(key);
    if (reply.type === "ok") {
      created.push(key);
      continue;
    }
    if (reply.type !== "error" || reply.code !== "QUOTA") throw new Error(`got ${JSON.stringify(reply)}`);
    return { created, refused: reply.message };
  }
}

const samplers: NodeJS.Timeout[] = [];
const relays: RelayProcess[] = [];
const honest: HonestUser[] = [];
const cleanups: (() => void | Promise<void>)[] = [];
let redis: RedisServer | undefined;
afterEach(async () => {
  for (const t of samplers.splice(0)) clearInterval(t);
  for (const h of honest.splice(0)) await h.pause();
  for (const r of relays.splice(0)) await r.stop("SIGKILL");
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await redis?.dispose();
  await stopAllRedis();
});

async function relay(args: string[]): Promise<RelayProcess> {
  const r = await startRelay([...args, "--rate-limit", "10000"]);
  relays.push(r);
  return r;
}
async function honestUser(port: number): Promise<HonestUser> {
  const h = new HonestUser();
  honest.push(h);
  await h.start(port);
  return h;
}
const ready = async (port: number) => http(port, "/readyz");
const stored = async (port: number) => metric(port, "parley_relay_stored_messages");

/** The storage flood, against a relay started by `start` on a cap of `cap` bytes. */
async function depositFlood(
  start: () => Promise<RelayProcess>,
  diskBytes: () => number | Promise<number>,
  cap: number,
): Promise<{ before: number; peak: number; after: number; attack: Attack; honest: HonestUser }> {
  const r = await start();
  const h = await honestUser(r.port);
  await until("honest traffic", () => h.received.size >= 20, 20_000);
  const before = await diskBytes();
  const sample = sampler(diskBytes);
  const attack = await floodDeposits(r.port);
  // Full. The honest user's small messages may still fit where the junk no longer does, or be
  // refused (QUOTA) and retried until the junk expires (--ttl): either way they keep arriving.
  expect((await http(r.port, "/livez")).status).toBe(200);
  const arrivedBefore = h.received.size;
  await until(
    "honest messages arriving after the flood",
    () => h.received.size >= arrivedBefore + 20,
    30_000,
  );
  const { max: peak } = await sample.stop();
  expect(peak).toBeLessThanOrEqual(cap);
  await h.pause();
  await until("every honest message delivered", () => h.allArrived, 20_000);
  // Back to where it was: nothing waits, it is ready, and the storage gave the space back.
  await until("nothing stored", async () => (await stored(r.port)) === 0, 20_000);
  expect(await ready(r.port)).toEqual({ status: 200, body: "ready\n" });
  const after = await diskBytes();
  return { before, peak, after, attack, honest: h };
}

describe("storage limits under attack (real process)", () => {
  it("SQLite: a deposit flood is refused at --max-storage on a 64 MiB disk that never fills; every honest message arrives; then back to baseline", async () => {
    const fs = smallFilesystem(64 * MiB);
    cleanups.push(fs.unmount);
    const dataDir = join(fs.dir, "relay");
    const cap = 24 * MiB;
    const freeSample = sampler(() => freeSpace(fs.dir));
    const {
      before,
      peak,
      after,
      attack,
      honest: h,
    } = await depositFlood(
      () => relay(["--data-dir", dataDir, "--max-storage", "24MiB", "--ttl", "4s", "--sweep-interval", "1s"]),
      () => diskUse(dataDir),
      cap,
    );
    const { min: leastFree } = await freeSample.stop();
    expect(attack.stored).toBeGreaterThan(100); // ~6 MiB and more of junk went in before the cap
    expect(leastFree).toBeGreaterThan(16 * MiB); // the file system was never close to full
    // The database gave its free pages back (incremental vacuum): within two WAL allowances.
    expect(after).toBeLessThanOrEqual(before + 2 * (cap / 16));
    console.info(
      `SQLite flood: cap ${cap} B; disk ${before} B before, peak ${peak} B, ${after} B after; junk stored ${attack.stored}, refused ${attack.full}; honest acknowledged ${h.acknowledged.size}, arrived ${h.received.size}, refused ${h.refusals("QUOTA")}`,
    );
  });

  it("Redis: a deposit flood is refused at --max-storage; Redis's memory grows by about the cap; every honest message arrives", async () => {
    redis ??= await startRedis();
    const admin = new Redis({ port: redis.port, lazyConnect: true });
    await admin.connect();
    cleanups.push(() => void admin.disconnect());
    await admin.flushall();
    const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await admin.info("memory"))![1]);
    /** What the relays count against --max-storage, from the totals they keep in Redis. */
    const accounted = async () => {
      const [mailboxes, messages, bytes] = (
        await admin.hmget("parley:v1:stats", "mailboxes", "messages", "bytes")
      ).map(Number);
      return bytes! + 256 * (messages! + mailboxes!);
    };
    const cap = 8 * MiB;
    const base = await usedMemory();
    const memory = sampler(usedMemory);
    const {
      before,
      peak,
      after,
      attack,
      honest: h,
    } = await depositFlood(
      () =>
        relay(["--storage", redis!.url, "--max-storage", "8MiB", "--ttl", "4s", "--sweep-interval", "1s"]),
      accounted,
      cap,
    );
    const { max: peakMemory } = await memory.stop();
    expect(attack.stored).toBeGreaterThan(50);
    expect(before).toBeLessThan(10 * 1024);
    expect(after).toBe(5 * 256); // no message left: the honest user's mailbox and the stranger's four
    // What the relays count (ciphertext and a fixed cost per message) is what Redis holds, give or
    // take its own bookkeeping.
    expect(peakMemory - base).toBeLessThan(2 * cap);
    console.info(
      `Redis flood: cap ${cap} B; counted ${before} B before, peak ${peak} B, ${after} B after; used_memory ${base} B before, peak ${peakMemory} B; junk stored ${attack.stored}, refused ${attack.full}; honest acknowledged ${h.acknowledged.size}, arrived ${h.received.size}`,
    );
  });

  for (const backend of ["sqlite", "redis"] as const) {
    it(`${backend}: a mailbox flood is refused at --max-mailboxes; honest traffic goes on; deleting mailboxes makes room`, async () => {
      let args: string[];
      if (backend === "redis") {
        redis ??= await startRedis();
        const admin = new Redis({ port: redis.port });
        await admin.flushall();
        admin.disconnect();
        args = ["--storage", redis.url];
      } else {
        const dir = mkdtempSync(join(tmpdir(), "parley-disk-"));
        cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
        args = ["--data-dir", dir];
      }
      const r = await relay([...args, "--max-mailboxes", "40"]);
      const h = await honestUser(r.port);
      const c = await TestClient.connect(r.port);
      cleanups.push(() => c.close());
      const { created, refused } = await floodMailboxes(c);
      expect(created.length).toBe(39); // the honest user's is the 40th
      expect(refused).toMatch(/no new mailboxes/);
      const arrived = h.received.size;
      await until("honest messages during the flood", () => h.received.size >= arrived + 20, 20_000);
      expect(h.refusals("QUOTA")).toBe(0);
      // A mailbox deleted is a mailbox free.
      const gone = created.pop()!;
      const deleted = await c.request({
        type: "deleteMailbox",
        requestId: 0,
        address: gone.address,
        signature: gone.prove(MailboxAction.delete, c.challenge),
      });
      expect(deleted).toMatchObject({ type: "ok" });
      expect(await c.createMailbox(MailboxKey.generate())).toMatchObject({ type: "ok" });
      await h.pause();
      await until("every honest message delivered", () => h.allArrived, 20_000);
    });
  }

  it("SQLite: another process fills the disk: /readyz 503 with the reason, deposits QUOTA, acks and SIGTERM work; a restart on the full disk serves acks; with room again, all resumes", async () => {
    const fs = smallFilesystem(64 * MiB);
    cleanups.push(fs.unmount);
    const dataDir = join(fs.dir, "relay");
    const args = ["--data-dir", dataDir, "--max-storage", "48MiB", "--sweep-interval", "1s"];
    let r = await relay(args);
    const h = await honestUser(r.port);
    // Messages that wait in a mailbox nobody reads yet: acked later, on the full disk.
    const waiting = MailboxKey.generate();
    const c = await TestClient.connect(r.port);
    expect(await c.createMailbox(waiting)).toMatchObject({ type: "ok" });
    for (let i = 0; i < 30; i++) {
      expect(await c.deposit(waiting.address, randomBytes(2000), randomBytes(16))).toMatchObject({
        type: "ok",
      });
    }
    c.close();
    await until("honest traffic", () => h.received.size >= 20, 20_000);

    const fillers = [join(fs.dir, "filler-1"), join(fs.dir, "filler-2")];
    const filled = fill(fillers[0]!);
    expect(freeSpace(fs.dir)).toBeLessThan(MiB);
    await until("/readyz to say the storage is full", async () => (await ready(r.port)).status === 503);
    expect((await ready(r.port)).body).toMatch(
      /^storage full: .* new messages are refused, acks and deliveries go on/,
    );
    expect((await http(r.port, "/livez")).status).toBe(200);
    const refusedBefore = h.refusals("QUOTA");
    await until("honest deposits refused", () => h.refusals("QUOTA") > refusedBefore);

    /** Subscribes to the waiting mailbox and acks `n` of its messages. */
    const ackSome = async (port: number, n: number) => {
      const reader = await TestClient.connect(port);
      expect(await reader.subscribe(waiting)).toMatchObject({ type: "ok" });
      for (let i = 0; i < n; i++) {
        const d = await reader.next();
        if (d.type !== "deliver") throw new Error(`expected a delivery, got ${d.type}`);
        expect(await reader.ack(waiting.address, d.messageId)).toMatchObject({ type: "ok" });
      }
      reader.close();
    };
    await ackSome(r.port, 15);
    await h.pause();
    expect(await r.stop("SIGTERM")).toBe(0);
    relays.splice(relays.indexOf(r), 1);

    // Whatever the shutdown freed is taken too: the disk is as full as it gets.
    fill(fillers[1]!);
    r = await relay(args);
    expect((await ready(r.port)).status).toBe(503);
    expect((await http(r.port, "/livez")).status).toBe(200);
    await ackSome(r.port, 15); // every remaining one, acked on a full disk after a restart
    const probe = await TestClient.connect(r.port);
    expect(await probe.deposit(waiting.address, randomBytes(100), randomBytes(16))).toMatchObject({
      type: "error",
      code: "QUOTA",
      message: expect.stringMatching(/storage is full/),
    });
    probe.close();

    for (const f of fillers) unlinkSync(f);
    await until("ready again", async () => (await ready(r.port)).status === 200, 20_000);
    await h.start(r.port);
    const arrived = h.received.size;
    await until("honest messages flowing again", () => h.received.size >= arrived + 20, 20_000);
    await h.pause();
    await until("every honest message delivered", () => h.allArrived, 20_000);
    expect(diskUse(dataDir)).toBeLessThanOrEqual(48 * MiB);
    expect(await r.stop("SIGTERM")).toBe(0);
    relays.splice(relays.indexOf(r), 1);
    console.info(
      `full disk: filler took ${filled} B; honest acknowledged ${h.acknowledged.size}, arrived ${h.received.size}, refused ${h.refusals("QUOTA")} (QUOTA) ${h.refusals("INTERNAL")} (INTERNAL)`,
    );
    await sleep(0);
  });
});
