// The SQLite storage's mailboxes and messages (sqlite.ts): the queries of the hot path (deposit,
// pending, ack) and of the sweep. Every write runs inside a group-commit transaction
// (sqlite-commit.ts); every ciphertext is sealed under a key of its own from the key file.
import type Database from "better-sqlite3";
import { KEY_LENGTH, type KeyFile } from "./keyfile.js";
import { freshRandom, openMessage, SEAL_OVERHEAD, sealMessage } from "./sealed.js";
import type { Batch, GroupCommit } from "./sqlite-commit.js";
import { STATS_SQL } from "./sqlite-schema.js";
import {
  type CreateResult,
  type DepositRequest,
  type DepositResult,
  depositDigest,
  type MailboxLimits,
  type StoredMessage,
  tokenAdmits,
} from "./types.js";

/** Expired messages deleted per transaction by a sweep (which runs as many as it takes). */
const SWEEP_BATCH = 64;

/**
 * What a stored row may add to the database beyond its sealed bytes: the row, its index entries
 * and its client id (and, for a ciphertext that spills into overflow pages, a page for the unused
 * end of the last one). An estimate: each batch starts again from the pages really in use.
 */
const ROW_BYTES = 512;
const MAILBOX_BYTES = 256;

interface Row {
  seq: number;
  id: Uint8Array;
  address: Uint8Array;
  key_slot: number;
  sealed: Uint8Array;
  received_at: number;
  expires_at: number;
}

/** Totals over every mailbox (kept by triggers: see TOTALS in sqlite-schema.ts). */
export interface MessageTotals {
  readonly mailboxes: number;
  readonly messages: number;
  readonly bytes: number;
}

export interface SqliteMessagesOptions {
  readonly db: Database.Database;
  readonly keys: KeyFile;
  readonly commit: GroupCommit;
  /** --max-mailboxes, as resolved. */
  readonly maxMailboxes: number;
  /** Whether `growth` more bytes keep the data directory within --max-storage (sqlite.ts). */
  readonly fits: (batch: Batch, growth: number) => boolean;
}

export class SqliteMessages {
  private mailboxCount: number;
  private readonly q;

  constructor(private readonly o: SqliteMessagesOptions) {
    const db = o.db;
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
      pageSize: db.prepare("PRAGMA page_size").pluck(),
    };
    this.mailboxCount = this.q.mailboxCount.get() as number;
  }

  totals(): MessageTotals {
    return this.q.stats.get() as MessageTotals;
  }

  /** A transaction failed: the mailboxes are counted again. */
  rolledBack(): void {
    this.mailboxCount = this.q.mailboxCount.get() as number;
  }

  createMailbox(address: Uint8Array, ownerKey: Uint8Array): Promise<CreateResult> {
    return this.o.commit.write((batch): CreateResult => {
      const owner = this.q.owner.get(address) as Uint8Array | undefined;
      if (owner) return Buffer.compare(owner, ownerKey) === 0 ? "exists" : "conflict";
      if (batch.refuseNew || this.mailboxCount >= this.o.maxMailboxes) return "full";
      if (!this.o.fits(batch, MAILBOX_BYTES)) return "full";
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
    return this.o.commit.write(() => this.q.setToken.run(tokenHash, address).changes > 0);
  }

  deleteMailbox(address: Uint8Array): Promise<boolean> {
    return this.o.commit.write((batch) => {
      batch.freedSlots.push(...(this.q.mailboxSlots.all(address) as number[]));
      this.q.deleteMailboxMessages.run(address);
      this.q.deleteMailboxSeen.run(address);
      const deleted = this.q.deleteMailbox.run(address).changes > 0;
      if (deleted) this.mailboxCount--;
      return deleted;
    });
  }

  deposit(r: DepositRequest, limits: MailboxLimits): Promise<DepositResult> {
    return this.o.commit.write((batch): DepositResult => {
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
      if (batch.refuseNew || !this.o.fits(batch, growth)) return { status: "full" };
      const slot = this.o.keys.allocate();
      batch.newSlots.push(slot);
      const key = freshRandom(KEY_LENGTH);
      this.o.keys.write(slot, key);
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
      const key = this.o.keys.read(r.key_slot);
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
    return this.o.commit.write((batch) => {
      const row = this.q.deleteMessage.get(address, id) as { slot: number; size: number } | undefined;
      if (row === undefined) return false;
      this.q.addUsage.run(-1, -row.size, address);
      batch.freedSlots.push(row.slot);
      return true;
    });
  }

  /** Deletes what expired at or before `now`, in bounded transactions; returns messages deleted. */
  async sweep(now: number): Promise<number> {
    let deleted = 0;
    // In bounded transactions, so that the WAL stays small however much expired at once.
    for (;;) {
      const n = await this.o.commit.write((batch) => {
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
    return deleted;
  }
}
