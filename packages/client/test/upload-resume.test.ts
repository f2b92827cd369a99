// Uploads that stopped part-way are continued by a sync and by live mode (core/upload-resume.ts,
// PROTOCOL.md §14.4), against real relay processes: from the relay's count, with "upload" events
// for the progress, and the offer at the end, so that the recipient fetches the file byte for
// byte. Live mode continues one when it starts and when the relay it needs comes back.
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Client, type ClientEvent, type UploadProgress } from "../src/client.js";
import { resolvePaths } from "../src/paths.js";
import { DEFAULT_MAX_RETENTION_SECONDS } from "../src/settings.js";
import {
  cleanupLive,
  client,
  eventually,
  freePort,
  kill,
  onCleanup,
  pair,
  relay,
  relayEvent,
  tmp,
} from "./live-helpers.js";

afterEach(cleanupLive);

const MiB = 1024 * 1024;
const CHUNK = 65_536;

function randomFile(size: number): { path: string; bytes: Buffer } {
  const path = join(tmp(), "data.bin");
  const bytes = randomBytes(size);
  writeFileSync(path, bytes);
  return { path, bytes };
}

/** Every "upload" event of `c` from now on. */
function uploads(c: Client): UploadProgress[] {
  const seen: UploadProgress[] = [];
  c.on("upload", (u) => seen.push(u));
  return seen;
}

/** Resolves with the first "upload" event of `c` in `state`. */
function uploadState(c: Client, state: UploadProgress["state"], timeoutMs = 60_000): Promise<UploadProgress> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no upload event "${state}"`)), timeoutMs);
    const on = (u: UploadProgress) => {
      if (u.state !== state) return;
      clearTimeout(timer);
      c.off("upload", on);
      resolve(u);
    };
    c.on("upload", on);
  });
}

/** Starts `path`'s upload to Bob and stops it once `chunks` chunks are on the relay. */
async function stopAfter(alice: Client, path: string, chunks: number): Promise<void> {
  const stop = new Error("interrupted");
  await expect(
    alice.sendFile("Bob", path, (done) => {
      if (done >= chunks * CHUNK) throw stop;
    }),
  ).rejects.toBe(stop);
  expect(alice.files()).toMatchObject([{ state: "uploading" }]);
}

/** Bob syncs until the offer is there, fetches it, and it is `bytes`. */
async function fetchedEquals(bob: Client, bytes: Buffer): Promise<void> {
  const got = eventually(bob, (e: ClientEvent) => e.type === "message" && e.file !== undefined);
  await bob.sync();
  const ev = await got;
  if (ev.type !== "message" || !ev.file) throw new Error("not a file message");
  const fetched = await bob.fetchFile(ev.file.id, tmp());
  expect(readFileSync(fetched.path).equals(bytes)).toBe(true);
}

describe("uploads continued by a sync and by live mode (§14.4)", () => {
  it("§14.4 a sync continues an upload that stopped part-way, from the relay's count, with its progress, and sends its offer", {
    timeout: 90_000,
  }, async () => {
    const r = await relay();
    const [alice, bob] = await pair(`ws://127.0.0.1:${r.port}`);
    const { path, bytes } = randomFile(3 * MiB + 123);
    await stopAfter(alice, path, 10);

    const seen = uploads(alice);
    const report = await alice.sync();
    expect(report).toEqual({ unreachable: [], refused: [] });
    expect(alice.files()).toMatchObject([{ name: "data.bin", state: "sent" }]);
    // It went on from what the relay had (ten chunks at least), not from the start.
    expect(seen[0]).toMatchObject({
      state: "uploading",
      contact: "Bob",
      name: "data.bin",
      total: bytes.length,
    });
    expect(seen[0]!.done).toBeGreaterThanOrEqual(10 * CHUNK);
    expect(seen.at(-1)).toMatchObject({ state: "sent", done: bytes.length, total: bytes.length });
    expect(seen.slice(0, -1).every((u) => u.state === "uploading")).toBe(true);
    await fetchedEquals(bob, bytes);

    // Nothing is left to continue.
    const more = uploads(alice);
    await alice.sync();
    expect(more).toEqual([]);
  });

  it("§14.4 live mode, started again after the client was closed mid-upload, continues it", {
    timeout: 90_000,
  }, async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const home = tmp();
    const settings = { relay: url, maxRetentionSeconds: DEFAULT_MAX_RETENTION_SECONDS };
    const alice = Client.init(resolvePaths(home), "pw", "Alice", settings, 10);
    const bob = client("Bob", url);
    await bob.accept((await alice.invite()).code, { name: "alice" });
    await alice.sync();
    await bob.sync();
    const { path, bytes } = randomFile(2 * MiB + 9);
    await stopAfter(alice, path, 5);
    alice.close();

    const again = Client.open(resolvePaths(home), "pw", settings);
    onCleanup(async () => {
      await again.stop();
      again.close();
    });
    const sent = uploadState(again, "sent");
    await again.start();
    expect(await sent).toMatchObject({ name: "data.bin", contact: "Bob", done: bytes.length });
    expect(again.files()).toMatchObject([{ state: "sent" }]);
    await fetchedEquals(bob, bytes);
  });

  it("§14.4 live mode continues an upload whose relay was killed mid-way once the relay is back", {
    timeout: 120_000,
  }, async () => {
    const port = await freePort();
    const flags = ["--storage", "sqlite", "--data-dir", tmp(), "--port", String(port)];
    let r = await relay(flags);
    const [alice, bob] = await pair(`ws://127.0.0.1:${port}`);
    const { path, bytes } = randomFile(4 * MiB + 1);
    let killed: Promise<void> | null = null;
    await expect(
      alice.sendFile("Bob", path, (done) => {
        if (killed === null && done >= 20 * CHUNK) killed = kill(r.proc.pid!);
      }),
    ).rejects.toMatchObject({ code: "UNREACHABLE" });
    await killed;

    // Live mode starts with the relay down: the upload waits for it.
    const seen = uploads(alice);
    await alice.start();
    expect(alice.files()).toMatchObject([{ state: "uploading" }]);
    const back = relayEvent(alice, (s) => s.state === "connected");
    const sent = uploadState(alice, "sent");
    r = await relay(flags);
    await back;
    expect(await sent).toMatchObject({ name: "data.bin", done: bytes.length });
    expect(seen.filter((u) => u.state === "uploading")[0]!.done).toBeGreaterThanOrEqual(20 * CHUNK);
    expect(alice.files()).toMatchObject([{ state: "sent" }]);
    await fetchedEquals(bob, bytes);
  });
});
