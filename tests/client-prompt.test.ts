// The passphrase prompt in a real terminal (a pty from util-linux `script`): hidden, asked twice
// at init, and the store it creates opens with that passphrase and no other.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, cleanup, newHome, ROOT, runParley } from "./client-helpers.js";

afterAll(cleanup);

/** Runs parley in a pty, answering each prompt that appears with the next answer. */
function inTerminal(
  home: string,
  args: string[],
  answers: string[],
): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, "--conditions=source", "--import", "tsx", CLI, "--home", home, ...args]
    .map((a) => `'${a.replace(/'/g, "'\\''")}'`)
    .join(" ");
  const proc = spawn("script", ["-qec", command, "/dev/null"], {
    cwd: ROOT,
    env: { ...process.env, PARLEY_PASSPHRASE: undefined, PARLEY_SCRYPT_LOG_N: "10", TERM: "dumb" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  let prompts = 0;
  proc.stdout.setEncoding("utf8");
  proc.stdout.on("data", (d: string) => {
    output += d;
    const seen = output.match(/Passphrase( again)?: /g)?.length ?? 0;
    while (prompts < seen && prompts < answers.length) proc.stdin.write(`${answers[prompts++]}\r`);
  });
  return new Promise((resolve) => proc.once("close", (code) => resolve({ code, output })));
}

describe("the passphrase prompt", () => {
  it("asks twice at init without echoing, and the store opens with that passphrase only", {
    timeout: 60_000,
  }, async () => {
    const home = await newHome();
    const secret = "typed in a terminal";
    const init = await inTerminal(home, ["init", "--name", "Tess"], [secret, secret]);
    expect(init.code, init.output).toBe(0);
    expect(init.output).toContain("Passphrase again: ");
    expect(init.output).not.toContain(secret);
    const opened = await runParley(home, ["contacts"], { env: { PARLEY_PASSPHRASE: secret } });
    expect(opened.code, opened.stderr).toBe(0);
    const wrong = await runParley(home, ["contacts"], { env: { PARLEY_PASSPHRASE: "something else" } });
    expect(wrong.code).toBe(8);
    const prompted = await inTerminal(home, ["contacts"], [secret]);
    expect(prompted.code, prompted.output).toBe(0);
  });

  it("refuses two different entries and creates nothing", { timeout: 60_000 }, async () => {
    const home = await newHome();
    const r = await inTerminal(home, ["init", "--name", "Tess"], ["one passphrase", "another one"]);
    expect(r.code, r.output).toBe(2);
    expect(r.output).toMatch(/the two passphrases differ/);
    expect(existsSync(join(home, "parley.db"))).toBe(false);
  });
});
