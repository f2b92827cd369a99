// The groups table: one sealed GroupRecord per group, under a random row key (also the key of the
// group's conversation in the messages table). The group's own id is inside the sealed record.
import type { GroupRecord, Row, WaitingGroupItem } from "./records.js";
import { randomKey, Table } from "./table.js";

export class GroupsTable extends Table {
  all(): Row<GroupRecord>[] {
    return this.db
      .prepare<[], { id: string; data: Buffer }>("SELECT id, data FROM groups")
      .all()
      .map((r) => ({ key: r.id, value: this.vault.open<GroupRecord>("groups", r.id, r.data) }));
  }

  get(id: string): GroupRecord | null {
    const r = this.db.prepare<[string], { data: Buffer }>("SELECT data FROM groups WHERE id = ?").get(id);
    return r ? this.vault.open<GroupRecord>("groups", id, r.data) : null;
  }

  /** Writes a group (a new one, under a fresh random key, when `id` is null); returns its key. */
  put(id: string | null, value: GroupRecord): string {
    const key = id ?? randomKey();
    this.db
      .prepare("INSERT OR REPLACE INTO groups (id, data) VALUES (?, ?)")
      .run(key, this.vault.seal("groups", key, value));
    return key;
  }

  remove(id: string): void {
    this.db.prepare("DELETE FROM groups WHERE id = ?").run(id);
  }
}

/** Items kept per group, at most: beyond, the oldest go. */
export const MAX_WAITING_ITEMS = 256;

/**
 * The group_items table: group items waiting for entries (WaitingGroupItem), found by a keyed tag
 * of their group's id, so that the group id is not in the clear.
 */
export class WaitingItemsTable extends Table {
  private tag(groupId: string): Buffer {
    return this.vault.tag("group-item", groupId);
  }

  /** Keeps an item for group `groupId` (hex); the oldest of that group go beyond MAX_WAITING_ITEMS. */
  add(groupId: string, value: WaitingGroupItem): void {
    const seq = this.nextSeq("group_items");
    const tag = this.tag(groupId);
    this.db
      .prepare("INSERT INTO group_items (seq, grp, data) VALUES (?, ?, ?)")
      .run(seq, tag, this.vault.seal("group_items", String(seq), value));
    this.db
      .prepare(
        "DELETE FROM group_items WHERE grp = ? AND seq NOT IN (SELECT seq FROM group_items WHERE grp = ? ORDER BY seq DESC LIMIT ?)",
      )
      .run(tag, tag, MAX_WAITING_ITEMS);
  }

  /** The items kept for group `groupId`, oldest first. */
  of(groupId: string): { seq: number; value: WaitingGroupItem }[] {
    return this.db
      .prepare<[Buffer], { seq: number; data: Buffer }>(
        "SELECT seq, data FROM group_items WHERE grp = ? ORDER BY seq",
      )
      .all(this.tag(groupId))
      .map((r) => ({
        seq: r.seq,
        value: this.vault.open<WaitingGroupItem>("group_items", String(r.seq), r.data),
      }));
  }

  /** How many items are kept, of every group. */
  size(): number {
    return this.db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM group_items").get()!.n;
  }

  /** Every item kept, of every group, oldest first. */
  all(): { seq: number; value: WaitingGroupItem }[] {
    return this.db
      .prepare<[], { seq: number; data: Buffer }>("SELECT seq, data FROM group_items ORDER BY seq")
      .all()
      .map((r) => ({
        seq: r.seq,
        value: this.vault.open<WaitingGroupItem>("group_items", String(r.seq), r.data),
      }));
  }

  remove(seq: number): void {
    this.db.prepare("DELETE FROM group_items WHERE seq = ?").run(seq);
  }
}
