// What `parley` and the relay leave on disk: after a conversation, no file under either home or
// the SQLite relay's data directory holds a message text, a contact name or the passphrase.
import { afterAll, describe, expect, it } from "vitest";
import {
  cleanup,
  connect,
  contacts,
  freePort,
  hasAll,
  history,
  init,
  newDir,
  newHome,
  PASSPHRASE,
  readTree,
  received,
  sendLines,
  sendOne,
  startSqliteRelay,
  syncUntil,
  unique,
} from "./client-helpers.js";

function findings(files: Map<string, Buffer>, needles: readonly string[]): string[] {
  const out: string[] = [];
  for (const [path, bytes] of files) {
    for (const needle of needles) {
      for (const [encoding, pattern] of [
        ["utf8", Buffer.from(needle, "utf8")],
        ["utf16le", Buffer.from(needle, "utf16le")],
        ["lowercase utf8", Buffer.from(needle.toLowerCase(), "utf8")],
      ] as const) {
        if (bytes.includes(pattern)) out.push(`${path} contains ${JSON.stringify(needle)} (${encoding})`);
      }
    }
  }
  return out;
}

describe("parley at rest", () => {
  afterAll(cleanup);

  it("leaves no plaintext, contact name or passphrase in the homes or the relay's data", {
    timeout: 120_000,
  }, async () => {
    const tag = unique();
    const secret = `the-secret-${tag}`;
    const aliceName = `Alicia-${tag}`;
    const bobName = `Roberto-${tag}`;
    const aliceLocal = `ally-${tag}`;
    const port = await freePort();
    const dataDir = await newDir("parley-relay-data-");
    const relay = await startSqliteRelay(port, dataDir);
    const url = `ws://127.0.0.1:${port}`;
    const alice = await newHome();
    const bob = await newHome();
    await init(alice, aliceName, url);
    await init(bob, bobName, url);
    await connect(alice, bob, aliceLocal, bobName);

    const fromAlice = [`${secret} from alice`, `${secret} again`];
    const fromBob = `${secret} from bob`;
    await sendLines(alice, bobName, fromAlice);
    await sendOne(bob, aliceLocal, fromBob);
    // A message that waits on the relay, unread, while we look.
    await sendOne(alice, bobName, `${secret} still on the relay`);
    const bobEvents = await syncUntil(bob, hasAll(aliceLocal, fromAlice));
    expect(received(bobEvents, aliceLocal)).toContain(fromAlice[0]);
    const aliceEvents = await syncUntil(alice, hasAll(bobName, [fromBob]));
    expect(received(aliceEvents, bobName)).toEqual([fromBob]);
    await sendOne(bob, aliceLocal, `${secret} pending for alice`);
    expect((await history(alice, bobName)).map((m) => m.text)).toContain(fromBob);
    expect([...(await contacts(bob)).keys()]).toEqual([aliceLocal]);

    const needles = [secret, tag, aliceName, bobName, aliceLocal, PASSPHRASE];
    const check = async (when: string) => {
      const files = new Map([
        ...(await readTree(alice)),
        ...(await readTree(bob)),
        ...(await readTree(dataDir)),
      ]);
      expect(files.size, when).toBeGreaterThan(2);
      expect(findings(files, needles), when).toEqual([]);
    };
    // With the relay running (its WAL included), then after it stopped and checkpointed.
    await check("relay running");
    expect(await relay.stop("SIGTERM")).toBe(0);
    await check("relay stopped");
  });
});
