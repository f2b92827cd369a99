// The relay's behaviour, against the real process: mailboxes, ownership, deposits, push delivery,
// acks, idempotent retries, quotas, limits, retention, health and transparency.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { depositTokenHash, MailboxAction, MailboxKey, toHex } from "@parley/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { http, type RelayProcess, startRelay, TestClient } from "./helpers.js";

const id = (n: number) => new Uint8Array(16).fill(n);
const blob = (n: number, size = 64) => new Uint8Array(size).fill(n);
const clients: TestClient[] = [];
async function connect(port: number, hello = true) {
  const c = await TestClient.connect(port, { hello });
  clients.push(c);
  return c;
}
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

describe("relay (SQLite, real process)", () => {
  let relay: RelayProcess;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "parley-relay-"));
    relay = await startRelay([
      "--data-dir",
      dir,
      "--mailbox-max-messages",
      "5",
      "--max-message-size",
      "4KiB",
      "--unsafe-small-messages",
    ]);
  });
  afterAll(async () => {
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("greets with a per-connection challenge and the relay's limits", async () => {
    const a = await connect(relay.port, false);
    const b = await connect(relay.port, false);
    const wa = await a.request({ type: "hello", requestId: 0, maxVersion: 1 });
    const wb = await b.request({ type: "hello", requestId: 0, maxVersion: 3 });
    expect(wa).toMatchObject({
      type: "welcome",
      version: 1,
      maxCiphertext: 4096,
      retentionSeconds: 7 * 86400,
    });
    if (wa.type !== "welcome" || wb.type !== "welcome") throw new Error("no welcome");
    expect(toHex(wa.challenge)).not.toBe(toHex(wb.challenge));
  });

  it("refuses frames before hello", async () => {
    const c = await connect(relay.port, false);
    const key = MailboxKey.generate();
    expect(await c.createMailbox(key)).toMatchObject({ type: "error", code: "NO_HELLO" });
  });

  it("stores a deposit for an offline owner and delivers it on subscribe; ack deletes it", async () => {
    const owner = MailboxKey.generate();
    const o = await connect(relay.port);
    expect(await o.createMailbox(owner)).toMatchObject({ type: "ok" });
    o.close();

    const sender = await connect(relay.port);
    expect(await sender.deposit(owner.address, blob(1), id(1))).toMatchObject({ type: "ok" });
    expect(await sender.deposit(owner.address, blob(2), id(2))).toMatchObject({ type: "ok" });

    const o2 = await connect(relay.port);
    expect(await o2.subscribe(owner)).toMatchObject({ type: "ok" });
    const d1 = await o2.next();
    const d2 = await o2.next();
    if (d1.type !== "deliver" || d2.type !== "deliver") throw new Error("expected deliveries");
    expect([d1.ciphertext[0], d2.ciphertext[0]]).toEqual([1, 2]);
    expect(d1.receivedAt).toBeLessThanOrEqual(Date.now());
    expect(await o2.ack(owner.address, d1.messageId)).toMatchObject({ type: "ok" });
    expect(await o2.ack(owner.address, d1.messageId)).toMatchObject({
      type: "error",
      code: "UNKNOWN_MESSAGE",
    });
    o2.close();

    // Only the unacknowledged message comes back on the next subscription.
    const o3 = await connect(relay.port);
    await o3.subscribe(owner);
    const again = await o3.next();
    expect(again.type === "deliver" && again.ciphertext[0]).toBe(2);
    if (again.type === "deliver") await o3.ack(owner.address, again.messageId);
  });

  it("pushes to a subscribed owner at once, without polling", async () => {
    const owner = MailboxKey.generate();
    const o = await connect(relay.port);
    await o.createMailbox(owner);
    await o.subscribe(owner);
    const sender = await connect(relay.port);
    await sender.deposit(owner.address, blob(7), id(7));
    const d = await o.next();
    expect(d).toMatchObject({ type: "deliver", requestId: 0 });
    if (d.type === "deliver") expect(toHex(d.address)).toBe(owner.addressHex);
  });

  it("delivers unacknowledged messages again after unsubscribe and subscribe on the same connection", async () => {
    const owner = MailboxKey.generate();
    const c = await connect(relay.port);
    await c.createMailbox(owner);
    await c.subscribe(owner);
    await c.deposit(owner.address, blob(3), id(3));
    const first = await c.next();
    expect(first.type).toBe("deliver");
    expect(await c.request({ type: "unsubscribe", requestId: 0, address: owner.address })).toMatchObject({
      type: "ok",
    });
    await c.subscribe(owner);
    const again = await c.next();
    if (first.type !== "deliver" || again.type !== "deliver") throw new Error("expected deliveries");
    expect(toHex(again.messageId)).toBe(toHex(first.messageId));
    await c.ack(owner.address, again.messageId);
  });

  it("stores a retried deposit (same client message id) once", async () => {
    const owner = MailboxKey.generate();
    const c = await connect(relay.port);
    await c.createMailbox(owner);
    for (let i = 0; i < 3; i++)
      expect(await c.deposit(owner.address, blob(9), id(42))).toMatchObject({ type: "ok" });
    await c.subscribe(owner);
    const d = await c.next();
    expect(d.type).toBe("deliver");
    if (d.type === "deliver") await c.ack(owner.address, d.messageId);
    // Even after the ack, the retry is recognised until the message would have expired.
    expect(await c.deposit(owner.address, blob(9), id(42))).toMatchObject({ type: "ok" });
    await expect(c.next(500)).rejects.toThrow(/no frame/);
  });

  it("refuses a client message id reused for another ciphertext in a mailbox (§8.1), not in another one", async () => {
    const [owner, other] = [MailboxKey.generate(), MailboxKey.generate()];
    const c = await connect(relay.port);
    await c.createMailbox(owner);
    await c.createMailbox(other);
    expect(await c.deposit(owner.address, blob(10), id(43))).toMatchObject({ type: "ok" });
    expect(await c.deposit(owner.address, blob(11), id(43))).toMatchObject({
      type: "error",
      code: "BAD_FRAME",
      message: expect.stringMatching(/client message id was already used in this mailbox/),
    });
    expect(await c.deposit(owner.address, blob(10), id(43))).toMatchObject({ type: "ok" });
    expect(await c.deposit(other.address, blob(11), id(43))).toMatchObject({ type: "ok" });
    await c.subscribe(owner);
    const d = await c.next();
    if (d.type !== "deliver") throw new Error("expected a delivery");
    expect(d.ciphertext[0]).toBe(10);
    await c.ack(owner.address, d.messageId);
    await expect(c.next(500)).rejects.toThrow(/no frame/);
    // After the ack too, until the message would have expired.
    expect(await c.deposit(owner.address, blob(11), id(43))).toMatchObject({
      type: "error",
      code: "BAD_FRAME",
    });
  });

  it("lets only the owner subscribe, ack and delete", async () => {
    const owner = MailboxKey.generate();
    const mallory = MailboxKey.generate();
    const c = await connect(relay.port);
    await c.createMailbox(owner);
    const forged = { type: "subscribe" as const, requestId: 0, address: owner.address };
    expect(
      await c.request({ ...forged, signature: mallory.prove(MailboxAction.subscribe, c.challenge) }),
    ).toMatchObject({
      type: "error",
      code: "AUTH",
    });
    // A proof made for another connection's challenge does not transfer.
    const other = await connect(relay.port);
    expect(
      await c.request({ ...forged, signature: owner.prove(MailboxAction.subscribe, other.challenge) }),
    ).toMatchObject({
      code: "AUTH",
    });
    // Nor does a proof for another action.
    expect(
      await c.request({ ...forged, signature: owner.prove(MailboxAction.delete, c.challenge) }),
    ).toMatchObject({
      code: "AUTH",
    });
    expect(await c.ack(owner.address, id(1))).toMatchObject({ code: "AUTH" });
    const del = { type: "deleteMailbox" as const, requestId: 0, address: owner.address };
    expect(
      await c.request({ ...del, signature: mallory.prove(MailboxAction.delete, c.challenge) }),
    ).toMatchObject({
      code: "AUTH",
    });
    expect(
      await c.request({ ...del, signature: owner.prove(MailboxAction.delete, c.challenge) }),
    ).toMatchObject({
      type: "ok",
    });
    expect(await c.deposit(owner.address, blob(1), id(1))).toMatchObject({ code: "UNKNOWN_MAILBOX" });
  });

  it("§8.1 step 8: a mailbox with a deposit token takes deposits with that token only", async () => {
    const owner = MailboxKey.generate();
    const o = await connect(relay.port);
    await o.createMailbox(owner);
    const token = new Uint8Array(32).fill(0x5a);
    const other = new Uint8Array(32).fill(0x5b);
    // Before a token is set, both kinds of deposit enter.
    expect(await o.deposit(owner.address, blob(1), id(201))).toMatchObject({ type: "ok" });
    expect(await o.deposit(owner.address, blob(2), id(202), other)).toMatchObject({ type: "ok" });
    expect(await o.setDepositToken(owner, token)).toMatchObject({ type: "ok" });

    const stranger = await connect(relay.port);
    expect(await stranger.deposit(owner.address, blob(3), id(203))).toMatchObject({
      type: "error",
      code: "AUTH",
      message: "this mailbox takes deposits only with its deposit token",
    });
    expect(await stranger.deposit(owner.address, blob(3), id(203), other)).toMatchObject({
      type: "error",
      code: "AUTH",
      message: "this is not the mailbox's deposit token",
    });
    // A refused deposit is not remembered: the same client id with the token is a new deposit.
    expect(await stranger.deposit(owner.address, blob(3), id(203), token)).toMatchObject({ type: "ok" });
    expect(await stranger.deposit(owner.address, blob(3), id(203), token)).toMatchObject({ type: "ok" });

    await o.subscribe(owner);
    const got: number[] = [];
    for (let i = 0; i < 3; i++) {
      const d = await o.next();
      if (d.type !== "deliver") throw new Error("expected a delivery");
      got.push(d.ciphertext[0]!);
      await o.ack(owner.address, d.messageId);
    }
    expect(got).toEqual([1, 2, 3]);

    // The owner can replace the token; the old one no longer opens the mailbox.
    expect(await o.setDepositToken(owner, other)).toMatchObject({ type: "ok" });
    expect(await stranger.deposit(owner.address, blob(4), id(204), token)).toMatchObject({ code: "AUTH" });
    expect(await stranger.deposit(owner.address, blob(4), id(204), other)).toMatchObject({ type: "ok" });
  });

  it("§8.3: only the owner sets a deposit token, with a proof over exactly that token's hash", async () => {
    const owner = MailboxKey.generate();
    const mallory = MailboxKey.generate();
    const c = await connect(relay.port);
    await c.createMailbox(owner);
    const token = new Uint8Array(32).fill(7);
    const tokenHash = depositTokenHash(token);
    const frame = { type: "setDepositToken" as const, requestId: 0, address: owner.address, tokenHash };
    const refused = { type: "error", code: "AUTH" };
    // Mallory's key, a proof for another hash, another action, another connection: all refused.
    expect(
      await c.request({
        ...frame,
        signature: mallory.prove(MailboxAction.setDepositToken, c.challenge, tokenHash),
      }),
    ).toMatchObject(refused);
    expect(
      await c.request({
        ...frame,
        signature: owner.prove(
          MailboxAction.setDepositToken,
          c.challenge,
          depositTokenHash(new Uint8Array(32)),
        ),
      }),
    ).toMatchObject(refused);
    expect(
      await c.request({ ...frame, signature: owner.prove(MailboxAction.subscribe, c.challenge) }),
    ).toMatchObject(refused);
    const other = await connect(relay.port);
    expect(
      await c.request({
        ...frame,
        signature: owner.prove(MailboxAction.setDepositToken, other.challenge, tokenHash),
      }),
    ).toMatchObject(refused);
    // None of them set a token: a plain deposit still enters.
    expect(await c.deposit(owner.address, blob(1), id(210))).toMatchObject({ type: "ok" });
    expect(await c.setDepositToken(MailboxKey.generate(), token)).toMatchObject({ code: "UNKNOWN_MAILBOX" });
    expect(await c.setDepositToken(owner, token)).toMatchObject({ type: "ok" });
    expect(await c.deposit(owner.address, blob(1), id(211))).toMatchObject({ code: "AUTH" });
  });

  it("keeps a deposit token across a restart, as only its hash", async () => {
    const own = mkdtempSync(join(tmpdir(), "parley-relay-token-"));
    const owner = MailboxKey.generate();
    const token = new Uint8Array(32).fill(0x3c);
    let r = await startRelay(["--data-dir", own]);
    try {
      const c = await connect(r.port);
      await c.createMailbox(owner);
      expect(await c.setDepositToken(owner, token)).toMatchObject({ type: "ok" });
      expect(await r.stop()).toBe(0);
      const files = readdirSync(own).filter((f) => f.startsWith("relay.sqlite"));
      const bytes = Buffer.concat(files.map((f) => readFileSync(join(own, f))));
      expect(bytes.includes(Buffer.from(token))).toBe(false);
      expect(bytes.includes(Buffer.from(depositTokenHash(token)))).toBe(true);
      r = await startRelay(["--data-dir", own]);
      const after = await connect(r.port);
      expect(await after.deposit(owner.address, blob(1), id(220))).toMatchObject({ code: "AUTH" });
      expect(await after.deposit(owner.address, blob(1), id(220), token)).toMatchObject({ type: "ok" });
    } finally {
      await r.stop();
      rmSync(own, { recursive: true, force: true });
    }
  });

  it("refuses a mailbox creation whose proof does not match the key", async () => {
    const c = await connect(relay.port);
    const key = MailboxKey.generate();
    const other = MailboxKey.generate();
    expect(
      await c.request({
        type: "createMailbox",
        requestId: 0,
        ownerKey: key.publicKey,
        signature: other.prove(MailboxAction.create, c.challenge),
      }),
    ).toMatchObject({ code: "AUTH" });
    expect(await c.createMailbox(key)).toMatchObject({ type: "ok" });
    expect(await c.createMailbox(key)).toMatchObject({ type: "ok" }); // idempotent for its owner
  });

  it("enforces the per-mailbox quota", async () => {
    const owner = MailboxKey.generate();
    const c = await connect(relay.port);
    await c.createMailbox(owner);
    for (let i = 0; i < 5; i++)
      expect(await c.deposit(owner.address, blob(i), id(100 + i))).toMatchObject({ type: "ok" });
    expect(await c.deposit(owner.address, blob(5), id(105))).toMatchObject({ type: "error", code: "QUOTA" });
    await c.subscribe(owner);
    const d = await c.next();
    if (d.type === "deliver") await c.ack(owner.address, d.messageId);
    expect(await c.deposit(owner.address, blob(5), id(105))).toMatchObject({ type: "ok" });
  });

  it("answers a ciphertext over the limit with TOO_LARGE, and malformed frames with BAD_FRAME", async () => {
    const owner = MailboxKey.generate();
    const c = await connect(relay.port);
    await c.createMailbox(owner);
    expect(await c.deposit(owner.address, blob(1, 4097), id(1))).toMatchObject({ code: "TOO_LARGE" });
    expect(await c.deposit(owner.address, blob(1, 4096), id(1))).toMatchObject({ type: "ok" });
    c.sendRaw(Uint8Array.of(1, 0x7f, 0, 0, 0, 9));
    expect(await c.next()).toMatchObject({ type: "error", code: "BAD_FRAME", requestId: 9 });
    c.sendRaw("text is not a frame");
    expect(await c.next()).toMatchObject({ type: "error", code: "BAD_FRAME" });
    c.sendRaw(Uint8Array.of(2, 1, 0, 0, 0, 3));
    expect(await c.next()).toMatchObject({ type: "error", code: "UNSUPPORTED_VERSION" });
  });

  it("closes a connection after repeated violations, and keeps serving others", async () => {
    const c = await connect(relay.port);
    for (let i = 0; i < 10; i++) c.sendRaw(Uint8Array.of(1, 0x7f, 0, 0, 0, i));
    expect((await c.closed).code).toBe(1008);
    expect((await http(relay.port, "/livez")).status).toBe(200);
  });

  it("serves /livez, /readyz, /metrics and a transparency statement", async () => {
    // One deposit of its own, so that the counters below count something whichever tests ran.
    const owner = MailboxKey.generate();
    const c = await connect(relay.port);
    await c.createMailbox(owner);
    expect(await c.deposit(owner.address, blob(9), id(90))).toMatchObject({ type: "ok" });
    expect(await http(relay.port, "/livez")).toEqual({ status: 200, body: "ok\n" });
    expect(await http(relay.port, "/readyz")).toEqual({ status: 200, body: "ready\n" });
    const metrics = await http(relay.port, "/metrics");
    expect(metrics.body).toMatch(/^parley_relay_deposits_total \d+$/m);
    expect(metrics.body).toMatch(/^parley_relay_stored_messages \d+$/m);
    expect(metrics.body).toMatch(/parley_relay_deposit_seconds_bucket/);
    const t = JSON.parse((await http(relay.port, "/transparency")).body);
    expect(t.retention).toMatchObject({ seconds: 604800, human: "7d" });
    expect(t.limits).toMatchObject({ maxMessageBytes: 4096, mailboxMaxMessages: 5 });
    expect(t.storedPerMessage.map((f: { field: string }) => f.field)).toContain("ciphertext");
    expect(t.neverStored.join(" ")).toMatch(/IP addresses/);
    expect(t.counters.deposits).toBeGreaterThan(0);
    expect((await http(relay.port, "/nope")).status).toBe(404);
  });

  it("never logs mailbox addresses, ciphertext or deposit tokens", async () => {
    const owner = MailboxKey.generate();
    const c = await connect(relay.port);
    await c.createMailbox(owner);
    await c.deposit(owner.address, new TextEncoder().encode("SECRET-CIPHERTEXT-MARKER"), id(77));
    const token = new Uint8Array(32).fill(0x6d);
    await c.setDepositToken(owner, token);
    await c.deposit(owner.address, blob(1), id(78), new Uint8Array(32).fill(0x6e));
    await c.deposit(owner.address, blob(1), id(79), token);
    const out = relay.output();
    expect(out).not.toContain(owner.addressHex);
    expect(out).not.toContain("SECRET-CIPHERTEXT-MARKER");
    for (const secret of [token, depositTokenHash(token), new Uint8Array(32).fill(0x6e)])
      expect(out).not.toContain(toHex(secret));
    expect(out).not.toMatch(/remoteAddress|"ip"/);
  });
});

