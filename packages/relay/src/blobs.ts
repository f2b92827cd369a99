// The relay's half of file transfer (PROTOCOL.md §14.2): blobs of sealed chunks under random ids,
// written with a write token and read with one read token per recipient, of which the storage keeps
// only hashes. A blob is deleted when its last reader says it is done, when its uploader withdraws
// it, or at its expiry (retention from its creation), whichever comes first.
//
// Pacing. A putChunk or getChunk does not take a frame token (--rate-limit): at the default 200
// frames/s that would be 12.5 MiB/s, but an operator who sets --rate-limit 5 would make a 100 MiB
// file take over five minutes, and a chunk is 1600 frames' worth of a message anyway. Uploads are
// paced in bytes instead (--upload-rate, bursts of UPLOAD_BURST_BYTES), and downloads by the
// connection's send queue (--max-outstanding-bytes: the relay stops reading a connection whose
// answers are not being taken). A blob frame refused before any work (UNKNOWN_BLOB, AUTH, BAD_FRAME)
// takes a frame token after all, so that guessing at blobs is as slow as any other flood.
//
// Memory. A connection has at most MAX_BLOB_REQUESTS blob requests under way (each may hold a
// chunk of 64 KiB while the storage answers); one beyond is answered RATE_LIMITED at once, before
// any work, so that what a connection can make the relay hold for files stays near 4 MiB however
// fast it sends (the chunks themselves go to storage one at a time, never gathered in memory).
//
// Order. The putChunk frames of a connection reach storage.putChunk in the order they arrived
// (§14.2 MUST): each passes the same awaits on its way there, and every storage queues its writes
// in call order. Clients pipeline uploads on it; the blobs test checks it in each storage.
//
// Never logged: blob ids, tokens, sizes.
import { blobTokenHash, type Frame, type RelayErrorName, sealedChunkLength } from "@parley/protocol";
import { UPLOAD_BURST_BYTES } from "./config.js";
import type { RelayMetrics } from "./metrics.js";
import { type BlobState, type Storage, sameHash } from "./storage/types.js";

type BlobFrame = Extract<
  Frame,
  { type: "createBlob" | "putChunk" | "blobStatus" | "getChunk" | "blobDone" | "deleteBlob" }
>;
const BLOB_FRAMES = new Set<Frame["type"]>([
  "createBlob",
  "putChunk",
  "blobStatus",
  "getChunk",
  "blobDone",
  "deleteBlob",
]);
export const isBlobFrame = (f: Frame): f is BlobFrame => BLOB_FRAMES.has(f.type);

/** Frame type bytes (§8.2) of the frames paced by bytes rather than by --rate-limit. */
export const PUT_CHUNK_TYPE = 0x0b;
export const GET_CHUNK_TYPE = 0x0d;

/** A token bucket counted in bytes: `rate` per second, holding at most `burst`. */
export class ByteBucket {
  private tokens: number;
  private last = performance.now();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  take(bytes: number): boolean {
    const t = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    if (this.tokens < bytes) return false;
    this.tokens -= bytes;
    return true;
  }
}

/** Blob requests one connection may have under way at once (see the header). */
export const MAX_BLOB_REQUESTS = 64;

/** What the blob service needs of a connection. */
export interface BlobConnection {
  readonly upload: ByteBucket;
  /** Blob requests under way. */
  blobRequests: number;
}

export interface BlobServiceOptions<C extends BlobConnection> {
  readonly storage: Storage;
  readonly metrics: RelayMetrics;
  /** The largest sealedSize (--max-blob-bytes). */
  readonly maxBlobBytes: number;
  /** All blobs together (--max-blob-storage, resolved). */
  readonly maxBlobStorageBytes: number;
  readonly retentionSeconds: number;
  readonly now: () => number;
  readonly send: (conn: C, frame: Frame) => void;
  readonly error: (conn: C, requestId: number, code: RelayErrorName, message: string) => void;
  /** Takes a frame token (--rate-limit); false: none left. */
  readonly takeFrameToken: (conn: C) => boolean;
}

export const uploadBucket = (bytesPerSecond: number) => new ByteBucket(bytesPerSecond, UPLOAD_BURST_BYTES);

export class BlobService<C extends BlobConnection> {
  constructor(private readonly o: BlobServiceOptions<C>) {}

