// SQLite storage through better-sqlite3: WAL, synchronous=FULL, group commit, and every ciphertext
// sealed under a key of its own that is erased when the message is deleted (crypto-shredding).
//
//   sqlite.ts           the store: its files, their space, and the parts below put together
//   sqlite-commit.ts    the write queue: group commit, and the key file around each transaction
//   sqlite-messages.ts  mailboxes and messages: deposit, pending, ack, the sweep
//   sqlite-blobs.ts     blobs and their chunks
//   sqlite-schema.ts    the database's layout, opening it, older layouts, the key file checked at start
//
// better-sqlite3 is synchronous, so every write goes through one queue, committed in groups
// (sqlite-commit.ts): a promise resolves only after its transaction committed.
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
import type Database from "better-sqlite3";
import { MIN_MAX_STORAGE_BYTES } from "../config.js";
import type { Logger } from "../log.js";
import { ComposedStorage } from "./composed.js";
import { freeBytes, makePrivateDir } from "./datadir.js";
import { KEY_LENGTH, KeyFile } from "./keyfile.js";
import { Reserve } from "./reserve.js";
import { SqliteBlobs } from "./sqlite-blobs.js";
import { type Batch, diskFull, GroupCommit } from "./sqlite-commit.js";
import { SqliteMessages } from "./sqlite-messages.js";
import { openDatabase, prepareDatabase } from "./sqlite-schema.js";
import { defaultMaxMailboxes, type Storage, type StorageCapacity, type StorageStats } from "./types.js";

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

export interface SqliteStorageOptions {
  readonly logger?: Logger;
  /** --max-storage; default `sqliteDefaultMaxBytes` of the file system at start. */
  readonly maxBytes?: number;
  /** --max-mailboxes; default `defaultMaxMailboxes(maxBytes)`. */
  readonly maxMailboxes?: number;
}

export class SqliteStorage extends ComposedStorage implements Storage {
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
  private readonly log: Logger | undefined;
  private readonly commit: GroupCommit;
  protected readonly messages: SqliteMessages;
  protected readonly blobs: SqliteBlobs;
  private closed = false;
  private readonly q;

  constructor(dataDir: string, options: SqliteStorageOptions = {}) {
    super();
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
    this.reserve = new Reserve(join(dataDir, "relay.reserve"), this.allowance);
    this.reserveHeld = this.reserve.held;
    // Started on a full disk: give the reserve back before SQLite opens (which may write).
    if (free < 2 * this.allowance) this.releaseReserve(free);
    this.db = openDatabase(this.path);
    try {
      this.keys = new KeyFile(this.keysPath);
    } catch (e) {
      this.db.close();
      throw e;
    }
    prepareDatabase(this.db, this.keys, { path: this.path, allowance: this.allowance, log: this.log });
    const db = this.db;
    this.q = {
      pageCount: db.prepare("PRAGMA page_count").pluck(),
      freePages: db.prepare("PRAGMA freelist_count").pluck(),
      pageSize: db.prepare("PRAGMA page_size").pluck(),
    };
    this.commit = new GroupCommit({
      db,
      keys: this.keys,
      hooks: {
        openBatch: () => this.openBatch(),
        giveBackReserve: () => this.giveBackReserve(),
        rolledBack: () => this.rolledBack(),
        committed: () => this.blobs.committed(),
      },
      walAllowance: this.allowance,
      log: this.log,
    });
    const fits = (batch: Batch, growth: number) => this.fits(batch, growth);
    this.messages = new SqliteMessages({
      db,
      keys: this.keys,
      commit: this.commit,
      maxMailboxes: this.capacity.maxMailboxes,
      fits,
    });
    this.blobs = new SqliteBlobs({
      db,
      keys: this.keys,
      commit: this.commit,
      fits,
      shrink: () => {
        this.keys.shrink();
        this.shrinkDatabase();
      },
      log: this.log,
    });
    // Frames of deleted rows may be left in the WAL: empty it before serving.
    try {
      this.db.pragma("wal_checkpoint(TRUNCATE)");
    } catch (e) {
      if (!diskFull(e)) throw e;
      this.log?.warn({ err: (e as Error).message }, "checkpoint at start failed: the disk is full");
    }
    this.takeReserve();
  }

  /** Transactions committed, and operations they carried (group-commit effectiveness). */
  get commits(): number {
    return this.commit.commits;
  }
  get committedOps(): number {
    return this.commit.committedOps;
  }

  // ---- space ----------------------------------------------------------------------------------

  /** Bytes the database's pages in use take (free pages aside), within the current transaction. */
  private pagesInUse(): number {
    const pages = (this.q.pageCount.get() as number) - (this.q.freePages.get() as number);
    return pages * (this.q.pageSize.get() as number);
  }

  /**
   * What counts against maxBytes with `inUse` bytes of pages in use: those, what the blobs still
   * reserve, the key file, the reserve (held or not), and twice the WAL's allowance (its steady
   * size, and one batch beyond it).
   */
  private counted(inUse: number): number {
    return (
      inUse + this.blobs.reserved + this.keys.bytes + KEY_LENGTH + this.reserve.bytes + 2 * this.allowance
    );
  }

  /**
   * Whether `growth` more bytes of rows keep the files within maxBytes (`counted`). If they do,
   * they are counted in the batch.
   */
  private fits(batch: Batch, growth: number): boolean {
    batch.inUse ??= this.pagesInUse();
    if (this.counted(batch.inUse + growth) > this.capacity.maxBytes) return false;
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
    return this.commit.writeError;
  }

  /**
   * Gives free pages beyond one WAL allowance back to the file system (incremental vacuum), a
   * chunk per transaction so that the WAL stays within its allowance; not while space is short.
   */
  private shrinkDatabase(): void {
    if (!this.reserveHeld || this.closed || this.commit.waiting > 0) return;
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

  // ---- around each transaction (sqlite-commit.ts) ---------------------------------------------

  /** A new batch: whether it may take new data; short of space, the reserve is given back. */
  private openBatch(): Batch {
    const free = freeBytes(this.dir);
    if (free < 2 * this.allowance && this.reserveHeld) this.releaseReserve(free);
    return {
      newSlots: [],
      freedSlots: [],
      refuseNew: !this.reserveHeld || free < 2 * this.allowance,
      inUse: null,
    };
  }

  /** The disk filled under a transaction: the reserve, if held, is given back (true). */
  private giveBackReserve(): boolean {
    if (!this.reserveHeld) return false;
    this.releaseReserve(freeBytes(this.dir));
    return true;
  }

  /** Nothing of a transaction was committed: what is counted in memory is read again. */
  private rolledBack(): void {
    this.messages.rolledBack();
    this.blobs.rolledBack();
  }

  /** Deletes what expired, then gives the space back (the key file, free pages, the reserve). */
  override async sweep(now: number): Promise<number> {
    const deleted = await this.messages.sweep(now);
    this.keys.shrink();
    this.takeReserve();
    this.shrinkDatabase();
    return deleted;
  }

  // ---- totals and shutdown --------------------------------------------------------------------

  async stats(): Promise<StorageStats> {
    const totals = this.messages.totals();
    const blobs = this.blobs.totals();
    return {
      ...totals,
      blobs: blobs.blobs,
      blobBytes: blobs.bytes,
      blobReservedBytes: blobs.sealed,
      countedBytes: this.counted(this.pagesInUse()),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.commit.close();
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