describe("relay retention (memory storage)", () => {
  it("never delivers an expired message, and the sweeper deletes it", async () => {
    const relay = await startRelay(["--storage", "memory", "--ttl", "1s", "--sweep-interval", "1h"]);
    try {
      const owner = MailboxKey.generate();
      const c = await connect(relay.port);
      await c.createMailbox(owner);
      await c.deposit(owner.address, blob(1), id(1));
      await new Promise((r) => setTimeout(r, 1200));
      // The sweeper has not run (1h), yet nothing expired is delivered.
      await c.subscribe(owner);
      await expect(c.next(500)).rejects.toThrow(/no frame/);
      const metrics = await http(relay.port, "/metrics");
      expect(metrics.body).toMatch(/^parley_relay_stored_messages 1$/m);
    } finally {
      await relay.stop();
    }
  });

  it("frees a delivery window held by expired messages, and delivers what waited behind it", async () => {
    const relay = await startRelay(
      ["--storage", "memory", "--ttl", "3s", "--sweep-interval", "1s"].concat([
        "--max-message-size",
        "1KiB",
        "--unsafe-small-messages",
        "--max-outstanding-bytes",
        "2KiB",
      ]),
    );
    try {
      const owner = MailboxKey.generate();
      const c = await connect(relay.port);
      await c.createMailbox(owner);
      await c.subscribe(owner);
      // Two unacknowledged 1000-byte deliveries fill the 1 KiB window (half the outstanding cap).
      await c.deposit(owner.address, blob(1, 1000), id(1));
      await c.deposit(owner.address, blob(2, 1000), id(2));
      expect((await c.next()).type).toBe("deliver");
      expect((await c.next()).type).toBe("deliver");
      await new Promise((r) => setTimeout(r, 1500));
      await c.deposit(owner.address, blob(3, 1000), id(3));
      await expect(c.next(300)).rejects.toThrow(/no frame/);
      // Once the first two expire and are swept, the third is pushed without any ack.
      const third = await c.next(6000);
      expect(third.type === "deliver" && third.ciphertext[0]).toBe(3);
    } finally {
      await relay.stop();
    }
  });

  it("resumes every mailbox blocked behind a shared window, and a second subscriber too", async () => {
    const relay = await startRelay(
      ["--storage", "memory"].concat([
        "--max-message-size",
        "1KiB",
        "--unsafe-small-messages",
        "--max-outstanding-bytes",
        "2KiB",
      ]),
    );
    try {
      const x = MailboxKey.generate();
      const y = MailboxKey.generate();
      const c = await connect(relay.port);
      const other = await connect(relay.port);
      for (const k of [x, y]) {
        await c.createMailbox(k);
        await c.subscribe(k);
      }
      await other.subscribe(y);
      // Two deliveries of Y fill the window; X's message waits behind it.
      await c.deposit(y.address, blob(1, 1000), id(1));
      await c.deposit(y.address, blob(2, 1000), id(2));
      await c.deposit(x.address, blob(3, 1000), id(3));
      const ys = [await c.next(), await c.next()];
      await expect(c.next(300)).rejects.toThrow(/no frame/);
      const theirs = [await other.next(), await other.next()];
      // The other subscriber of Y acks both: X's message reaches the first connection.
      for (const d of theirs)
        if (d.type === "deliver")
          expect(await other.ack(y.address, d.messageId)).toMatchObject({ type: "ok" });
      const xs = await c.next();
      expect(xs.type === "deliver" && toHex(xs.address)).toBe(x.addressHex);
      expect(ys.every((d) => d.type === "deliver")).toBe(true);
    } finally {
      await relay.stop();
    }
  });

  it("lets an owner acknowledge a backlog faster than the rate limit", async () => {
    const relay = await startRelay(["--storage", "memory", "--rate-limit", "20"]);
    try {
      const owner = MailboxKey.generate();
      const depositors = await Promise.all([0, 1, 2].map(() => connect(relay.port)));
      await depositors[0]!.createMailbox(owner);
      let n = 0;
      for (const d of depositors) {
        for (let i = 0; i < 30; i++)
          expect(await d.deposit(owner.address, blob(n), id(n++))).toMatchObject({ type: "ok" });
      }
      const o = await connect(relay.port);
      await o.subscribe(owner);
      for (let i = 0; i < 90; i++) {
        const d = await o.next();
        if (d.type !== "deliver") throw new Error(`expected a delivery, got ${d.type}`);
        expect(await o.ack(owner.address, d.messageId)).toMatchObject({ type: "ok" });
      }
      const metrics = await http(relay.port, "/metrics");
      expect(metrics.body).toMatch(/^parley_relay_stored_messages 0$/m);
    } finally {
      await relay.stop();
    }
  });

  it("sweeps at start-up and every interval", async () => {
    const relay = await startRelay(["--storage", "memory", "--ttl", "1s", "--sweep-interval", "1s"]);
    try {
      const owner = MailboxKey.generate();
      const c = await connect(relay.port);
      await c.createMailbox(owner);
      await c.deposit(owner.address, blob(1), id(1));
      let stored = "";
      for (let i = 0; i < 40 && !/^parley_relay_expirations_total 1$/m.test(stored); i++) {
        await new Promise((r) => setTimeout(r, 100));
        stored = (await http(relay.port, "/metrics")).body;
      }
      expect(stored).toMatch(/^parley_relay_expirations_total 1$/m);
      expect(stored).toMatch(/^parley_relay_stored_messages 0$/m);
    } finally {
      await relay.stop();
    }
  });
});

