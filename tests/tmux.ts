// Driving programs in a real terminal: a tmux server of the test's own, sessions of 80x24, keys in
// with send-keys, screens out with capture-pane.
import { execFileSync } from "node:child_process";
import { ROOT } from "./client-helpers.js";

export const quote = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;

/** Polls `read` until `done` holds for what it returns; throws with `describe` of the last value. */
export async function until<T>(
  read: () => T,
  done: (value: T) => boolean,
  what: string,
  describe: (value: T) => string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = read();
  while (!done(last)) {
    if (Date.now() > deadline) throw new Error(`${what} never happened; last seen:\n${describe(last)}`);
    await new Promise((r) => setTimeout(r, 100));
    last = read();
  }
  return last;
}

/** A tmux server on a socket of its own (`name`), and what tests do with its sessions. */
export function tmuxServer(name: string) {
  const tmux = (...args: string[]) =>
    execFileSync("tmux", ["-L", name, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const pane = (session: string) => {
    try {
      return tmux("capture-pane", "-p", "-t", session);
    } catch {
      return "(no pane)";
    }
  };
  return {
    tmux,
    pane,
    /** Starts `argv` in its own 80x24 session, with `env` (and never CI, which makes Ink print only at exit). */
    session(session: string, argv: string[], env: Record<string, string>): void {
      const vars = Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`);
      const command = ["exec", "env", "-u", "CI", ...vars, ...argv.map(quote)].join(" ");
      tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", "-c", ROOT, command);
    },
    /** Types `text` literally (one write: the UI must split it into keys). */
    keys: (session: string, text: string) => tmux("send-keys", "-t", session, "-l", text),
    enter: (session: string) => tmux("send-keys", "-t", session, "Enter"),
    waitFor: (session: string, pattern: RegExp, what: string, timeoutMs = 30_000) =>
      until(
        () => pane(session),
        (screen) => pattern.test(screen),
        `${what} (${pattern} in ${session})`,
        (screen) => screen,
        timeoutMs,
      ),
    gone(session: string): boolean {
      try {
        tmux("has-session", "-t", session);
        return false;
      } catch {
        return true;
      }
    },
    kill(): void {
      try {
        tmux("kill-server");
      } catch {
        // no server left
      }
    },
  };
}
