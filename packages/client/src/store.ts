// The local store: one SQLite file whose every secret or personal value is a sealed record
// (vault.ts). In the clear are only row keys (random), the contact a message row belongs to
// (a random id), arrival order and keyed lookup tags. Each change runs in one IMMEDIATE
// transaction, so ratchet state, history and outbox move together or not at all.
import { chmodSync, existsSync, linkSync, mkdirSync, rmSync } from "node:fs";
import Database from "better-sqlite3";
import { ClientError } from "./errors.js";
import { ContactsTable } from "./store/contacts.js";
import { FilesTable } from "./store/files.js";
import { GroupsTable, WaitingItemsTable } from "./store/groups.js";
import { InvitationsTable } from "./store/invitations.js";
import { type MessageRow, MessagesTable } from "./store/messages.js";
import { type OutboxRow, OutboxTable } from "./store/outbox.js";
import { ReceiptsTable } from "./store/receipts.js";
import type {
  ContactRecord,
  IdentityRecord,
  InvitationRecord,
  MessageRecord,
  OutboxRecord,
  Row,
} from "./store/records.js";
import { RelaysTable } from "./store/relays.js";
import { randomKey } from "./store/table.js";
import { type KdfParams, newKdfParams, parseKdfParams, Vault } from "./vault.js";

export type {
  ContactRecord,
  DeliveryFailure,
  FileRecord,
  GroupMessageFields,
  GroupRecord,
  IdentityRecord,
  InvitationRecord,
  MessageRecord,
  MessageStatus,
  OutboxRecord,
  PendingReceipt,
  RelayRecord,
  Row,
} from "./store/records.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  contact TEXT NOT NULL,
  tag BLOB NOT NULL,
  data BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_tag ON messages (contact, tag);
