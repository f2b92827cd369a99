// Component tests of the terminal UI (ink-testing-library), the chat against a real client
// talking to the real relay process.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type RelayProcess, startRelay } from "../../relay/test/helpers.js";
import { Client } from "../src/client.js";
import { resolvePaths } from "../src/paths.js";
import { Chat } from "../src/ui/chat.js";
import { ErrorBoundary } from "../src/ui/error-boundary.js";
import { Onboarding, type OnboardingResult } from "../src/ui/onboarding.js";
import { renderUi, scratch, until } from "./ui-helpers.js";

const made = scratch();
const { cleanups } = made;
afterEach(made.cleanup);
afterAll(made.removeDirs);

describe("onboarding", () => {
  it("asks name, hidden passphrase twice and relay, and refuses a mismatch", async () => {
    let result: OnboardingResult | null = null;
    const ui = renderUi(<Onboarding onDone={(r) => (result = r)} onQuit={() => {}} />);
    cleanups.push(() => ui.unmount());
    expect(ui.lastFrame()).toContain("Your display name:");
    await ui.line("Ada");
    expect(ui.lastFrame()).toContain("Passphrase:");
    await ui.keys("correct horse");
    expect(ui.lastFrame()).not.toContain("correct horse");
    expect(ui.lastFrame()).toContain("•".repeat(13));
    await ui.keys("\r");
    await ui.line("something else");
    expect(ui.lastFrame()).toContain("the two passphrases differ");
    await ui.line("correct horse");
    await ui.line("correct horse");
    expect(ui.lastFrame()).toContain("Relay URL:");
    await ui.line("http://not-a-relay");
    expect(ui.lastFrame()).toMatch(/relay URL/);
    await ui.line("");
    expect(result).toEqual({ name: "Ada", passphrase: "correct horse", relay: null });
  });
});

