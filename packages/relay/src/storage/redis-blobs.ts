// The Redis storage's blobs (redis.ts; PROTOCOL.md §14.2): a hash per blob and a string per chunk,
// each chunk set to expire with its blob, so that its bytes go at the blob's expiry even if no relay
// sweeps. Changes run as scripts (redis-scripts.ts), so that the caps hold across relays.
import { toHex } from "@parley/protocol";
import type { RedisClient } from "./redis-client.js";
import type {
  BlobDoneResult,
  BlobSpec,
  BlobState,
  BlobStorage,
  CreateBlobResult,
  PutChunkResult,
} from "./types.js";

/** Expired blobs deleted per script call by a sweep. */
const SWEEP_BLOBS = 8;

export interface RedisBlobsOptions {
  readonly client: RedisClient;
  /** Every key starts with this (redis.ts). */
  readonly prefix: string;
  /** The totals' key (`P stats`). */
  readonly stats: string;
  /** --max-storage, as resolved. */
  readonly maxBytes: number;
}

export class RedisBlobs implements BlobStorage {
  private readonly client: RedisClient;

  constructor(private readonly o: RedisBlobsOptions) {
    this.client = o.client;
  }

  private keys(id: Uint8Array | string) {
    const hex = typeof id === "string" ? id : toHex(id);
    const p = this.o.prefix;
    return { hex, blob: `${p}blob:${hex}`, chunks: `${p}chunk:${hex}:`, blobs: `${p}blobs` };
  }

  async createBlob(spec: BlobSpec, maxBlobBytes: number): Promise<CreateBlobResult> {
    const k = this.keys(spec.id);
    const result = await this.client.script(
      "parleyCreateBlob",
      [k.blob, k.blobs, this.o.stats],
      [
        Buffer.from(spec.writeTokenHash),
        spec.chunkCount,
        spec.sealedSize,
        spec.expiresAt,
        Buffer.concat(spec.readTokenHashes),
        maxBlobBytes,
        this.o.maxBytes,
        k.hex,
      ],
    );
    return result as CreateBlobResult;
  }

  async blob(id: Uint8Array, now: number): Promise<BlobState | null> {
    const [write, count, size, written, expires, readers, done] = await this.client.run("HMGET", () =>
      this.client.redis.hmgetBuffer(
        this.keys(id).blob,
        "write",
        "count",
        "size",
        "written",
        "expires",
        "readers",
        "done",
      ),
    );
    if (!write || !count || !size || !written || !expires || !readers || !done) return null;
    const expiresAt = Number(expires.toString());
    if (expiresAt <= now) return null;
    return {
      writeTokenHash: new Uint8Array(write),
      chunkCount: Number(count.toString()),
      sealedSize: Number(size.toString()),
      written: Number(written.toString()),
      expiresAt,
      readers: Array.from({ length: done.length }, (_, i) => ({
        hash: new Uint8Array(readers.subarray(32 * i, 32 * i + 32)),
        done: done[i] === 1,
      })),
    };
  }

  async putChunk(
    id: Uint8Array,
    index: number,
    sealedChunk: Uint8Array,
    now: number,
  ): Promise<PutChunkResult> {
    const k = this.keys(id);
    const [status, next] = (await this.client.script(
      "parleyPutChunk",
      [k.blob, `${k.chunks}${index}`, this.o.stats],
      [index, sealedChunk, now],
    )) as [string, number?];
    if (status === "ahead") return { status, next: Number(next) };
    return { status: status as "stored" | "retry" | "unknown" };
  }

  async getChunk(id: Uint8Array, index: number, now: number): Promise<Uint8Array | null> {
    const blob = await this.blob(id, now);
    if (!blob || index >= blob.written) return null;
    const chunk = await this.client.run("GET", () =>
      this.client.redis.getBuffer(`${this.keys(id).chunks}${index}`),
    );
    return chunk ? new Uint8Array(chunk) : null;
  }

  async blobDone(id: Uint8Array, readTokenHash: Uint8Array, now: number): Promise<BlobDoneResult> {
    const k = this.keys(id);
    return (await this.client.script(
      "parleyBlobDone",
      [k.blob, k.blobs, this.o.stats],
      [Buffer.from(readTokenHash), now, k.hex, k.chunks],
    )) as BlobDoneResult;
  }

  async deleteBlob(id: Uint8Array): Promise<boolean> {
    const k = this.keys(id);
    return (
      (await this.client.script("parleyDeleteBlob", [k.blob, k.blobs, this.o.stats], [k.hex, k.chunks])) === 1
    );
  }

  async sweepBlobs(now: number): Promise<number> {
    let deleted = 0;
    for (;;) {
      const n = Number(
        await this.client.script(
          "parleySweepBlobs",
          [`${this.o.prefix}blobs`, this.o.stats],
          [now, SWEEP_BLOBS, this.o.prefix],
        ),
      );
      deleted += n;
      if (n < SWEEP_BLOBS) return deleted;
    }
  }
}
