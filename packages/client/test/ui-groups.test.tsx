// The chat screen with groups (ink-testing-library), against real clients and the real relay
// process: groups in the conversation list with unread counts, /group new, /add, /kick, /leave,
// /members, author headings, membership changes as lines, and notifications for group messages.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type RelayProcess, startRelay } from "../../relay/test/helpers.js";
import type { Client } from "../src/client.js";
import { Chat } from "../src/ui/chat.js";
import { splitArgs } from "../src/ui/group-commands.js";
import { renderUi, scratch, until } from "./ui-helpers.js";

const made = scratch();
afterEach(made.cleanup);
afterAll(made.removeDirs);

/** Alice, with Bob and Carol as contacts (each knows her as "Alice"), all in live mode. */
async function trio(): Promise<{ alice: Client; bob: Client; carol: Client; dave: Client }> {
  const relay: RelayProcess = await startRelay(["--storage", "memory"]);
  made.cleanups.push(() => relay.stop());
  const url = `ws://127.0.0.1:${relay.port}`;
  const make = (name: string) => made.client(url, name);
  const alice = make("Alice");
  const others = { bob: make("Bob"), carol: make("Carol"), dave: make("Dave") };
  for (const [key, c] of Object.entries(others)) {
    await c.accept((await alice.invite()).code, { name: "Alice" });
    await alice.sync();
    const listed = alice.contacts().find((v) => v.contact.toLowerCase() === key);
    if (!listed) throw new Error(`Alice does not list ${key}: ${alice.contacts().map((v) => v.contact)}`);
  }
  for (const c of [alice, ...Object.values(others)]) await c.start();
  return { alice, ...others };
}

describe("splitArgs", () => {
  it("splits at spaces, keeps a double-quoted name whole, and refuses an unclosed quote", () => {
    expect(splitArgs(' new "Book club"  Bob Carol')).toEqual(["new", "Book club", "Bob", "Carol"]);
    expect(splitArgs("")).toEqual([]);
    expect(splitArgs('new "Book club Bob')).toBeNull();
  });
});

describe("groups in the chat screen", () => {
  it("are made with /group new, listed with unread counts, and show authors, changes and members", {
    timeout: 120_000,
  }, async () => {
    const { alice, bob, carol, dave } = await trio();
    const notified: [string, string][] = [];
    const notifier = { message: (who: string, text: string) => notified.push([who, text]), seen: () => {} };
    const ui = renderUi(<Chat client={alice} localOnly={false} onQuit={() => {}} notifier={notifier} />);
    made.cleanups.push(() => ui.unmount());

    // Commands that need a group say so, and bad input is refused with the usage.
    await ui.line("/kick Bob");
    expect(ui.lastFrame()).toContain("/kick works in a group");
    await ui.line("/group new Team");
    expect(ui.lastFrame()).toContain("usage: /group new NAME MEMBER");
    await ui.line("/group new Team Bob Nobody");
    await until(ui.lastFrame, (f) => /Nobody/.test(f) && !f.includes("creating"), "the refusal");
    expect(alice.groups()).toEqual([]);

    await ui.line("/group new Team Bob Carol");
    let f = await until(ui.lastFrame, (x) => x.includes("created Team with Bob, Carol"), "the new group");
    expect(f).toContain("# Team · 3 members");
    expect(f).toMatch(/# Team/);
    expect(f).toContain("group created, 3 members");

    // Bob and Carol join and talk: each heading names its author.
    await until(
      () => String(bob.groups().length),
      (n) => n === "1",
      "Bob's copy of the group",
    );
    await until(
      () => String(carol.groups().length),
      (n) => n === "1",
      "Carol's copy of the group",
    );
    await bob.send("Team", ["hello from Bob"]);
    await carol.send("Team", ["and from Carol"]);
    f = await until(
      ui.lastFrame,
      (x) => x.includes("and from Carol") && x.includes("hello from Bob"),
      "their messages",
    );
    expect(f).toMatch(/\d\d:\d\d Bob/);
    expect(f).toMatch(/\d\d:\d\d Carol/);

    // My message says how many members have it.
    await ui.line("hi both");
    await until(
      ui.lastFrame,
      (x) => /hi both.*\[delivered to all 2, read by 0\]/.test(x),
      "the delivered count",
    );

    // Nothing was announced while the group was on screen.
    expect(notified).toEqual([]);

    // On Bob's own conversation, his group message is still announced (as the group's) and
    // counted unread: it is not on screen.
    await ui.keys("\u001b[Z"); // Shift+Tab: the previous conversation, round to the last (Bob)
    await until(ui.lastFrame, (x) => /│ Bob\b/.test(x), "Bob's conversation on screen");
    await bob.send("Team", ["while you look elsewhere"]);
    await until(ui.lastFrame, (x) => x.includes("Team (1)"), "the unread count");
    expect(notified).toEqual([["Team", "Bob: while you look elsewhere"]]);
    await ui.keys("\t"); // Tab: round to the first, the group
    await until(
      ui.lastFrame,
      (x) => x.includes("while you look elsewhere") && !x.includes("Team (1)"),
      "read",
    );

    // Members, with their verification state.
    await ui.line("/members");
    f = await until(ui.lastFrame, (x) => x.includes("Team: 3 members"), "the members overlay");
    expect(f).toMatch(/Alice .*\(you, admin\)/);
    expect(f).toMatch(/\? Bob .*not verified/);
    await ui.keys("\u001b");

    // Adding and removing: changes are lines of the conversation, on every side.
    await ui.line("/add Dave");
    await until(ui.lastFrame, (x) => x.includes("Alice added Dave"), "the add line");
    await ui.line("/kick Carol");
    await until(ui.lastFrame, (x) => x.includes("Alice removed Carol"), "the removal line");
    await until(
      () =>
        carol
          .history("Team")
          .map((m) => m.note?.event ?? "")
          .join(" "),
      (h) => h.includes("removed"),
      "Carol's removal",
    );
    expect(carol.groups()[0]).toMatchObject({ active: false });
    expect(dave.groups()[0]).toMatchObject({ group: "Team", active: true });

    // Leaving: the group stays, greyed, and sending is refused with the reason.
    await ui.line("/leave");
    await until(ui.lastFrame, (x) => x.includes("you left Team"), "leaving");
    await ui.line("still here?");
    await until(ui.lastFrame, (x) => x.includes("you are no longer a member of Team"), "the refusal to send");
  });
});