describe("chat", () => {
  let relay: RelayProcess;

  async function pair(): Promise<[Client, Client]> {
    relay = await startRelay(["--storage", "memory"]);
    cleanups.push(() => relay.stop());
    const url = `ws://127.0.0.1:${relay.port}`;
    const make = (name: string) => made.client(url, name);
    const alice = make("Alice");
    const bob = make("Bob");
    await bob.accept((await alice.invite()).code, { name: "alice" });
    await alice.sync();
    await bob.sync();
    return [alice, bob];
  }

  it("shows messages live, sends from the input line, and marks them delivered", {
    timeout: 60_000,
  }, async () => {
    const [alice, bob] = await pair();
    await alice.start();
    await bob.start();
    const ui = renderUi(<Chat client={alice} localOnly={false} onQuit={() => {}} />);
    cleanups.push(() => ui.unmount());
    expect(ui.lastFrame()).toContain("Bob");
    await bob.send("alice", ["hi from bob"]);
    await until(ui.lastFrame, (f) => f.includes("hi from bob"), "bob's message");
    await ui.line("hello bob");
    await until(ui.lastFrame, (f) => /hello bob/.test(f), "the sent message");
    await until(ui.lastFrame, (f) => /\[(delivered|read)\]/.test(f), "the delivered mark");
    expect(bob.conversation("alice", {}, 10).map((e) => e.message.text)).toContain("hello bob");
    // Up recalls what was typed.
    await ui.keys("\u001b[A");
    expect(ui.lastFrame()).toMatch(/> hello bob/);
  });

  it("keeps following the newest after PageUp in a conversation that fits on screen", {
    timeout: 60_000,
  }, async () => {
    const [alice, bob] = await pair();
    await alice.start();
    await bob.send("alice", ["short 1", "short 2", "short 3"]);
    const ui = renderUi(<Chat client={alice} localOnly={false} onQuit={() => {}} />);
    cleanups.push(() => ui.unmount());
    await until(ui.lastFrame, (f) => f.includes("short 3"), "the short conversation");
    await ui.keys("\u001b[5~");
    expect(ui.lastFrame()).not.toContain("scrolled back");
    await bob.send(
      "alice",
      Array.from({ length: 30 }, (_, i) => `more ${i}`),
    );
    const f = await until(ui.lastFrame, (x) => x.includes("more 29"), "the newest message");
    expect(f).not.toContain("scrolled back");
  });

  it("takes a bracketed paste as text: its line breaks and a ? stay in the message", {
    timeout: 60_000,
  }, async () => {
    const [alice, bob] = await pair();
    const ui = renderUi(<Chat client={alice} localOnly={false} onQuit={() => {}} />);
    cleanups.push(() => ui.unmount());
    await ui.keys("\u001b[200~first line\rsecond line?\r\u001b[201~");
    await until(ui.lastFrame, (f) => f.includes("> 2/2 second line?"), "the pasted lines in the input");
    expect(ui.lastFrame()).not.toContain("Keys");
    await ui.keys("\r");
    await until(ui.lastFrame, (f) => /\[(sent|delivered)\]/.test(f), "the sent message");
    await bob.sync();
    expect(bob.conversation("alice", {}, 10).map((e) => e.message.text)).toContain(
      "first line\nsecond line?",
    );
  });

  it("opens the key overlay with ?, runs /help, and reports unknown commands", {
    timeout: 60_000,
  }, async () => {
    const [alice] = await pair();
    const ui = renderUi(<Chat client={alice} localOnly={true} onQuit={() => {}} />);
    cleanups.push(() => ui.unmount());
    expect(ui.lastFrame()).toContain("local-only");
    await ui.keys("?");
    expect(ui.lastFrame()).toContain("Keys");
    expect(ui.lastFrame()).toContain("/invite");
    await ui.keys("\u001b");
    expect(ui.lastFrame()).not.toContain("Keys");
    await ui.line("/frobnicate");
    expect(ui.lastFrame()).toContain("unknown command /frobnicate");
  });

  it("blocks sending to a contact whose key changed, with a banner, until /verify and y", {
    timeout: 60_000,
  }, async () => {
    const [alice, bob] = await pair();
    // Bob starts over with a new identity and invites Alice; she accepts it as "Bob".
    const d = made.dir();
    const newBob = Client.init(resolvePaths(d), "pw", "Bob", { ...bob.settings }, 10);
    cleanups.push(() => newBob.close());
    await alice.accept((await newBob.invite()).code, { name: "Bob" });
    const ui = renderUi(<Chat client={alice} localOnly={false} onQuit={() => {}} />);
    cleanups.push(() => ui.unmount());
    expect(ui.lastFrame()).toContain("identity key CHANGED");
    await ui.line("are you really bob?");
    expect(ui.lastFrame()).toContain("key changed: /verify first");
    expect(alice.conversation("Bob", {}, 10).map((e) => e.message.text)).not.toContain("are you really bob?");
    await ui.line("/verify");
    await until(ui.lastFrame, (f) => f.includes("Safety number with Bob"), "the safety number");
    await ui.keys("y");
    await until(ui.lastFrame, (f) => f.includes("Verified"), "the confirmation");
    await ui.keys("\u001b");
    expect(ui.lastFrame()).not.toContain("identity key CHANGED");
  });

  it("deletes a conversation's history and then the contact without crashing", {
    timeout: 60_000,
  }, async () => {
    const [alice, bob] = await pair();
    await alice.start();
    await bob.send("alice", ["unread when deleted"]);
    const errors: unknown[] = [];
    const ui = renderUi(
      <ErrorBoundary onError={(e) => errors.push(e)}>
        <Chat client={alice} localOnly={false} onQuit={() => {}} />
      </ErrorBoundary>,
      (e) => errors.push(e),
    );
    cleanups.push(() => ui.unmount());
    await until(ui.lastFrame, (f) => f.includes("unread when deleted"), "the message");
    await ui.line("/delete history");
    await until(ui.lastFrame, (f) => f.includes("deleted the messages with Bob"), "the history deleted");
    await ui.line("/delete");
    await until(ui.lastFrame, (f) => f.includes("deleted Bob"), "the contact deleted");
    // The screen re-reads the store every second: the deleted contact must not come back to bite.
    await new Promise((r) => setTimeout(r, 1500));
    expect(errors).toEqual([]);
    expect(ui.lastFrame()).toContain("none yet");
  });

  it("shows an invitation code with no frame through it, and /copy puts it on the clipboard (OSC 52)", {
    timeout: 60_000,
  }, async () => {
    const [alice] = await pair();
    const ui = renderUi(<Chat client={alice} localOnly={false} onQuit={() => {}} />);
    cleanups.push(() => ui.unmount());
    await ui.line("/copy");
    expect(ui.lastFrame()).toContain("nothing to copy");
    await ui.line("/invite");
    const f = await until(ui.lastFrame, (x) => x.includes("Invitation for one person"), "the invitation");
    // Every line holding part of the code holds nothing else: copied from the screen, it is whole.
    const codeLines = f.split("\n").filter((l) => /PARLEY1-|^[A-Z2-7-]{20,}$/.test(l.trim()));
    const code = codeLines.map((l) => l.trim()).join("");
    expect(code).toMatch(/^PARLEY1-[A-Z2-7-]+-[A-Z2-7]{8}$/);
    await ui.keys("\u001b");
    await ui.line("/copy");
    expect(ui.lastFrame()).toContain("copied to the clipboard");
    const written = ui.stdout.frames.join("");
    expect(written).toContain(`\u001b]52;c;${Buffer.from(code).toString("base64")}\u0007`);
  });

  it("asks what to call the person whose code is accepted, and never shows a placeholder", {
    timeout: 60_000,
  }, async () => {
    const [alice, bob] = await pair();
    const d = made.dir();
    const carol = Client.init(resolvePaths(d), "pw", "Carol", { ...bob.settings }, 10);
    cleanups.push(() => carol.close());
    const { code } = await carol.invite();
    const ui = renderUi(<Chat client={alice} localOnly={false} onQuit={() => {}} />);
    cleanups.push(() => ui.unmount());
    await ui.line(`/accept ${code}`);
    expect(ui.lastFrame()).toContain("What do you call them?");
    await ui.line("");
    expect(ui.lastFrame()).toContain("name: a name must not be empty");
    await ui.line("Caroline");
    const f = await until(ui.lastFrame, (x) => x.includes("added Caroline"), "the new contact");
    expect(f).not.toMatch(/contact-[0-9a-f]{8}/);
    expect(alice.contacts().map((c) => c.contact)).toContain("Caroline");
  });

  it("honours NO_COLOR", { timeout: 60_000 }, async () => {
    const [alice] = await pair();
    const before = process.env.NO_COLOR;
    process.env.NO_COLOR = "1";
    cleanups.push(() => {
      if (before === undefined) delete process.env.NO_COLOR;
      else process.env.NO_COLOR = before;
    });
    const ui = renderUi(<Chat client={alice} localOnly={false} onQuit={() => {}} />);
    cleanups.push(() => ui.unmount());
    await ui.line("/nope");
    // No foreground colour codes (30-37, 90-97, 38;…): only bold and inverse remain.
    expect(ui.lastFrame()).not.toMatch(new RegExp(`${String.fromCharCode(27)}\\[(3[0-8]|9[0-7])[;m]`));
  });
});
