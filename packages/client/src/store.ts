// The local store: one SQLite file whose every secret or personal value is a sealed record
// (vault.ts). In the clear are only row keys (random), the contact a message row belongs to
// (a random id), arrival order and keyed lookup tags. Each change runs in one IMMEDIATE
// transaction, so ratchet state, history and outbox move together or not at all.
import { chmodSync, existsSync, linkSync, mkdirSync, rmSync } from "node:fs";
import Database from "better-sqlite3";
import { ClientError } from "./errors.js";
import { type KdfParams, newKdfParams, parseKdfParams, Vault } from "./vault.js";

export type MessageStatus = "queued" | "stored" | "delivered" | "read" | "expired" | "failed" | "received";

/**
 * Why a relay did not take an outgoing message (on a "queued" one: still retried; on a "failed"
 * one: given up). Words are made when it is shown, with the contact's name as it is then.
 * - too-large: over the relay's ciphertext limit (`detail`: that limit in bytes);
 * - mailbox-gone: the relay has no mailbox at the address (UNKNOWN_MAILBOX);
 * - mailbox-full: the mailbox is at its quota (QUOTA);
 * - refused: another refusal (`detail`: the relay's error code);
 * - relay-policy: this client will not use the relay (`detail`: why, e.g. its retention).
 */
export interface DeliveryFailure {
  code: "too-large" | "mailbox-gone" | "mailbox-full" | "refused" | "relay-policy";
  detail?: string;
}

export interface IdentityRecord {
  name: string;
  /** hex of Identity.serialize() */
  secret: string;
  createdAt: number;
}

export interface ContactRecord {
  name: string;
  /** "user": chosen locally; "peer": announced by the contact; "auto": a placeholder. */
  nameSource: "user" | "peer" | "auto";
  /** hex of the 64-byte public identity */
  identity: string;
  /** hex of Session.serialize() */
  session: string;
  verified: boolean;
  /** The identity key differs from the one this contact had: nothing is sent until confirmed. */
  keyChanged: boolean;
  previousFingerprint?: string;
  /**
   * My mailbox for this contact: where they write. `token` (hex): its deposit token, sent in my
   * intro; `lock`: "due" once their intro showed they deposit with tokens (it carried one of
   * theirs), "set" once the relay took it (and then the mailbox takes nothing without it), "refused"
   * if the relay does not take deposit tokens.
   */
  inbox: { relay: string; key: string; token?: string; lock?: "due" | "set" | "refused" };
  /**
   * Their mailbox: where I write; `token` (hex): its deposit token, from their intro, without which
   * the relay refuses my deposits there once they have set it.
   */
  outbox: { relay: string; address: string; token?: string };
  /**
   * The invitation's mailbox, which I (the inviter) still read with the current session until
   * the contact writes to `inbox`, announced in my intro, with nothing of theirs missing before
   * it; then, or at `until` (ms), it is deleted on the relay. Anyone who saw the invitation code
   * knows its address.
   */
  firstContact?: { relay: string; key: string; until: number; moved?: boolean };
  createdAt: number;
  lastActivity: number;
  unread: number;
  /**
   * Earlier conversations (replaced by a renewed session or a key change): their mailboxes are
   * still read, with their own sessions, until `until` (ms), when the relay has surely dropped
   * anything sent to them.
   */
  previous?: { inbox: { relay: string; key: string }; session: string; until: number }[];
  /**
   * Digests (hex, first 16 bytes of SHA-256 of the wire bytes) of the Accept-wrapped messages from
   * this contact already processed, newest last, at most 64: one delivered again is a replay,
   * dropped silently, not a second acceptance. Absent in stores made before it.
   */
  accepts?: string[];
  /**
   * The current session has delivered nothing yet: its first message may be the contact's intro,
   * which then names them. An intro later in a session renames no one.
   */
  introExpected?: boolean;
  /** Sent messages stored on a relay and not yet acknowledged by a receipt: message seq and deadline (ms). */
  awaiting: { seq: number; deadline: number }[];
  /**
   * Deposits to this mailbox address of theirs have been refused (no such mailbox, or an
   * unexpected error) since `since` (ms), with no deposit taken there after. Once the relay's
   * retention has passed too, the entries for it are given up. Absent in stores made before it.
   */
  refused?: { address: string; since: number };
}

