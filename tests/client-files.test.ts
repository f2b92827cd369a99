// Files with the `parley` CLI end to end, through a real relay process (PROTOCOL.md §14): a large
// random file from Alice to Bob arrives byte for byte; the relay's data holds no plaintext; a
// large file to a group of three is uploaded once and fetched by both other members, and its
// bytes leave the relay's disk after the last one's download; a flipped byte in a stored chunk
// fails the fetch with a clear error and leaves no file; an unknown file id and an unreachable
// relay have their own exit statuses.
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tamperingProxy } from "../packages/client/test/tamper-proxy.js";
import {
  aliceAndBob,
  cleanup,
  connect,
  fails,
  freePort,
  homesFor,
  newDir,
  type ParleyEvent,
  parley,
  ROOT,
  restartableRelay,
  runParley,
  startRelay,
  startSqliteRelay,
  syncUntil,
} from "./client-helpers.js";

afterAll(cleanup);

const MiB = 1024 * 1024;

/** SHA-256 of a file, read as a stream (the file may be large). */
function fileSha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(path)
      .on("data", (d) => h.update(d))
      .on("error", reject)
      .on("end", () => resolve(h.digest("hex")));
  });
}

/** Writes `size` random bytes to `dir/name`, a MiB at a time; returns its path and SHA-256. */
async function randomFile(dir: string, name: string, size: number): Promise<{ path: string; sha: string }> {
  const path = join(dir, name);
  const h = createHash("sha256");
  const parts: Buffer[] = [];
  for (let left = size; left > 0; left -= MiB) {
    const b = randomBytes(Math.min(MiB, left));
    h.update(b);
    parts.push(b);
  }
  await writeFile(path, Buffer.concat(parts));
  return { path, sha: h.digest("hex") };
}

/** The part of better-sqlite3 used here (the relay package's copy: this package does not depend on it). */
interface ReadOnlyDb {
  prepare(sql: string): { pluck(): { all(): unknown[] } };
  close(): void;
}
/** better-sqlite3, as the relay package has it: to read what a SQLite relay stored. */
const Database = createRequire(join(ROOT, "packages/relay/package.json"))("better-sqlite3") as new (
  path: string,
  options: { readonly: boolean; fileMustExist: boolean },
) => ReadOnlyDb;

