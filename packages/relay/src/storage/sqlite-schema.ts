// The SQLite relay's database (sqlite.ts): its layout, opening it for this process alone, bringing
// a database of an older layout to this one, and checking the key file against it at start.
import Database from "better-sqlite3";
import type { Logger } from "../log.js";
import { createPrivateFile } from "./datadir.js";
import { KEY_LENGTH, type KeyFile } from "./keyfile.js";
import { freshRandom, SEAL_OVERHEAD, sealMessage } from "./sealed.js";

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

/**
 * Opens the database for this process alone, in WAL mode; a database that another process holds
 * is refused with a message that says so.
 */
export function openDatabase(path: string): Database.Database {
  // SQLite gives the WAL the database file's permissions.
  createPrivateFile(path);
  const db = new Database(path, { timeout: 0 });
  try {
    // One process at a time: the lock is taken by the first write below and held until close
    // (the kernel releases it if the process dies). In this mode the WAL index lives in this
    // process's memory, so there is no -shm file.
    db.pragma("locking_mode = EXCLUSIVE");
    // A new database frees pages back to the file system as they empty (see `shrinkDatabase`);
    // this must come before anything is written to it (an existing one keeps its setting).
    db.pragma("auto_vacuum = INCREMENTAL");
    db.pragma("journal_mode = WAL");
    db.exec("BEGIN IMMEDIATE; COMMIT");
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code === "SQLITE_BUSY") {
      throw new Error(
        `its database ${path} is in use by another process (another parley-relay?); stop that one or choose another --data-dir`,
      );
    }
    throw e;
  }
  return db;
}

/**
 * Sets the database up to be served from: its settings, this layout (`migrate`), the totals, and
 * the key file checked against the rows (`reconcileKeys`). `allowance` is the WAL's.
 */
export function prepareDatabase(
  db: Database.Database,
  keys: KeyFile,
  o: { path: string; allowance: number; log: Logger | undefined },
): void {
  db.pragma("synchronous = FULL");
  db.pragma("temp_store = MEMORY");
  // While the relay runs, the WAL is checkpointed often and kept at up to its allowance (not
  // truncated to nothing, so that deleting finds room in it on a full disk).
  db.pragma(`journal_size_limit = ${o.allowance}`);
  db.pragma(`wal_autocheckpoint = ${Math.max(16, Math.min(1000, Math.floor(o.allowance / 4 / 4096)))}`);
  // A conversion from an older layout zeroes every page it frees (plain ciphertext, there).
  db.pragma("secure_delete = ON");
  db.pragma("busy_timeout = 5000");
  migrate(db, keys, o.path, o.log);
  // Totals for stats(): a database from before them (or one migrate() left alone) gets them now.
  db.exec(TOTALS);
  if (db.prepare("SELECT 1 FROM totals").get() === undefined) db.exec(COUNT_TOTALS);
  // From then on, deleted rows are zeroed where that costs no extra writes: their metadata
  // (addresses, ids, times) in b-tree pages. Freed overflow pages keep their bytes, which are
  // sealed ciphertext whose key is erased.
  db.pragma("secure_delete = FAST");
  reconcileKeys(db, keys, o.log);
}

/** A row of `messages` in layout 0 (0.1.0): plain ciphertext. */
interface LegacyRow {
  seq: number;
  id: Uint8Array;
  address: Uint8Array;
  ciphertext: Buffer;
  received_at: number;
  expires_at: number;
}

/**
 * Brings a database of an older layout to this one, in one transaction. From 0.1.0 (user_version
 * 0, plain ciphertext in `messages.ciphertext`): every waiting message is sealed under a new key,
 * the old table is dropped with secure_delete on (its freed pages are zeroed), and the client ids
 * it remembered keep a null digest (any ciphertext under one is taken as a retry, as then).
 */
function migrate(db: Database.Database, keys: KeyFile, path: string, log: Logger | undefined): void {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new Error(
      `${path} was written by a newer parley-relay (database layout ${version}; this one knows up to ${SCHEMA_VERSION})`,
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
        keys.load([]);
        let after = 0;
        for (;;) {
          const rows = next.all(after) as LegacyRow[];
          for (const r of rows) {
            const slot = keys.allocate();
            newSlots.push(slot);
            const key = freshRandom(KEY_LENGTH);
            keys.write(slot, key);
            const sealed = sealMessage(key, r.id, r.address, r.ciphertext);
            insert.run(r.seq, r.id, r.address, slot, sealed, r.received_at, r.expires_at);
            key.fill(0);
            r.ciphertext.fill(0);
            after = r.seq;
            sealedRows++;
          }
          if (rows.length < 256) break;
        }
        keys.sync();
        db.exec("DROP TABLE messages_v0");
      }
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
  } catch (e) {
    keys.erase(newSlots);
    throw e;
  }
  if (!legacy && tokenless)
    log?.info(`database brought to layout ${SCHEMA_VERSION}: mailboxes can hold a deposit token`);
  if (legacy) {
    db.pragma("wal_checkpoint(TRUNCATE)");
    log?.info(
      { sealed: sealedRows },
      `database brought to layout ${SCHEMA_VERSION}: waiting messages sealed`,
    );
    try {
      // Rewritten once, so that it can give pages back to the file system from now on.
      db.pragma("auto_vacuum = INCREMENTAL");
      db.exec("VACUUM");
      db.pragma("wal_checkpoint(TRUNCATE)");
    } catch (e) {
      log?.warn({ err: (e as Error).message }, "database not rewritten (VACUUM): it keeps its free pages");
    }
  }
}

/**
 * Reads the key file against the messages: keys no message refers to (a crash after a commit that
 * deleted, before their erasure) are erased, and messages whose key is missing (a key file
 * deleted or damaged by hand) can never be read: they are deleted.
 */
function reconcileKeys(db: Database.Database, keys: KeyFile, log: Logger | undefined): void {
  const slots = db
    .prepare("SELECT key_slot FROM messages UNION ALL SELECT key_slot FROM blobs")
    .pluck()
    .all() as number[];
  const { erased, missing } = keys.load(slots);
  if (missing.length > 0) {
    // A blob whose key is missing can never be read either.
    const dropBlob = db.prepare("DELETE FROM blobs WHERE key_slot = ? RETURNING id").pluck();
    db.transaction(() => {
      for (const slot of missing) {
        for (const id of dropBlob.all(slot) as Buffer[]) {
          db.prepare("DELETE FROM blob_chunks WHERE blob = ?").run(id);
        }
      }
    })();
    const gone = new Set(missing);
    const drop = db.prepare(
      `DELETE FROM messages WHERE key_slot = ? RETURNING address, length(sealed) - ${SEAL_OVERHEAD} AS size`,
    );
    const adjust = db.prepare(
      "UPDATE mailboxes SET message_count = message_count - 1, byte_count = byte_count - ? WHERE address = ?",
    );
    db.transaction(() => {
      for (const slot of gone) {
        for (const r of drop.all(slot) as { address: Buffer; size: number }[]) adjust.run(r.size, r.address);
      }
    })();
    log?.warn(
      { messages: missing.length },
      "messages whose key is missing from relay.keys deleted: they could never be read",
    );
  }
  if (erased > 0) log?.info({ keys: erased }, "keys of messages deleted before a crash erased");
}
