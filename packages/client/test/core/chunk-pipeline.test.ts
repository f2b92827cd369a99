// The upload's chunk pipeline (core/chunk-pipeline.ts) against a blob store that keeps the relay's
// rules (PROTOCOL.md §14.2: a chunk is stored only when it is the next one) and answers a turn of
// the event loop later, as a relay over a connection does: several chunks in flight, never more
// than UPLOAD_IN_FLIGHT; a relay pacing the upload (RATE_LIMITED) refuses the chunks sent behind
// the refused one too, and the upload goes on from it; any other refusal ends it.
import { randomBytes } from "node:crypto";
import { toHex } from "@parley/protocol";
import { describe, expect, it } from "vitest";
import { putChunks, UPLOAD_IN_FLIGHT } from "../../src/core/chunk-pipeline.js";
import { RelayRequestError } from "../../src/relay-connection.js";
import { MemoryBlobs } from "./memory-blobs.js";

/** MemoryBlobs answering each putChunk on a later turn, counting what is in flight. */
class SlowBlobs extends MemoryBlobs {
  inFlight = 0;
  mostInFlight = 0;
  /** Indexes as the puts arrived, and a refusal to make of the next put of some index. */
  readonly arrived: number[] = [];
  readonly refuse = new Map<number, RelayRequestError>();

  override async putChunk(
    blobId: Uint8Array,
    writeToken: Uint8Array,
    index: number,
    sealed: Uint8Array,
  ): Promise<void> {
    this.arrived.push(index);
    this.mostInFlight = Math.max(this.mostInFlight, ++this.inFlight);
    try {
      await new Promise((r) => setImmediate(r));
      const refusal = this.refuse.get(index);
      if (refusal) {
        this.refuse.delete(index);
        throw refusal;
      }
      return await super.putChunk(blobId, writeToken, index, sealed);
    } finally {
      this.inFlight--;
    }
  }
}

async function setup(count: number) {
  const blobs = new SlowBlobs();
  const blobId = randomBytes(32);
  const writeToken = randomBytes(32);
  await blobs.createBlob({ blobId, writeToken, chunkCount: count, sealedSize: count, readTokens: [] });
  const chunks = Array.from({ length: count }, () => randomBytes(32));
  const sealedAsked: number[] = [];
  const stored: number[] = [];
  const write = (from = 0) =>
    putChunks({
      link: blobs,
      blobId,
      writeToken,
      from,
      count,
      seal: async (i) => {
        sealedAsked.push(i);
        return chunks[i]!;
      },
      stored: (next) => stored.push(next),
    });
  const onRelay = () => blobs.blobs.get(toHex(blobId))!.chunks.map((c) => Buffer.from(c));
  return { blobs, blobId, writeToken, chunks, sealedAsked, stored, write, onRelay };
}

describe("the upload's chunk pipeline (§14.2)", () => {
  it("keeps several chunks in flight, at most UPLOAD_IN_FLIGHT, and the relay gets every chunk in order", async () => {
    const s = await setup(100);
    await s.write();
    expect(s.onRelay()).toEqual(s.chunks);
    expect(s.blobs.arrived).toEqual(s.chunks.map((_, i) => i));
    expect(s.blobs.mostInFlight).toBeGreaterThan(1);
    expect(s.blobs.mostInFlight).toBeLessThanOrEqual(UPLOAD_IN_FLIGHT);
    // Each answer in order: chunks 0 … n-1 stored, for n = 1 … 100.
    expect(s.stored).toEqual(s.chunks.map((_, i) => i + 1));
  });

  it("starts from the relay's count when resuming", async () => {
    const s = await setup(30);
    for (let i = 0; i < 12; i++) await s.blobs.putChunk(s.blobId, s.writeToken, i, s.chunks[i]!);
    await s.write(12);
    expect(s.onRelay()).toEqual(s.chunks);
    expect(s.sealedAsked[0]).toBe(12);
    expect(s.stored[0]).toBe(13);
  });

  it("RATE_LIMITED: the chunks behind the refused one are refused as ahead, and the upload goes on from it", async () => {
    const s = await setup(60);
    s.blobs.refuse.set(
      7,
      new RelayRequestError("RATE_LIMITED", "uploading faster than this relay's upload rate"),
    );
    s.blobs.refuse.set(
      40,
      new RelayRequestError("RATE_LIMITED", "uploading faster than this relay's upload rate"),
    );
    await s.write();
    expect(s.onRelay()).toEqual(s.chunks);
    // Chunk 7 and 40 were sealed and sent twice; what was stored only ever grew.
    expect(s.sealedAsked.filter((i) => i === 7)).toHaveLength(2);
    expect(s.sealedAsked.filter((i) => i === 40)).toHaveLength(2);
    expect(s.stored).toEqual([...s.stored].sort((a, b) => a - b));
    expect(s.stored.at(-1)).toBe(60);
  });

  it("any other refusal ends the upload, once the chunks in flight are answered", async () => {
    const s = await setup(40);
    const refusal = new RelayRequestError("QUOTA", "the relay's storage is full for now; try again later");
    s.blobs.refuse.set(20, refusal);
    await expect(s.write()).rejects.toBe(refusal);
    expect(s.blobs.inFlight).toBe(0);
    expect(s.onRelay()).toEqual(s.chunks.slice(0, 20));
    expect(s.stored.at(-1)).toBe(20);
  });
});
