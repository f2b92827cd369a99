// The relay against PROTOCOL.md, section by section, on the real process: what the document
// promises another team is what the reference relay does.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RelayProcess, startRelay } from "./helpers.js";

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
