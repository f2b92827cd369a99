// SQLite storage through better-sqlite3: WAL, synchronous=FULL, secure_delete, and group commit.
//
// better-sqlite3 is synchronous, so every write goes through one queue that is flushed as a single
// transaction a millisecond after its first write: deposits that arrive meanwhile, or while a commit
// (and its fsync) runs, share the next commit. A promise resolves only after its transaction committed.
import { join } from "node:path";
import Database from "better-sqlite3";
import { createPrivateFile, makePrivateDir } from "./datadir.js";
import {
  type DepositRequest,
  type DepositResult,
  depositDigest,
  type MailboxLimits,
  type Storage,
  type StorageStats,
  type StoredMessage,
} from "./types.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS mailboxes (
  address BLOB PRIMARY KEY,
  owner BLOB NOT NULL,
  message_count INTEGER NOT NULL DEFAULT 0,
  byte_count INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,id BLOB NOT NULL UNIQUE,
  address BLOB NOT NULL,
  ciphertext BLOB NOT NULL,
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
`;

/** How long the first write of a batch waits for company, and the batch size that flushes at once. */
const GROUP_COMMIT_MS = 1;
const GROUP_COMMIT_MAX = 512;

type Op = { run: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void };

interface Row {
  seq: number;
  id: Uint8Array;
  address: Uint8Array;
  ciphertext: Uint8Array;
  received_at: number;
  expires_at: number;
}

const toMessage = (r: Row): StoredMessage => ({
  seq: r.seq,
  id: new Uint8Array(r.id),
  address: new Uint8Array(r.address),
  ciphertext: new Uint8Array(r.ciphertext),
  receivedAt: r.received_at,
  expiresAt: r.expires_at,
});

export class SqliteStorage implements Storage {
  readonly kind = "sqlite";
  readonly durability =
    "SQLite on the relay's disk (WAL, synchronous=FULL): a deposit is acknowledged once its commit is fsynced, so it survives a crash of the relay or of its machine";
  readonly path: string;
  private readonly db: Database.Database;
  private queue: Op[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private deletedSinceCheckpoint = 0;
  /** Transactions committed, and operations they carried (group-commit effectiveness). */
  commits = 0;
  committedOps = 0;
  private readonly q;

  constructor(dataDir: string) {
    makePrivateDir(dataDir);
    this.path = join(dataDir, "relay.sqlite");
    // SQLite gives the WAL the database file's permissions.
    createPrivateFile(this.path);
    this.db = new Database(this.path, { timeout: 0 });
    try {
      // One process at a time: the lock is taken by the first write below and held until close
      // (the kernel releases it if the process dies). In this mode the WAL index lives in this
      // process's memory, so there is no -shm file.
      this.db.pragma("locking_mode = EXCLUSIVE");
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
    this.db.pragma("synchronous = FULL");
    this.db.pragma("secure_delete = ON");
    this.db.exec(SCHEMA);
    // Databases of 0.1.0 remember client ids without a digest of the ciphertext: such an id (null
    // digest) is taken as a retry whatever the ciphertext, as it was then.
    const seenColumns = this.db.pragma("table_info(seen)") as { name: string }[];
    if (!seenColumns.some((c) => c.name === "digest"))
      this.db.exec("ALTER TABLE seen ADD COLUMN digest BLOB");
    // A crash may have left deleted ciphertext in the WAL: empty it before serving.
    this.db.pragma("wal_checkpoint(TRUNCATE)");
    const db = this.db;
    this.q = {
      insertMailbox: db.prepare("INSERT INTO mailboxes (address, owner) VALUES (?, ?)"),
      owner: db.prepare("SELECT owner FROM mailboxes WHERE address = ?").pluck(),
      usage: db.prepare(
        "SELECT message_count AS count, byte_count AS bytes FROM mailboxes WHERE address = ?",
      ),
      deleteMailbox: db.prepare("DELETE FROM mailboxes WHERE address = ?"),
      deleteMailboxMessages: db.prepare("DELETE FROM messages WHERE address = ?"),
      deleteMailboxSeen: db.prepare("DELETE FROM seen WHERE address = ?"),
      seen: db.prepare("SELECT digest FROM seen WHERE address = ? AND client_id = ?").pluck(),
      remember: db.prepare("INSERT INTO seen (address, client_id, expires_at, digest) VALUES (?, ?, ?, ?)"),
      insert: db.prepare(
        "INSERT INTO messages (id, address, ciphertext, received_at, expires_at) VALUES (?, ?, ?, ?, ?)",
      ),
      addUsage: db.prepare(
        "UPDATE mailboxes SET message_count = message_count + ?, byte_count = byte_count + ? WHERE address = ?",
      ),
      pending: db.prepare(
        "SELECT seq, id, address, ciphertext, received_at, expires_at FROM messages WHERE address = ? AND seq > ? AND expires_at > ? ORDER BY seq LIMIT ?",
      ),
      deleteMessage: db
        .prepare("DELETE FROM messages WHERE address = ? AND id = ? RETURNING length(ciphertext)")
        .pluck(),
      expired: db.prepare("SELECT address, length(ciphertext) AS size FROM messages WHERE expires_at <= ?"),
      deleteExpired: db.prepare("DELETE FROM messages WHERE expires_at <= ?"),
      forgetSeen: db.prepare("DELETE FROM seen WHERE expires_at <= ?"),
      stats: db.prepare(
        "SELECT count(*) AS mailboxes, coalesce(sum(message_count), 0) AS messages, coalesce(sum(byte_count), 0) AS bytes FROM mailboxes",
      ),
    };
  }

  /**
   * Queues a write. The queue commits as one transaction (one fsync) a moment after its first
   * write (GROUP_COMMIT_MS), or at once when GROUP_COMMIT_MAX writes are waiting.
   */
  private write<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error("storage is closed"));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (this.queue.length >= GROUP_COMMIT_MAX) {
        clearTimeout(this.timer);
        this.timer = undefined;
        setImmediate(() => this.flush());
      } else if (this.timer === undefined) {
        this.timer = setTimeout(() => this.flush(), GROUP_COMMIT_MS);
      }
    });
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const ops = this.queue;
    this.queue = [];
    if (ops.length === 0) return;
    let results: unknown[];
    try {
      results = this.db.transaction(() => ops.map((op) => op.run()))();
    } catch (e) {
      for (const op of ops) op.reject(e);
      return;
    }
    this.commits++;
    this.committedOps += ops.length;
    // Before anyone hears that a delete succeeded (an ack is answered), the ciphertext leaves the
    // WAL too: one checkpoint for the whole batch, so many acks share it.
    this.checkpointIfDeleted();
    for (const [i, op] of ops.entries()) op.resolve(results[i]);
  }

  createMailbox(address: Uint8Array, ownerKey: Uint8Array): Promise<"created" | "exists" | "conflict"> {
    return this.write(() => {
      const owner = this.q.owner.get(address) as Uint8Array | undefined;
      if (owner) return Buffer.compare(owner, ownerKey) === 0 ? "exists" : "conflict";
      this.q.insertMailbox.run(address, ownerKey);
      return "created";
    });
  }

  async mailboxOwner(address: Uint8Array): Promise<Uint8Array | null> {
    const owner = this.q.owner.get(address) as Uint8Array | undefined;
    return owner ? new Uint8Array(owner) : null;
  }

  deleteMailbox(address: Uint8Array): Promise<boolean> {
    return this.write(() => {
      const deleted = this.q.deleteMailboxMessages.run(address).changes;
      this.q.deleteMailboxSeen.run(address);
      this.deletedSinceCheckpoint += deleted;
      return this.q.deleteMailbox.run(address).changes > 0;
    });
  }

  deposit(r: DepositRequest, limits: MailboxLimits): Promise<DepositResult> {
    return this.write((): DepositResult => {
      const usage = this.q.usage.get(r.address) as { count: number; bytes: number } | undefined;
      if (!usage) return { status: "unknown-mailbox" };
      const digest = depositDigest(r.ciphertext);
      const seen = this.q.seen.get(r.address, r.clientMessageId) as Buffer | null | undefined;
      if (seen !== undefined) {
        return { status: seen === null || digest.equals(seen) ? "duplicate" : "id-reused" };
      }
      if (usage.count + 1 > limits.maxMessages || usage.bytes + r.ciphertext.length > limits.maxBytes) {
        return { status: "quota" };
      }
      const seq = Number(
        this.q.insert.run(r.id, r.address, r.ciphertext, r.receivedAt, r.expiresAt).lastInsertRowid,
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
    });
  }

  async pending(address: Uint8Array, now: number, limit: number, afterSeq = 0): Promise<StoredMessage[]> {
    return (this.q.pending.all(address, afterSeq, now, limit) as Row[]).map(toMessage);
  }

  ack(address: Uint8Array, id: Uint8Array): Promise<boolean> {
    return this.write(() => {
      const size = this.q.deleteMessage.get(address, id) as number | undefined;
      if (size === undefined) return false;
      this.q.addUsage.run(-1, -size, address);
      this.deletedSinceCheckpoint++;
      return true;
    });
  }

  sweep(now: number): Promise<number> {
    return this.write(() => {
      const rows = this.q.expired.all(now) as { address: Uint8Array; size: number }[];
      for (const r of rows) this.q.addUsage.run(-1, -r.size, r.address);
      this.q.deleteExpired.run(now);
      this.q.forgetSeen.run(now);
      this.deletedSinceCheckpoint += rows.length;
      return rows.length;
    });
  }

  /**
   * Deleted rows are zeroed in the database pages (secure_delete), but the WAL still holds the
   * frames that inserted them. A TRUNCATE checkpoint copies every page back and empties the WAL,
   * so no file in the data directory keeps deleted ciphertext. Run after each commit that deleted
   * something. Another process reading the database (an operator's `sqlite3`) can keep it from
   * completing: then the next commit that deletes, or the next sweep, tries again.
   */
  private checkpointIfDeleted(): void {
    if (this.deletedSinceCheckpoint === 0 || this.closed) return;
    try {
      const [result] = this.db.pragma("wal_checkpoint(TRUNCATE)") as { busy: number }[];
      if (result?.busy === 0) this.deletedSinceCheckpoint = 0;
    } catch {
      // The deletes are committed all the same; the WAL is emptied by a later checkpoint.
    }
  }

  async stats(): Promise<StorageStats> {
    return this.q.stats.get() as StorageStats;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.db.pragma("wal_checkpoint(TRUNCATE)");
    this.db.close();
  }
}
