// The data directory belongs to one relay, and to nobody else on the machine: a second relay on it
// refuses to start, with a clear error, while the first goes on serving; the directory is 0700 and
// every file in it 0600, whatever the umask the relay was started with.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MailboxKey } from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { http, type RelayProcess, startRelay, TestClient } from "./helpers.js";

let root = "";
const relays: RelayProcess[] = [];
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const r of relays.splice(0)) await r.stop("SIGKILL");
  rmSync(root, { recursive: true, force: true });
});

async function start(args: string[], options: { umask?: number } = {}): Promise<RelayProcess> {
  const r = await startRelay(args, {}, options);
  relays.push(r);
  return r;
}

/** Deposits one message into a subscribed mailbox and checks that it arrives. */
async function roundTrip(port: number): Promise<void> {
  const owner = MailboxKey.generate();
  const c = await TestClient.connect(port);
  clients.push(c);
  expect(await c.createMailbox(owner)).toMatchObject({ type: "ok" });
  expect(await c.subscribe(owner)).toMatchObject({ type: "ok" });
  const secret = randomBytes(300);
  expect(await c.deposit(owner.address, secret, randomBytes(16))).toMatchObject({ type: "ok" });
  const d = await c.next();
  if (d.type !== "deliver") throw new Error(`expected a delivery, got ${d.type}`);
  expect(Buffer.from(d.ciphertext).equals(secret)).toBe(true);
  expect(await c.ack(owner.address, d.messageId)).toMatchObject({ type: "ok" });
}

describe("the data directory", () => {
  it("a second relay on a data directory in use exits 1 naming the problem; the first serves on", async () => {
    root = mkdtempSync(join(tmpdir(), "parley-datadir-"));
    const first = await start(["--data-dir", root]);
    await roundTrip(first.port);
    const second = startRelay(["--data-dir", root]).then((r) => {
      relays.push(r); // started after all (the test fails): stopped after it
      return r;
    });
    await expect(second).rejects.toThrow(/exited \(1\)[\s\S]*in use by another process/);
    await roundTrip(first.port);
    // The lock goes with the process, even one that is killed.
    expect(await first.stop("SIGKILL")).toBe("SIGKILL");
    const third = await start(["--data-dir", root]);
    await roundTrip(third.port);
  });

  it("is created 0700 with every file 0600, under a umask that would allow everyone everything", async () => {
    root = mkdtempSync(join(tmpdir(), "parley-datadir-"));
    const dir = join(root, "not", "yet", "there");
    const relay = await start(["--data-dir", dir], { umask: 0o000 });
    await roundTrip(relay.port);
    expect((statSync(dir).mode & 0o777).toString(8)).toBe("700");
    const names = readdirSync(dir);
    expect(names).toContain("relay.sqlite");
    expect(names).toContain("relay.sqlite-wal");
    const modes = Object.fromEntries(
      names.map((n) => [n, (statSync(join(dir, n)).mode & 0o777).toString(8)]),
    );
    expect(modes).toEqual(Object.fromEntries(names.map((n) => [n, "600"])));
  });

  it("removed while the relay runs: the relay stays up, refuses new messages as storage trouble, and says so in /readyz", async () => {
    root = mkdtempSync(join(tmpdir(), "parley-datadir-"));
    const relay = await start(["--data-dir", root]);
    await roundTrip(relay.port);
    const owner = MailboxKey.generate();
    const c = await TestClient.connect(relay.port);
    clients.push(c);
    expect(await c.createMailbox(owner)).toMatchObject({ type: "ok" });
    rmSync(root, { recursive: true, force: true });
    // Every deposit gets an answer, whatever it is; the process lives on.
    for (let i = 0; i < 5; i++) {
      const answer = await c.deposit(owner.address, randomBytes(300), randomBytes(16));
      expect(["ok", "error"]).toContain(answer.type);
    }
    expect(relay.proc.exitCode).toBeNull();
    expect((await http(relay.port, "/livez")).status).toBe(200);
    const ready = await http(relay.port, "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/storage/);
  });
});