export interface MessageRecord {
  /** hex, 16 bytes: the payload's message id */
  id: string;
  direction: "in" | "out";
  text: string;
  sentAt: number;
  /** When it reached this client (in), or was written (out). */
  receivedAt: number;
  status: MessageStatus;
  /** Outgoing: why the relay did not take it (absent when nothing is known against it). */
  failure?: DeliveryFailure;
}

export interface OutboxRecord {
  kind: "message" | "receipt" | "accept" | "intro";
  relay: string;
  address: string;
  /** hex: the deposit token of `address` (the contact's outbox token when queued or moved). */
  token?: string;
  clientMessageId: string;
  /** base64 of the envelope */
  ciphertext: string;
  /** The history row this entry delivers (outgoing texts). */
  messageSeq?: number;
  createdAt: number;
  attempts: number;
  nextAttemptAt: number;
  lastError?: string;
  /** The refusal last recorded for this entry, so that a repeated one is not reported again. */
  failure?: DeliveryFailure["code"];
}

export interface InvitationRecord {
  /** hex of PendingInvitation.serialize() */
  pending: string;
  /** hex of MailboxKey.serialize(): the first-contact mailbox */
  mailboxKey: string;
  /**
   * hex of MailboxKey.serialize(): the contact's own inbox, created with the invitation and
   * announced in my intro once it is accepted, so the first-contact mailbox (whose address
   * anyone who saw the code knows) can be deleted. Absent in invitations made before it.
   */
  inboxKey?: string;
  /** hex: the inbox's deposit token, sent in my intro (absent when the relay does not take tokens). */
  inboxToken?: string;
  relay: string;
  expiresAt: number;
}

export interface RelayRecord {
  url: string;
  retentionSeconds: number;
  /** How often the relay deletes expired messages (its transparency statement). */
  sweepSeconds?: number;
  checkedAt: number;
}

export interface PendingReceipt {
  kind: "delivered" | "read";
  /** hex message id */
  id: string;
}

