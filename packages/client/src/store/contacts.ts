// The contacts table: one sealed ContactRecord per conversation, under a random id.
import type { ContactRecord, Row } from "./records.js";
import { randomKey, Table } from "./table.js";

export class ContactsTable extends Table {
  all(): Row<ContactRecord>[] {
    return this.db
      .prepare<[], { id: string; data: Buffer }>("SELECT id, data FROM contacts")
      .all()
      .map((r) => ({ key: r.id, value: this.vault.open<ContactRecord>("contacts", r.id, r.data) }));
  }

  get(id: string): ContactRecord | null {
    const r = this.db.prepare<[string], { data: Buffer }>("SELECT data FROM contacts WHERE id = ?").get(id);
    return r ? this.vault.open<ContactRecord>("contacts", id, r.data) : null;
  }

  /** Writes a contact (a new one, under a fresh random id, when `id` is null); returns its id. */
  put(id: string | null, value: ContactRecord): string {
    const key = id ?? randomKey();
    this.db
      .prepare("INSERT OR REPLACE INTO contacts (id, data) VALUES (?, ?)")
      .run(key, this.vault.seal("contacts", key, value));
    return key;
  }

  remove(id: string): void {
    this.db.prepare("DELETE FROM contacts WHERE id = ?").run(id);
  }
}
