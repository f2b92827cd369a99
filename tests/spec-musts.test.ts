// scripts/spec-musts.mjs, the gate `npm run check` runs: with --strict it fails when a MUST of the
// specification has no test naming its section, and when it finds no MUST at all.
import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanup, newDir, ROOT } from "./client-helpers.js";

const SCRIPT = join(ROOT, "scripts/spec-musts.mjs");
const run = (...args: string[]) =>
  spawnSync(process.execPath, [SCRIPT, ...args], { cwd: ROOT, encoding: "utf8" });

/** A specification in a temporary file. Its section numbers are ones no test name mentions. */
async function spec(text: string): Promise<string> {
  const path = join(await newDir("spec-musts-"), "SPEC.md");
  await writeFile(path, text);
  return path;
}

afterAll(cleanup);

describe("spec:musts (scripts/spec-musts.mjs)", () => {
  it("passes --strict on PROTOCOL.md: every MUST has a test naming its section", () => {
    const result = run("--strict");
    expect(result.status, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(
      /^\d+ MUST sentences in packages\/protocol\/PROTOCOL\.md; 0 in 0 sections/m,
    );
  });

  it("--strict exits 1 and names the sentence when a MUST has no test; without --strict it only reports", async () => {
    const path = await spec(
      "# Spec\n\n## 97 Untested\n\n### 97.3 A rule\n\nA decoder MUST reject a frame of 0 bytes. This MAY be logged.\n",
    );
    const strict = run("--strict", "--spec", path);
    expect(strict.status).toBe(1);
    expect(strict.stdout).toContain("§97.3  NO TEST\n    A decoder MUST reject a frame of 0 bytes.");
    expect(strict.stdout).toContain("1 MUST sentences");
    expect(strict.stderr).toContain("1 MUST sentence(s) have no test naming their section");
    const lenient = run("--spec", path);
    expect(lenient.status).toBe(0);
    expect(lenient.stdout).toContain("§97.3  NO TEST");
  });

  it("--strict exits 1 when it finds no MUST at all, so a broken parser cannot pass", async () => {
    const path = await spec(
      "# Spec\n\nThe key words MUST, MUST NOT and MAY are to be read as in RFC 2119.\n",
    );
    const result = run("--strict", "--spec", path);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("no MUST sentence found");
  });

  it("refuses an unknown option with exit status 2", () => {
    const result = run("--stirct");
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("Unknown option '--stirct'");
    expect(result.stderr).toContain("usage:");
  });
});
