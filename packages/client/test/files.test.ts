// Files between two clients through a real relay process (PROTOCOL.md §14): sent a chunk at a
// time, offered as a file message, fetched into a temporary file and checked before it gets its
// name; uploads and downloads interrupted part-way resume where they stopped, also after the
// client is closed and opened again; a chunk altered on its way, or a file the relay no longer
// has, leaves nothing behind and says why.
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { Client, type ClientEvent } from "../src/client.js";
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
  tmp,
} from "./live-helpers.js";
import { tamperingProxy } from "./tamper-proxy.js";

afterEach(cleanupLive);

const MiB = 1024 * 1024;

/** A file of `size` random bytes in a fresh directory. */
function randomFile(size: number, name = "data.bin"): { path: string; bytes: Buffer } {
  const path = join(tmp(), name);
  const bytes = randomBytes(size);
  writeFileSync(path, bytes);
  return { path, bytes };
}

const isFile = (e: ClientEvent) => e.type === "message" && e.file !== undefined;

/** Bob receives the file message Alice's send produced; returns its file id. */
/** A SQLite relay's data directory and flags on a fixed port, so that it can be started again as itself. */
async function sqliteRelay(): Promise<{ data: string; flags: string[]; url: string }> {
  const port = await freePort();
  const data = tmp();
  return {
    data,
    flags: ["--storage", "sqlite", "--data-dir", data, "--port", String(port)],
    url: `ws://127.0.0.1:${port}`,
  };
}

async function offered(bob: Client): Promise<string> {
  const got = eventually(bob, isFile);
  await bob.sync();
  const ev = await got;
  if (ev.type !== "message" || !ev.file) throw new Error("not a file message");
  return ev.file.id;
}