/** 64 bytes from chunks 0, 400 and 799 as a SQLite relay stored them (sealed again by the relay). */
function storedSamples(dataDir: string): Buffer[] {
  const db = new Database(join(dataDir, "relay.sqlite"), { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare("SELECT sealed FROM blob_chunks WHERE idx IN (0, 400, 799) ORDER BY idx")
      .pluck()
      .all() as Buffer[];
    return rows.map((b) => Buffer.from(b.subarray(1000, 1064)));
  } finally {
    db.close();
  }
}

/** The files of a directory that hold `sample`. */
async function holding(dir: string, sample: Buffer): Promise<string[]> {
  const out: string[] = [];
  for (const f of await readdir(dir)) if ((await readFile(join(dir, f))).includes(sample)) out.push(f);
  return out;
}

/** A counter of the relay's transparency statement (§8.5). */
async function relayCounter(url: string, name: "blobs" | "blobBytes"): Promise<number> {
  const res = await fetch(`${url.replace("ws://", "http://")}/transparency`);
  return ((await res.json()) as { counters: Record<string, number> }).counters[name]!;
}

const fileEvents = (events: ParleyEvent[]) =>
  events.filter((e) => e.type === "file") as (ParleyEvent & {
    id: string;
    contact: string;
    name: string;
    size: number;
  })[];

describe("parley send-file, files, fetch", () => {
  it("§14.3 a 50 MiB random file goes from Alice to Bob byte for byte, and the relay's data holds none of it in the clear", {
    timeout: 300_000,
  }, async () => {
    const data = await newDir("parley-relay-data-");
    const relay = await startRelay(["--storage", "sqlite", "--data-dir", data]);
    const { alice, bob } = await aliceAndBob(relay.url);
    const src = await newDir();
    const size = 50 * MiB + 17;
    const file = await randomFile(src, "big.bin", size);

    const sent = await parley(alice, ["send-file", "Bob", file.path, "--json"]);
    const [out] = fileEvents(sent.events);
    expect(out).toMatchObject({ type: "file", contact: "Bob", name: "big.bin", size, status: "stored" });
    // Not a terminal: no progress lines on stderr.
    expect(sent.stderr).not.toMatch(/%/);

    // No 32-byte run of the plaintext is anywhere in the relay's data directory.
    const plain = await readFile(file.path);
    const samples = [0, 1 * MiB + 3, 25 * MiB, size - 32].map((at) => plain.subarray(at, at + 32));
    for (const f of await readdir(data)) {
      const bytes = await readFile(join(data, f));
      for (const s of samples) expect(bytes.indexOf(s), f).toBe(-1);
    }

    const events = await syncUntil(bob, (ev) => fileEvents(ev).length > 0);
    const [offer] = fileEvents(events);
    expect(offer).toMatchObject({ type: "file", id: out!.id, contact: "alice", name: "big.bin", size });

    const listed = await parley(bob, ["files", "--json"]);
    expect(listed.events).toMatchObject([{ type: "file", id: out!.id, direction: "in", state: "offered" }]);

    const dest = await newDir();
    const got = await parley(bob, ["fetch", offer!.id, "--out", dest, "--json"]);
    expect(got.events).toMatchObject([{ type: "fetched", path: join(dest, "big.bin"), size }]);
    expect(await fileSha256(join(dest, "big.bin"))).toBe(file.sha);
    expect(await readdir(dest)).toEqual(["big.bin"]);
    const after = await parley(bob, ["files", "--json"]);
    expect(after.events).toMatchObject([{ state: "fetched", savedAs: join(dest, "big.bin") }]);
  });

  it("§14.3 a 50 MiB random file from Alice to a group of three is uploaded once, Bob and Carol each fetch it byte for byte, and its bytes leave the relay's disk after the last download", {
    timeout: 600_000,
  }, async () => {
    const data = await newDir("parley-relay-data-");
    const port = await freePort();
    let relay = await startSqliteRelay(port, data);
    const [alice, bob, carol] = await homesFor(relay.url, "Alice", "Bob", "Carol");
    await connect(alice, bob, "alice", "Bob");
    await connect(alice, carol, "alice", "Carol");
    await parley(alice, ["group", "create", "Trio", "--members", "Bob,Carol", "--json"]);
    for (const home of [bob, carol])
      await syncUntil(home, (ev) => ev.some((e) => e.type === "group" && e.event === "joined"));

    const src = await newDir();
    const size = 50 * MiB + 17;
    const file = await randomFile(src, "big.bin", size);
    const sent = await parley(alice, ["send-file", "Trio", file.path, "--json"]);
    const [out] = fileEvents(sent.events);
    expect(out).toMatchObject({
      type: "file",
      group: "Trio",
      contact: "Alice",
      name: "big.bin",
      size,
      status: "stored",
      recipients: 2,
    });
    // One blob for the group, not one per member.
    expect(await relayCounter(relay.url, "blobs")).toBe(1);

    // No 32-byte run of the plaintext is anywhere in the relay's data directory.
    const plain = await readFile(file.path);
    for (const at of [0, 1 * MiB + 3, 25 * MiB, size - 32]) {
      expect(await holding(data, plain.subarray(at, at + 32)), `plaintext at ${at}`).toEqual([]);
    }
    // Stopped cleanly (the relay holds its database exclusively), the database is read here to
    // find the bytes the relay stored; then it runs again on the same port with the same data.
    await relay.stop("SIGTERM");
    const stored = storedSamples(data);
    expect(stored.map((b) => b.length)).toEqual([64, 64, 64]);
    relay = await startSqliteRelay(port, data);

    for (const home of [bob, carol]) {
      const events = await syncUntil(home, (ev) => fileEvents(ev).length > 0);
      expect(fileEvents(events)).toMatchObject([
        {
          type: "file",
          id: out!.id,
          contact: "alice",
          group: "Trio",
          name: "big.bin",
          size,
          state: "offered",
        },
      ]);
      const listed = await parley(home, ["files", "Trio", "--json"]);
      expect(listed.events).toMatchObject([
        { type: "file", id: out!.id, group: "Trio", contact: "alice", direction: "in", state: "offered" },
      ]);
    }

    const fetchInto = async (home: string) => {
      const dest = await newDir();
      const got = await parley(home, ["fetch", out!.id, "--out", dest, "--json"]);
      expect(got.events).toMatchObject([{ type: "fetched", path: join(dest, "big.bin"), size }]);
      expect(await fileSha256(join(dest, "big.bin"))).toBe(file.sha);
    };
    await fetchInto(bob);
    // Carol has not fetched it: the blob, and its bytes, are still there for her.
    expect(await relayCounter(relay.url, "blobs")).toBe(1);
    for (const s of stored) expect((await holding(data, s)).length).toBeGreaterThan(0);
    await fetchInto(carol);
    expect(await relayCounter(relay.url, "blobs")).toBe(0);
    for (const s of stored) expect(await holding(data, s)).toEqual([]);

    // Both members' delivered receipts reach Alice: "delivered to 2 of 2".
    await syncUntil(alice, (ev) =>
      ev.some((e) => e.type === "status" && e.id === out!.id && e.group === "Trio" && e.delivered === 2),
    );
  });

  it("§14.4 exit statuses: an unknown file id is 16, a bad path 2; an unreachable relay is 75, and the same command sends the file once the relay is back", {
    timeout: 120_000,
  }, async () => {
    const relay = await restartableRelay();
    const { alice, bob } = await aliceAndBob(relay.url);
    expect(fails(await runParley(bob, ["fetch", "00".repeat(16)]), 16)).toMatch(/no file with id/);
    expect(fails(await runParley(bob, ["fetch", "nope"]), 16)).toMatch(/no file with id/);
    const src = await newDir();
    const file = await randomFile(src, "a.txt", 200_000);
    expect(fails(await runParley(alice, ["send-file", "Bob", join(src, "missing")]), 2)).toMatch(
      /no such file/,
    );
    expect(fails(await runParley(alice, ["send-file", "Bob", src]), 2)).toMatch(/not a regular file/);
    await relay.stop();
    const down = fails(await runParley(alice, ["send-file", "Bob", file.path]), 75);
    expect(down).toMatch(/uploading a\.txt: cannot reach relay .*; run the same command again to resume/);
    expect((await parley(alice, ["files", "--json"])).events).toMatchObject([
      { name: "a.txt", state: "uploading" },
    ]);
    await relay.start();
    const sent = await parley(alice, ["send-file", "Bob", file.path, "--json"]);
    expect(fileEvents(sent.events)).toMatchObject([{ name: "a.txt", status: "stored" }]);
    // One file, not two: the second run continued the first one's upload.
    expect((await parley(alice, ["files", "--json"])).events).toMatchObject([
      { name: "a.txt", state: "sent" },
    ]);
    const events = await syncUntil(bob, (ev) => fileEvents(ev).length > 0);
    const dest = await newDir();
    await parley(bob, ["fetch", fileEvents(events)[0]!.id, "--out", dest]);
    expect(await fileSha256(join(dest, "a.txt"))).toBe(file.sha);
  });

  it("§14.4 a chunk altered between the relay's store and Bob fails the fetch with a clear error (exit 15) and leaves no file", {
    timeout: 120_000,
  }, async () => {
    const relay = await startRelay(["--storage", "memory"]);
    const proxy = await tamperingProxy(relay.port, 2);
    try {
      const { alice, bob } = await aliceAndBob(proxy.url);
      const src = await newDir();
      const file = await randomFile(src, "doc.pdf", 5 * 65536 + 9);
      await parley(alice, ["send-file", "Bob", file.path]);
      const events = await syncUntil(bob, (ev) => fileEvents(ev).length > 0);
      const id = fileEvents(events)[0]!.id;
      const dest = await newDir();
      const why = fails(await runParley(bob, ["fetch", id, "--out", dest]), 15);
      expect(why).toBe(
        "parley: doc.pdf: chunk 3 of 6 failed its authentication check: the file was altered on the relay or on the way; nothing was saved",
      );
      expect(await readdir(dest)).toEqual([]);
      expect((await parley(bob, ["files", "--json"])).events).toMatchObject([{ id, state: "failed" }]);
    } finally {
      proxy.close();
    }
  });
});
