// Sealed store records are padded to the wire's size buckets, read straight from the SQLite file;
// a record sealed the old way (unpadded JSON) still opens.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { scrypt } from "@noble/hashes/scrypt.js";
import { hkdfSha256, PADDING_BUCKETS, systemRandom, xseal } from "@parley/protocol";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { type MessageRecord, Store } from "../src/store.js";
import { type KdfParams, STORE_LABELS } from "../src/vault.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function newStore(): { path: string; store: Store } {
  const home = mkdtempSync(join(tmpdir(), "parley-store-"));
  dirs.push(home);
  const path = join(home, "parley.db");
  const store = Store.create(home, path, "pw", 10, (s) =>
    s.putIdentity({ name: "Alice", secret: "00", createdAt: 1 }),
  );
  return { path, store };
}

const message = (text: string, n: number): MessageRecord => ({
  id: n.toString(16).padStart(32, "0"),
  direction: "in",
  text,
  sentAt: 1_700_000_000_000,
  receivedAt: 1_700_000_000_001,
  status: "received",
});

/** Each message row's sealed record length, by seq, read from the file itself. */
function rawLengths(path: string): number[] {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .prepare<[], { n: number }>("SELECT length(data) AS n FROM messages ORDER BY seq")
      .all()
      .map((r) => r.n);
  } finally {
    db.close();
  }
}

describe("store records at rest", () => {
  it("pads sealed records to the wire's buckets: lengths within one bucket are equal", () => {
    const { path, store } = newStore();
    const contact = "c".repeat(32);
    const texts = [
      "hi",
      "a somewhat longer message, still well inside the first bucket",
      "x".repeat(600),
      "y".repeat(700),
      "z".repeat(40_000),
    ];
    store.tx(() => {
      for (const [i, t] of texts.entries()) store.addMessage(contact, message(t, i + 1));
    });
    store.close();
    const [a, b, c, d, big] = rawLengths(path);
    // 24-byte nonce + bucket + 16-byte tag.
    expect(a).toBe(24 + PADDING_BUCKETS[0] + 16);
    expect(b).toBe(a);
    expect(c).toBe(24 + PADDING_BUCKETS[1] + 16);
    expect(d).toBe(c);
    // Past the largest bucket: a multiple of it.
    expect((big! - 40) % PADDING_BUCKETS[PADDING_BUCKETS.length - 1]!).toBe(0);

    const reopened = Store.open(path, "pw");
    try {
      expect(reopened.messagesFrom(contact, 0, 10).map((m) => m.value.text)).toEqual(texts);
    } finally {
      reopened.close();
    }
  });

  it("still opens a record sealed before padding (unpadded JSON)", () => {
    const { path, store } = newStore();
    store.close();
    // Seal a message record exactly as stores made before padding did: JSON, no version, no padding.
    const db = new Database(path);
    const params = JSON.parse(
      db.prepare<[], { value: Buffer }>("SELECT value FROM meta WHERE key = 'kdf'").get()!.value.toString(),
    ) as KdfParams;
    const master = scrypt(new TextEncoder().encode("pw"), Buffer.from(params.salt, "hex"), {
      N: 2 ** params.logN,
      r: params.r,
      p: params.p,
      dkLen: 32,
    });
    const key = hkdfSha256(master, new Uint8Array(32), new TextEncoder().encode(STORE_LABELS.record), 32);
    const contact = "d".repeat(32);
    const old = message("sealed by an older client", 9);
    const nonce = systemRandom(24);
    const ad = new TextEncoder().encode(`parley/v1/client/record\u0000messages\u0000${contact}/1`);
    const ct = xseal(key, nonce, new TextEncoder().encode(JSON.stringify(old)), ad);
    db.prepare("INSERT INTO messages (seq, contact, tag, data) VALUES (1, ?, ?, ?)").run(
      contact,
      Buffer.alloc(16),
      Buffer.concat([nonce, ct]),
    );
    db.close();

    const reopened = Store.open(path, "pw");
    try {
      expect(reopened.messageBySeq(contact, 1)).toEqual(old);
    } finally {
      reopened.close();
    }
  });
});