describe("§14 files between two clients through a real relay", () => {
  it("§14.3 sends a 3 MiB file that arrives byte for byte, offered as a file message, fetched and listed", {
    timeout: 60_000,
  }, async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const [alice, bob] = await pair(url);
    const { path, bytes } = randomFile(3 * MiB + 123, "report.pdf");
    const seen: number[] = [];
    const sent = await alice.sendFile("Bob", path, (done) => seen.push(done));
    expect(sent).toMatchObject({ contact: "Bob", name: "report.pdf", size: bytes.length, status: "stored" });
    expect(sent.uploadedChunks).toBe(Math.ceil(bytes.length / 65536));
    expect(seen.at(-1)).toBe(bytes.length);
    expect(sent.expiresAt).toBeGreaterThan(Date.now());

    const got = eventually(bob, isFile);
    await bob.sync();
    const ev = await got;
    expect(ev).toMatchObject({
      type: "message",
      contact: "alice",
      direction: "in",
      text: "",
      file: {
        id: sent.id,
        name: "report.pdf",
        size: bytes.length,
        mediaType: "application/pdf",
        state: "offered",
      },
    });
    expect(bob.files()).toMatchObject([{ id: sent.id, contact: "alice", direction: "in", state: "offered" }]);

    const dir = tmp();
    const fetched = await bob.fetchFile(sent.id, dir);
    expect(fetched.path).toBe(join(dir, "report.pdf"));
    expect(readFileSync(fetched.path).equals(bytes)).toBe(true);
    // Only the file: the temporary name is gone.
    expect(readdirSync(dir)).toEqual(["report.pdf"]);
    expect(bob.files()[0]).toMatchObject({
      state: "fetched",
      savedAs: fetched.path,
      sha256: createHash("sha256").update(bytes).digest("hex"),
    });
    expect(bob.history("alice").at(-1)?.file).toMatchObject({ id: sent.id, state: "fetched" });
    // The blob is gone from the relay once its one reader is done: a second fetch cannot happen.
    await expect(bob.fetchFile(sent.id, dir)).rejects.toThrow(/already fetched/);

    // Alice's side: the file message has a text's receipts (Bob's history above showed it: read).
    await bob.flush({ force: true });
    const read = eventually(alice, (e) => e.type === "status" && e.id === sent.id && e.status === "read");
    await alice.sync();
    await read;
    expect(alice.files()).toMatchObject([{ id: sent.id, contact: "Bob", direction: "out", state: "sent" }]);
    expect(alice.history("Bob").at(-1)).toMatchObject({
      direction: "out",
      status: "read",
      file: { id: sent.id },
    });
  });

  it("§14.4 never overwrites: a second file of the same name is saved as name (1)", {
    timeout: 60_000,
  }, async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const [alice, bob] = await pair(url);
    const dir = tmp();
    writeFileSync(join(dir, "notes.txt"), "mine");
    const { path, bytes } = randomFile(10, "notes.txt");
    const sent = await alice.sendFile("Bob", path);
    expect(await offered(bob)).toBe(sent.id);
    const fetched = await bob.fetchFile(sent.id, dir);
    expect(fetched.path).toBe(join(dir, "notes (1).txt"));
    expect(readFileSync(join(dir, "notes.txt"), "utf8")).toBe("mine");
    expect(readFileSync(fetched.path).equals(bytes)).toBe(true);
  });

  it("§14.1 an empty file travels as one empty chunk", { timeout: 60_000 }, async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const [alice, bob] = await pair(url);
    const { path } = randomFile(0, "empty");
    const sent = await alice.sendFile("Bob", path);
    await offered(bob);
    const dir = tmp();
    const fetched = await bob.fetchFile(sent.id, join(dir, "got-empty"));
    expect(fetched.path).toBe(join(dir, "got-empty"));
    expect(readFileSync(fetched.path).length).toBe(0);
  });

  it("§14.4 an interrupted upload resumes at the relay's count after the client is opened again; an interrupted download resumes from its partial file", {
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
    const { path, bytes } = randomFile(2 * MiB + 5);
    const chunks = Math.ceil(bytes.length / 65536);
    const stop = new Error("interrupted");
    await expect(
      alice.sendFile("Bob", path, (done) => {
        if (done >= 10 * 65536) throw stop;
      }),
    ).rejects.toBe(stop);
    expect(alice.files()).toMatchObject([{ state: "uploading" }]);
    // A restart: the store is all that is left of the interrupted upload.
    await alice.stop();
    alice.close();
    const again = Client.open(resolvePaths(home), "pw", settings);
    try {
      const sent = await again.sendFile("Bob", path);
      expect(sent.uploadedChunks).toBe(chunks - 10);
      expect(again.files()).toMatchObject([{ state: "sent" }]);

      await offered(bob);
      const dir = tmp();
      await expect(
        bob.fetchFile(sent.id, dir, (done) => {
          if (done >= 7 * 65536) throw stop;
        }),
      ).rejects.toBe(stop);
      // The partial file waits, hidden, beside the destination; no file has the final name.
      expect(readdirSync(dir)).toEqual([`.parley-${sent.id}.part`]);
      const fetched = await bob.fetchFile(sent.id, dir);
      expect(fetched.downloadedChunks).toBe(chunks - 7);
      expect(readFileSync(fetched.path).equals(bytes)).toBe(true);
      expect(readdirSync(dir)).toEqual(["data.bin"]);
    } finally {
      await again.stop();
      again.close();
    }
  });

  it("§14.4 a chunk altered on its way from the relay fails the fetch with a clear error and leaves no file", {
    timeout: 60_000,
  }, async () => {
    const r = await relay();
    const proxy = await tamperingProxy(r.port, 2);
    onCleanup(() => proxy.close());
    const [alice, bob] = await pair(proxy.url);
    const { path } = randomFile(300_000);
    const sent = await alice.sendFile("Bob", path);
    await offered(bob);
    const dir = tmp();
    await expect(bob.fetchFile(sent.id, dir)).rejects.toMatchObject({
      code: "FILE_FAILED",
      message: expect.stringMatching(/chunk 3 of 5 failed its authentication check.*nothing was saved/),
    });
    expect(readdirSync(dir)).toEqual([]);
    expect(bob.files()[0]).toMatchObject({ state: "failed", error: expect.stringMatching(/altered/) });
  });

  it('§14.2 a file the relay no longer has is "expired on the relay", and nothing is saved', {
    timeout: 60_000,
  }, async () => {
    const r = await relay();
    const url = `ws://127.0.0.1:${r.port}`;
    const [alice, bob] = await pair(url);
    const { path } = randomFile(100_000);
    const sent = await alice.sendFile("Bob", path);
    await offered(bob);
    // The sender withdraws it: the relay answers UNKNOWN_BLOB, as for an expired blob.
    await alice.withdrawFile(sent.id);
    const dir = tmp();
    await expect(bob.fetchFile(sent.id, dir)).rejects.toMatchObject({
      code: "FILE_FAILED",
      message: expect.stringMatching(/expired on the relay/),
    });
    expect(readdirSync(dir)).toEqual([]);
    expect(bob.files()[0]).toMatchObject({ state: "expired" });
  });

  it("§14.4 a byte flipped in a chunk the relay stored fails the fetch with a clear error and leaves no file", {
    timeout: 60_000,
  }, async () => {
    const { data, flags, url } = await sqliteRelay();
    let r = await relay(flags);
    const [alice, bob] = await pair(url);
    const sent = await alice.sendFile("Bob", randomFile(300_000).path);
    await offered(bob);
    // Stopped cleanly, the relay's database is altered: one byte of chunk 2's stored bytes.
    await alice.stop();
    await bob.stop();
    await r.stop("SIGTERM");
    const db = new Database(join(data, "relay.sqlite"));
    const row = db.prepare("SELECT blob, sealed FROM blob_chunks WHERE idx = 2").get() as {
      blob: Buffer;
      sealed: Buffer;
    };
    row.sealed[200]! ^= 0x01;
    db.prepare("UPDATE blob_chunks SET sealed = ? WHERE blob = ? AND idx = 2").run(row.sealed, row.blob);
    db.close();
    r = await relay(flags);
    const dir = tmp();
    // The relay's own seal over what it stores catches the change: it will not give the chunk.
    await expect(bob.fetchFile(sent.id, dir)).rejects.toMatchObject({
      code: "FILE_FAILED",
      message: expect.stringMatching(
        /^data\.bin: relay ws:\S+ refused to give it: INTERNAL \(.*\); nothing was saved$/,
      ),
    });
    expect(readdirSync(dir)).toEqual([]);
    expect(bob.files()[0]).toMatchObject({ state: "failed" });
  });

  it("§14.4 kill -9 of the relay mid-upload and mid-download: both resume from what it stored, and the file arrives whole", {
    timeout: 120_000,
  }, async () => {
    const { flags, url } = await sqliteRelay();
    let r = await relay(flags);
    const [alice, bob] = await pair(url);
    const { path, bytes } = randomFile(4 * MiB + 1);
    const chunks = Math.ceil(bytes.length / 65536);
    // The relay is killed from the progress report of chunk 20: mid-transfer, whatever the speed.
    let killed: Promise<void> | null = null;
    const killAt = (n: number) => (done: number) => {
      if (killed === null && done >= n * 65536) killed = kill(r.proc.pid!);
    };
    await expect(alice.sendFile("Bob", path, killAt(20))).rejects.toMatchObject({ code: "UNREACHABLE" });
    await killed;
    expect(alice.files()).toMatchObject([{ state: "uploading" }]);
    r = await relay(flags);
    const sent = await alice.sendFile("Bob", path);
    // Resumed: at most the chunks after those the relay had made durable before it died.
    expect(sent.uploadedChunks).toBeLessThanOrEqual(chunks - 20);
    expect(sent.uploadedChunks).toBeGreaterThan(0);
    await offered(bob);

    const dir = tmp();
    killed = null;
    await expect(bob.fetchFile(sent.id, dir, killAt(30))).rejects.toMatchObject({ code: "UNREACHABLE" });
    await killed;
    expect(readdirSync(dir)).toEqual([`.parley-${sent.id}.part`]);
    r = await relay(flags);
    const fetched = await bob.fetchFile(sent.id, dir);
    expect(fetched.downloadedChunks).toBeLessThanOrEqual(chunks - 30);
    expect(readFileSync(fetched.path).equals(bytes)).toBe(true);
    expect(readdirSync(dir)).toEqual(["data.bin"]);
  });

  it("§14.3 a file to a group through the Client: offered in the group's conversation, fetched, counted delivered", {
    timeout: 60_000,
  }, async () => {
    const r = await relay();
    const [alice, bob] = await pair(`ws://127.0.0.1:${r.port}`);
    await alice.createGroup("Team", ["Bob"]);
    await bob.sync();
    const { path, bytes } = randomFile(100_000, "plan.pdf");
    const sent = await alice.sendFile("Team", path);
    expect(sent).toMatchObject({ group: "Team", contact: "Alice", status: "stored", recipients: 1 });

    const got = eventually(bob, isFile);
    await bob.sync();
    expect(await got).toMatchObject({
      type: "message",
      group: "Team",
      contact: "alice",
      file: { id: sent.id, name: "plan.pdf", state: "offered" },
    });
    expect(bob.files("Team")).toMatchObject([{ id: sent.id, group: "Team", contact: "alice" }]);
    const fetched = await bob.fetchFile(sent.id, tmp());
    expect(readFileSync(fetched.path).equals(bytes)).toBe(true);

    await bob.flush({ force: true });
    const delivered = eventually(alice, (e) => e.type === "status" && e.id === sent.id && e.delivered === 1);
    await alice.sync();
    expect(await delivered).toMatchObject({ group: "Team", recipients: 1, status: "delivered" });
  });
});
