// The SQLite storage's blobs (sqlite.ts; PROTOCOL.md §14.2): one row per blob in `blobs`, its chunks
// in `blob_chunks`, each sealed again under the blob's own key from the key file, so that erasing
// that one key makes every copy of its chunks unreadable, as for a message.
//
// Space. A blob reserves its whole declared size at creation (`reserved`, counted by `fits` as if
// written); each chunk moves its share from the reservation to the pages in use as it is written.
// Deleting a blob zeroes the pages of its chunks (secure_delete ON) and truncates the WAL after the
// batch, so that the chunks' bytes leave the data directory at once.
import type Database from "better-sqlite3";
import type { Logger } from "../log.js";
import { KEY_LENGTH, type KeyFile } from "./keyfile.js";
import { freshRandom, openMessage, SEAL_OVERHEAD, sealMessage } from "./sealed.js";
import type { Batch, GroupCommit } from "./sqlite-commit.js";
import {
  type BlobDoneResult,
  type BlobSpec,
  type BlobState,
  type BlobStorage,
  type CreateBlobResult,
  type PutChunkResult,
  sameBlob,
  sameHash,
} from "./types.js";

/** What a blob's row, and each of its chunks' rows and seals, may add beyond the sealed chunk bytes. */
const BLOB_ROW_BYTES = 512;
const CHUNK_ROW_BYTES = 128 + SEAL_OVERHEAD;
/** Expired blobs deleted per transaction by a sweep: each may hold many chunks. */
const SWEEP_BLOBS = 4;

/** Bytes a blob reserves in the database until its chunks are written. */
const blobReservation = (chunkCount: number, sealedSize: number) =>
  BLOB_ROW_BYTES + sealedSize + chunkCount * CHUNK_ROW_BYTES;

/** The associated data a stored chunk is sealed with: its blob id, and its index (u32 BE). */
function chunkAd(index: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(index);
  return b;
}

interface BlobRow {
  write_hash: Buffer;
  chunk_count: number;
  sealed_size: number;
  written: number;
  written_bytes: number;
  expires_at: number;
  readers: Buffer;
  done: Buffer;
  key_slot: number;
}

function blobState(r: BlobRow): BlobState {
  return {
    writeTokenHash: new Uint8Array(r.write_hash),
    chunkCount: r.chunk_count,
    sealedSize: r.sealed_size,
    written: r.written,
    expiresAt: r.expires_at,
    readers: Array.from({ length: r.done.length }, (_, i) => ({
      hash: new Uint8Array(r.readers.subarray(32 * i, 32 * i + 32)),
      done: r.done[i] === 1,
    })),
  };
}

/** The blob totals, as one row. */
export interface BlobTotals {
  readonly blobs: number;
  /** Declared sealed sizes. */
  readonly sealed: number;
  /** Sealed chunk bytes written. */
  readonly bytes: number;
  /** Chunks not yet written. */
  readonly unwritten: number;
}

export interface SqliteBlobsOptions {
  readonly db: Database.Database;
  readonly keys: KeyFile;
  readonly commit: GroupCommit;
  /** Whether `growth` more bytes keep the data directory within --max-storage (sqlite.ts). */
  readonly fits: (batch: Batch, growth: number) => boolean;
  /** After a sweep deleted blobs: the key file and the database give space back. */
  readonly shrink: () => void;
  readonly log: Logger | undefined;
}

export class SqliteBlobs implements BlobStorage {
  /** Declared sealed sizes of every blob (--max-blob-storage bounds it), and what they still reserve. */
  private sealed = 0;
  private reservedBytes = 0;
  /** A blob was deleted: checkpoint and truncate the WAL after the batch (see `committed`). */
  private deleted = false;
  private readonly q;