export interface Row<T> {
  readonly key: string;
  readonly value: T;
}

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
`;

const randomKey = () => Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex");

/** How long a command waits for another parley process to finish its transaction. */
const BUSY_TIMEOUT_MS = 10_000;

export class Store {
  private constructor(
    private readonly db: Database.Database,
    readonly vault: Vault,
  ) {}

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

  // contacts -------------------------------------------------------------------------------

  contacts(): Row<ContactRecord>[] {
    return this.db
      .prepare<[], { id: string; data: Buffer }>("SELECT id, data FROM contacts")
      .all()
      .map((r) => ({ key: r.id, value: this.vault.open<ContactRecord>("contacts", r.id, r.data) }));
  }

  contact(id: string): ContactRecord | null {
    const r = this.db.prepare<[string], { data: Buffer }>("SELECT data FROM contacts WHERE id = ?").get(id);
    return r ? this.vault.open<ContactRecord>("contacts", id, r.data) : null;
  }

  putContact(id: string | null, value: ContactRecord): string {
    const key = id ?? randomKey();
    this.db
      .prepare("INSERT OR REPLACE INTO contacts (id, data) VALUES (?, ?)")
      .run(key, this.vault.seal("contacts", key, value));
    return key;
  }

  // messages -------------------------------------------------------------------------------

  private messageTag(contact: string, id: string): Buffer {
    return this.vault.tag("message", contact, id);
  }

  /** Inserts a message unless one with the same id is already there; returns its seq, or null. */
  addMessage(contact: string, value: MessageRecord): number | null {
    const tag = this.messageTag(contact, value.id);
    const exists = this.db.prepare("SELECT 1 FROM messages WHERE contact = ? AND tag = ?").get(contact, tag);
    if (exists) return null;
    const seq = this.nextSeq("messages");
    this.db
      .prepare("INSERT INTO messages (seq, contact, tag, data) VALUES (?, ?, ?, ?)")
      .run(seq, contact, tag, this.vault.seal("messages", `${contact}/${seq}`, value));
    return seq;
  }

  /**
   * The seq a new row of `table` gets. It is part of the record's associated data, so it is
   * allotted before the insert, never reusing one (AUTOINCREMENT's counter is consulted too).
   * Callers are inside a transaction.
   */
  private nextSeq(table: "messages" | "outbox" | "receipts"): number {
    const max = this.db.prepare<[], { s: number | null }>(`SELECT max(seq) AS s FROM ${table}`).get()!.s ?? 0;
    const used = this.db
      .prepare<[string], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = ?")
      .get(table);
    return Math.max(max, used?.seq ?? 0) + 1;
  }

  messageBySeq(contact: string, seq: number): MessageRecord | null {
    const r = this.db
      .prepare<[number, string], { data: Buffer }>("SELECT data FROM messages WHERE seq = ? AND contact = ?")
      .get(seq, contact);
    return r ? this.vault.open<MessageRecord>("messages", `${contact}/${seq}`, r.data) : null;
  }

  messageById(contact: string, id: string): { seq: number; value: MessageRecord } | null {
    const r = this.db
      .prepare<[string, Buffer], { seq: number; data: Buffer }>(
        "SELECT seq, data FROM messages WHERE contact = ? AND tag = ?",
      )
      .get(contact, this.messageTag(contact, id));
    if (!r) return null;
    return {
      seq: r.seq,
      value: this.vault.open<MessageRecord>("messages", `${contact}/${r.seq}`, r.data),
    };
  }

  putMessage(contact: string, seq: number, value: MessageRecord): void {
    this.db
      .prepare("UPDATE messages SET data = ? WHERE seq = ? AND contact = ?")
      .run(this.vault.seal("messages", `${contact}/${seq}`, value), seq, contact);
  }

  /** The last `limit` messages of a contact, oldest first. */
  history(contact: string, limit: number): { seq: number; value: MessageRecord }[] {
    return this.messagesBefore(contact, undefined, limit);
  }

  /**
   * Up to `limit` messages of a contact older than `before` (the newest when it is undefined),
   * oldest first. Keyed by seq on the (contact, seq) index, so any depth costs the same.
   */
  messagesBefore(
    contact: string,
    before: number | undefined,
    limit: number,
  ): { seq: number; value: MessageRecord }[] {
    return this.db
      .prepare<[string, number, number], { seq: number; data: Buffer }>(
        "SELECT seq, data FROM messages WHERE contact = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
      )
      .all(contact, before ?? Number.MAX_SAFE_INTEGER, limit)
      .reverse()
      .map((r) => this.openMessage(contact, r));
  }

  /** Up to `limit` messages of a contact from `from` (its seq) on, oldest first. */
  messagesFrom(contact: string, from: number, limit: number): { seq: number; value: MessageRecord }[] {
    return this.db
      .prepare<[string, number, number], { seq: number; data: Buffer }>(
        "SELECT seq, data FROM messages WHERE contact = ? AND seq >= ? ORDER BY seq ASC LIMIT ?",
      )
      .all(contact, from, limit)
      .map((r) => this.openMessage(contact, r));
  }

  private openMessage(
    contact: string,
    r: { seq: number; data: Buffer },
  ): { seq: number; value: MessageRecord } {
    return { seq: r.seq, value: this.vault.open<MessageRecord>("messages", `${contact}/${r.seq}`, r.data) };
  }

  deleteHistory(contact: string): void {
    this.db.prepare("DELETE FROM messages WHERE contact = ?").run(contact);
  }

  deleteContactData(contact: string): void {
    this.db.prepare("DELETE FROM messages WHERE contact = ?").run(contact);
    this.db.prepare("DELETE FROM outbox WHERE contact = ?").run(contact);
    this.db.prepare("DELETE FROM receipts WHERE contact = ?").run(contact);
    this.db.prepare("DELETE FROM contacts WHERE id = ?").run(contact);
  }

  // outbox ---------------------------------------------------------------------------------

  enqueue(contact: string, value: OutboxRecord): number {
    const seq = this.nextSeq("outbox");
    this.db
      .prepare("INSERT INTO outbox (seq, contact, data) VALUES (?, ?, ?)")
      .run(seq, contact, this.vault.seal("outbox", `${contact}/${seq}`, value));
    return seq;
  }

  outbox(): { seq: number; contact: string; value: OutboxRecord }[] {
    return this.db
      .prepare<[], { seq: number; contact: string; data: Buffer }>(
        "SELECT seq, contact, data FROM outbox ORDER BY seq",
      )
      .all()
      .map((r) => ({
        seq: r.seq,
        contact: r.contact,
        value: this.vault.open<OutboxRecord>("outbox", `${r.contact}/${r.seq}`, r.data),
      }));
  }

  /** The outbox's entry numbers, oldest first (nothing decrypted). */
  outboxSeqs(): number[] {
    return this.db
      .prepare<[], { seq: number }>("SELECT seq FROM outbox ORDER BY seq")
      .all()
      .map((r) => r.seq);
  }

  outboxEntry(seq: number): { contact: string; value: OutboxRecord } | null {
    const r = this.db
      .prepare<[number], { contact: string; data: Buffer }>("SELECT contact, data FROM outbox WHERE seq = ?")
      .get(seq);
    return r
      ? { contact: r.contact, value: this.vault.open<OutboxRecord>("outbox", `${r.contact}/${seq}`, r.data) }
      : null;
  }

  outboxSize(contact?: string): number {
    const r = contact
      ? this.db
          .prepare<[string], { n: number }>("SELECT count(*) AS n FROM outbox WHERE contact = ?")
          .get(contact)
      : this.db.prepare<[], { n: number }>("SELECT count(*) AS n FROM outbox").get();
    return r!.n;
  }

  putOutbox(seq: number, contact: string, value: OutboxRecord): void {
    this.db
      .prepare("UPDATE outbox SET data = ? WHERE seq = ?")
      .run(this.vault.seal("outbox", `${contact}/${seq}`, value), seq);
  }

  removeOutbox(seq: number): void {
    this.db.prepare("DELETE FROM outbox WHERE seq = ?").run(seq);
  }

  // receipts waiting to be encrypted ------------------------------------------------------

  addReceipt(contact: string, value: PendingReceipt): void {
    const seq = this.nextSeq("receipts");
    this.db
      .prepare("INSERT INTO receipts (seq, contact, data) VALUES (?, ?, ?)")
      .run(seq, contact, this.vault.seal("receipts", `${contact}/${seq}`, value));
  }

  receipts(): { seq: number; contact: string; value: PendingReceipt }[] {
    return this.db
      .prepare<[], { seq: number; contact: string; data: Buffer }>(
        "SELECT seq, contact, data FROM receipts ORDER BY seq",
      )
      .all()
      .map((r) => ({
        seq: r.seq,
        contact: r.contact,
        value: this.vault.open<PendingReceipt>("receipts", `${r.contact}/${r.seq}`, r.data),
      }));
  }

  removeReceipt(seq: number): void {
    this.db.prepare("DELETE FROM receipts WHERE seq = ?").run(seq);
  }

  // invitations ----------------------------------------------------------------------------

  invitations(): Row<InvitationRecord>[] {
    return this.db
      .prepare<[], { id: string; data: Buffer }>("SELECT id, data FROM invitations")
      .all()
      .map((r) => ({ key: r.id, value: this.vault.open<InvitationRecord>("invitations", r.id, r.data) }));
  }

  invitation(id: string): InvitationRecord | null {
    const r = this.db
      .prepare<[string], { data: Buffer }>("SELECT data FROM invitations WHERE id = ?")
      .get(id);
    return r ? this.vault.open<InvitationRecord>("invitations", id, r.data) : null;
  }

  addInvitation(value: InvitationRecord): string {
    const key = randomKey();
    this.db
      .prepare("INSERT INTO invitations (id, data) VALUES (?, ?)")
      .run(key, this.vault.seal("invitations", key, value));
    return key;
  }

  removeInvitation(id: string): void {
    this.db.prepare("DELETE FROM invitations WHERE id = ?").run(id);
  }

  /** Remembers an accepted invitation (by keyed tag only); false if it was already used. */
  useInvitation(id: string): boolean {
    const r = this.db
      .prepare("INSERT OR IGNORE INTO used_invitations (tag) VALUES (?)")
      .run(this.vault.tag("invitation", id));
    return r.changes === 1;
  }

  invitationUsed(id: string): boolean {
    return !!this.db
      .prepare("SELECT 1 FROM used_invitations WHERE tag = ?")
      .get(this.vault.tag("invitation", id));
  }

  // relays ---------------------------------------------------------------------------------

  relay(url: string): RelayRecord | null {
    const tag = this.vault.tag("relay", url);
    const r = this.db.prepare<[Buffer], { data: Buffer }>("SELECT data FROM relays WHERE tag = ?").get(tag);
    return r ? this.vault.open<RelayRecord>("relays", tag.toString("hex"), r.data) : null;
  }

  putRelay(value: RelayRecord): void {
    const tag = this.vault.tag("relay", value.url);
    this.db
      .prepare("INSERT OR REPLACE INTO relays (tag, data) VALUES (?, ?)")
      .run(tag, this.vault.seal("relays", tag.toString("hex"), value));
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
