// `parley --help`, `parley help COMMAND` and `parley COMMAND --help`: every command has a page, the
// page documents every option the command's parser accepts, and asking for help needs no identity,
// no passphrase and writes nothing.
import { afterAll, describe, expect, it } from "vitest";
import { COMMANDS } from "../packages/client/src/commands.js";
import { COMMAND_HELP } from "../packages/client/src/help.js";
import { cleanup, fails, newHome, parley, readTree, runParley } from "./client-helpers.js";

const NO_PASSPHRASE = { env: { PARLEY_PASSPHRASE: undefined } };
const names = Object.keys(COMMANDS);

describe("parley help", () => {
  afterAll(cleanup);

  it("has a help entry for exactly the commands there are, naming each option they accept", () => {
    expect(Object.keys(COMMAND_HELP).sort()).toEqual([...names].sort());
    for (const [name, options] of Object.entries(COMMANDS)) {
      const documented = COMMAND_HELP[name]!.options.map(([flag]) => flag.split(" ")[0]!);
      expect(documented.filter((f) => f.startsWith("--")).sort(), name).toEqual(
        Object.keys(options)
          .map((o) => `--${o}`)
          .sort(),
      );
    }
  });

  it("prints every command's page with --help, before or after the command, and with `help`", {
    timeout: 120_000,
  }, async () => {
    const home = await newHome();
    const overview = await parley(home, ["--help"], NO_PASSPHRASE);
    expect(overview.stderr).toBe("");
    for (const name of names) expect(overview.stdout).toMatch(new RegExp(`^  ${name} +\\S`, "m"));

    const pages = await Promise.all(names.map((name) => parley(home, [name, "--help"], NO_PASSPHRASE)));
    for (const [i, name] of names.entries()) {
      const page = pages[i]!;
      expect(page.stderr, name).toBe("");
      expect(page.stdout, name).toMatch(new RegExp(`^usage: parley ${name}\\b`));
      for (const [flag] of COMMAND_HELP[name]!.options) expect(page.stdout, name).toContain(flag);
      for (const line of page.stdout.split("\n")) expect(line.length, line).toBeLessThanOrEqual(80);
    }
    const send = pages[names.indexOf("send")]!.stdout;
    expect(send).toContain("--lines");
    // The same page however it is asked for, with or without the command's arguments.
    for (const args of [
      ["help", "send"],
      ["--help", "send"],
      ["send", "-h"],
      ["send", "alice", "hi", "--help"],
    ]) {
      expect((await parley(home, args, NO_PASSPHRASE)).stdout, args.join(" ")).toBe(send);
    }
    // Asking for help created nothing in the home.
    expect((await readTree(home)).size).toBe(0);
  });

  it("refuses help for a command that does not exist, and takes --help after -- as text", async () => {
    const home = await newHome();
    expect(fails(await runParley(home, ["bogus", "--help"]), 2)).toMatch(/unknown command "bogus"/);
    expect(fails(await runParley(home, ["help", "bogus"]), 2)).toMatch(/unknown command "bogus"/);
    // `--` ends the options: this is a message "--help" to alice, which needs an identity first.
    expect(fails(await runParley(home, ["send", "alice", "--", "--help"]), 3)).toMatch(/parley init/);
  });
});
