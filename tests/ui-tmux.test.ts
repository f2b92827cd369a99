// The terminal UI in a real terminal: tmux runs a relay and two clients; keystrokes go in with
// send-keys and both panes are read with capture-pane.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { aliceAndBob, CLI, cleanup, freePort, init, newHome, PASSPHRASE, ROOT } from "./client-helpers.js";

const socket = `parley-test-${process.pid}`;
const tmux = (...args: string[]) =>
  execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const quote = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;

afterAll(async () => {
  try {
    tmux("kill-server");
  } catch {
    // no server left
  }
  await cleanup();
});

/** Starts `argv` in its own 80x24 tmux session, with `env` (and never CI, which makes Ink print only at exit). */
function session(name: string, argv: string[], env: Record<string, string>): void {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`);
  const command = ["exec", "env", "-u", "CI", ...vars, ...argv.map(quote)].join(" ");
  tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", "-c", ROOT, command);
}

const pane = (name: string) => tmux("capture-pane", "-p", "-t", name);

async function waitFor(name: string, pattern: RegExp, what: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      last = pane(name);
    } catch {
      last = "(no pane)";
    }
    if (pattern.test(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: ${pattern} never appeared in ${name}; last screen:\n${last}`);
}

const keys = (name: string, text: string) => tmux("send-keys", "-t", name, "-l", text);

/** Types a line into the chat's input, waits until the input line shows its end, then presses Enter. */
async function typeLine(name: string, text: string): Promise<void> {
  keys(name, text);
  const tail = text.slice(-12, -3).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  await waitFor(name, new RegExp(`> .*${tail}`), `the typed line in ${name}`);
  enter(name);
}
const enter = (name: string) => tmux("send-keys", "-t", name, "Enter");

function gone(name: string): boolean {
  try {
    tmux("has-session", "-t", name);
    return false;
  } catch {
    return true;
  }
}

const node = (script: string, ...args: string[]) => [
  process.execPath,
  "--conditions=source",
  "--import",
  "tsx",
  script,
  ...args,
];

describe("the terminal UI in tmux", () => {
  it("a message typed in one pane shows up in the other and is then marked delivered", {
    timeout: 120_000,
  }, async () => {
    const port = await freePort();
    session(
      "relay",
      node(join(ROOT, "packages/relay/src/cli.ts"), "--port", String(port), "--storage", "memory"),
      {},
    );
    await waitFor("relay", /relay listening/, "the relay");
    const { alice, bob } = await aliceAndBob(`ws://127.0.0.1:${port}`);
    const env = { NO_COLOR: "1", PARLEY_SCRYPT_LOG_N: "10" };
    session("alice", node(CLI, "--home", alice), env);
    session("bob", node(CLI, "--home", bob), env);
    for (const who of ["alice", "bob"]) {
      await waitFor(who, /Parley is locked/, "the unlock screen");
      // A locked store shows no content: no contact name before the passphrase.
      expect(pane(who)).not.toMatch(/alice|Bob/);
      keys(who, PASSPHRASE);
      enter(who);
      await waitFor(who, /Contacts/, "the chat screen");
    }
    await waitFor("alice", /Bob/, "Bob in Alice's contacts");
    await typeLine("alice", "hello through tmux");
    await waitFor("bob", /hello through tmux/, "the message in Bob's pane");
    // Delivered, or already read, since Bob's pane shows it: both need the receipt to come back.
    const shown = await waitFor("alice", /me {2}\[(delivered|read)\]/, "the delivered mark in Alice's pane");
    expect(shown).toMatch(/hello through tmux/);
    // The status bar shows the relay, its retention and the (now empty) outbox.
    await waitFor("alice", /● 127\.0\.0\.1:\d+ keeps 7d \| outbox 0/, "the status bar");
    // Ctrl+C quits cleanly.
    for (const who of ["alice", "bob"]) tmux("send-keys", "-t", who, "C-c");
    const deadline = Date.now() + 15_000;
    while (!(gone("alice") && gone("bob")) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect([gone("alice"), gone("bob")]).toEqual([true, true]);
  });

  it("the bundled parley (as npm start and the bin run it) unlocks, shows the chat and quits", {
    timeout: 120_000,
  }, async () => {
    // Bundled inside the client package, where better-sqlite3 resolves as for the shipped one.
    const outdir = join(ROOT, "packages/client/dist/test-bundle");
    execFileSync(process.execPath, [join(ROOT, "packages/client/scripts/bundle.mjs"), "--outdir", outdir]);
    const home = await newHome();
    await init(home, "Solo", "ws://127.0.0.1:9");
    session("solo", [process.execPath, join(outdir, "parley.js"), "--home", home], {
      NO_COLOR: "1",
      PARLEY_SCRYPT_LOG_N: "10",
    });
    await waitFor("solo", /Parley is locked/, "the unlock screen");
    keys("solo", PASSPHRASE);
    enter("solo");
    await waitFor("solo", /Contacts[\s\S]*none yet/, "the chat screen");
    tmux("send-keys", "-t", "solo", "C-c");
    for (let i = 0; i < 100 && !gone("solo"); i++) await new Promise((r) => setTimeout(r, 100));
    expect(gone("solo")).toBe(true);
  });
});
