// The outbox table: envelopes waiting for a relay, in the order they were queued.
import type { OutboxRecord } from "./records.js";
import { Table } from "./table.js";

export interface OutboxRow {
  seq: number;
  contact: string;
  value: OutboxRecord;
}

export class OutboxTable extends Table {
  add(contact: string, value: OutboxRecord): number {
    const seq = this.nextSeq("outbox");
    this.db
      .prepare("INSERT INTO outbox (seq, contact, data) VALUES (?, ?, ?)")
      .run(seq, contact, this.vault.seal("outbox", `${contact}/${seq}`, value));
    return seq;
  }

  all(): OutboxRow[] {
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
  seqs(): number[] {
    return this.db
      .prepare<[], { seq: number }>("SELECT seq FROM outbox ORDER BY seq")
      .all()
      .map((r) => r.seq);
  }

  /** Each entry's number and contact, oldest first (nothing decrypted). */
  queue(): { seq: number; contact: string }[] {
    return this.db
      .prepare<[], { seq: number; contact: string }>("SELECT seq, contact FROM outbox ORDER BY seq")
      .all();
  }

  get(seq: number): { contact: string; value: OutboxRecord } | null {
    const r = this.db
      .prepare<[number], { contact: string; data: Buffer }>("SELECT contact, data FROM outbox WHERE seq = ?")
      .get(seq);
    return r
      ? { contact: r.contact, value: this.vault.open<OutboxRecord>("outbox", `${r.contact}/${seq}`, r.data) }
      : null;
  }

  size(contact?: string): number {
    const r = contact
      ? this.db
          .prepare<[string], { n: number }>("SELECT count(*) AS n FROM outbox WHERE contact = ?")
          .get(contact)
      : this.db.prepare<[], { n: number }>("SELECT count(*) AS n FROM outbox").get();
    return r!.n;
  }

  put(seq: number, contact: string, value: OutboxRecord): void {
    this.db
      .prepare("UPDATE outbox SET data = ? WHERE seq = ?")
      .run(this.vault.seal("outbox", `${contact}/${seq}`, value), seq);
  }

  remove(seq: number): void {
    this.db.prepare("DELETE FROM outbox WHERE seq = ?").run(seq);
  }

  removeAll(contact: string): void {
    this.db.prepare("DELETE FROM outbox WHERE contact = ?").run(contact);
  }
}
