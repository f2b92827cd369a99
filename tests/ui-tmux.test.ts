// The terminal UI in a real terminal: tmux runs a relay and clients; keystrokes go in with
// send-keys and the panes are read with capture-pane.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  aliceAndBob,
  CLI,
  cleanup,
  freePort,
  init,
  newDir,
  newHome,
  PASSPHRASE,
  ROOT,
} from "./client-helpers.js";
import { tmuxServer } from "./tmux.js";

const { tmux, pane, session, keys, enter, waitFor, gone, kill } = tmuxServer(`parley-test-${process.pid}`);

afterAll(async () => {
  kill();
  await cleanup();
});

/** Types a line into the chat's input, waits until the input line shows its end, then presses Enter. */
async function typeLine(name: string, text: string): Promise<void> {
  keys(name, text);
  const tail = text.slice(-12, -3).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  await waitFor(name, new RegExp(`> .*${tail}`), `the typed line in ${name}`);
  enter(name);
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
      await waitFor(who, /Chats/, "the chat screen");
    }
    await waitFor("alice", /Bob/, "Bob in Alice's contacts");
    await typeLine("alice", "hello through tmux");
    await waitFor("bob", /hello through tmux/, "the message in Bob's pane");
    // Delivered, or already read, since Bob's pane shows it: both need the receipt to come back.
    await waitFor(
      "alice",
      /hello through tmux {2}\[(delivered|read)\]/,
      "the delivered mark in Alice's pane",
    );
    // The status bar says in words that the relay is connected, its retention, the empty outbox.
    await waitFor(
      "alice",
      /● 1 relay connected \| 127\.0\.0\.1:\d+ keeps 7d \| outbox empty/,
      "the status bar",
    );
    // Ctrl+C quits cleanly.
    for (const who of ["alice", "bob"]) tmux("send-keys", "-t", who, "C-c");
    const deadline = Date.now() + 15_000;
    while (!(gone("alice") && gone("bob")) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect([gone("alice"), gone("bob")]).toEqual([true, true]);
  });

  it("a newcomer onboards in the UI and chats through the personal local relay", {
    timeout: 120_000,
  }, async () => {
    const xdg = await newDir("parley-xdg-");
    const port = await freePort();
    const env = {
      NO_COLOR: "1",
      PARLEY_SCRYPT_LOG_N: "10",
      XDG_DATA_HOME: xdg,
      PARLEY_LOCAL_RELAY_PORT: String(port),
    };
    const homes = { ann: await newHome(), ben: await newHome() };
    try {
      for (const [who, home] of Object.entries(homes)) {
        session(who, node(CLI, "--home", home), env);
        await waitFor(who, /Your display name:/, "onboarding");
        keys(who, who === "ann" ? "Ann" : "Ben");
        enter(who);
        await waitFor(who, /Passphrase:/, "the passphrase");
        keys(who, "a long passphrase");
        enter(who);
        await waitFor(who, /Passphrase again:/, "the second passphrase");
        expect(pane(who)).not.toContain("a long passphrase");
        keys(who, "a long passphrase");
        enter(who);
        await waitFor(who, /Relay URL:/, "the relay question");
        enter(who);
        // Typed while "starting your personal relay…" is on screen: kept for the chat's input.
        keys(who, "typed ahead");
        await waitFor(who, /local-only/, "the local-only status bar");
        await waitFor(who, /> typed ahead/, "the keys typed while busy, in the chat's input line");
        tmux("send-keys", "-t", who, "C-u");
      }
      await typeLine("ann", "/invite");
      const screen = await waitFor("ann", /PARLEY1-[\s\S]*-[A-Z2-7]{8}/, "the invitation");
      // The code is drawn without a frame: joined up, the screen's lines give it whole.
      const code = /PARLEY1-[A-Z2-7-]+/.exec(screen.replace(/\s/g, ""))![0];
      tmux("send-keys", "-t", "ann", "Escape");
      await typeLine("ben", `/accept ${code}`);
      // Ben is asked what to call her, and never sees a placeholder name.
      await waitFor("ben", /What do you call them\?/, "the name question");
      keys("ben", "Ann");
      enter("ben");
      await waitFor("ben", /added Ann/, "the new contact, named and selected");
      expect(pane("ben")).not.toMatch(/contact-[0-9a-f]{8}/);
      // Ann is told who accepted, and the new conversation opens.
      await waitFor("ann", /Ben accepted your invitation/, "the notice in Ann's pane");
      await typeLine("ben", "hi Ann, it is Ben");
      await waitFor("ann", /hi Ann, it is Ben/, "Ben's message");
      await waitFor("ben", /\[(delivered|read)\]/, "the delivered mark");
    } finally {
      // The personal relay outlives the clients by design; this test's one is stopped here.
      try {
        process.kill(Number(readFileSync(join(xdg, "parley-relay", "relay.pid"), "utf8")), "SIGTERM");
      } catch {
        // it never started
      }
    }
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
    expect(pane("solo")).toContain(home.replace(/^.*\//, ""));
    keys("solo", PASSPHRASE);
    enter("solo");
    await waitFor("solo", /Chats[\s\S]*none yet/, "the chat screen");
    tmux("send-keys", "-t", "solo", "C-c");
    for (let i = 0; i < 100 && !gone("solo"); i++) await new Promise((r) => setTimeout(r, 100));
    expect(gone("solo")).toBe(true);
  });
});
