// One contract, every backend: the server relies only on what this suite checks.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { SqliteStorage } from "../src/storage/sqlite.js";
import { storageBackends } from "./backends.js";

const { backends, tempDir } = storageBackends("storage");

const limits = { maxMessages: 3, maxBytes: 1000 };
const address = () => randomBytes(32);
function request(addr: Uint8Array, size = 10, now = 1000, ttl = 5000) {
  return {
    address: addr,
    clientMessageId: randomBytes(16),
    ciphertext: randomBytes(size),
    receivedAt: now,
    expiresAt: now + ttl,
    id: randomBytes(16),
  };
}

for (const [name, make] of Object.entries(backends)) {
  describe(`storage contract: ${name}`, () => {
    it("creates mailboxes idempotently for their owner and refuses another owner", async () => {
      const s = make();
      const a = address();
      const owner = randomBytes(32);
      expect(await s.createMailbox(a, owner)).toBe("created");
      expect(await s.createMailbox(a, owner)).toBe("exists");
      expect(await s.createMailbox(a, randomBytes(32))).toBe("conflict");
      expect(Buffer.from((await s.mailboxOwner(a))!).equals(owner)).toBe(true);
      expect(await s.mailboxOwner(address())).toBeNull();
    });

    it("stores, lists oldest first, acks, and counts", async () => {
      const s = make();
      const a = address();
      await s.createMailbox(a, randomBytes(32));
      const r1 = request(a, 10, 1000);
      const r2 = request(a, 20, 1001);
      expect((await s.deposit(r1, limits)).status).toBe("stored");
      expect((await s.deposit(r2, limits)).status).toBe("stored");
      const pending = await s.pending(a, 1500, 10);
      expect(pending.map((m) => m.ciphertext.length)).toEqual([10, 20]);
      expect(Buffer.from(pending[0]!.ciphertext).equals(r1.ciphertext)).toBe(true);
      expect(pending[0]).toMatchObject({ receivedAt: 1000, expiresAt: 6000 });
      expect(await s.pending(a, 1500, 1)).toHaveLength(1);
      // A cursor continues after the last message examined.
      expect(pending[1]!.seq).toBeGreaterThan(pending[0]!.seq);
      const after = await s.pending(a, 1500, 10, pending[0]!.seq);
      expect(after.map((m) => m.ciphertext.length)).toEqual([20]);
      expect(await s.pending(a, 1500, 10, pending[1]!.seq)).toEqual([]);
      expect(await s.stats()).toMatchObject({ mailboxes: 1, messages: 2, bytes: 30 });
      expect(await s.ack(a, r1.id)).toBe(true);
      expect(await s.ack(a, r1.id)).toBe(false);
      expect(await s.ack(address(), r2.id)).toBe(false);
      expect(await s.stats()).toMatchObject({ mailboxes: 1, messages: 1, bytes: 20 });
    });

    it("recognises a retried deposit, refuses unknown mailboxes and enforces both quotas", async () => {
      const s = make();
      const a = address();
      await s.createMailbox(a, randomBytes(32));
      const r = request(a);
      expect((await s.deposit(r, limits)).status).toBe("stored");
      expect((await s.deposit({ ...r, id: randomBytes(16) }, limits)).status).toBe("duplicate");
      expect((await s.deposit(request(address()), limits)).status).toBe("unknown-mailbox");
      expect((await s.deposit(request(a, 991), limits)).status).toBe("quota"); // bytes: 10 + 991 > 1000
      expect((await s.deposit(request(a, 10), limits)).status).toBe("stored");
      expect((await s.deposit(request(a, 10), limits)).status).toBe("stored");
      expect((await s.deposit(request(a, 10), limits)).status).toBe("quota"); // messages: 3
    });

    it("scopes client message ids to the mailbox and refuses a known id with another ciphertext", async () => {
      const s = make();
      const [a, b] = [address(), address()];
      await s.createMailbox(a, randomBytes(32));
      await s.createMailbox(b, randomBytes(32));
      const r = request(a);
      expect((await s.deposit(r, limits)).status).toBe("stored");
      // The same id with another ciphertext: refused, and nothing is stored.
      const reuse = { ...r, id: randomBytes(16), ciphertext: randomBytes(10) };
      expect((await s.deposit(reuse, limits)).status).toBe("id-reused");
      expect((await s.pending(a, 1500, 10)).map((m) => Buffer.from(m.ciphertext).toString("hex"))).toEqual([
        Buffer.from(r.ciphertext).toString("hex"),
      ]);
      // The same id in another mailbox is another message.
      expect((await s.deposit({ ...reuse, address: b }, limits)).status).toBe("stored");
      // A retry is still a retry, after an ack too, as long as the id is remembered.
      expect((await s.deposit({ ...r, id: randomBytes(16) }, limits)).status).toBe("duplicate");
      expect(await s.ack(a, r.id)).toBe(true);
      expect((await s.deposit({ ...r, id: randomBytes(16) }, limits)).status).toBe("duplicate");
      expect((await s.deposit(reuse, limits)).status).toBe("id-reused");
      expect(await s.stats()).toMatchObject({ messages: 1, bytes: 10 });
    });

    it("admits only deposits with the mailbox's deposit token once one is set, checked before a retry", async () => {
      const s = make();
      const a = address();
      const token = randomBytes(32);
      expect(await s.setDepositToken(a, token)).toBe(false);
      await s.createMailbox(a, randomBytes(32));
      const before = request(a);
      expect((await s.deposit({ ...before, tokenHash: randomBytes(32) }, limits)).status).toBe("stored");
      expect(await s.setDepositToken(a, token)).toBe(true);
      // A retry of what was stored before the token, without it: refused, not "duplicate".
      expect((await s.deposit(before, limits)).status).toBe("token");
      expect((await s.deposit({ ...request(a), tokenHash: randomBytes(32) }, limits)).status).toBe("token");
      const ok = { ...request(a), tokenHash: token };
      expect((await s.deposit(ok, limits)).status).toBe("stored");
      expect((await s.deposit(ok, limits)).status).toBe("duplicate");
      expect((await s.stats()).messages).toBe(2);
      // Replaced: the old hash no longer admits.
      const next = randomBytes(32);
      expect(await s.setDepositToken(a, next)).toBe(true);
      expect((await s.deposit({ ...request(a), tokenHash: token }, limits)).status).toBe("token");
      expect((await s.deposit({ ...request(a), tokenHash: next }, limits)).status).toBe("stored");
      // Another mailbox is not affected.
      const b = address();
      await s.createMailbox(b, randomBytes(32));
      expect((await s.deposit(request(b), limits)).status).toBe("stored");
    });

    it("keeps a deposit token across a repeated create, drops it with the mailbox, and refuses before the quota", async () => {
      const s = make();
      const a = address();
      const owner = randomBytes(32);
      const token = randomBytes(32);
      await s.createMailbox(a, owner);
      await s.setDepositToken(a, token);
      expect(await s.createMailbox(a, owner)).toBe("exists");
      expect((await s.deposit(request(a), limits)).status).toBe("token");
      // Full: a deposit without the token still hears AUTH ("token"), not how full the mailbox is.
      for (let i = 0; i < limits.maxMessages; i++)
        expect((await s.deposit({ ...request(a), tokenHash: token }, limits)).status).toBe("stored");
      expect((await s.deposit({ ...request(a), tokenHash: token }, limits)).status).toBe("quota");
      expect((await s.deposit(request(a), limits)).status).toBe("token");
      expect((await s.deposit({ ...request(a), tokenHash: randomBytes(32) }, limits)).status).toBe("token");
      // Deleted and created again: no token.
      expect(await s.deleteMailbox(a)).toBe(true);
      expect(await s.createMailbox(a, owner)).toBe("created");
      expect((await s.deposit(request(a), limits)).status).toBe("stored");
    });

    it("hides expired messages at once and sweeps them, forgetting their client ids", async () => {
      const s = make();
      const a = address();
      await s.createMailbox(a, randomBytes(32));
      const old = request(a, 10, 1000, 100);
      const fresh = request(a, 10, 1000, 10_000);
      await s.deposit(old, limits);
      await s.deposit(fresh, limits);
      expect((await s.pending(a, 1100, 10)).map((m) => Buffer.from(m.id).toString("hex"))).toEqual([
        Buffer.from(fresh.id).toString("hex"),
      ]);
      expect(await s.sweep(1100)).toBe(1);
      expect(await s.stats()).toMatchObject({ messages: 1, bytes: 10 });
      // The expired message's client id is forgotten with it; the fresh one's is not.
      expect((await s.deposit({ ...old, id: randomBytes(16), expiresAt: 50_000 }, limits)).status).toBe(
        "stored",
      );
      expect((await s.deposit({ ...fresh, id: randomBytes(16) }, limits)).status).toBe("duplicate");
    });

    it("reads past a full batch of expired messages to the live ones behind it", async () => {
      const s = make();
      const a = address();
      await s.createMailbox(a, randomBytes(32));
      const roomy = { maxMessages: 10, maxBytes: 1000 };
      for (let i = 0; i < 3; i++) await s.deposit(request(a, 10 + i, 1000, 100), roomy);
      const live = request(a, 20, 1000, 10_000);
      await s.deposit(live, roomy);
      // Each read of one finds an expired message: the loop goes on to the live one.
      const [m, ...rest] = await s.pending(a, 1100, 1);
      expect(rest).toEqual([]);
      expect(Buffer.from(m!.id).equals(live.id)).toBe(true);
      expect(await s.pending(a, 1100, 1, m!.seq)).toEqual([]);
      expect(await s.pending(a, 20_000, 1)).toEqual([]);
    });

    it("deletes a mailbox with its messages", async () => {
      const s = make();
      const a = address();
      await s.createMailbox(a, randomBytes(32));
      await s.deposit(request(a), limits);
      expect(await s.deleteMailbox(a)).toBe(true);
      expect(await s.deleteMailbox(a)).toBe(false);
      expect(await s.pending(a, 0, 10)).toEqual([]);
      expect(await s.stats()).toMatchObject({ mailboxes: 0, messages: 0, bytes: 0 });
    });

    it("takes concurrent deposits, each stored exactly once", async () => {
      const s = make();
      const a = address();
      await s.createMailbox(a, randomBytes(32));
      const many = { maxMessages: 10_000, maxBytes: 10_000_000 };
      const results = await Promise.all(Array.from({ length: 500 }, () => s.deposit(request(a, 50), many)));
      expect(results.every((r) => r.status === "stored")).toBe(true);
      expect(await s.stats()).toMatchObject({ messages: 500, bytes: 25_000 });
    });

    const blobSpec = (chunkCount: number, last: number, readers = 2, expiresAt = 10_000) => ({
      id: randomBytes(32),
      writeTokenHash: randomBytes(32),
      chunkCount,
      sealedSize: (chunkCount - 1) * 65552 + last,
      readTokenHashes: Array.from({ length: readers }, () => randomBytes(32)),
      expiresAt,
    });

    it("§14.2 blobs: created once (a retry is 'exists', another declaration 'conflict'), within the blob cap, chunks in order", async () => {
      const s = make();
      const b = blobSpec(2, 100);
      expect(await s.createBlob(b, 1_000_000)).toBe("created");
      expect(await s.createBlob({ ...b, readTokenHashes: [...b.readTokenHashes] }, 1_000_000)).toBe("exists");
      expect(await s.createBlob({ ...b, chunkCount: 3, sealedSize: b.sealedSize + 65552 }, 1_000_000)).toBe(
        "conflict",
      );
      expect(await s.createBlob(blobSpec(16, 16), 1_000_000)).toBe("blob-full"); // 65 652 + 983 296 > 10^6
      const [c0, c1] = [randomBytes(65552), randomBytes(100)];
      expect(await s.putChunk(b.id, 1, c1, 1000)).toEqual({ status: "ahead", next: 0 });
      // Concurrent puts of one index: stored once.
      const puts = await Promise.all([s.putChunk(b.id, 0, c0, 1000), s.putChunk(b.id, 0, c0, 1000)]);
      expect(puts.map((p) => p.status).sort()).toEqual(["retry", "stored"]);
      expect(await s.getChunk(b.id, 1, 1000)).toBeNull();
      expect(await s.putChunk(b.id, 1, c1, 1000)).toEqual({ status: "stored" });
      expect(Buffer.from((await s.getChunk(b.id, 0, 1000))!).equals(c0)).toBe(true);
      expect(Buffer.from((await s.getChunk(b.id, 1, 1000))!).equals(c1)).toBe(true);
      expect(await s.blob(b.id, 1000)).toMatchObject({ chunkCount: 2, written: 2, sealedSize: 65652 });
      expect(await s.stats()).toMatchObject({ blobs: 1, blobBytes: 65652, blobReservedBytes: 65652 });
      expect(await s.putChunk(randomBytes(32), 0, c0, 1000)).toEqual({ status: "unknown" });
    });

    it("§14.2 blobs: deleted when the last reader is done (concurrent dones: one deletes), by the uploader, or at expiry", async () => {
      const s = make();
      const b = blobSpec(1, 16, 3);
      await s.createBlob(b, 1_000_000);
      await s.putChunk(b.id, 0, randomBytes(16), 1000);
      expect(await s.blobDone(b.id, randomBytes(32), 1000)).toBe("auth");
      expect(await s.blobDone(b.id, b.readTokenHashes[0]!, 1000)).toBe("done");
      expect(await s.blobDone(b.id, b.readTokenHashes[0]!, 1000)).toBe("auth");
      const last = await Promise.all([
        s.blobDone(b.id, b.readTokenHashes[1]!, 1000),
        s.blobDone(b.id, b.readTokenHashes[2]!, 1000),
      ]);
      expect(last.sort()).toEqual(["deleted", "done"]);
      expect(await s.blob(b.id, 1000)).toBeNull();
      expect(await s.blobDone(b.id, b.readTokenHashes[1]!, 1000)).toBe("unknown");
      const w = blobSpec(1, 20);
      await s.createBlob(w, 1_000_000);
      expect(await s.deleteBlob(w.id)).toBe(true);
      expect(await s.deleteBlob(w.id)).toBe(false);
      const old = blobSpec(2, 20, 1, 5000);
      await s.createBlob(old, 1_000_000);
      await s.putChunk(old.id, 0, randomBytes(65552), 1000);
      expect(await s.blob(old.id, 4999)).not.toBeNull();
      // Hidden at its expiry, before any sweep; then swept.
      expect(await s.blob(old.id, 5000)).toBeNull();
      expect(await s.getChunk(old.id, 0, 5000)).toBeNull();
      expect(await s.putChunk(old.id, 1, randomBytes(20), 5000)).toEqual({ status: "unknown" });
      expect(await s.sweepBlobs(5000)).toBe(1);
      expect(await s.sweepBlobs(5000)).toBe(0);
      expect(await s.stats()).toMatchObject({ blobs: 0, blobBytes: 0, blobReservedBytes: 0 });
    });
  });
}

describe("SQLite group commit", () => {
  it("concurrent deposits share commits (and so fsyncs)", async () => {
    const dir = tempDir();
    const s = new SqliteStorage(dir);
    const a = address();
    await s.createMailbox(a, randomBytes(32));
    const before = s.commits;
    await Promise.all(
      Array.from({ length: 200 }, () => s.deposit(request(a, 50), { maxMessages: 1000, maxBytes: 1e6 })),
    );
    expect(s.commits - before).toBeLessThan(200);
    expect(s.commits - before).toBeGreaterThanOrEqual(1);
    await s.close();
  });

  it("keeps everything across a reopen", async () => {
    const dir = tempDir();
    const a = address();
    const first = new SqliteStorage(dir);
    await first.createMailbox(a, randomBytes(32));
    const r = request(a, 33);
    await first.deposit(r, limits);
    await first.close();
    const second = new SqliteStorage(dir);
    const [m] = await second.pending(a, 0, 10);
    expect(Buffer.from(m!.ciphertext).equals(r.ciphertext)).toBe(true);
    expect((await second.deposit({ ...r, id: randomBytes(16) }, limits)).status).toBe("duplicate");
    await second.close();
  });
});