  async handle(conn: C, f: BlobFrame): Promise<void> {
    // Checked before the first await, so that a flood is refused as it arrives.
    if (conn.blobRequests >= MAX_BLOB_REQUESTS) {
      return this.o.error(
        conn,
        f.requestId,
        "RATE_LIMITED",
        `more than ${MAX_BLOB_REQUESTS} file requests under way; wait for their answers`,
      );
    }
    conn.blobRequests++;
    try {
      await this.serve(conn, f);
    } finally {
      conn.blobRequests--;
    }
  }

  private async serve(conn: C, f: BlobFrame): Promise<void> {
    switch (f.type) {
      case "createBlob":
        return this.create(conn, f);
      case "putChunk":
        return this.put(conn, f);
      case "blobStatus":
        return this.status(conn, f);
      case "getChunk":
        return this.get(conn, f);
      case "blobDone":
        return this.done(conn, f);
      case "deleteBlob":
        return this.remove(conn, f);
    }
  }

  private ok(conn: C, requestId: number): void {
    this.o.send(conn, { type: "ok", requestId });
  }

  /**
   * Answers a putChunk or getChunk refused before any work: with `code`, or RATE_LIMITED when the
   * connection has no frame token left for it (see the header).
   */
  private refuse(conn: C, requestId: number, code: RelayErrorName, message: string, paced: boolean): void {
    if (paced && !this.o.takeFrameToken(conn)) {
      this.o.error(conn, requestId, "RATE_LIMITED", "too many frames; slow down");
      return;
    }
    this.o.error(conn, requestId, code, message);
  }

  /** The live blob, or null after answering UNKNOWN_BLOB. */
  private async find(conn: C, requestId: number, id: Uint8Array, paced = false): Promise<BlobState | null> {
    const blob = await this.o.storage.blob(id, this.o.now());
    if (!blob) this.refuse(conn, requestId, "UNKNOWN_BLOB", "no such blob", paced);
    return blob;
  }

  private async create(conn: C, f: Extract<BlobFrame, { type: "createBlob" }>): Promise<void> {
    if (f.sealedSize > this.o.maxBlobBytes) {
      return this.o.error(
        conn,
        f.requestId,
        "TOO_LARGE",
        `a file of ${f.sealedSize} sealed bytes is above this relay's limit of ${this.o.maxBlobBytes}`,
      );
    }
    const result = await this.o.storage.createBlob(
      {
        id: f.blobId,
        writeTokenHash: f.writeTokenHash,
        chunkCount: f.chunkCount,
        sealedSize: f.sealedSize,
        readTokenHashes: f.readTokenHashes,
        expiresAt: this.o.now() + this.o.retentionSeconds * 1000,
      },
      this.o.maxBlobStorageBytes,
    );
    switch (result) {
      case "created":
        this.o.metrics.blobsCreated.inc();
        return this.ok(conn, f.requestId);
      case "exists":
        return this.ok(conn, f.requestId);
      case "conflict":
        return this.o.error(conn, f.requestId, "AUTH", "this blob id is taken by another blob");
      case "blob-full":
        return this.o.error(
          conn,
          f.requestId,
          "QUOTA",
          "the relay's space for files is full for now; try again later",
        );
      case "full":
        return this.o.error(
          conn,
          f.requestId,
          "QUOTA",
          "the relay's storage is full for now; try again later",
        );
    }
  }

  private async put(conn: C, f: Extract<BlobFrame, { type: "putChunk" }>): Promise<void> {
    const blob = await this.find(conn, f.requestId, f.blobId, true);
    if (!blob) return;
    if (!sameHash(blobTokenHash(f.writeToken), blob.writeTokenHash)) {
      return this.refuse(conn, f.requestId, "AUTH", "not this blob's write token", true);
    }
    if (!conn.upload.take(f.sealedChunk.length)) {
      this.o.metrics.uploadsThrottled.inc();
      return this.o.error(
        conn,
        f.requestId,
        "RATE_LIMITED",
        "uploading faster than this relay's upload rate",
      );
    }
    if (f.index >= blob.chunkCount) {
      return this.refuse(
        conn,
        f.requestId,
        "BAD_FRAME",
        `chunk ${f.index} of a blob of ${blob.chunkCount} chunks`,
        true,
      );
    }
    const length = sealedChunkLength(blob.chunkCount, blob.sealedSize, f.index);
    if (f.sealedChunk.length !== length) {
      return this.refuse(
        conn,
        f.requestId,
        "BAD_FRAME",
        `chunk ${f.index} must be ${length} sealed bytes, not ${f.sealedChunk.length}`,
        true,
      );
    }
    const result = await this.o.storage.putChunk(f.blobId, f.index, f.sealedChunk, this.o.now());
    switch (result.status) {
      case "stored":
        this.o.metrics.blobBytesIn.inc(f.sealedChunk.length);
        return this.ok(conn, f.requestId);
      case "retry":
        return this.ok(conn, f.requestId);
      case "ahead":
        return this.o.error(
          conn,
          f.requestId,
          "BAD_FRAME",
          `chunks are written in order: the next is ${result.next}, not ${f.index}`,
        );
      case "unknown":
        return this.o.error(conn, f.requestId, "UNKNOWN_BLOB", "no such blob");
    }
  }

