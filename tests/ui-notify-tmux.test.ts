// Desktop notifications in a real terminal: Bob's UI runs in tmux with two contacts, and
// `tmux pipe-pane` copies every byte it writes to a file, where the notification's escape
// sequence (inside tmux's passthrough, as the UI runs in tmux) is looked for: the sender's name,
// never the text.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  CLI,
  cleanup,
  connect,
  hasAll,
  homesFor,
  newDir,
  PASSPHRASE,
  sendOne,
  startRelay,
  syncUntil,
} from "./client-helpers.js";
import { quote, tmuxServer, until } from "./tmux.js";

const {
  tmux,
  session,
  keys,
  enter,
  waitFor: waitForScreen,
  kill,
} = tmuxServer(`parley-notify-test-${process.pid}`);

afterAll(async () => {
  kill();
  await cleanup();
});

const ESC = "\u001b";
/** OSC 777 as Bob's UI writes it inside tmux: wrapped in DCS tmux; with every ESC doubled. */
const inTmux = (seq: string) => `${ESC}Ptmux;${seq.replaceAll(ESC, ESC + ESC)}${ESC}\\`;
const notification = (body: string) => inTmux(`${ESC}]777;notify;Parley;${body}${ESC}\\`);
/** Every OSC 777 in the raw output, passthrough or not: its payload, up to the terminator. */
const osc777s = (raw: string) =>
  raw
    .split("]777;")
    .slice(1)
    .map((p) => p.split(ESC)[0]!.split("\u0007")[0]!);
const count = (haystack: string, needle: string) => haystack.split(needle).length - 1;
/** Control characters made visible, for a failure's message. */
const visible = (raw: string) => JSON.stringify(raw.slice(-3000));

describe("desktop notifications in tmux", () => {
  it("a message for a conversation not on screen, or while the terminal is not focused, writes OSC 777 with the sender's name and not the text", {
    timeout: 180_000,
  }, async () => {
    const relay = await startRelay();
    const [alice, bob, carol] = await homesFor(relay.url, "Alice", "Bob", "Carol");
    await connect(alice, bob, "Alice", "Bob");
    await connect(carol, bob, "Carol", "Bob");
    // Alice's conversation has the newest activity, so Bob's UI opens on it.
    await sendOne(alice, "Bob", "warm-up from Alice");
    await syncUntil(bob, hasAll("Alice", ["warm-up from Alice"]));
    // The notifications setting forces OSC 777, whatever terminal runs this test (tmux passes on
    // the variables of the one that started it, KITTY_WINDOW_ID and the like).
    const config = join(bob, "config.json");
    writeFileSync(
      config,
      JSON.stringify({ ...JSON.parse(readFileSync(config, "utf8")), notifications: "osc777" }),
    );

    const raw = join(await newDir("parley-pipe-"), "bob.raw");
    writeFileSync(raw, "");
    const output = () => readFileSync(raw, "latin1");
    session("bob", [process.execPath, "--conditions=source", "--import", "tsx", CLI, "--home", bob], {
      NO_COLOR: "1",
      PARLEY_SCRYPT_LOG_N: "10",
    });
    // Everything the UI writes from here on, byte for byte, before tmux interprets any of it.
    tmux("pipe-pane", "-o", "-t", "bob", `cat >> ${quote(raw)}`);
    await waitForScreen("bob", /Parley is locked/, "the unlock screen");
    keys("bob", PASSPHRASE);
    enter("bob");
    await waitForScreen("bob", /Chats[\s\S]*Carol/, "the chat screen with both contacts");
    await waitForScreen("bob", /warm-up from Alice/, "Alice's conversation on screen");

    // 1. Carol writes while Alice's conversation is on screen: Carol's name, not her words.
    const secret = `carol's secret ${Date.now()}`;
    await sendOne(carol, "Bob", secret);
    await until(
      output,
      (o) => o.includes(notification("New message from Carol")),
      "Carol's notification",
      visible,
    );
    // The bell comes with it, outside the passthrough (tmux turns it into its own bell alert).
    expect(output()).toContain(`\u0007${notification("New message from Carol")}`);

    // 2. The conversation on screen, in a focused terminal (what a terminal sends after CSI ?1004h):
    // a message there is seen, so no notification. The UI writes a notification before the frame
    // that draws the message, so once the text is in the output, a notification for it would be
    // there already.
    keys("bob", `${ESC}[I`);
    await sendOne(alice, "Bob", "sent while Bob was here");
    await until(
      output,
      (o) => o.includes("sent while Bob was here"),
      "the message drawn in Bob's pane",
      visible,
    );
    expect(osc777s(output()).filter((n) => n.includes("Alice"))).toEqual([]);

    // 3. The terminal loses focus: a message in the conversation on screen notifies.
    keys("bob", `${ESC}[O`);
    await sendOne(alice, "Bob", "sent while Bob was away");
    await until(
      output,
      (o) => o.includes(notification("New message from Alice")),
      "Alice's notification",
      visible,
    );
    const all = output();
    expect(count(all, "New message from Alice")).toBe(1);
    expect(count(all, "New message from Carol")).toBe(1);

    // No notification carries any message's text.
    const notes = osc777s(all);
    expect(notes.length).toBe(2);
    for (const note of notes) {
      for (const text of [secret, "sent while Bob was away", "sent while Bob was here", "warm-up"]) {
        expect(note).not.toContain(text);
      }
    }
    tmux("send-keys", "-t", "bob", "C-c");
  });
});
