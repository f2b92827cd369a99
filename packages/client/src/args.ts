// Command-line parsing helpers shared by the entry point and the scripting commands.
import { ClientError } from "./errors.js";

export type Values = Record<string, string | boolean | undefined>;

/** Node's parseArgs explains over several lines; one is enough, and the first says what is wrong. */
export const firstLine = (e: unknown) =>
  String((e as Error).message)
    .split("\n")[0]!
    .split(". To specify")[0]!
    .trim();

export const usage = (message: string) => new ClientError("USAGE", `${message} (see parley --help)`);

/** True when a command's arguments ask for its help: `--help` or `-h`, before any `--`. */
export function asksForHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === "--") return false;
    if (a === "--help" || a === "-h") return true;
  }
  return false;
}
