// Deleted bytes do not linger: once the relay has answered an ack, or swept an expired message, no
// file in the data directory holds the ciphertext any more (SQLite secure_delete, then a TRUNCATE
// checkpoint of the WAL in the same step as the commit). The scans run at once, with no sweep.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MailboxKey } from "@parley/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { metric, type RelayProcess, startRelay, TestClient, until } from "./helpers.js";

/** Every file under `dir`, concatenated per file. */
function files(dir: string): { path: string; bytes: Buffer }[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile())
    .map((path) => ({ path, bytes: readFileSync(path) }));
}

/** Where any 32-byte window of `needle` (head, middle, tail) appears in the data directory. */
function traces(dir: string, needle: Uint8Array): string[] {
  const probes = [
    needle.subarray(0, 32),
    needle.subarray(needle.length / 2, needle.length / 2 + 32),
    needle.subarray(-32),
  ];
  return files(dir)
    .filter((f) => probes.some((p) => f.bytes.indexOf(p) >= 0))
    .map((f) => f.path);
}

let relay: RelayProcess | undefined;
let dir = "";
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await relay?.stop();
  rmSync(dir, { recursive: true, force: true });
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

describe("forgetting", () => {
  for (const size of [200, 40_000]) {
    it(`an acknowledged ${size}-byte ciphertext is in no file once the ack is answered`, async () => {
      const { owner, c } = await setup(["--sweep-interval", "1h"]);
      const secret = randomBytes(size);
      const others = [randomBytes(size), randomBytes(size)];
      await c.deposit(owner.address, secret, randomBytes(16));
      for (const o of others) await c.deposit(owner.address, o, randomBytes(16));
      // The test can fail: the bytes are on disk while the message waits.
      expect(traces(dir, secret).length).toBeGreaterThan(0);

      await c.subscribe(owner);
      const d = await c.next();
      if (d.type !== "deliver") throw new Error("expected a delivery");
      expect(Buffer.from(d.ciphertext).equals(secret)).toBe(true);
      expect(await c.ack(owner.address, d.messageId)).toMatchObject({ type: "ok" });
      // At once: no sweep runs (an hour apart), and nothing is waited for.
      expect(traces(dir, secret)).toEqual([]);
      // The messages still waiting are intact.
      expect(traces(dir, others[1]!).length).toBeGreaterThan(0);
    });
  }

  it("an acknowledged ciphertext leaves no trace when the relay is killed right after answering the ack", async () => {
    const { owner, c, relay } = await setup(["--sweep-interval", "1h"]);
    const secret = randomBytes(5000);
    await c.deposit(owner.address, secret, randomBytes(16));
    await c.subscribe(owner);
    const d = await c.next();
    if (d.type !== "deliver") throw new Error("expected a delivery");
    expect(await c.ack(owner.address, d.messageId)).toMatchObject({ type: "ok" });
    expect(await relay.stop("SIGKILL")).toBe("SIGKILL");
    expect(traces(dir, secret)).toEqual([]); // no sweep ran, no clean shutdown either
    const again = await startRelay(["--data-dir", dir, "--sweep-interval", "1h"]);
    try {
      expect(traces(dir, secret)).toEqual([]);
    } finally {
      await again.stop();
    }
  });

  it("an expired ciphertext leaves no trace in any file", async () => {
    const { owner, c, relay } = await setup(["--ttl", "2s"]);
    const secret = randomBytes(3000);
    await c.deposit(owner.address, secret, randomBytes(16));
    expect(traces(dir, secret).length).toBeGreaterThan(0);
    await until("the expiry", async () => (await metric(relay.port, "parley_relay_expirations_total")) === 1);
    await until("the ciphertext to be gone from every file", () => traces(dir, secret).length === 0);
    expect(traces(dir, secret)).toEqual([]);
  });
});
