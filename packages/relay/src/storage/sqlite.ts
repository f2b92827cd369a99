// SQLite storage through better-sqlite3: WAL, synchronous=FULL, group commit, and every ciphertext
// sealed under a key of its own that is erased when the message is deleted (crypto-shredding).
//
// better-sqlite3 is synchronous, so every write goes through one queue that is flushed as a single
// transaction a millisecond after its first write: deposits that arrive meanwhile, or while a commit
// (and its fsync) runs, share the next commit. A promise resolves only after its transaction committed.
//
// Forgetting. SQLite cannot promise that a deleted row leaves no copy: the WAL keeps the frames that
// wrote it until they are overwritten, free pages and the unused space of live pages can keep old
// bytes (secure_delete does not cover a cell that SQLite moved within a page). So the database only
// ever holds sealed ciphertext (sealed.ts), and each message's key lives in one slot of a separate
// file (keyfile.ts). Each batch: the new keys are written and fsynced before the transaction
// commits (an acknowledged deposit survives a crash with its key); the slots of the messages the
// batch deleted are overwritten with zeros and fsynced after it commits and before any ack of the
// batch is answered. A crash between the two leaves keys no message refers to: the next start
// erases them before serving.
//
// Space. The data directory's files (database, WAL, key file, reserve) never take more than
// `maxBytes` (--max-storage): a deposit or a new mailbox that would pass it is refused ("full"),
// as is anything new while the file system has less than twice the WAL allowance free. Deleting
// always works: a reserve file (reserve.ts) is given back to the file system when it runs short,
// so that acks, the sweep, the checkpoints and a shutdown have room, on a disk that something else
// filled, and on a restart on a full disk too.
import { statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { MIN_MAX_STORAGE_BYTES } from "../config.js";
import type { Logger } from "../log.js";
import { createPrivateFile, freeBytes, makePrivateDir } from "./datadir.js";
import { KEY_LENGTH, KeyFile } from "./keyfile.js";
import { Reserve } from "./reserve.js";
import { freshRandom, openMessage, SEAL_OVERHEAD, sealMessage } from "./sealed.js";
import {
  type BlobDoneResult,
  type BlobSpec,
  type BlobState,
  type CreateBlobResult,
  type CreateResult,
  type DepositRequest,
  type DepositResult,
  defaultMaxMailboxes,
  depositDigest,
  type MailboxLimits,
  type PutChunkResult,
  type Storage,
  type StorageCapacity,
  type StorageStats,
  StorageUnavailableError,
  type StoredMessage,
  sameBlob,
  sameHash,
  tokenAdmits,
} from "./types.js";

/**
 * Totals over every mailbox in one row, kept by triggers in the transaction of each change, so that
 * stats() reads one row however many mailboxes there are. A database from before them gets its
 * totals counted once, the first time it is opened (a crash between the two leaves no row, and the
 * next start counts again: the triggers change nothing while the row is missing).
 */
const TOTALS = `
CREATE TABLE IF NOT EXISTS totals (
  id INTEGER PRIMARY KEY CHECK (id = 0),
  mailboxes INTEGER NOT NULL,
  messages INTEGER NOT NULL,
  bytes INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS totals_insert AFTER INSERT ON mailboxes BEGIN
  UPDATE totals SET mailboxes = mailboxes + 1, messages = messages + NEW.message_count,
    bytes = bytes + NEW.byte_count;
END;
CREATE TRIGGER IF NOT EXISTS totals_delete AFTER DELETE ON mailboxes BEGIN
  UPDATE totals SET mailboxes = mailboxes - 1, messages = messages - OLD.message_count,
    bytes = bytes - OLD.byte_count;
END;
CREATE TRIGGER IF NOT EXISTS totals_usage AFTER UPDATE OF message_count, byte_count ON mailboxes BEGIN
  UPDATE totals SET messages = messages + NEW.message_count - OLD.message_count,
    bytes = bytes + NEW.byte_count - OLD.byte_count;
END;
`;

/** Counts the totals over every mailbox: once, when the row is missing. */
const COUNT_TOTALS = `INSERT INTO totals (id, mailboxes, messages, bytes)
  SELECT 0, count(*), coalesce(sum(message_count), 0), coalesce(sum(byte_count), 0) FROM mailboxes`;

/** What stats() runs: one row (see TOTALS). */
export const STATS_SQL = "SELECT mailboxes, messages, bytes FROM totals WHERE id = 0";

/**
 * `PRAGMA user_version`: 0 is 0.1.0 (plain ciphertext, no digests), 1 sealed ciphertext, 2 deposit
 * tokens (`mailboxes.deposit_token`), 3 blobs (`blobs`, `blob_chunks`).
 */
const SCHEMA_VERSION = 3;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS mailboxes (
  address BLOB PRIMARY KEY,
  owner BLOB NOT NULL,
  message_count INTEGER NOT NULL DEFAULT 0,
  byte_count INTEGER NOT NULL DEFAULT 0,
  deposit_token BLOB
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id BLOB NOT NULL UNIQUE,
  address BLOB NOT NULL,
  key_slot INTEGER NOT NULL,
  sealed BLOB NOT NULL,
  received_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_mailbox ON messages (address, seq);
CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages (expires_at);
CREATE TABLE IF NOT EXISTS seen (
  address BLOB NOT NULL,
  client_id BLOB NOT NULL,
  expires_at INTEGER NOT NULL,
  digest BLOB,
  PRIMARY KEY (address, client_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_expiry ON seen (expires_at);
CREATE TABLE IF NOT EXISTS blobs (
  id BLOB PRIMARY KEY,
  write_hash BLOB NOT NULL,
  chunk_count INTEGER NOT NULL,
  sealed_size INTEGER NOT NULL,
  written INTEGER NOT NULL DEFAULT 0,
  written_bytes INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER NOT NULL,
  readers BLOB NOT NULL,
  done BLOB NOT NULL,
  key_slot INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_by_expiry ON blobs (expires_at);
CREATE TABLE IF NOT EXISTS blob_chunks (
  blob BLOB NOT NULL,
  idx INTEGER NOT NULL,
  sealed BLOB NOT NULL,
  UNIQUE (blob, idx)
);
${TOTALS}`;

/** How long the first write of a batch waits for company, and the most writes a batch carries. */
const GROUP_COMMIT_MS = 1;
const GROUP_COMMIT_MAX = 512;
/** Expired messages deleted per transaction by a sweep (which runs as many as it takes). */
const SWEEP_BATCH = 64;
const MiB = 1024 * 1024;
/** The smallest `maxBytes` a SQLite storage accepts (--max-storage). */
export const SQLITE_MIN_MAX_BYTES = MIN_MAX_STORAGE_BYTES;

/**
 * The reserve, and the WAL's allowance, for a storage of `maxBytes`: a sixteenth of it each,
 * between 1 MiB and 64 MiB.
 */
export function sqliteAllowance(maxBytes: number): number {
  return Math.min(64 * MiB, Math.max(MiB, Math.floor(maxBytes / 16)));
}

/** `maxBytes` when --max-storage is not set: half of what the data directory could grow to now. */
export function sqliteDefaultMaxBytes(freeBytes: number, usedBytes: number): number {
  return Math.max(SQLITE_MIN_MAX_BYTES, Math.floor((freeBytes + usedBytes) / 2));
}

/** What one transaction did to the key file (slots it filled, slots it emptied), and what it may take. */
interface Batch {
  readonly newSlots: number[];
  readonly freedSlots: number[];
  /** The file system is short of space: nothing new is taken. */
  readonly refuseNew: boolean;
  /** Bytes of the database's pages in use, read at the first new row, plus what the batch added. */
  inUse: number | null;
}

type Op = {
  run: (b: Batch) => unknown;
  /** Bytes it adds (a deposit's ciphertext), so that a batch stays within the WAL's allowance. */
  bytes: number;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
};

/**
 * What a stored row may add to the database beyond its sealed bytes: the row, its index entries
 * and its client id (and, for a ciphertext that spills into overflow pages, a page for the unused
 * end of the last one). An estimate: each batch starts again from the pages really in use.
 */
const ROW_BYTES = 512;
const MAILBOX_BYTES = 256;
/** What a blob's row, and each of its chunks' rows and seals, may add beyond the sealed chunk bytes. */
const BLOB_ROW_BYTES = 512;
const CHUNK_ROW_BYTES = 128 + SEAL_OVERHEAD;

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

/** A write failed for want of space on the file system. */
function diskFull(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return code === "SQLITE_FULL" || code === "ENOSPC" || code === "EDQUOT";
}

interface Row {
  seq: number;
  id: Uint8Array;
  address: Uint8Array;
  key_slot: number;
  sealed: Uint8Array;
  received_at: number;
  expires_at: number;
}

export interface SqliteStorageOptions {
  readonly logger?: Logger;
  /** --max-storage; default `sqliteDefaultMaxBytes` of the file system at start. */
  readonly maxBytes?: number;
  /** --max-mailboxes; default `defaultMaxMailboxes(maxBytes)`. */
  readonly maxMailboxes?: number;
}

export class SqliteStorage implements Storage {
  readonly kind = "sqlite";
  readonly durability =
    "SQLite on the relay's disk (WAL, synchronous=FULL): a deposit is acknowledged once its commit is fsynced, so it survives a crash of the relay or of its machine";
  readonly path: string;
  readonly keysPath: string;
  readonly capacity: StorageCapacity;
  /** Bytes of the reserve file, and of the WAL's allowance. */
  readonly allowance: number;
  private readonly dir: string;
  private readonly db: Database.Database;
  private readonly keys: KeyFile;
  private readonly reserve: Reserve;
  private reserveHeld = false;
  private mailboxCount = 0;
  /** Declared sealed sizes of every blob (--max-blob-storage bounds it), and what they still reserve. */
  private blobSealed = 0;
  private blobReserved = 0;
  /** A blob was deleted: checkpoint and truncate the WAL after the batch (see `deletedBlobs`). */
  private blobsDeleted = false;
  private queuedBytes = 0;
  /** A flush of a full batch is scheduled (setImmediate). */
  private flushing = false;
  private readonly batchOps: number;
  private lastWriteError: string | null = null;
  private readonly log: Logger | undefined;
  private queue: Op[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Transactions committed, and operations they carried (group-commit effectiveness). */
  commits = 0;
  committedOps = 0;
  private readonly q;

  constructor(dataDir: string, options: SqliteStorageOptions = {}) {
    this.log = options.logger;
    makePrivateDir(dataDir);
    this.dir = dataDir;
    this.path = join(dataDir, "relay.sqlite");
    this.keysPath = join(dataDir, "relay.keys");
    const files = [this.path, `${this.path}-wal`, this.keysPath, join(dataDir, "relay.reserve")];
    const used = files.reduce((n, f) => n + fileSize(f), 0);
    const free = freeBytes(dataDir);
    const maxBytes = options.maxBytes ?? sqliteDefaultMaxBytes(free, used);
    if (maxBytes < SQLITE_MIN_MAX_BYTES) {
      throw new RangeError(`maxBytes: at least ${SQLITE_MIN_MAX_BYTES} bytes, got ${maxBytes}`);
    }
    this.capacity = { maxBytes, maxMailboxes: options.maxMailboxes ?? defaultMaxMailboxes(maxBytes) };
    this.allowance = sqliteAllowance(maxBytes);
    this.batchOps = Math.min(GROUP_COMMIT_MAX, Math.max(32, Math.floor(this.allowance / 16384)));
    this.reserve = new Reserve(join(dataDir, "relay.reserve"), this.allowance);
    this.reserveHeld = this.reserve.held;
    // Started on a full disk: give the reserve back before SQLite opens (which may write).
    if (free < 2 * this.allowance) this.releaseReserve(free);
    // SQLite gives the WAL the database file's permissions.
    createPrivateFile(this.path);
    this.db = new Database(this.path, { timeout: 0 });
    try {
      // One process at a time: the lock is taken by the first write below and held until close
      // (the kernel releases it if the process dies). In this mode the WAL index lives in this
      // process's memory, so there is no -shm file.
      this.db.pragma("locking_mode = EXCLUSIVE");
      // A new database frees pages back to the file system as they empty (see `shrinkDatabase`);
      // this must come before anything is written to it (an existing one keeps its setting).
      this.db.pragma("auto_vacuum = INCREMENTAL");
      this.db.pragma("journal_mode = WAL");
      this.db.exec("BEGIN IMMEDIATE; COMMIT");
    } catch (e) {
      this.db.close();
      if ((e as { code?: string }).code === "SQLITE_BUSY") {
        throw new Error(
          `its database ${this.path} is in use by another process (another parley-relay?); stop that one or choose another --data-dir`,
        );
      }
      throw e;
    }
    try {
      this.keys = new KeyFile(this.keysPath);
    } catch (e) {
      this.db.close();
      throw e;
    }
    this.db.pragma("synchronous = FULL");
    this.db.pragma("temp_store = MEMORY");
    // While the relay runs, the WAL is checkpointed often and kept at up to its allowance (not
    // truncated to nothing, so that deleting finds room in it on a full disk).
    this.db.pragma(`journal_size_limit = ${this.allowance}`);
    this.db.pragma(
      `wal_autocheckpoint = ${Math.max(16, Math.min(1000, Math.floor(this.allowance / 4 / 4096)))}`,
    );
    // A conversion from an older layout zeroes every page it frees (plain ciphertext, there).
    this.db.pragma("secure_delete = ON");
    this.db.pragma("busy_timeout = 5000");
    this.migrate();
    // Totals for stats(): a database from before them (or one migrate() left alone) gets them now.
    this.db.exec(TOTALS);
    if (this.db.prepare("SELECT 1 FROM totals").get() === undefined) this.db.exec(COUNT_TOTALS);
    // From then on, deleted rows are zeroed where that costs no extra writes: their metadata
    // (addresses, ids, times) in b-tree pages. Freed overflow pages keep their bytes, which are
    // sealed ciphertext whose key is erased.
    this.db.pragma("secure_delete = FAST");
    this.openKeys();
    const db = this.db;
    this.q = {
      insertMailbox: db.prepare("INSERT INTO mailboxes (address, owner) VALUES (?, ?)"),
      owner: db.prepare("SELECT owner FROM mailboxes WHERE address = ?").pluck(),
      usage: db.prepare(
        "SELECT message_count AS count, byte_count AS bytes, deposit_token AS token FROM mailboxes WHERE address = ?",
      ),
      setToken: db.prepare("UPDATE mailboxes SET deposit_token = ? WHERE address = ?"),
      deleteMailbox: db.prepare("DELETE FROM mailboxes WHERE address = ?"),
      mailboxSlots: db.prepare("SELECT key_slot FROM messages WHERE address = ?").pluck(),
      deleteMailboxMessages: db.prepare("DELETE FROM messages WHERE address = ?"),
      deleteMailboxSeen: db.prepare("DELETE FROM seen WHERE address = ?"),
      seen: db.prepare("SELECT digest FROM seen WHERE address = ? AND client_id = ?").pluck(),
      remember: db.prepare("INSERT INTO seen (address, client_id, expires_at, digest) VALUES (?, ?, ?, ?)"),
      insert: db.prepare(
        "INSERT INTO messages (id, address, key_slot, sealed, received_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      addUsage: db.prepare(
        "UPDATE mailboxes SET message_count = message_count + ?, byte_count = byte_count + ? WHERE address = ?",
      ),
      pending: db.prepare(
        "SELECT seq, id, address, key_slot, sealed, received_at, expires_at FROM messages WHERE address = ? AND seq > ? AND expires_at > ? ORDER BY seq LIMIT ?",
      ),
      deleteMessage: db.prepare(
        `DELETE FROM messages WHERE address = ? AND id = ? RETURNING key_slot AS slot, length(sealed) - ${SEAL_OVERHEAD} AS size`,
      ),
      expired: db.prepare(
        `SELECT seq, address, key_slot AS slot, length(sealed) - ${SEAL_OVERHEAD} AS size FROM messages WHERE expires_at <= ? ORDER BY expires_at LIMIT ?`,
      ),
      deleteSeq: db.prepare("DELETE FROM messages WHERE seq = ?"),
      forgetSeen: db.prepare("DELETE FROM seen WHERE expires_at <= ?"),
      stats: db.prepare(STATS_SQL),
      mailboxCount: db.prepare("SELECT count(*) FROM mailboxes").pluck(),
      pageCount: db.prepare("PRAGMA page_count").pluck(),
      freePages: db.prepare("PRAGMA freelist_count").pluck(),
      pageSize: db.prepare("PRAGMA page_size").pluck(),
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
      blobTotals: db.prepare(
        "SELECT count(*) AS blobs, coalesce(sum(sealed_size), 0) AS sealed, coalesce(sum(written_bytes), 0) AS bytes, coalesce(sum(chunk_count - written), 0) AS unwritten FROM blobs",
      ),
    };
    this.mailboxCount = this.q.mailboxCount.get() as number;
    this.countBlobs();
    // Frames of deleted rows may be left in the WAL: empty it before serving.
    try {
      this.db.pragma("wal_checkpoint(TRUNCATE)");
    } catch (e) {
      if (!diskFull(e)) throw e;
      this.log?.warn({ err: (e as Error).message }, "checkpoint at start failed: the disk is full");
    }
    this.takeReserve();
  }

  /** Bytes the database's pages in use take (free pages aside), within the current transaction. */
  private pagesInUse(): number {
    const pages = (this.q.pageCount.get() as number) - (this.q.freePages.get() as number);
    return pages * (this.q.pageSize.get() as number);
  }

  /**
   * Whether `growth` more bytes of rows keep the files within maxBytes: the pages in use, the key
   * file, the reserve (held or not), and twice the WAL's allowance (its steady size, and one batch
   * beyond it). If they do, they are counted in the batch.
   */
  private fits(batch: Batch, growth: number): boolean {
    batch.inUse ??= this.pagesInUse();
    const files =
      batch.inUse +
      growth +
      this.blobReserved +
      this.keys.bytes +
      KEY_LENGTH +
      this.reserve.bytes +
      2 * this.allowance;
    if (files > this.capacity.maxBytes) return false;
    batch.inUse += growth;
    return true;
  }

  private releaseReserve(free: number): void {
    if (!this.reserve.release()) return;
    this.reserveHeld = false;
    this.log?.warn(
      { freeBytes: free, reserveBytes: this.reserve.bytes },
      "data directory's file system nearly full: reserve given back, new messages refused until there is room",
    );
  }

  /** Takes the reserve again once the file system has room for it and some. */
  private takeReserve(): void {
    if (this.reserveHeld || this.closed) return;
    if (this.reserve.take(this.dir, 4 * this.allowance)) {
      this.reserveHeld = true;
      this.log?.info({ reserveBytes: this.reserve.bytes }, "reserve taken: new messages accepted again");
    }
  }

  writeProblem(): string | null {
    if (this.closed) return null;
    const free = freeBytes(this.dir);
    if (!this.reserveHeld || free < 2 * this.allowance) {
      return `storage full: the data directory's file system has ${free} bytes free; new messages are refused, acks and deliveries go on`;
    }
    return this.lastWriteError;
  }

  /**
   * Brings a database of an older layout to this one, in one transaction. From 0.1.0 (user_version
   * 0, plain ciphertext in `messages.ciphertext`): every waiting message is sealed under a new key,
   * the old table is dropped with secure_delete on (its freed pages are zeroed), and the client ids
   * it remembered keep a null digest (any ciphertext under one is taken as a retry, as then).
   */
  private migrate(): void {
    const db = this.db;
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(
        `${this.path} was written by a newer parley-relay (database layout ${version}; this one knows up to ${SCHEMA_VERSION})`,
      );
    }
    const columns = (table: string) =>
      (db.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name);
    const legacy = columns("messages").includes("ciphertext");
    const seenColumns = columns("seen");
    const mailboxColumns = columns("mailboxes");
    const tokenless = mailboxColumns.length > 0 && !mailboxColumns.includes("deposit_token");
    if (
      version === SCHEMA_VERSION &&
      !legacy &&
      !tokenless &&
      (seenColumns.length === 0 || seenColumns.includes("digest"))
    ) {
      return; // nothing to write (a start on a full disk must not need to)
    }
    const newSlots: number[] = [];
    let sealedRows = 0;
    try {
      db.transaction(() => {
        if (legacy) {
          db.exec(`
            ALTER TABLE messages RENAME TO messages_v0;
            DROP INDEX IF EXISTS messages_by_mailbox;
            DROP INDEX IF EXISTS messages_by_expiry;`);
        }
        if (seenColumns.length > 0 && !seenColumns.includes("digest")) {
          db.exec("ALTER TABLE seen ADD COLUMN digest BLOB");
        }
        if (tokenless) db.exec("ALTER TABLE mailboxes ADD COLUMN deposit_token BLOB");
        db.exec(SCHEMA);
        if (legacy) {
          const insert = db.prepare(
            "INSERT INTO messages (seq, id, address, key_slot, sealed, received_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
          );
          const next = db.prepare(
            "SELECT seq, id, address, ciphertext, received_at, expires_at FROM messages_v0 WHERE seq > ? ORDER BY seq LIMIT 256",
          );
          // The key file holds nothing a row refers to yet: start it from nothing.
          this.keys.load([]);
          let after = 0;
          for (;;) {
            const rows = next.all(after) as (Omit<Row, "key_slot" | "sealed"> & { ciphertext: Buffer })[];
            for (const r of rows) {
              const slot = this.keys.allocate();
              newSlots.push(slot);
              const key = freshRandom(KEY_LENGTH);
              this.keys.write(slot, key);
              const sealed = sealMessage(key, r.id, r.address, r.ciphertext);
              insert.run(r.seq, r.id, r.address, slot, sealed, r.received_at, r.expires_at);
              key.fill(0);
              r.ciphertext.fill(0);
              after = r.seq;
              sealedRows++;
            }
            if (rows.length < 256) break;
          }
          this.keys.sync();
          db.exec("DROP TABLE messages_v0");
        }
        db.pragma(`user_version = ${SCHEMA_VERSION}`);
      })();
    } catch (e) {
      this.keys.erase(newSlots);
      throw e;
    }
    if (!legacy && tokenless)
      this.log?.info(`database brought to layout ${SCHEMA_VERSION}: mailboxes can hold a deposit token`);
    if (legacy) {
      db.pragma("wal_checkpoint(TRUNCATE)");
      this.log?.info(
        { sealed: sealedRows },
        `database brought to layout ${SCHEMA_VERSION}: waiting messages sealed`,
      );
      try {
        // Rewritten once, so that it can give pages back to the file system from now on.
        db.pragma("auto_vacuum = INCREMENTAL");
        db.exec("VACUUM");
        db.pragma("wal_checkpoint(TRUNCATE)");
      } catch (e) {
        this.log?.warn(
          { err: (e as Error).message },
          "database not rewritten (VACUUM): it keeps its free pages",
        );
      }
    }
  }

  /**
   * Reads the key file against the messages: keys no message refers to (a crash after a commit that
   * deleted, before their erasure) are erased, and messages whose key is missing (a key file
   * deleted or damaged by hand) can never be read: they are deleted.
   */
  private openKeys(): void {
    const slots = this.db
      .prepare("SELECT key_slot FROM messages UNION ALL SELECT key_slot FROM blobs")
      .pluck()
      .all() as number[];
    const { erased, missing } = this.keys.load(slots);
    if (missing.length > 0) {
      // A blob whose key is missing can never be read either.
      const dropBlob = this.db.prepare("DELETE FROM blobs WHERE key_slot = ? RETURNING id").pluck();
      this.db.transaction(() => {
        for (const slot of missing) {
          for (const id of dropBlob.all(slot) as Buffer[]) {
            this.db.prepare("DELETE FROM blob_chunks WHERE blob = ?").run(id);
          }
        }
      })();
      const gone = new Set(missing);
      const drop = this.db.prepare(
        `DELETE FROM messages WHERE key_slot = ? RETURNING address, length(sealed) - ${SEAL_OVERHEAD} AS size`,
      );
      const adjust = this.db.prepare(
        "UPDATE mailboxes SET message_count = message_count - 1, byte_count = byte_count - ? WHERE address = ?",
      );
      this.db.transaction(() => {
        for (const slot of gone) {
          for (const r of drop.all(slot) as { address: Buffer; size: number }[])
            adjust.run(r.size, r.address);
        }
      })();
      this.log?.warn(
        { messages: missing.length },
        "messages whose key is missing from relay.keys deleted: they could never be read",
      );
    }
    if (erased > 0) this.log?.info({ keys: erased }, "keys of messages deleted before a crash erased");
  }

  /**
   * Queues a write. The queue commits as one transaction (one fsync) a moment after its first
   * write (GROUP_COMMIT_MS), or at once when GROUP_COMMIT_MAX writes are waiting.
   */
  private write<T>(run: (b: Batch) => T, bytes = 0): Promise<T> {
    if (this.closed) return Promise.reject(new Error("storage is closed"));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, bytes, resolve: resolve as (v: unknown) => void, reject });
      this.queuedBytes += bytes;
      if (this.queue.length >= this.batchOps || this.queuedBytes >= this.batchBytes) this.flushSoon();
      else if (this.timer === undefined && !this.flushing) {
        this.timer = setTimeout(() => this.flush(), GROUP_COMMIT_MS);
      }
    });
  }

  /** A full batch is waiting: commit it on the next turn of the event loop. */
  private flushSoon(): void {
    if (this.flushing) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      this.flush();
    });
  }

  /** Bytes of new data in one transaction: half the WAL's allowance, so that the WAL stays within it. */
  private get batchBytes(): number {
    return this.allowance / 2;
  }

  /** Commits the oldest batch of writes (at most batchOps, about batchBytes); the rest follows. */
  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    let take = 0;
    let bytes = 0;
    while (
      take < this.queue.length &&
      take < this.batchOps &&
      (take === 0 || bytes + this.queue[take]!.bytes <= this.batchBytes)
    ) {
      bytes += this.queue[take]!.bytes;
      take++;
    }
    const ops = this.queue.splice(0, take);
    this.queuedBytes -= bytes;
    if (this.queue.length > 0) this.flushSoon();
    if (ops.length === 0) return;
    let batch: Batch;
    let results: unknown[];
    for (let attempt = 1; ; attempt++) {
      const free = freeBytes(this.dir);
      if (free < 2 * this.allowance && this.reserveHeld) this.releaseReserve(free);
      batch = {
        newSlots: [],
        freedSlots: [],
        refuseNew: !this.reserveHeld || free < 2 * this.allowance,
        inUse: null,
      };
      try {
        const b = batch;
        results = this.db.transaction(() => {
          const out = ops.map((op) => op.run(b));
          // The new keys are on disk before the rows that need them are committed.
          if (b.newSlots.length > 0) this.keys.sync();
          return out;
        })();
        this.lastWriteError = null;
        break;
      } catch (e) {
        // Nothing was committed: the keys written for it are erased again.
        this.forgetKeys(batch.newSlots);
        this.mailboxCount = this.q.mailboxCount.get() as number;
        this.countBlobs();
        this.blobsDeleted = false;
        if (diskFull(e)) {
          this.lastWriteError = `storage cannot write: ${(e as Error).message}`;
          // The disk filled under us: give the reserve back and try once more.
          if (attempt === 1 && this.reserveHeld) {
            this.releaseReserve(freeBytes(this.dir));
            continue;
          }
          const unavailable = new StorageUnavailableError("the data directory's file system is full");
          for (const op of ops) op.reject(unavailable);
          return;
        }
        for (const op of ops) op.reject(e);
        return;
      }
    }
    this.commits++;
    this.committedOps += ops.length;
    // Before anyone hears that a delete succeeded (an ack is answered), its key is erased: one
    // fsync of the key file for the whole batch.
    try {
      this.keys.erase(batch.freedSlots);
    } catch (e) {
      // Committed, but the keys are still there (the next start erases them): say so.
      for (const op of ops) op.reject(e);
      return;
    }
    if (this.blobsDeleted) this.forgetDeletedBlobs();
    for (const [i, op] of ops.entries()) op.resolve(results[i]);
  }

  /**
   * After a batch that deleted blobs, and before it is answered: the WAL is checkpointed and
   * truncated, so that the frames that held their chunks (and the pages secure_delete zeroed in the
   * database file) leave the data directory now rather than when the WAL next wraps. The chunks were
   * sealed under the blob's key, which the batch erased already: this makes their bytes go too.
   */
  private forgetDeletedBlobs(): void {
    this.blobsDeleted = false;
    try {
      this.db.pragma("wal_checkpoint(TRUNCATE)");
    } catch (e) {
      this.log?.warn({ err: (e as Error).message }, "checkpoint after a blob deletion failed");
    }
  }

  /** Reads the blob totals again (at start, and after a failed transaction). */
  private countBlobs(): void {
    const t = this.q.blobTotals.get() as { blobs: number; sealed: number; bytes: number; unwritten: number };
    this.blobSealed = t.sealed;
    // What is not yet written stays reserved: the declared size less the bytes stored, and the rows.
    this.blobReserved = t.sealed - t.bytes + t.unwritten * CHUNK_ROW_BYTES;
  }

  /** Erases keys, after a failure: what fails here is left to the next start. */
  private forgetKeys(slots: number[]): void {
    try {
      this.keys.erase(slots);
    } catch (e) {
      this.log?.error({ err: (e as Error).message }, "keys could not be erased; the next start erases them");
    }
  }

  createMailbox(address: Uint8Array, ownerKey: Uint8Array): Promise<CreateResult> {
    return this.write((batch): CreateResult => {
      const owner = this.q.owner.get(address) as Uint8Array | undefined;
      if (owner) return Buffer.compare(owner, ownerKey) === 0 ? "exists" : "conflict";
      if (batch.refuseNew || this.mailboxCount >= this.capacity.maxMailboxes) return "full";
      if (!this.fits(batch, MAILBOX_BYTES)) return "full";
      this.q.insertMailbox.run(address, ownerKey);
      this.mailboxCount++;
      return "created";
    });
  }

  async mailboxOwner(address: Uint8Array): Promise<Uint8Array | null> {
    const owner = this.q.owner.get(address) as Uint8Array | undefined;
    return owner ? new Uint8Array(owner) : null;
  }

  setDepositToken(address: Uint8Array, tokenHash: Uint8Array): Promise<boolean> {
    return this.write(() => this.q.setToken.run(tokenHash, address).changes > 0);
  }

  deleteMailbox(address: Uint8Array): Promise<boolean> {
    return this.write((batch) => {
      batch.freedSlots.push(...(this.q.mailboxSlots.all(address) as number[]));
      this.q.deleteMailboxMessages.run(address);
      this.q.deleteMailboxSeen.run(address);
      const deleted = this.q.deleteMailbox.run(address).changes > 0;
      if (deleted) this.mailboxCount--;
      return deleted;
    });
  }

  deposit(r: DepositRequest, limits: MailboxLimits): Promise<DepositResult> {
    return this.write((batch): DepositResult => {
      const usage = this.q.usage.get(r.address) as
        | { count: number; bytes: number; token: Buffer | null }
        | undefined;
      if (!usage) return { status: "unknown-mailbox" };
      if (!tokenAdmits(usage.token, r.tokenHash ?? null)) return { status: "token" };
      const digest = depositDigest(r.ciphertext);
      const seen = this.q.seen.get(r.address, r.clientMessageId) as Buffer | null | undefined;
      if (seen !== undefined) {
        return { status: seen === null || digest.equals(seen) ? "duplicate" : "id-reused" };
      }
      if (usage.count + 1 > limits.maxMessages || usage.bytes + r.ciphertext.length > limits.maxBytes) {
        return { status: "quota" };
      }
      const overflow = r.ciphertext.length > 4000 ? (this.q.pageSize.get() as number) : 0;
      const growth = r.ciphertext.length + SEAL_OVERHEAD + ROW_BYTES + overflow;
      if (batch.refuseNew || !this.fits(batch, growth)) return { status: "full" };
      const slot = this.keys.allocate();
      batch.newSlots.push(slot);
      const key = freshRandom(KEY_LENGTH);
      this.keys.write(slot, key);
      const sealed = sealMessage(key, r.id, r.address, r.ciphertext);
      key.fill(0);
      const seq = Number(
        this.q.insert.run(r.id, r.address, slot, sealed, r.receivedAt, r.expiresAt).lastInsertRowid,
      );
      this.q.remember.run(r.address, r.clientMessageId, r.expiresAt, digest);
      this.q.addUsage.run(1, r.ciphertext.length, r.address);
      return {
        status: "stored",
        message: {
          seq,
          id: r.id,
          address: r.address,
          ciphertext: r.ciphertext,
          receivedAt: r.receivedAt,
          expiresAt: r.expiresAt,
        },
      };
    }, r.ciphertext.length);
  }

  async pending(address: Uint8Array, now: number, limit: number, afterSeq = 0): Promise<StoredMessage[]> {
    return (this.q.pending.all(address, afterSeq, now, limit) as Row[]).map((r) => {
      const key = this.keys.read(r.key_slot);
      try {
        return {
          seq: r.seq,
          id: new Uint8Array(r.id),
          address: new Uint8Array(r.address),
          ciphertext: openMessage(key, r.id, r.address, r.sealed),
          receivedAt: r.received_at,
          expiresAt: r.expires_at,
        };
      } finally {
        key.fill(0);
      }
    });
  }

  ack(address: Uint8Array, id: Uint8Array): Promise<boolean> {
    return this.write((batch) => {
      const row = this.q.deleteMessage.get(address, id) as { slot: number; size: number } | undefined;
      if (row === undefined) return false;
      this.q.addUsage.run(-1, -row.size, address);
      batch.freedSlots.push(row.slot);
      return true;
    });
  }

  async sweep(now: number): Promise<number> {
    let deleted = 0;
    // In bounded transactions, so that the WAL stays small however much expired at once.
    for (;;) {
      const n = await this.write((batch) => {
        const rows = this.q.expired.all(now, SWEEP_BATCH) as {
          seq: number;
          address: Uint8Array;
          slot: number;
          size: number;
        }[];
        for (const r of rows) {
          this.q.deleteSeq.run(r.seq);
          this.q.addUsage.run(-1, -r.size, r.address);
          batch.freedSlots.push(r.slot);
        }
        if (rows.length < SWEEP_BATCH) this.q.forgetSeen.run(now);
        return rows.length;
      });
      deleted += n;
      if (n < SWEEP_BATCH) break;
    }
    this.keys.shrink();
    this.takeReserve();
    this.shrinkDatabase();
    return deleted;
  }

  /**
   * Gives free pages beyond one WAL allowance back to the file system (incremental vacuum), a
   * chunk per transaction so that the WAL stays within its allowance; not while space is short.
   */
  private shrinkDatabase(): void {
    if (!this.reserveHeld || this.closed || this.queue.length > 0) return;
    const pageSize = this.q.pageSize.get() as number;
    const keep = Math.floor(this.allowance / pageSize);
    const chunk = Math.max(16, Math.floor(this.allowance / 2 / pageSize));
    let vacuumed = false;
    for (let round = 0; round < 1000; round++) {
      const free = this.q.freePages.get() as number;
      if (free <= keep) break;
      this.db.pragma(`incremental_vacuum(${Math.min(chunk, free - keep)})`);
      if ((this.q.freePages.get() as number) >= free) break; // auto_vacuum is off (an old database)
      vacuumed = true;
    }
    // The database file shrinks when the checkpoint copies the truncation into it.
    if (vacuumed) this.db.pragma("wal_checkpoint(PASSIVE)");
  }

  createBlob(spec: BlobSpec, maxBlobBytes: number): Promise<CreateBlobResult> {
    return this.write((batch): CreateBlobResult => {
      const row = this.q.blob.get(spec.id) as BlobRow | undefined;
      if (row) return sameBlob(blobState(row), spec) ? "exists" : "conflict";
      if (this.blobSealed + spec.sealedSize > maxBlobBytes) return "blob-full";
      const reservation = blobReservation(spec.chunkCount, spec.sealedSize);
      if (batch.refuseNew || !this.fits(batch, reservation)) return "full";
      // fits() counted the reservation as pages in use: all but the blob's row is carried by
      // blobReserved instead, until its chunks are written.
      batch.inUse = (batch.inUse ?? 0) - (reservation - BLOB_ROW_BYTES);
      const slot = this.keys.allocate();
      batch.newSlots.push(slot);
      const key = freshRandom(KEY_LENGTH);
      this.keys.write(slot, key);
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
      this.blobSealed += spec.sealedSize;
      this.blobReserved += reservation - BLOB_ROW_BYTES;
      return "created";
    });
  }

  async blob(id: Uint8Array, now: number): Promise<BlobState | null> {
    const row = this.q.blob.get(id) as BlobRow | undefined;
    return row && row.expires_at > now ? blobState(row) : null;
  }

  putChunk(id: Uint8Array, index: number, sealedChunk: Uint8Array, now: number): Promise<PutChunkResult> {
    return this.write((batch): PutChunkResult => {
      const row = this.q.blob.get(id) as BlobRow | undefined;
      if (!row || row.expires_at <= now) return { status: "unknown" };
      if (index < row.written) return { status: "retry" };
      if (index > row.written) return { status: "ahead", next: row.written };
      const key = this.keys.read(row.key_slot);
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
      this.blobReserved -= growth;
      if (batch.inUse !== null) batch.inUse += growth;
      return { status: "stored" };
    }, sealedChunk.length);
  }

  async getChunk(id: Uint8Array, index: number, now: number): Promise<Uint8Array | null> {
    const row = this.q.blob.get(id) as BlobRow | undefined;
    if (!row || row.expires_at <= now || index >= row.written) return null;
    const sealed = this.q.chunk.get(id, index) as Buffer | undefined;
    if (!sealed) return null;
    const key = this.keys.read(row.key_slot);
    try {
      return openMessage(key, id, chunkAd(index), sealed);
    } finally {
      key.fill(0);
    }
  }

  blobDone(id: Uint8Array, readTokenHash: Uint8Array, now: number): Promise<BlobDoneResult> {
    return this.write((batch): BlobDoneResult => {
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
      this.dropBlob(batch, id, row);
      return "deleted";
    });
  }

  deleteBlob(id: Uint8Array): Promise<boolean> {
    return this.write((batch) => {
      const row = this.q.blob.get(id) as BlobRow | undefined;
      if (!row) return false;
      this.dropBlob(batch, id, row);
      return true;
    });
  }

  async sweepBlobs(now: number): Promise<number> {
    let deleted = 0;
    // A few blobs per transaction: each may hold many chunks.
    for (;;) {
      const n = await this.write((batch) => {
        const ids = this.q.expiredBlobs.all(now, 4) as Buffer[];
        for (const id of ids) this.dropBlob(batch, id, this.q.blob.get(id) as BlobRow);
        return ids.length;
      });
      deleted += n;
      if (n < 4) break;
    }
    if (deleted > 0) {
      this.keys.shrink();
      this.shrinkDatabase();
    }
    return deleted;
  }

  /**
   * Deletes a blob and its chunks in the batch's transaction, with secure_delete ON (not FAST) for
   * the chunks, so that SQLite zeroes the overflow pages that held them as it frees them; their key
   * is erased after the commit, and the WAL truncated (`forgetDeletedBlobs`).
   */
  private dropBlob(batch: Batch, id: Uint8Array, row: BlobRow): void {
    this.db.pragma("secure_delete = ON");
    try {
      this.q.deleteChunks.run(id);
      this.q.deleteBlob.run(id);
    } finally {
      this.db.pragma("secure_delete = FAST");
    }
    batch.freedSlots.push(row.key_slot);
    this.blobSealed -= row.sealed_size;
    this.blobReserved -=
      row.sealed_size - row.written_bytes + (row.chunk_count - row.written) * CHUNK_ROW_BYTES;
    this.blobsDeleted = true;
  }

  async stats(): Promise<StorageStats> {
    const totals = this.q.stats.get() as { mailboxes: number; messages: number; bytes: number };
    const blobs = this.q.blobTotals.get() as { blobs: number; sealed: number; bytes: number };
    const files =
      this.pagesInUse() +
      this.blobReserved +
      this.keys.bytes +
      KEY_LENGTH +
      this.reserve.bytes +
      2 * this.allowance;
    return {
      ...totals,
      blobs: blobs.blobs,
      blobBytes: blobs.bytes,
      blobReservedBytes: blobs.sealed,
      countedBytes: files,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    while (this.queue.length > 0) this.flush();
    this.closed = true;
    // The final checkpoint copies the WAL into the database, which seldom needs new space: the
    // reserve is kept for the next start unless the checkpoint cannot do without it.
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        this.db.pragma("wal_checkpoint(TRUNCATE)");
        break;
      } catch (e) {
        if (attempt === 1 && diskFull(e) && this.reserveHeld) {
          this.releaseReserve(freeBytes(this.dir));
          continue;
        }
        // Everything is committed; the next start checkpoints what is left in the WAL.
        this.log?.warn({ err: (e as Error).message }, "final checkpoint failed");
        break;
      }
    }
    this.db.close();
    this.keys.close();
    // Given back while the disk was full: take what the checkpoint freed, so that the next start,
    // on a disk that may be full by then, has room to delete.
    if (!this.reserveHeld) this.reserve.take(this.dir, 0, true);
  }
}

/** A file's size, 0 if it is missing. */
function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw e;
  }
}
