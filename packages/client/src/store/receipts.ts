// The receipts table: delivered and read receipts waiting to be encrypted into the outbox.
import type { PendingReceipt } from "./records.js";
import { Table } from "./table.js";

export interface ReceiptRow {
  seq: number;
  contact: string;
  value: PendingReceipt;
}

export class ReceiptsTable extends Table {
  add(contact: string, value: PendingReceipt): void {
    const seq = this.nextSeq("receipts");
    this.db
      .prepare("INSERT INTO receipts (seq, contact, data) VALUES (?, ?, ?)")
      .run(seq, contact, this.vault.seal("receipts", `${contact}/${seq}`, value));
  }

  all(): ReceiptRow[] {
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

  remove(seq: number): void {
    this.db.prepare("DELETE FROM receipts WHERE seq = ?").run(seq);
  }

  removeAll(contact: string): void {
    this.db.prepare("DELETE FROM receipts WHERE contact = ?").run(contact);
  }
}
