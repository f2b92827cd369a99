// The passphrase: $PARLEY_PASSPHRASE, else a hidden prompt on the terminal. Never logged.
import { ClientError } from "./errors.js";

export async function readPassphrase(options: { confirm: boolean }): Promise<string> {
  const env = process.env.PARLEY_PASSPHRASE;
  if (env !== undefined) {
    if (env === "") throw new ClientError("NO_PASSPHRASE", "PARLEY_PASSPHRASE is set but empty");
    return env;
  }
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new ClientError(
      "NO_PASSPHRASE",
      "no passphrase: not in a terminal, and PARLEY_PASSPHRASE is not set",
    );
  }
  const first = await prompt("Passphrase: ");
  if (first === "") throw new ClientError("NO_PASSPHRASE", "the passphrase must not be empty");
  if (options.confirm) {
    const again = await prompt("Passphrase again: ");
    if (again !== first) throw new ClientError("USAGE", "the two passphrases differ; nothing was created");
  }
  return first;
}

/** Reads one line from the terminal without echoing it. */
function prompt(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    // Raw mode (no echo) first, then the question: an answer typed the moment it appears is
    // never echoed by the terminal.
    stdin.setRawMode(true);
    stdin.resume();
    process.stderr.write(question);
    let value = "";
    const done = (result: string | Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      process.stderr.write("\n");
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return done(value);
        if (ch === "\u0003") return done(new ClientError("NO_PASSPHRASE", "cancelled"));
        if (ch === "\u007f" || ch === "\b") value = [...value].slice(0, -1).join("");
        else if (ch >= " ") value += ch;
      }
    };
    stdin.on("data", onData);
  });
}
