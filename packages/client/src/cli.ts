#!/usr/bin/env node
// `parley`: with no command, the terminal UI; with one, the scripting interface
// (`parley [--home DIR] [--json] COMMAND ...`, README "Using the client"). This entry point loads
// only what it needs to choose, so the UI paints its first frame before the client core loads.
import { parseArgs } from "node:util";
import { asksForHelp, firstLine, usage, type Values } from "./args.js";
import { ClientError, EXIT } from "./errors.js";
import { resolvePaths } from "./paths.js";
import { loadSettings } from "./settings.js";

const GLOBAL = {
  home: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
} as const;

async function main(argv: string[]): Promise<number> {
  // Global options come before the command ("--home DIR" takes a value), the command's after it.
  let cmdIndex = -1;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--home") {
      i++;
      continue;
    }
    if (!a.startsWith("-")) {
      cmdIndex = i;
      break;
    }
  }
  const head = cmdIndex === -1 ? argv : argv.slice(0, cmdIndex);
  const command = cmdIndex === -1 ? undefined : argv[cmdIndex];
  const rest = cmdIndex === -1 ? [] : argv.slice(cmdIndex + 1);

  let globals: Values;
  try {
    globals = parseArgs({ args: head, options: GLOBAL, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw usage(firstLine(e));
  }
  // Help is read from its own module, only when asked for: `parley --help`, `parley help
  // [COMMAND]`, `parley [--help] COMMAND [--help]`.
  if (globals.help || command === "help" || asksForHelp(rest)) {
    const { commandHelpText, usageText } = await import("./help.js");
    const topic = command === "help" ? rest.find((a) => !a.startsWith("-")) : command;
    const text = topic === undefined ? usageText() : commandHelpText(topic);
    if (text === null) throw usage(`unknown command ${JSON.stringify(topic)}`);
    process.stdout.write(`${text}\n`);
    return 0;
  }
  if (globals.version) {
    process.stdout.write("parley 0.1.0\n");
    return 0;
  }
  if (command === undefined) {
    const home = globals.home as string | undefined;
    const paths = resolvePaths(home);
    // Keys typed before the UI has loaded are kept for it and never echoed: a passphrase typed
    // the moment the prompt appears must not show on the screen.
    if (process.stdin.isTTY) process.stdin.setRawMode(true);
    const { runUi } = await import("./ui/run.js");
    return runUi(paths, loadSettings(paths.config));
  }
  const { runCommand } = await import("./commands.js");
  return runCommand(command, rest, globals);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof ClientError) {
      process.stderr.write(`parley: ${e.message}\n`);
      process.exitCode = e.exitStatus;
      return;
    }
    process.stderr.write(`parley: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = EXIT.INTERNAL;
  },
);
