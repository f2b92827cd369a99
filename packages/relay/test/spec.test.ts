// The relay against PROTOCOL.md, section by section, on the real process: what the document
// promises another team is what the reference relay does.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MailboxKey } from "@parley/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type RelayProcess, startRelay, TestClient } from "./helpers.js";

const SPEC = join(import.meta.dirname, "../../protocol/PROTOCOL.md");

interface Row {
  readonly path: string[];
  readonly type: string;
  readonly present: string;
}

/** The member table of a section of PROTOCOL.md: `| \`a.b\` | type | present | meaning |` rows. */
function memberTable(heading: string): Row[] {
  const text = readFileSync(SPEC, "utf8");
  const start = text.indexOf(`\n### ${heading}\n`);
  if (start < 0) throw new Error(`PROTOCOL.md has no section "${heading}"`);
  const end = text.indexOf("\n#", start + 1);
  const rows: Row[] = [];
  for (const line of text.slice(start, end).split("\n")) {
    const m = /^\| `([\w.]+)`\s*\| ([^|]+?)\s*\| (\w+)\s*\|/.exec(line);
    if (m?.[1] && m[2] && m[3]) rows.push({ path: m[1].split("."), type: m[2], present: m[3] });
  }
  return rows;
}

/** Does a JSON value have the type a spec table names ("integer, seconds, > 0", "string or `null`")? */
function hasType(value: unknown, type: string): boolean {
  if (value === null) return /`null`/.test(type);
  if (type.startsWith("array of `{field, why}`")) {
    return (
      Array.isArray(value) &&
      value.length > 0 &&
      value.every(
        (v) =>
          typeof v === "object" &&
          v !== null &&
          typeof (v as { field?: unknown }).field === "string" &&
          typeof (v as { why?: unknown }).why === "string",
      )
    );
  }
  if (type.startsWith("array of string")) {
    return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string");
  }
  if (type.startsWith("integer")) {
    return Number.isSafeInteger(value) && (!type.includes("> 0") || (value as number) > 0);
  }
  if (type.startsWith("number")) return typeof value === "number" && Number.isFinite(value);
  if (type.startsWith("string")) return typeof value === "string";
  if (type.startsWith("object")) return typeof value === "object" && !Array.isArray(value);
  throw new Error(`the spec table names a type this check does not know: ${type}`);
}

function member(statement: unknown, path: string[]): unknown {
  let v: unknown = statement;
  for (const key of path) {
    if (typeof v !== "object" || v === null || !(key in v)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

describe("relay against PROTOCOL.md (real process)", () => {
  let relay: RelayProcess;
  beforeAll(async () => {
    relay = await startRelay(["--storage", "memory", "--ttl", "2h", "--sweep-interval", "90s"]);
  });
  afterAll(async () => {
    await relay.stop();
  });
  const clients: TestClient[] = [];
  async function connect(): Promise<TestClient> {
    const c = await TestClient.connect(relay.port);
    clients.push(c);
    return c;
  }
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });

  it("§8.1 an ack requires a live subscription on its connection: otherwise AUTH, and nothing is deleted", async () => {
    const owner = MailboxKey.generate();
    const reader = await connect();
    expect(await reader.createMailbox(owner)).toMatchObject({ type: "ok" });
    expect(
      await reader.deposit(owner.address, new Uint8Array(40).fill(1), new Uint8Array(16).fill(1)),
    ).toMatchObject({ type: "ok" });
    expect(await reader.subscribe(owner)).toMatchObject({ type: "ok" });
    const d = await reader.next();
    if (d.type !== "deliver") throw new Error(`expected a delivery, got ${d.type}`);

    // Another connection, with no subscription (the owner's, a stranger's: the relay cannot tell).
    const other = await connect();
    expect(await other.ack(owner.address, d.messageId)).toMatchObject({ type: "error", code: "AUTH" });
    // Checked before the lookup: an unknown mailbox or id is AUTH too.
    expect(await other.ack(new Uint8Array(32).fill(9), new Uint8Array(16).fill(9))).toMatchObject({
      type: "error",
      code: "AUTH",
    });
    // A subscription that ended with unsubscribe no longer allows acks.
    expect(
      await reader.request({ type: "unsubscribe", requestId: 77, address: owner.address }),
    ).toMatchObject({
      type: "ok",
    });
    expect(await reader.ack(owner.address, d.messageId)).toMatchObject({ type: "error", code: "AUTH" });

    // Nothing was deleted: a new subscription delivers the message again, and its ack is accepted.
    const again = await connect();
    expect(await again.subscribe(owner)).toMatchObject({ type: "ok" });
    const d2 = await again.next();
    if (d2.type !== "deliver") throw new Error(`expected a delivery, got ${d2.type}`);
    expect(Buffer.from(d2.messageId).equals(Buffer.from(d.messageId))).toBe(true);
    expect(await again.ack(owner.address, d2.messageId)).toMatchObject({ type: "ok" });
    expect(await again.ack(owner.address, d2.messageId)).toMatchObject({
      type: "error",
      code: "UNKNOWN_MESSAGE",
    });
  });

  it("§8.5 transparency statement: serves every member the spec's table calls always, with its type", async () => {
    const rows = memberTable("8.5 Transparency statement");
    expect(rows.length).toBeGreaterThan(30);
    const res = await fetch(`http://127.0.0.1:${relay.port}/transparency`, { redirect: "error" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const statement: unknown = JSON.parse(await res.text());
    const wrong = rows
      .filter((r) => r.present === "always")
      .filter((r) => !hasType(member(statement, r.path), r.type))
      .map((r) => `${r.path.join(".")}: ${JSON.stringify(member(statement, r.path))} is not ${r.type}`);
    expect(wrong).toEqual([]);
    // Members the table lists as Redis-only are absent from a relay with another storage.
    for (const r of rows.filter((r) => r.present === "Redis")) {
      expect(member(statement, r.path), r.path.join(".")).toBeUndefined();
    }
    // Every member the relay serves is in the table (arrays of prose aside, and counters' values).
    const listed = new Set(rows.map((r) => r.path.join(".")));
    const served = (o: Record<string, unknown>, prefix: string): string[] =>
      Object.entries(o).flatMap(([k, v]) =>
        typeof v === "object" && v !== null && !Array.isArray(v)
          ? [`${prefix}${k}`, ...served(v as Record<string, unknown>, `${prefix}${k}.`)]
          : [`${prefix}${k}`],
      );
    expect(served(statement as Record<string, unknown>, "").filter((p) => !listed.has(p))).toEqual([]);
    // The values the spec pins down.
    expect(member(statement, ["protocolVersion"])).toBe(1);
    expect(member(statement, ["retention", "seconds"])).toBe(7200);
    expect(member(statement, ["retention", "human"])).toBe("2h");
    expect(member(statement, ["retention", "sweepIntervalSeconds"])).toBe(90);
    expect(member(statement, ["generatedAt"])).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(member(statement, ["transport"])).toMatch(/^plain WebSocket \(ws:\/\/\)/);
  });
});
