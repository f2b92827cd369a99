// A crash (SIGKILL) in the middle of a send or a sync never leaves a session that cannot decrypt:
// the ratchet step, the history row and the outbox entry are one transaction, deposits are
// retried under the same client message id, and a delivery stored but not acknowledged comes
// back and is recognised as a duplicate.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  aliceAndBob,
  allDelivered,
  cleanup,
  history,
  newDir,
  PARLEY,
  PASSPHRASE,
  parley,
  ROOT,
  received,
  sendOne,
  startRelay,
  syncUntil,
} from "./client-helpers.js";

afterAll(cleanup);

/** The relay's counter from its transparency statement. */
async function counter(url: string, name: "deposits" | "acks"): Promise<number> {
  const res = await fetch(`${url.replace("ws://", "http://")}/transparency`);
  return ((await res.json()) as { counters: Record<string, number> }).counters[name]!;
}

/** Runs parley and SIGKILLs it once the relay's `name` counter reached `atLeast` (or it ended). */
async function killMidway(
  home: string,
  args: string[],
  input: string,
  relayUrl: string,
  name: "deposits" | "acks",
  atLeast: number,
): Promise<string | number | null> {
  const xdg = await newDir("parley-xdg-");
  const proc = spawn(PARLEY[0]!, [...PARLEY.slice(1), "--home", home, ...args], {
    cwd: ROOT,
    env: {
      ...process.env,
      PARLEY_PASSPHRASE: PASSPHRASE,
      PARLEY_SCRYPT_LOG_N: "10",
      XDG_DATA_HOME: join(xdg, "d"),
      XDG_CONFIG_HOME: join(xdg, "c"),
    },
    stdio: ["pipe", "ignore", "ignore"],
  });
  proc.stdin.end(input);
  const ended = new Promise<string | number | null>((resolve) =>
    proc.once("exit", (c, s) => resolve(s ?? c)),
  );
  let done = false;
  void ended.then(() => {
    done = true;
  });
  while (!done) {
    if ((await counter(relayUrl, name)) >= atLeast) {
      proc.kill("SIGKILL");
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return ended;
}

describe("crashes", () => {
  it("SIGKILL during send and during sync loses nothing and leaves both sessions working", {
    timeout: 240_000,
  }, async () => {
    const relay = await startRelay(["--storage", "sqlite", "--data-dir", await newDir()]);
    const { alice, bob } = await aliceAndBob(relay.url);

    const texts = Array.from({ length: 150 }, (_, i) => `crash-${i}`);
    const before = await counter(relay.url, "deposits");
    const sendEnd = await killMidway(
      bob,
      ["send", "alice", "--lines"],
      `${texts.join("\n")}\n`,
      relay.url,
      "deposits",
      before + 40,
    );

    // Whatever Bob committed is in his history; the rest never existed. Nothing is half-done.
    const sent = (await history(bob, "alice")).filter((m) => m.direction === "out");
    expect(sent.map((m) => m.text)).toEqual(texts.slice(0, sent.length));

    const acksBefore = await counter(relay.url, "acks");
    await parley(bob, ["sync"]); // the rest of Bob's outbox
    const syncEnd = await killMidway(
      alice,
      ["sync", "--wait", "5", "--json"],
      "",
      relay.url,
      "acks",
      acksBefore + 30,
    );
    // Both really died mid-way (had they finished first, this test would prove nothing).
    expect([sendEnd, syncEnd]).toEqual(["SIGKILL", "SIGKILL"]);

    const expected = sent.map((m) => m.text);
    const committed = (await history(alice, "Bob")).filter((m) => m.direction === "in").length;
    const events = await syncUntil(alice, (ev) => received(ev, "Bob").length >= expected.length - committed, {
      wait: 1,
    });
    const got = [...(await history(alice, "Bob"))].filter((m) => m.direction === "in").map((m) => m.text);
    expect(got).toEqual(expected);
    expect(new Set(received(events, "Bob")).size).toBe(received(events, "Bob").length);

    // Both sessions still work in both directions after the crashes.
    const after = await sendOne(bob, "alice", "after the crash");
    const back = await sendOne(alice, "Bob", "still here");
    await syncUntil(alice, (ev) => received(ev, "Bob").includes("after the crash"));
    await syncUntil(bob, (ev) => received(ev, "alice").includes("still here") && allDelivered([after])(ev));
    await syncUntil(alice, allDelivered([back]));
    const final = (await history(alice, "Bob")).filter((m) => m.direction === "in").map((m) => m.text);
    expect(final).toEqual([...expected, "after the crash"]);
  });
});
