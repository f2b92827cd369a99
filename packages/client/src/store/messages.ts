// The messages table: each conversation's history, keyed by seq, with a keyed tag of the message
// id so that one the relay delivers twice is stored once.
import type { MessageRecord } from "./records.js";
import { Table } from "./table.js";

export interface MessageRow {
  seq: number;
  value: MessageRecord;
}

export class MessagesTable extends Table {
  private tag(contact: string, id: string): Buffer {
    return this.vault.tag("message", contact, id);
  }

  /** Inserts a message unless one with the same id is already there; returns its seq, or null. */
  add(contact: string, value: MessageRecord): number | null {
    const tag = this.tag(contact, value.id);
    const exists = this.db.prepare("SELECT 1 FROM messages WHERE contact = ? AND tag = ?").get(contact, tag);
    if (exists) return null;
    const seq = this.nextSeq("messages");
    this.db
      .prepare("INSERT INTO messages (seq, contact, tag, data) VALUES (?, ?, ?, ?)")
      .run(seq, contact, tag, this.vault.seal("messages", `${contact}/${seq}`, value));
    return seq;
  }

  bySeq(contact: string, seq: number): MessageRecord | null {
    const r = this.db
      .prepare<[number, string], { data: Buffer }>("SELECT data FROM messages WHERE seq = ? AND contact = ?")
      .get(seq, contact);
    return r ? this.vault.open<MessageRecord>("messages", `${contact}/${seq}`, r.data) : null;
  }

  byId(contact: string, id: string): MessageRow | null {
    const r = this.db
      .prepare<[string, Buffer], { seq: number; data: Buffer }>(
        "SELECT seq, data FROM messages WHERE contact = ? AND tag = ?",
      )
      .get(contact, this.tag(contact, id));
    if (!r) return null;
    return {
      seq: r.seq,
      value: this.vault.open<MessageRecord>("messages", `${contact}/${r.seq}`, r.data),
    };
  }

  put(contact: string, seq: number, value: MessageRecord): void {
    this.db
      .prepare("UPDATE messages SET data = ? WHERE seq = ? AND contact = ?")
      .run(this.vault.seal("messages", `${contact}/${seq}`, value), seq, contact);
  }

  /**
   * Up to `limit` messages of a contact older than `before` (the newest when it is undefined),
   * oldest first. Keyed by seq on the (contact, seq) index, so any depth costs the same.
   */
  before(contact: string, before: number | undefined, limit: number): MessageRow[] {
    return this.db
      .prepare<[string, number, number], { seq: number; data: Buffer }>(
        "SELECT seq, data FROM messages WHERE contact = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
      )
      .all(contact, before ?? Number.MAX_SAFE_INTEGER, limit)
      .reverse()
      .map((r) => this.open(contact, r));
  }

  /** Up to `limit` messages of a contact from `from` (its seq) on, oldest first. */
  from(contact: string, from: number, limit: number): MessageRow[] {
    return this.db
      .prepare<[string, number, number], { seq: number; data: Buffer }>(
        "SELECT seq, data FROM messages WHERE contact = ? AND seq >= ? ORDER BY seq ASC LIMIT ?",
      )
      .all(contact, from, limit)
      .map((r) => this.open(contact, r));
  }

  private open(contact: string, r: { seq: number; data: Buffer }): MessageRow {
    return { seq: r.seq, value: this.vault.open<MessageRecord>("messages", `${contact}/${r.seq}`, r.data) };
  }

  removeAll(contact: string): void {
    this.db.prepare("DELETE FROM messages WHERE contact = ?").run(contact);
  }
}