describe("relay operation", () => {
  it("rejects a bad configuration with one line per problem, and exits 2", async () => {
    await expect(startRelay(["--ttl", "forever", "--port", "99999", "--storage", "tape"])).rejects.toThrow(
      /exited \(2\)[\s\S]*--ttl: "forever"[\s\S]*--port[\s\S]*--storage: "tape"/,
    );
  });

  it("refuses a readable TLS file that is not PEM, and a data directory under /proc, with one clear line each", async () => {
    const dir = mkdtempSync(join(tmpdir(), "parley-relay-notpem-"));
    try {
      const notPem = join(dir, "cert.txt");
      writeFileSync(notPem, "not a certificate\n");
      const tls = await startRelay(["--storage", "memory", "--tls-cert", notPem, "--tls-key", notPem]).catch(
        (e: Error) => e.message,
      );
      expect(tls).toMatch(/exited \(2\)/);
      expect(tls).toContain(`--tls-cert: ${notPem} is not a PEM certificate (`);
      expect(tls).toContain(`--tls-key: ${notPem} is not a PEM private key (`);
      expect(tls).not.toMatch(/\n\s+at /); // no stack trace
      // Node's recursive mkdir never returns under /proc: the relay must not even try it.
      const proc = await startRelay(["--data-dir", "/proc/parley-relay-test/data"]).catch(
        (e: Error) => e.message,
      );
      expect(proc).toMatch(/exited \(1\)/);
      expect(proc).toContain("/proc/parley-relay-test/data is on the proc virtual file system, not a disk");
      expect(proc).not.toMatch(/\n\s+at /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("drains on SIGTERM: exits 0 after committing, and a restart delivers what was acknowledged", async () => {
    const dir = mkdtempSync(join(tmpdir(), "parley-relay-drain-"));
    try {
      const relay = await startRelay(["--data-dir", dir]);
      const owner = MailboxKey.generate();
      const c = await connect(relay.port);
      await c.createMailbox(owner);
      for (let i = 0; i < 20; i++) await c.deposit(owner.address, blob(i), id(i));
      expect(await relay.stop("SIGTERM")).toBe(0);
      expect(relay.output()).toMatch(/"msg":"stopped"/);

      const again = await startRelay(["--data-dir", dir]);
      const o = await connect(again.port);
      await o.subscribe(owner);
      const seen = new Set<number>();
      for (let i = 0; i < 20; i++) {
        const d = await o.next();
        if (d.type === "deliver") seen.add(d.ciphertext[0]!);
      }
      expect(seen.size).toBe(20);
      expect(await again.stop("SIGINT")).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("serves wss:// and https:// with --tls-cert and --tls-key", async () => {
    const { writeFileSync } = await import("node:fs");
    const { generate } = await import("selfsigned");
    const { request } = await import("node:https");
    const WebSocket = (await import("ws")).default;
    const tls = mkdtempSync(join(tmpdir(), "parley-tls-"));
    try {
      const [cert, key] = [join(tls, "cert.pem"), join(tls, "key.pem")];
      const pems = await generate([{ name: "commonName", value: "localhost" }], { keySize: 2048 });
      writeFileSync(cert, pems.cert);
      writeFileSync(key, pems.private);
      const relay = await startRelay(["--storage", "memory", "--tls-cert", cert, "--tls-key", key]);
      try {
        const status = await new Promise<number>((resolve, reject) => {
          request(
            { host: "127.0.0.1", port: relay.port, path: "/livez", rejectUnauthorized: false },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          )
            .on("error", reject)
            .end();
        });
        expect(status).toBe(200);
        const ws = new WebSocket(`wss://127.0.0.1:${relay.port}/`, { rejectUnauthorized: false });
        await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
        ws.close();
      } finally {
        await relay.stop();
      }
    } finally {
      rmSync(tls, { recursive: true, force: true });
    }
  });

  it("prints --help and exits 0", async () => {
    const { spawnSync } = await import("node:child_process");
    const { fileURLToPath } = await import("node:url");
    const tsx = fileURLToPath(new URL("../../../node_modules/.bin/tsx", import.meta.url));
    const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
    const run = spawnSync(tsx, ["--conditions=source", cli, "--help"], { encoding: "utf8" });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/--ttl[\s\S]*PARLEY_RELAY_TTL/);
  });
});
