// The files table: one sealed FileRecord per file sent or offered to me (PROTOCOL.md §14), under
// a keyed tag of its file id (the manifest's message id), so that the id is not in the clear.
import type { FileRecord } from "./records.js";
import { Table } from "./table.js";

export class FilesTable extends Table {
  private tag(id: string): Buffer {
    return this.vault.tag("file", id);
  }

  get(id: string): FileRecord | null {
    const tag = this.tag(id);
    const r = this.db.prepare<[Buffer], { data: Buffer }>("SELECT data FROM files WHERE tag = ?").get(tag);
    return r ? this.vault.open<FileRecord>("files", tag.toString("hex"), r.data) : null;
  }

  /** Every file, oldest first. Files are few (each is a message someone sent by hand). */
  all(): FileRecord[] {
    return this.db
      .prepare<[], { tag: Buffer; data: Buffer }>("SELECT tag, data FROM files ORDER BY rowid")
      .all()
      .map((r) => this.vault.open<FileRecord>("files", r.tag.toString("hex"), r.data));
  }

  put(value: FileRecord): void {
    const tag = this.tag(value.id);
    const sealed = this.vault.seal("files", tag.toString("hex"), value);
    // An update keeps the row (and so its place in the order).
    const updated = this.db.prepare("UPDATE files SET data = ? WHERE tag = ?").run(sealed, tag);
    if (updated.changes === 0)
      this.db.prepare("INSERT INTO files (tag, data) VALUES (?, ?)").run(tag, sealed);
  }

  removeAll(conversation: string): void {
    for (const f of this.all())
      if (f.conversation === conversation)
        this.db.prepare("DELETE FROM files WHERE tag = ?").run(this.tag(f.id));
  }
}
