// The invitations table (invitations I issued that are still open) and used_invitations (keyed
// tags of the invitations I accepted, so that a code opens one conversation).
import type { InvitationRecord, Row } from "./records.js";
import { randomKey, Table } from "./table.js";

export class InvitationsTable extends Table {
  all(): Row<InvitationRecord>[] {
    return this.db
      .prepare<[], { id: string; data: Buffer }>("SELECT id, data FROM invitations")
      .all()
      .map((r) => ({ key: r.id, value: this.vault.open<InvitationRecord>("invitations", r.id, r.data) }));
  }

  get(id: string): InvitationRecord | null {
    const r = this.db
      .prepare<[string], { data: Buffer }>("SELECT data FROM invitations WHERE id = ?")
      .get(id);
    return r ? this.vault.open<InvitationRecord>("invitations", id, r.data) : null;
  }

  add(value: InvitationRecord): string {
    const key = randomKey();
    this.db
      .prepare("INSERT INTO invitations (id, data) VALUES (?, ?)")
      .run(key, this.vault.seal("invitations", key, value));
    return key;
  }

  remove(id: string): void {
    this.db.prepare("DELETE FROM invitations WHERE id = ?").run(id);
  }

  /** Remembers an accepted invitation (by keyed tag only); false if it was already used. */
  use(id: string): boolean {
    const r = this.db
      .prepare("INSERT OR IGNORE INTO used_invitations (tag) VALUES (?)")
      .run(this.vault.tag("invitation", id));
    return r.changes === 1;
  }

  used(id: string): boolean {
    return !!this.db
      .prepare("SELECT 1 FROM used_invitations WHERE tag = ?")
      .get(this.vault.tag("invitation", id));
  }
}
