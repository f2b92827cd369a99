import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));

describe("the protocol walk-through (pnpm demo)", () => {
  it("runs the protocol walk-through to a matching safety number", () => {
    const tsx = fileURLToPath(new URL("../node_modules/.bin/tsx", import.meta.url));
    const run = spawnSync(tsx, ["packages/protocol/scripts/demo.ts"], { cwd: root, encoding: "utf8" });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/PARLEY2-[A-Z2-7]+-[A-Z2-7]{8}/);
    expect(run.stdout).toContain("a relay that withholds the key stops the handshake: KEM_KEY_MISSING");
    expect(run.stdout).toContain("the session is post-quantum (X25519 + ML-KEM-768)");
    expect(run.stdout).toContain("a truncated paste is refused: TRUNCATED");
    expect(run.stdout).toContain("says: Hi Alice, it's Bob.");
    expect(run.stdout).toContain("got (late): And this one arrives before the one after it.");
    expect(run.stdout).toContain("a replayed message is refused");
    expect(run.stdout).toContain("They match: no one swapped the keys.");
  });
});
