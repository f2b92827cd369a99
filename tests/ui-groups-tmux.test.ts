// A group in three real terminals: tmux runs three Parley UIs (the bundled CLI) against a real
// relay process. Alice makes a group of Bob and Carol, who are not each other's contacts; all
// three talk; Alice looks at the members and removes Carol, who hears nothing after.
import { afterAll, describe, expect, it } from "vitest";
import { cleanup, connect, homesFor, PARLEY, PASSPHRASE, startRelay } from "./client-helpers.js";
import { tmuxServer } from "./tmux.js";

const { tmux, pane, session, keys, enter, waitFor, gone, kill } = tmuxServer(`parley-groups-${process.pid}`);

afterAll(async () => {
  kill();
  await cleanup();
});

const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Types a line into the chat's input, waits until the input line shows its end, then presses Enter. */
async function typeLine(who: string, text: string): Promise<void> {
  keys(who, text);
  await waitFor(who, new RegExp(`> .*${literal(text.slice(-10))}`), `the typed line in ${who}`);
  enter(who);
}

/** Tabs through the conversation list until `name`'s conversation is on screen (its title). */
async function open(who: string, name: string): Promise<void> {
  const title = new RegExp(`│ # ${literal(name)} ·`);
  for (let i = 0; i < 8 && !title.test(pane(who)); i++) {
    tmux("send-keys", "-t", who, "Tab");
    await new Promise((r) => setTimeout(r, 300));
  }
  await waitFor(who, title, `${name} on ${who}'s screen`);
}

describe("a group in three terminal UIs", () => {
  it("is made with /group new, everyone talks, /members shows who is verified, and /kick cuts one off", {
    timeout: 240_000,
  }, async () => {
    const relay = await startRelay();
    const [alice, bob, carol] = await homesFor(relay.url, "Alice", "Bob", "Carol");
    // Bob and Carol each know Alice; they do not know each other.
    await connect(alice, bob, "Alice", "Bob");
    await connect(alice, carol, "Alice", "Carol");

    const env = { NO_COLOR: "1", PARLEY_SCRYPT_LOG_N: "10" };
    const homes = { alice, bob, carol };
    for (const [who, home] of Object.entries(homes)) session(who, [...PARLEY, "--home", home], env);
    for (const who of Object.keys(homes)) {
      await waitFor(who, /Parley is locked/, "the unlock screen");
      keys(who, PASSPHRASE);
      enter(who);
      await waitFor(who, /Chats/, "the chat screen");
    }

    await typeLine("alice", "/group new Team Bob Carol");
    await waitFor("alice", /created Team with Bob, Carol/, "the new group");
    await waitFor("alice", /│ # Team · 3 members/, "the group on Alice's screen");
    for (const who of ["bob", "carol"]) {
      await waitFor(who, /# Team/, `the group in ${who}'s list`);
      await open(who, "Team");
      await waitFor(who, /Alice added you \(3 members\)/, `the join line in ${who}'s pane`);
    }

    await typeLine("bob", "hello team from bob");
    await waitFor("alice", /Bob[\s\S]*hello team from bob/, "Bob's message in Alice's pane");
    // Carol has no session with Bob yet: it comes through Alice, then through their own.
    await waitFor("carol", /Bob[\s\S]*hello team from bob/, "Bob's message in Carol's pane", 60_000);
    await typeLine("carol", "carol here, hi bob");
    await waitFor("bob", /Carol[\s\S]*carol here, hi bob/, "Carol's message in Bob's pane", 60_000);
    await waitFor("alice", /carol here, hi bob/, "Carol's message in Alice's pane");
    await typeLine("alice", "welcome both");
    await waitFor("alice", /welcome both {2}\[(delivered to all 2|read by all 2)/, "Alice's message counted");
    for (const who of ["bob", "carol"])
      await waitFor(who, /welcome both/, `Alice's message in ${who}'s pane`);

    await typeLine("alice", "/members");
    const members = await waitFor("alice", /Team: 3 members/, "the members overlay");
    expect(members).toMatch(/Alice .*\(you, admin\)/);
    expect(members).toMatch(/\? Bob .*not verified/);
    expect(members).toMatch(/\? Carol .*not verified/);
    tmux("send-keys", "-t", "alice", "Escape");
    await waitFor("alice", /│ # Team · 3 members/, "the conversation again");

    await typeLine("alice", "/kick Carol");
    await waitFor("alice", /Alice removed Carol/, "the removal line in Alice's pane");
    await waitFor("carol", /Alice removed you/, "the removal line in Carol's pane");
    await waitFor("carol", /# Team \(you are no longer a member\)/, "Carol's group title");
    await typeLine("bob", "only for alice now");
    await waitFor("alice", /only for alice now/, "Bob's message after the removal, in Alice's pane");
    // Alice has it, so it has been sent; Carol was not sent a copy.
    await typeLine("carol", "can anyone hear me");
    await waitFor("carol", /you are no longer a member of Team/, "Carol's refusal to send");
    expect(pane("carol")).not.toContain("only for alice now");

    for (const who of Object.keys(homes)) tmux("send-keys", "-t", who, "C-c");
    for (let i = 0; i < 150 && Object.keys(homes).some((w) => !gone(w)); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(Object.keys(homes).filter((w) => !gone(w))).toEqual([]);
  });
});