  constructor(private readonly o: SqliteBlobsOptions) {
    const db = o.db;
    this.q = {
      blob: db.prepare(
        "SELECT write_hash, chunk_count, sealed_size, written, written_bytes, expires_at, readers, done, key_slot FROM blobs WHERE id = ?",
      ),
      insertBlob: db.prepare(
        "INSERT INTO blobs (id, write_hash, chunk_count, sealed_size, expires_at, readers, done, key_slot) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      ),
      insertChunk: db.prepare("INSERT INTO blob_chunks (blob, idx, sealed) VALUES (?, ?, ?)"),
      advance: db.prepare(
        "UPDATE blobs SET written = written + 1, written_bytes = written_bytes + ? WHERE id = ?",
      ),
      chunk: db.prepare("SELECT sealed FROM blob_chunks WHERE blob = ? AND idx = ?").pluck(),
      setDone: db.prepare("UPDATE blobs SET done = ? WHERE id = ?"),
      deleteBlob: db.prepare("DELETE FROM blobs WHERE id = ?"),
      deleteChunks: db.prepare("DELETE FROM blob_chunks WHERE blob = ?"),
      expiredBlobs: db.prepare("SELECT id FROM blobs WHERE expires_at <= ? LIMIT ?").pluck(),
      totals: db.prepare(
        "SELECT count(*) AS blobs, coalesce(sum(sealed_size), 0) AS sealed, coalesce(sum(written_bytes), 0) AS bytes, coalesce(sum(chunk_count - written), 0) AS unwritten FROM blobs",
      ),
    };
    this.count();
  }

  /** What the blobs reserve beyond their rows until their chunks are written (counted by `fits`). */
  get reserved(): number {
    return this.reservedBytes;
  }

  totals(): BlobTotals {
    return this.q.totals.get() as BlobTotals;
  }

  /** A transaction failed: the totals are read again. */
  rolledBack(): void {
    this.count();
    this.deleted = false;
  }

  /**
   * After a batch that deleted blobs, and before it is answered: the WAL is checkpointed and
   * truncated, so that the frames that held their chunks (and the pages secure_delete zeroed in the
   * database file) leave the data directory now rather than when the WAL next wraps. The chunks were
   * sealed under the blob's key, which the batch erased already: this makes their bytes go too.
   */
  committed(): void {
    if (!this.deleted) return;
    this.deleted = false;
    try {
      this.o.db.pragma("wal_checkpoint(TRUNCATE)");
    } catch (e) {
      this.o.log?.warn({ err: (e as Error).message }, "checkpoint after a blob deletion failed");
    }
  }

  /** Reads the blob totals again (at start, and after a failed transaction). */
  private count(): void {
    const t = this.totals();
    this.sealed = t.sealed;
    // What is not yet written stays reserved: the declared size less the bytes stored, and the rows.
    this.reservedBytes = t.sealed - t.bytes + t.unwritten * CHUNK_ROW_BYTES;
  }

  createBlob(spec: BlobSpec, maxBlobBytes: number): Promise<CreateBlobResult> {
    return this.o.commit.write((batch): CreateBlobResult => {
      const row = this.q.blob.get(spec.id) as BlobRow | undefined;
      if (row) return sameBlob(blobState(row), spec) ? "exists" : "conflict";
      if (this.sealed + spec.sealedSize > maxBlobBytes) return "blob-full";
      const reservation = blobReservation(spec.chunkCount, spec.sealedSize);
      if (batch.refuseNew || !this.o.fits(batch, reservation)) return "full";
      // fits() counted the reservation as pages in use: all but the blob's row is carried by
      // `reserved` instead, until its chunks are written.
      batch.inUse = (batch.inUse ?? 0) - (reservation - BLOB_ROW_BYTES);
      const slot = this.o.keys.allocate();
      batch.newSlots.push(slot);
      const key = freshRandom(KEY_LENGTH);
      this.o.keys.write(slot, key);
      key.fill(0);
      this.q.insertBlob.run(
        spec.id,
        spec.writeTokenHash,
        spec.chunkCount,
        spec.sealedSize,
        spec.expiresAt,
        Buffer.concat(spec.readTokenHashes),
        Buffer.alloc(spec.readTokenHashes.length),
        slot,
      );
      this.sealed += spec.sealedSize;
      this.reservedBytes += reservation - BLOB_ROW_BYTES;
      return "created";
    });
  }

  async blob(id: Uint8Array, now: number): Promise<BlobState | null> {
    const row = this.q.blob.get(id) as BlobRow | undefined;
    return row && row.expires_at > now ? blobState(row) : null;
  }

  putChunk(id: Uint8Array, index: number, sealedChunk: Uint8Array, now: number): Promise<PutChunkResult> {
    return this.o.commit.write((batch): PutChunkResult => {
      const row = this.q.blob.get(id) as BlobRow | undefined;
      if (!row || row.expires_at <= now) return { status: "unknown" };
      if (index < row.written) return { status: "retry" };
      if (index > row.written) return { status: "ahead", next: row.written };
      const key = this.o.keys.read(row.key_slot);
      let sealed: Buffer;
      try {
        sealed = sealMessage(key, id, chunkAd(index), sealedChunk);
      } finally {
        key.fill(0);
      }
      this.q.insertChunk.run(id, index, sealed);
      this.q.advance.run(sealedChunk.length, id);
      // Reserved at creation: it moves from the reservation to the pages in use.
      const growth = sealedChunk.length + CHUNK_ROW_BYTES;
      this.reservedBytes -= growth;
      if (batch.inUse !== null) batch.inUse += growth;
      return { status: "stored" };
    }, sealedChunk.length);
  }

  async getChunk(id: Uint8Array, index: number, now: number): Promise<Uint8Array | null> {
    const row = this.q.blob.get(id) as BlobRow | undefined;
    if (!row || row.expires_at <= now || index >= row.written) return null;
    const sealed = this.q.chunk.get(id, index) as Buffer | undefined;
    if (!sealed) return null;
    const key = this.o.keys.read(row.key_slot);
    try {
      return openMessage(key, id, chunkAd(index), sealed);
    } finally {
      key.fill(0);
    }
  }

  blobDone(id: Uint8Array, readTokenHash: Uint8Array, now: number): Promise<BlobDoneResult> {
    return this.o.commit.write((batch): BlobDoneResult => {
      const row = this.q.blob.get(id) as BlobRow | undefined;
      if (!row || row.expires_at <= now) return "unknown";
      const state = blobState(row);
      const i = state.readers.findIndex((r) => !r.done && sameHash(r.hash, readTokenHash));
      if (i < 0) return "auth";
      const done = Buffer.from(row.done);
      done[i] = 1;
      if (done.includes(0)) {
        this.q.setDone.run(done, id);
        return "done";
      }
      this.drop(batch, id, row);
      return "deleted";
    });
  }

  deleteBlob(id: Uint8Array): Promise<boolean> {
    return this.o.commit.write((batch) => {
      const row = this.q.blob.get(id) as BlobRow | undefined;
      if (!row) return false;
      this.drop(batch, id, row);
      return true;
    });
  }

  async sweepBlobs(now: number): Promise<number> {
    let deleted = 0;
    // A few blobs per transaction: each may hold many chunks.
    for (;;) {
      const n = await this.o.commit.write((batch) => {
        const ids = this.q.expiredBlobs.all(now, SWEEP_BLOBS) as Buffer[];
        for (const id of ids) this.drop(batch, id, this.q.blob.get(id) as BlobRow);
        return ids.length;
      });
      deleted += n;
      if (n < SWEEP_BLOBS) break;
    }
    if (deleted > 0) this.o.shrink();
    return deleted;
  }

  /**
   * Deletes a blob and its chunks in the batch's transaction, with secure_delete ON (not FAST) for
   * the chunks, so that SQLite zeroes the overflow pages that held them as it frees them; their key
   * is erased after the commit, and the WAL truncated (`committed`).
   */
  private drop(batch: Batch, id: Uint8Array, row: BlobRow): void {
    this.o.db.pragma("secure_delete = ON");
    try {
      this.q.deleteChunks.run(id);
      this.q.deleteBlob.run(id);
    } finally {
      this.o.db.pragma("secure_delete = FAST");
    }
    batch.freedSlots.push(row.key_slot);
    this.sealed -= row.sealed_size;
    this.reservedBytes -=
      row.sealed_size - row.written_bytes + (row.chunk_count - row.written) * CHUNK_ROW_BYTES;
    this.deleted = true;
  }
}
