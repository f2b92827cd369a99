// What every table of the store shares: the open database and the vault that seals its records.
// Each table is one class in this directory; the client core hands each table to the one module
// that owns it, so no module reads or writes another's rows.
import type Database from "better-sqlite3";
import type { Vault } from "../vault.js";

export const randomKey = () => Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex");

export abstract class Table {
  constructor(
    protected readonly db: Database.Database,
    protected readonly vault: Vault,
  ) {}

  /**
   * The seq a new row of `table` gets. It is part of the record's associated data, so it is
   * allotted before the insert, never reusing one (AUTOINCREMENT's counter is consulted too).
   * Callers are inside a transaction.
   */
  protected nextSeq(table: "messages" | "outbox" | "receipts" | "group_items"): number {
    const max = this.db.prepare<[], { s: number | null }>(`SELECT max(seq) AS s FROM ${table}`).get()!.s ?? 0;
    const used = this.db
      .prepare<[string], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = ?")
      .get(table);
    return Math.max(max, used?.seq ?? 0) + 1;
  }
}
