// The groups' tables (store/groups.ts): a store made before groups existed opens and takes
// groups; records are sealed, and items kept for a group are found by a keyed tag, oldest dropped.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Identity, toHex } from "@parley/protocol";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { MAX_WAITING_ITEMS } from "../../src/store/groups.js";
import { Store } from "../../src/store.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function oldStore(): string {
  const home = mkdtempSync(join(tmpdir(), "parley-store-"));
  dirs.push(home);
  const path = join(home, "parley.db");
  const id = Identity.generate();
  Store.create(home, path, "pw", 10, (s) =>
    s.putIdentity({ name: "Me", secret: toHex(id.serialize()), createdAt: 1 }),
  ).close();
  // As a store written before groups: without their tables.
  const db = new Database(path);
  db.exec("DROP TABLE groups; DROP TABLE group_items;");
  db.close();
  return path;
}

const record = (groupId: string) => ({
  groupId,
  name: "G",
  groupName: "G",
  entries: [],
  mySeq: 0,
  seqs: {},
  unread: 0,
  createdAt: 1,
  lastActivity: 1,
});

describe("the groups tables", () => {
  it("are made when a store from before groups is opened, which then keeps groups", () => {
    const path = oldStore();
    const store = Store.open(path, "pw");
    try {
      expect(store.tables.groups.all()).toEqual([]);
      const key = store.tx(() => store.tables.groups.put(null, record("ab".repeat(16))));
      expect(store.tables.groups.get(key)).toMatchObject({ groupId: "ab".repeat(16), name: "G" });
    } finally {
      store.close();
    }
    const again = Store.open(path, "pw");
    try {
      expect(again.tables.groups.all()).toHaveLength(1);
    } finally {
      again.close();
    }
    // Nothing of the group is in the clear: not its id, not its name.
    const raw = new Database(path, { readonly: true });
    const rows = raw.prepare("SELECT id, data FROM groups").all() as { id: string; data: Buffer }[];
    raw.close();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.data.includes(Buffer.from("ab".repeat(16)))).toBe(false);
    // The row key is random: it holds no part of the group id. Eight bytes of the id, not two: two
    // ("abab") turn up in a random key about once in 2,300 runs, and once did.
    expect(rows[0]!.id).not.toContain("ab".repeat(8));
  });

  it("keep waiting items per group, the newest MAX_WAITING_ITEMS of each", () => {
    const store = Store.open(oldStore(), "pw");
    try {
      const items = store.tables.groupItems;
      store.tx(() => {
        for (let i = 0; i < MAX_WAITING_ITEMS + 3; i++)
          items.add("aa".repeat(16), { from: "f", payload: String(i), receivedAt: i });
        items.add("bb".repeat(16), { from: "f", payload: "other", receivedAt: 0 });
      });
      const kept = items.of("aa".repeat(16));
      expect(kept).toHaveLength(MAX_WAITING_ITEMS);
      expect(kept[0]!.value.payload).toBe("3");
      expect(items.of("bb".repeat(16)).map((r) => r.value.payload)).toEqual(["other"]);
      store.tx(() => items.remove(kept[0]!.seq));
      expect(items.of("aa".repeat(16))).toHaveLength(MAX_WAITING_ITEMS - 1);
    } finally {
      store.close();
    }
  });
});