  private async status(conn: C, f: Extract<BlobFrame, { type: "blobStatus" }>): Promise<void> {
    const blob = await this.find(conn, f.requestId, f.blobId);
    if (!blob) return;
    const hash = blobTokenHash(f.token);
    // Every comparison is made, so that the time taken does not tell which token matched.
    let allowed = sameHash(hash, blob.writeTokenHash);
    for (const r of blob.readers) allowed = (sameHash(hash, r.hash) && !r.done) || allowed;
    if (!allowed)
      return this.o.error(conn, f.requestId, "AUTH", "neither the write token nor a read token still open");
    this.o.send(conn, {
      type: "blobInfo",
      requestId: f.requestId,
      chunkCount: blob.chunkCount,
      written: blob.written,
      readersLeft: blob.readers.filter((r) => !r.done).length,
      expiresAt: blob.expiresAt,
    });
  }

  private async get(conn: C, f: Extract<BlobFrame, { type: "getChunk" }>): Promise<void> {
    const blob = await this.find(conn, f.requestId, f.blobId, true);
    if (!blob) return;
    const hash = blobTokenHash(f.readToken);
    let allowed = false;
    for (const r of blob.readers) allowed = (sameHash(hash, r.hash) && !r.done) || allowed;
    if (!allowed) return this.refuse(conn, f.requestId, "AUTH", "not an open read token of this blob", true);
    if (f.index >= blob.chunkCount) {
      return this.refuse(
        conn,
        f.requestId,
        "BAD_FRAME",
        `chunk ${f.index} of a blob of ${blob.chunkCount} chunks`,
        true,
      );
    }
    if (f.index >= blob.written) {
      return this.refuse(
        conn,
        f.requestId,
        "UNKNOWN_MESSAGE",
        `chunk ${f.index} is not written yet (${blob.written} are)`,
        true,
      );
    }
    const chunk = await this.o.storage.getChunk(f.blobId, f.index, this.o.now());
    if (!chunk) return this.o.error(conn, f.requestId, "UNKNOWN_BLOB", "no such blob");
    this.o.metrics.blobBytesOut.inc(chunk.length);
    this.o.send(conn, { type: "chunk", requestId: f.requestId, index: f.index, sealedChunk: chunk });
  }

  private async done(conn: C, f: Extract<BlobFrame, { type: "blobDone" }>): Promise<void> {
    const result = await this.o.storage.blobDone(f.blobId, blobTokenHash(f.readToken), this.o.now());
    switch (result) {
      case "deleted":
        this.o.metrics.blobsCompleted.inc();
        return this.ok(conn, f.requestId);
      case "done":
        return this.ok(conn, f.requestId);
      case "auth":
        return this.o.error(conn, f.requestId, "AUTH", "not an open read token of this blob");
      case "unknown":
        return this.o.error(conn, f.requestId, "UNKNOWN_BLOB", "no such blob");
    }
  }

  private async remove(conn: C, f: Extract<BlobFrame, { type: "deleteBlob" }>): Promise<void> {
    const blob = await this.find(conn, f.requestId, f.blobId);
    if (!blob) return;
    if (!sameHash(blobTokenHash(f.writeToken), blob.writeTokenHash))
      return this.o.error(conn, f.requestId, "AUTH", "not this blob's write token");
    if (!(await this.o.storage.deleteBlob(f.blobId)))
      return this.o.error(conn, f.requestId, "UNKNOWN_BLOB", "no such blob");
    this.o.metrics.blobsWithdrawn.inc();
    this.ok(conn, f.requestId);
  }

  /** Deletes expired blobs (with the message sweep); returns how many. */
  async sweep(): Promise<number> {
    const n = await this.o.storage.sweepBlobs(this.o.now());
    if (n > 0) this.o.metrics.blobExpirations.inc(n);
    return n;
  }
}