CREATE INDEX IF NOT EXISTS messages_contact ON messages (contact, seq);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, contact TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (seq INTEGER PRIMARY KEY AUTOINCREMENT, contact TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS invitations (id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS relays (tag BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS used_invitations (tag BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS groups (id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS group_items (seq INTEGER PRIMARY KEY AUTOINCREMENT, grp BLOB NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS group_items_grp ON group_items (grp, seq);
CREATE TABLE IF NOT EXISTS files (tag BLOB PRIMARY KEY, data BLOB NOT NULL);
`;

/** How long a command waits for another parley process to finish its transaction. */
const BUSY_TIMEOUT_MS = 10_000;

/** The store's tables, each handed to the one module of the client core that owns it. */
export interface Tables {
  readonly contacts: ContactsTable;
  readonly messages: MessagesTable;
  readonly outbox: OutboxTable;
  readonly receipts: ReceiptsTable;
  readonly invitations: InvitationsTable;
  readonly relays: RelaysTable;
  readonly groups: GroupsTable;
  readonly groupItems: WaitingItemsTable;
  readonly files: FilesTable;
}

export class Store {
  readonly tables: Tables;

  private constructor(
    private readonly db: Database.Database,
    readonly vault: Vault,
  ) {
    this.tables = {
      contacts: new ContactsTable(db, vault),
      messages: new MessagesTable(db, vault),
      outbox: new OutboxTable(db, vault),
      receipts: new ReceiptsTable(db, vault),
      invitations: new InvitationsTable(db, vault),
      relays: new RelaysTable(db, vault),
      groups: new GroupsTable(db, vault),
      groupItems: new WaitingItemsTable(db, vault),
      files: new FilesTable(db, vault),
    };
  }

  static exists(path: string): boolean {
    return existsSync(path);
  }

  /**
   * Creates a new store (the home must not have one), runs `fill` (writing the identity) in the
   * same transaction, and only then moves the file into place: an interrupted init leaves no
   * half-made store behind.
   */
  static create(
    home: string,
    path: string,
    passphrase: string,
    logN: number | undefined,
    fill: (s: Store) => void,
  ): Store {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    if (existsSync(path))
      throw new ClientError("ALREADY_INITIALIZED", `${home} already holds a Parley identity`);
    const partial = `${path}.creating-${randomKey()}`;
    const params = newKdfParams(logN);
    const vault = Vault.derive(passphrase, params);
    const db = new Database(partial);
    try {
      chmodSync(partial, 0o600);
      db.pragma("journal_mode = DELETE");
      db.pragma("secure_delete = ON");
      const draft = new Store(db, vault);
      db.transaction(() => {
        db.exec(SCHEMA);
        db.prepare("INSERT INTO meta (key, value) VALUES ('kdf', ?), ('verifier', ?)").run(
          Buffer.from(JSON.stringify(params)),
          Buffer.from(vault.makeVerifier()),
        );
        fill(draft);
      }).immediate();
    } finally {
      db.close();
    }
    // link() refuses to replace an existing file, so two inits racing cannot overwrite each other.
    try {
      linkSync(partial, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") {
        throw new ClientError("ALREADY_INITIALIZED", `${home} already holds a Parley identity`);
      }
      throw e;
    } finally {
      rmSync(partial, { force: true });
    }
    return new Store(openDb(path), vault);
  }

  /** Opens and unlocks an existing store; a wrong passphrase changes nothing. */
  static open(path: string, passphrase: string): Store {
    if (!existsSync(path))
      throw new ClientError("NOT_INITIALIZED", "no Parley identity here: run `parley init`");
    const db = openDb(path);
    try {
      return Store.unlock(db, passphrase);
    } catch (e) {
      db.close();
      throw busy(e);
    }
  }

  private static unlock(db: Database.Database, passphrase: string): Store {
    const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
    const get = (key: string) =>
      hasMeta
        ? db.prepare<[string], { value: Buffer }>("SELECT value FROM meta WHERE key = ?").get(key)
        : undefined;
    const kdf = get("kdf");
    const verifier = get("verifier");
    if (!kdf || !verifier) {
      throw new ClientError("INTERNAL", "the store (parley.db) is incomplete or is not a Parley store");
    }
    const params: KdfParams = parseKdfParams(kdf.value.toString("utf8"));
    const vault = Vault.derive(passphrase, params);
    if (!vault.checkVerifier(verifier.value)) {
      vault.wipe();
      throw new ClientError("WRONG_PASSPHRASE", "wrong passphrase: the store stays locked");
    }
    db.exec(SCHEMA);
    return new Store(db, vault);
  }

  close(): void {
    this.vault.wipe();
    if (this.db.open) this.db.close();
  }

  /** Runs `fn` in one IMMEDIATE transaction: it sees and leaves a consistent store. */
  tx<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (e) {
      throw busy(e);
    }
  }

  // identity -------------------------------------------------------------------------------

  getIdentity(): IdentityRecord | null {
    const row = this.db.prepare<[], { value: Buffer }>("SELECT value FROM meta WHERE key = 'identity'").get();
    return row ? this.vault.open<IdentityRecord>("meta", "identity", row.value) : null;
  }

  putIdentity(value: IdentityRecord): void {
    this.db
      .prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('identity', ?)")
      .run(this.vault.seal("meta", "identity", value));
  }

  // Records, for tools, benchmarks and tests that open a store directly. The client core does not
  // use these: each of its modules holds the one table it owns (`tables`).

  contacts(): Row<ContactRecord>[] {
    return this.tables.contacts.all();
  }

  putContact(id: string | null, value: ContactRecord): string {
    return this.tables.contacts.put(id, value);
  }

  /** Inserts a message unless one with the same id is already there; returns its seq, or null. */
  addMessage(contact: string, value: MessageRecord): number | null {
    return this.tables.messages.add(contact, value);
  }

  /** Up to `limit` messages of a contact older than `before` (the newest when undefined), oldest first. */
  messagesBefore(contact: string, before: number | undefined, limit: number): MessageRow[] {
    return this.tables.messages.before(contact, before, limit);
  }

  /** Up to `limit` messages of a contact from `from` (its seq) on, oldest first. */
  messagesFrom(contact: string, from: number, limit: number): MessageRow[] {
    return this.tables.messages.from(contact, from, limit);
  }

  messageBySeq(contact: string, seq: number): MessageRecord | null {
    return this.tables.messages.bySeq(contact, seq);
  }

  enqueue(contact: string, value: OutboxRecord): number {
    return this.tables.outbox.add(contact, value);
  }

  outbox(): OutboxRow[] {
    return this.tables.outbox.all();
  }

  invitations(): Row<InvitationRecord>[] {
    return this.tables.invitations.all();
  }
}

function openDb(path: string): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("secure_delete = ON");
    db.pragma("foreign_keys = ON");
  } catch (e) {
    throw busy(e);
  }
  return db;
}

function busy(e: unknown): unknown {
  const code = (e as { code?: string }).code ?? "";
  if (code === "SQLITE_NOTADB" || code.startsWith("SQLITE_CORRUPT")) {
    return new ClientError("INTERNAL", "the store (parley.db) is damaged or is not a Parley store", {
      cause: e,
    });
  }
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return new ClientError(
      "LOCKED",
      "the store is locked by another parley process; try again when it is done",
      {
        cause: e,
      },
    );
  }
  return e;
}
