// A relay's blob store in memory, as PROTOCOL.md §14.2 describes it, for the file transfer's
// module tests: written in order with the write token, read with a read token, gone once every
// reader is done or it is withdrawn (then UNKNOWN_BLOB).
import { blobTokenHash, toHex } from "@parley/protocol";
import type { BlobInfo, BlobLink, NewBlob } from "../../src/core/blobs.js";
import { RelayRequestError } from "../../src/relay-connection.js";

interface Blob {
  writeHash: string;
  readers: Map<string, boolean>;
  chunkCount: number;
  chunks: Uint8Array[];
  expiresAt: number;
}

export class MemoryBlobs implements BlobLink {
  readonly blobs = new Map<string, Blob>();
  /** Every getChunk index asked for, in order. */
  readonly reads: number[] = [];

  private blob(id: Uint8Array): Blob {
    const b = this.blobs.get(toHex(id));
    if (!b) throw new RelayRequestError("UNKNOWN_BLOB", "no such blob");
    return b;
  }

  private reader(b: Blob, token: Uint8Array): void {
    if (b.readers.get(toHex(blobTokenHash(token))) !== false)
      throw new RelayRequestError("AUTH", "not a read token");
  }

  async createBlob(n: NewBlob): Promise<void> {
    const id = toHex(n.blobId);
    if (this.blobs.has(id)) return;
    this.blobs.set(id, {
      writeHash: toHex(blobTokenHash(n.writeToken)),
      readers: new Map(n.readTokens.map((t) => [toHex(blobTokenHash(t)), false])),
      chunkCount: n.chunkCount,
      chunks: [],
      expiresAt: Date.now() + 86_400_000,
    });
  }

  async putChunk(
    blobId: Uint8Array,
    writeToken: Uint8Array,
    index: number,
    sealed: Uint8Array,
  ): Promise<void> {
    const b = this.blob(blobId);
    if (toHex(blobTokenHash(writeToken)) !== b.writeHash)
      throw new RelayRequestError("AUTH", "not the write token");
    if (index < b.chunks.length) return;
    if (index > b.chunks.length) throw new RelayRequestError("BAD_FRAME", `next index is ${b.chunks.length}`);
    b.chunks.push(Uint8Array.from(sealed));
  }

  async blobStatus(blobId: Uint8Array, token: Uint8Array): Promise<BlobInfo> {
    const b = this.blob(blobId);
    const h = toHex(blobTokenHash(token));
    if (h !== b.writeHash && b.readers.get(h) !== false) throw new RelayRequestError("AUTH", "no such token");
    const readersLeft = [...b.readers.values()].filter((done) => !done).length;
    return { chunkCount: b.chunkCount, written: b.chunks.length, readersLeft, expiresAt: b.expiresAt };
  }

  async getChunk(blobId: Uint8Array, readToken: Uint8Array, index: number): Promise<Uint8Array> {
    const b = this.blob(blobId);
    this.reader(b, readToken);
    const c = b.chunks[index];
    if (!c) throw new RelayRequestError("UNKNOWN_MESSAGE", "not written yet");
    this.reads.push(index);
    return Uint8Array.from(c);
  }

  async blobDone(blobId: Uint8Array, readToken: Uint8Array): Promise<void> {
    const b = this.blob(blobId);
    this.reader(b, readToken);
    b.readers.set(toHex(blobTokenHash(readToken)), true);
    if ([...b.readers.values()].every((done) => done)) this.blobs.delete(toHex(blobId));
  }

  async deleteBlob(blobId: Uint8Array, writeToken: Uint8Array): Promise<void> {
    const b = this.blob(blobId);
    if (toHex(blobTokenHash(writeToken)) !== b.writeHash)
      throw new RelayRequestError("AUTH", "not the write token");
    this.blobs.delete(toHex(blobId));
  }
}
