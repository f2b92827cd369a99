// The relays table: what each relay's transparency statement and welcome said, by keyed tag of
// its URL.
import type { RelayRecord } from "./records.js";
import { Table } from "./table.js";

export class RelaysTable extends Table {
  get(url: string): RelayRecord | null {
    const tag = this.vault.tag("relay", url);
    const r = this.db.prepare<[Buffer], { data: Buffer }>("SELECT data FROM relays WHERE tag = ?").get(tag);
    return r ? this.vault.open<RelayRecord>("relays", tag.toString("hex"), r.data) : null;
  }

  put(value: RelayRecord): void {
    const tag = this.vault.tag("relay", value.url);
    this.db
      .prepare("INSERT OR REPLACE INTO relays (tag, data) VALUES (?, ?)")
      .run(tag, this.vault.seal("relays", tag.toString("hex"), value));
  }
}
