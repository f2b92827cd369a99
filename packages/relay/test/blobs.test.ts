// Relay blobs (PROTOCOL.md §14.2) against the real relay process, in each storage: upload, download
// by every reader, deletion after the last, retries, refusals, expiry, quotas, pacing, and a kill -9
// in the middle of an upload.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  blobTokenHash,
  encodeFrame,
  type Frame,
  MAX_ENVELOPE_LENGTH,
  SEALED_CHUNK_BYTES,
} from "@parley/protocol";
import Database from "better-sqlite3";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { MemoryStorage } from "../src/storage/memory.js";
import { http, type RelayProcess, startInProcessRelay, startRelay, TestClient } from "./helpers.js";
import { type RedisServer, startRedis, stopAllRedis } from "./redis-server.js";

const NO_TIMERS = ["--sweep-interval", "1h", "--heartbeat", "1h"];
const relays: RelayProcess[] = [];
const clients: TestClient[] = [];
const redises: RedisServer[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(relays.splice(0).map((r) => r.stop("SIGKILL")));
  await Promise.all(redises.splice(0).map((s) => s.dispose()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
afterAll(async () => {
  await stopAllRedis();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "parley-blobs-"));
  dirs.push(d);
  return d;
}

type Backend = "memory" | "sqlite" | "redis";

/** The --storage flags for a backend: a fresh data directory or Redis server. */
async function storageFlags(kind: Backend): Promise<string[]> {
  if (kind === "memory") return ["--storage", "memory"];
  if (kind === "sqlite") return ["--storage", "sqlite", "--data-dir", tempDir()];
  const redis = await startRedis({ appendfsync: "always" });
  redises.push(redis);
  return ["--storage", redis.url, "--redis-timeout", "2s"];
}

async function relay(flags: string[]): Promise<RelayProcess> {
  const r = await startRelay([...NO_TIMERS, ...flags]);
  relays.push(r);
  return r;
}

async function connect(port: number): Promise<TestClient> {
  const c = await TestClient.connect(port);
  clients.push(c);
  return c;
}

/** A file as the relay sees it: random sealed chunks, full but the last, and its capabilities. */
function file(chunkCount: number, lastLength = 1000, readers = 2) {
  const chunks = Array.from({ length: chunkCount }, (_, i) =>
    randomBytes(i < chunkCount - 1 ? SEALED_CHUNK_BYTES : lastLength),
  );
  const writeToken = randomBytes(32);
  const readTokens = Array.from({ length: readers }, () => randomBytes(32));
  const blobId = randomBytes(32);
  const create: Frame = {
    type: "createBlob",
    requestId: 0,
    blobId,
    writeTokenHash: blobTokenHash(writeToken),
    chunkCount,
    sealedSize: chunks.reduce((n, c) => n + c.length, 0),
    readTokenHashes: readTokens.map((t) => blobTokenHash(t)),
  };
  return {
    blobId,
    writeToken,
    readTokens,
    chunks,
    create,
    put: (index: number, sealedChunk = chunks[index]!): Frame => ({
      type: "putChunk",
      requestId: 0,
      blobId,
      writeToken,
      index,
      sealedChunk,
    }),
    get: (index: number, reader = 0): Frame => ({
      type: "getChunk",
      requestId: 0,
      blobId,
      readToken: readTokens[reader]!,
      index,
    }),
    status: (token: Uint8Array = writeToken): Frame => ({ type: "blobStatus", requestId: 0, blobId, token }),
    done: (reader: number): Frame => ({
      type: "blobDone",
      requestId: 0,
      blobId,
      readToken: readTokens[reader]!,
    }),
    remove: (): Frame => ({ type: "deleteBlob", requestId: 0, blobId, writeToken }),
  };
}

const errorOf = (f: Frame) => (f.type === "error" ? { code: f.code, message: f.message } : f.type);

async function upload(c: TestClient, f: ReturnType<typeof file>, from = 0): Promise<void> {
  for (let i = from; i < f.chunks.length; i++) expect(errorOf(await c.request(f.put(i)))).toBe("ok");
}

async function downloadAll(c: TestClient, f: ReturnType<typeof file>, reader: number): Promise<void> {
  for (let i = 0; i < f.chunks.length; i++) {
    const got = await c.request(f.get(i, reader));
    if (got.type !== "chunk") throw new Error(`chunk ${i}: ${JSON.stringify(errorOf(got))}`);
    expect(got.index).toBe(i);
    expect(Buffer.from(got.sealedChunk).equals(f.chunks[i]!)).toBe(true);
  }
}

async function transparency(port: number) {
  return JSON.parse((await http(port, "/transparency")).body) as {
    limits: Record<string, number>;
    counters: Record<string, number>;
    storedPerBlob: { field: string; why: string }[];
  };
}

describe.each(["memory", "sqlite", "redis"] as const)("blobs in %s storage (§14.2)", (kind) => {
  it("§14.2 two readers download every chunk; the blob is deleted only after both say blobDone", async () => {
    const r = await relay(await storageFlags(kind));
    const [up, a, b] = [await connect(r.port), await connect(r.port), await connect(r.port)];
    const f = file(3, 17);
    expect(await up.request(f.create)).toMatchObject({ type: "ok" });
    await upload(up, f);
    const info = await up.request(f.status());
    expect(info).toMatchObject({ type: "blobInfo", chunkCount: 3, written: 3, readersLeft: 2 });
    expect(await transparency(r.port)).toMatchObject({
      counters: { blobs: 1, blobBytes: 2 * SEALED_CHUNK_BYTES + 17 },
    });
    await downloadAll(a, f, 0);
    expect(await a.request(f.done(0))).toMatchObject({ type: "ok" });
    // The first reader's token is retired; the blob stays for the second.
    expect(errorOf(await a.request(f.get(0, 0)))).toMatchObject({ code: "AUTH" });
    expect(errorOf(await a.request(f.done(0)))).toMatchObject({ code: "AUTH" });
    expect(await b.request(f.status(f.readTokens[1]))).toMatchObject({ type: "blobInfo", readersLeft: 1 });
    await downloadAll(b, f, 1);
    expect(await b.request(f.done(1))).toMatchObject({ type: "ok" });
    // Gone: for the uploader, the readers, and the totals.
    expect(errorOf(await up.request(f.status()))).toMatchObject({ code: "UNKNOWN_BLOB" });
    expect(errorOf(await b.request(f.get(0, 1)))).toMatchObject({ code: "UNKNOWN_BLOB" });
    expect(await transparency(r.port)).toMatchObject({ counters: { blobs: 0, blobBytes: 0 } });
  });

  it("§14.2 chunks sent without waiting for answers (a client's pipelined upload) are stored in the order sent", async () => {
    const r = await relay(await storageFlags(kind));
    const c = await connect(r.port);
    const f = file(48, 700, 1);
    expect(await c.request(f.create)).toMatchObject({ type: "ok" });
    for (let i = 0; i < f.chunks.length; i++)
      c.sendRaw(encodeFrame({ ...f.put(i), requestId: 1000 + i } as Frame));
    const answers: Frame[] = [];
    for (let i = 0; i < f.chunks.length; i++) answers.push(await c.next());
    const byRequest = answers
      .map((a) => [a.requestId, errorOf(a)])
      .sort((x, y) => Number(x[0]) - Number(y[0]));
    expect(byRequest).toEqual(f.chunks.map((_, i) => [1000 + i, "ok"]));
    expect(await c.request(f.status())).toMatchObject({ type: "blobInfo", written: f.chunks.length });
    await downloadAll(c, f, 0);
  });

  it("§14.2 retries are idempotent, chunks go in order (the error names the next index), tokens are checked", async () => {
    const r = await relay(await storageFlags(kind));
    const c = await connect(r.port);
    const f = file(3, 16, 1);
    expect(errorOf(await c.request(f.put(0)))).toMatchObject({ code: "UNKNOWN_BLOB" });
    expect(await c.request(f.create)).toMatchObject({ type: "ok" });
    expect(await c.request(f.create)).toMatchObject({ type: "ok" });
    // The same id with another declaration: AUTH, and the first stays as it was.
    const other = { ...f.create, readTokenHashes: [blobTokenHash(randomBytes(32))] } as Frame;
    expect(errorOf(await c.request(other))).toMatchObject({ code: "AUTH" });
    expect(errorOf(await c.request(f.put(1)))).toMatchObject({
      code: "BAD_FRAME",
      message: expect.stringMatching(/next is 0/),
    });
    expect(await c.request(f.put(0))).toMatchObject({ type: "ok" });
    expect(await c.request(f.put(0))).toMatchObject({ type: "ok" }); // a retry: nothing changes
    expect(errorOf(await c.request(f.put(2)))).toMatchObject({
      code: "BAD_FRAME",
      message: expect.stringMatching(/next is 1/),
    });
    expect(await c.request(f.status())).toMatchObject({ type: "blobInfo", written: 1 });
    // A chunk of the wrong length, an index past the end, a wrong write token.
    expect(errorOf(await c.request(f.put(1, randomBytes(100))))).toMatchObject({ code: "BAD_FRAME" });
    expect(errorOf(await c.request(f.put(3, randomBytes(16))))).toMatchObject({ code: "BAD_FRAME" });
    const wrong = { ...f.put(1), writeToken: randomBytes(32) } as Frame;
    expect(errorOf(await c.request(wrong))).toMatchObject({ code: "AUTH" });
    // A reader may fetch what is written while the upload goes on; not what is not.
    expect(await c.request(f.get(0))).toMatchObject({ type: "chunk", index: 0 });
    expect(errorOf(await c.request(f.get(1)))).toMatchObject({ code: "UNKNOWN_MESSAGE" });
    expect(errorOf(await c.request(f.get(3)))).toMatchObject({ code: "BAD_FRAME" });
    expect(errorOf(await c.request({ ...f.get(0), readToken: f.writeToken } as Frame))).toMatchObject({
      code: "AUTH",
    });
    expect(errorOf(await c.request(f.status(randomBytes(32))))).toMatchObject({ code: "AUTH" });
    expect(errorOf(await c.request({ ...f.done(0), readToken: randomBytes(32) } as Frame))).toMatchObject({
      code: "AUTH",
    });
    expect(errorOf(await c.request({ ...f.remove(), writeToken: f.readTokens[0]! } as Frame))).toMatchObject({
      code: "AUTH",
    });
    // The uploader withdraws it.
    expect(await c.request(f.remove())).toMatchObject({ type: "ok" });
    expect(errorOf(await c.request(f.remove()))).toMatchObject({ code: "UNKNOWN_BLOB" });
    expect(errorOf(await c.request(f.get(0)))).toMatchObject({ code: "UNKNOWN_BLOB" });
    expect(await transparency(r.port)).toMatchObject({ counters: { blobs: 0, blobBytes: 0 } });
  });

  it("§14.2 a blob expires at the retention from its creation, complete or not, and is swept", async () => {
    const r = await relay([...(await storageFlags(kind)), "--ttl", "1s", "--sweep-interval", "1s"]);
    const c = await connect(r.port);
    const f = file(2, 500, 1);
    expect(await c.request(f.create)).toMatchObject({ type: "ok" });
    expect(await c.request(f.put(0))).toMatchObject({ type: "ok" });
    const info = await c.request(f.status());
    if (info.type !== "blobInfo") throw new Error("no blobInfo");
    // Waits for the expiry it announced, then for the sweep: no assertion on how long either takes.
    for (;;) {
      const s = await c.request(f.status());
      if (s.type === "error") {
        expect(s.code).toBe("UNKNOWN_BLOB");
        expect(Date.now()).toBeGreaterThanOrEqual(info.expiresAt);
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    for (;;) {
      const t = await transparency(r.port);
      if (t.counters.blobs === 0) {
        expect(t.counters.blobBytes).toBe(0);
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  });
});

describe("blob limits (§14.2)", () => {
  it("§14.2 TOO_LARGE above --max-blob-bytes, QUOTA beyond --max-blob-storage (counted from creation), room again after deletion", async () => {
    const r = await relay([
      "--storage",
      "memory",
      "--max-blob-bytes",
      String(3 * SEALED_CHUNK_BYTES),
      "--max-blob-storage",
      String(4 * SEALED_CHUNK_BYTES),
    ]);
    const c = await connect(r.port);
    expect(errorOf(await c.request(file(4, SEALED_CHUNK_BYTES).create))).toMatchObject({ code: "TOO_LARGE" });
    const first = file(3, SEALED_CHUNK_BYTES, 1);
    expect(await c.request(first.create)).toMatchObject({ type: "ok" });
    // Nothing uploaded yet, but its whole size is reserved: a second of 2 chunks does not fit.
    const second = file(2, SEALED_CHUNK_BYTES, 1);
    expect(errorOf(await c.request(second.create))).toMatchObject({ code: "QUOTA" });
    expect(await c.request(file(1, SEALED_CHUNK_BYTES, 1).create)).toMatchObject({ type: "ok" });
    expect(await c.request(first.remove())).toMatchObject({ type: "ok" });
    expect(await c.request(second.create)).toMatchObject({ type: "ok" });
    const t = await transparency(r.port);
    expect(t.limits).toMatchObject({
      maxBlobBytes: 3 * SEALED_CHUNK_BYTES,
      maxBlobStorageBytes: 4 * SEALED_CHUNK_BYTES,
    });
  });

  it("§14.2 blobs count against --max-storage: QUOTA when the storage cap cannot hold one", async () => {
    const r = await relay([
      "--storage",
      "memory",
      "--max-storage",
      "8MiB",
      "--max-blob-bytes",
      "8MiB",
      "--max-blob-storage",
      "8MiB",
    ]);
    const c = await connect(r.port);
    expect(await c.request(file(100, 100, 1).create)).toMatchObject({ type: "ok" }); // 6.25 MiB
    expect(errorOf(await c.request(file(40, 100, 1).create))).toMatchObject({ code: "QUOTA" });
  });

  it("§14.2 --upload-rate: beyond its 4 MiB burst, putChunk is RATE_LIMITED and nothing is stored; chunks do not take --rate-limit tokens", async () => {
    // 5 frames/s (bursts of 10) would refuse the 70th chunk if chunks were paced as frames.
    const r = await relay(["--storage", "memory", "--upload-rate", "1KiB", "--rate-limit", "5"]);
    const c = await connect(r.port);
    const f = file(70, SEALED_CHUNK_BYTES, 1);
    expect(await c.request(f.create)).toMatchObject({ type: "ok" });
    let limited = -1;
    for (let i = 0; i < 70; i++) {
      const answer = await c.request(f.put(i));
      if (answer.type === "error") {
        expect(answer.code).toBe("RATE_LIMITED");
        limited = i;
        break;
      }
    }
    // The burst is 4 MiB: 63 full chunks (64 × 65 552 is just above it), and what 1 KiB/s added
    // while they went (a chunk more only if that took over a minute).
    expect(limited).toBeGreaterThanOrEqual(63);
    expect(await c.request(f.status())).toMatchObject({ type: "blobInfo", written: limited });
    const metrics = (await http(r.port, "/metrics")).body;
    expect(metrics).toMatch(/^parley_relay_uploads_throttled_total 1$/m);
    expect(metrics).toMatch(/^parley_relay_blobs 1$/m);
    expect(metrics).toContain(`parley_relay_blob_bytes ${limited * SEALED_CHUNK_BYTES}\n`);
  });

  it("§8.2 a full putChunk (65 626 bytes) passes even when --max-message-size is smaller", async () => {
    const r = await relay(["--storage", "memory", "--max-message-size", String(MAX_ENVELOPE_LENGTH)]);
    const c = await connect(r.port);
    const f = file(2, 16, 1);
    expect(await c.request(f.create)).toMatchObject({ type: "ok" });
    await upload(c, f);
    await downloadAll(c, f, 0);
  });

  it("§8.5 the transparency statement lists the blob limits, counters and what is stored per blob", async () => {
    const r = await relay(["--storage", "memory", "--max-storage", "64MiB"]);
    const t = await transparency(r.port);
    expect(t.limits).toMatchObject({
      maxBlobBytes: 1600 * SEALED_CHUNK_BYTES,
      maxBlobStorageBytes: 32 * 1024 * 1024,
      uploadBytesPerSecondPerConnection: 8 * 1024 * 1024,
    });
    expect(t.counters).toMatchObject({ blobs: 0, blobBytes: 0 });
    expect(t.storedPerBlob.map((x) => x.field)).toContain("read-token hashes");
  });
});

describe("blob requests in flight (§14.2)", () => {
  it("§14.2 a connection has at most 64 blob requests under way: one more is RATE_LIMITED at once, before any work", async () => {
    // A storage whose blob lookups wait until the test lets them go: 70 chunks sent at once.
    const storage = new MemoryStorage();
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const lookup = storage.blob.bind(storage);
    let waiting = 0;
    storage.blob = async (id, now) => {
      waiting++;
      await gate;
      return lookup(id, now);
    };
    const r = await startInProcessRelay(storage, ["--storage", "memory", ...NO_TIMERS]);
    try {
      const c = await TestClient.connect(r.port);
      clients.push(c);
      const f = file(70, SEALED_CHUNK_BYTES, 1);
      expect(await c.request(f.create)).toMatchObject({ type: "ok" });
      for (let i = 0; i < 70; i++) c.sendRaw(encodeFrame({ ...f.put(0), requestId: 1000 + i } as Frame));
      const refused: Frame[] = [];
      for (let i = 0; i < 6; i++) refused.push(await c.next());
      expect(waiting).toBe(64);
      expect(refused.map((x) => [x.requestId, errorOf(x)])).toEqual(
        Array.from({ length: 6 }, (_, i) => [
          1064 + i,
          { code: "RATE_LIMITED", message: "more than 64 file requests under way; wait for their answers" },
        ]),
      );
      release();
      const answers: Frame[] = [];
      for (let i = 0; i < 64; i++) answers.push(await c.next());
      // The first stored chunk 0; the others were retries of it.
      expect(answers.every((x) => x.type === "ok")).toBe(true);
      expect(await c.request(f.status())).toMatchObject({ type: "blobInfo", written: 1 });
    } finally {
      release();
      await r.stop();
    }
  });
});

/** Every file of a directory, read whole. */
function filesOf(dir: string): { name: string; bytes: Buffer }[] {
  return readdirSync(dir).map((name) => ({ name, bytes: readFileSync(join(dir, name)) }));
}

describe("blobs on disk (§14.2)", () => {
  it("§14.2 SQLite: chunks are stored sealed again, and after the last blobDone their bytes are nowhere in the data directory", async () => {
    const dir = tempDir();
    const flags = ["--storage", "sqlite", "--data-dir", dir];
    let r = await relay(flags);
    let c = await connect(r.port);
    const f = file(3, 5000, 2);
    expect(await c.request(f.create)).toMatchObject({ type: "ok" });
    await upload(c, f);
    // Stopped cleanly (a final checkpoint), the database is read here to find the stored bytes.
    c.close();
    await r.stop("SIGTERM");
    relays.splice(relays.indexOf(r), 1);
    const db = new Database(join(dir, "relay.sqlite"), { readonly: true });
    const stored = db.prepare("SELECT sealed FROM blob_chunks ORDER BY idx").pluck().all() as Buffer[];
    db.close();
    expect(stored).toHaveLength(3);
    // What the client sent is not on disk even now: the relay sealed it under the blob's key.
    const samples = [...f.chunks, ...stored].map((b) => b.subarray(1000, 1064));
    const found = (sample: Buffer) =>
      filesOf(dir)
        .filter((x) => x.bytes.includes(sample))
        .map((x) => x.name);
    for (const chunk of f.chunks) expect(found(chunk.subarray(1000, 1064))).toEqual([]);
    for (const s of stored) expect(found(s.subarray(1000, 1064))).toEqual(["relay.sqlite"]);

    r = await relay(flags);
    c = await connect(r.port);
    for (const reader of [0, 1]) {
      await downloadAll(c, f, reader);
      expect(await c.request(f.done(reader))).toMatchObject({ type: "ok" });
    }
    // Answered after the deletion's checkpoint: nothing of the chunks in any file, running...
    for (const s of samples) expect(found(s)).toEqual([]);
    // ...and after a kill -9 (no final checkpoint).
    await r.stop("SIGKILL");
    for (const s of samples) expect(found(s)).toEqual([]);
  });

  it.each(["sqlite", "redis"] as const)(
    "§14.2 %s: kill -9 in the middle of an upload, then it resumes from blobStatus.written and completes",
    async (kind) => {
      const flags = await storageFlags(kind);
      let r = await relay(flags);
      let c = await connect(r.port);
      const f = file(6, 3000, 1);
      expect(await c.request(f.create)).toMatchObject({ type: "ok" });
      // Four chunks acknowledged, a fifth sent without waiting for its answer, then kill -9.
      for (let i = 0; i < 4; i++) expect(await c.request(f.put(i))).toMatchObject({ type: "ok" });
      c.sendRaw(encodeFrame({ ...f.put(4), requestId: 99 } as Frame));
      await r.stop("SIGKILL");
      relays.splice(relays.indexOf(r), 1);
      r = await relay(flags);
      c = await connect(r.port);
      const info = await c.request(f.status());
      if (info.type !== "blobInfo") throw new Error(`blobStatus: ${JSON.stringify(errorOf(info))}`);
      // Every acknowledged chunk survived; the unacknowledged one may or may not have.
      expect(info.written).toBeGreaterThanOrEqual(4);
      expect(info.written).toBeLessThanOrEqual(5);
      await upload(c, f, info.written);
      await downloadAll(c, f, 0);
      expect(await c.request(f.done(0))).toMatchObject({ type: "ok" });
      expect(errorOf(await c.request(f.status()))).toMatchObject({ code: "UNKNOWN_BLOB" });
    },
  );
});
