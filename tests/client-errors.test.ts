// The `parley` CLI's refusals: a changed identity key, wrong or missing passphrases, and every other
// documented failure, each with its exit status and exactly one line on stderr.
import { randomBytes } from "node:crypto";
import {
  createInvitation,
  decodeInvitation,
  encodeInvitation,
  fromHex,
  Identity,
  LABELS,
  x25519IsLowOrder,
  x25519KeyPair,
} from "@parley/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  aliceAndBob,
  cleanup,
  connect,
  contactEvents,
  contacts,
  fails,
  hasAll,
  init,
  invite,
  newHome,
  parley,
  type Relay,
  readTree,
  received,
  runParley,
  sendOne,
  startRelay,
  syncUntil,
} from "./client-helpers.js";

describe("parley refusals", () => {
  let relay: Relay;
  beforeAll(async () => {
    relay = await startRelay(["--storage", "memory"]);
  });
  afterAll(cleanup);

  it("refuses to send to a contact whose identity key changed until verify --confirm", {
    timeout: 120_000,
  }, async () => {
    const alice = await newHome();
    const bob = await newHome();
    await init(alice, "Alice", relay.url);
    await init(bob, "Bob", relay.url);
    // Bob invites; Alice names him "bob".
    await connect(bob, alice, "bob", "Alice");
    await sendOne(alice, "bob", "hello old bob");
    await syncUntil(bob, hasAll("Alice", ["hello old bob"]));
    const before = (await contacts(alice)).get("bob")!;
    expect(before).toMatchObject({ keyChanged: false });
    const oldSafety = (await parley(alice, ["verify", "bob", "--json"])).events[0]!.safetyNumber;

    // Bob starts over: a new home, a new identity, and a new invitation.
    const newBob = await newHome();
    const newBobId = await init(newBob, "Bob", relay.url);
    expect(newBobId.fingerprint).not.toBe(before.fingerprint);
    const code = await invite(newBob);
    const accepted = await parley(alice, ["accept", code, "--name", "bob", "--json"]);
    const event = contactEvents(accepted.events);
    expect(event.length, accepted.stdout).toBeGreaterThanOrEqual(1);
    expect(event.at(-1), accepted.stdout).toMatchObject({ contact: "bob", event: "key-changed" });
    // README: every `contact` object carries keyChanged (and verified, relay, unread, ...).
    expect.soft(event.at(-1), accepted.stdout).toMatchObject({ keyChanged: true, verified: false });

    const listed = await contacts(alice);
    expect([...listed.keys()]).toEqual(["bob"]);
    expect(listed.get("bob")).toMatchObject({ keyChanged: true, fingerprint: newBobId.fingerprint });

    const refused = await runParley(alice, ["send", "bob", "must not be sent yet"]);
    fails(refused, 11);

    const safety = (await parley(alice, ["verify", "bob", "--json"])).events[0]!;
    expect(safety.safetyNumber).toMatch(/^\d{5}( \d{5}){11}$/);
    expect(safety.safetyNumber).not.toBe(oldSafety);
    const confirmed = await parley(alice, ["verify", "bob", "--confirm", "--json"]);
    expect(confirmed.events[0]).toMatchObject({ contact: "bob", verified: true });
    expect((await contacts(alice)).get("bob")).toMatchObject({ keyChanged: false, verified: true });

    await sendOne(alice, "bob", "hello new bob");
    const newBobEvents = await syncUntil(newBob, hasAll("Alice", ["hello new bob"]));
    expect(received(newBobEvents, "Alice").filter((t) => t === "hello new bob")).toHaveLength(1);
    // The new Bob's safety number matches the one Alice confirmed.
    const bobSide = (await parley(newBob, ["verify", "Alice", "--json"])).events[0]!;
    expect(bobSide.safetyNumber).toBe(safety.safetyNumber);
    // The old Bob got nothing meant for the new one.
    const oldBob = await runParley(bob, ["sync", "--json"]);
    expect(oldBob.code).toBe(0);
    expect(received(oldBob.events, "Alice")).not.toContain("hello new bob");
    expect(received(oldBob.events, "Alice")).not.toContain("must not be sent yet");
  });

  it("wrong passphrase exits 8 and changes nothing; no passphrase without a terminal exits 9", async () => {
    const home = await newHome();
    await init(home, "Walter", relay.url);
    await parley(home, ["contacts", "--json"]);
    const before = await readTree(home);
    expect(before.size).toBeGreaterThan(0);

    fails(
      await runParley(home, ["contacts", "--json"], { env: { PARLEY_PASSPHRASE: "not the passphrase" } }),
      8,
    );
    fails(await runParley(home, ["contacts"], { env: { PARLEY_PASSPHRASE: "not the passphrase" } }), 8);
    const afterWrong = await readTree(home);
    expect([...afterWrong.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [path, bytes] of before) expect(afterWrong.get(path)!.equals(bytes), path).toBe(true);

    fails(await runParley(home, ["contacts"], { env: { PARLEY_PASSPHRASE: undefined } }), 9);
    const afterMissing = await readTree(home);
    expect([...afterMissing.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [path, bytes] of before) expect(afterMissing.get(path)!.equals(bytes), path).toBe(true);

    // The right one still works.
    await parley(home, ["contacts", "--json"]);
  });

  it("each other failure has its own exit status and one line on stderr", { timeout: 120_000 }, async () => {
    const alice = await newHome();
    const bob = await newHome();
    await init(alice, "Alice", relay.url);
    await init(bob, "Bob", relay.url);

    // 5: unknown contact.
    fails(await runParley(alice, ["send", "nobody", "hi"]), 5);
    fails(await runParley(alice, ["history", "nobody"]), 5);
    fails(await runParley(alice, ["verify", "nobody", "--json"]), 5);

    // 6: one character of a valid code changed.
    const code = await invite(alice);
    const i = Math.floor(code.length / 2);
    const flipped = code.slice(0, i) + (code[i] === "A" ? "B" : "A") + code.slice(i + 1);
    expect(flipped).not.toBe(code);
    fails(await runParley(bob, ["accept", flipped, "--name", "alice"]), 6);
    fails(await runParley(bob, ["accept", "PARLEY1-NOTACODE", "--name", "alice"]), 6);
    expect((await contacts(bob)).size).toBe(0);
    // The real code still works afterwards.
    await parley(bob, ["accept", code, "--name", "alice", "--json"]);
    expect([...(await contacts(bob)).keys()]).toEqual(["alice"]);

    // 7: an expired code. Wait (with a deadline) until the printed expiry has passed.
    const carol = await newHome();
    await init(carol, "Carol", relay.url);
    const inv = (await parley(alice, ["invite", "--ttl", "1s", "--json"])).events.find(
      (e) => e.type === "invitation",
    )!;
    expect(inv.code).toMatch(/^PARLEY1-/);
    const expiresAt = inv.expiresAt as number;
    expect(expiresAt).toBeGreaterThan(Date.now() - 5000);
    const deadline = Date.now() + 30_000;
    while (Date.now() <= expiresAt) {
      expect(Date.now(), "the invitation never expired").toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 100));
    }
    fails(await runParley(carol, ["accept", inv.code as string, "--name", "alice"]), 7);
    expect((await contacts(carol)).size).toBe(0);

    // 4: init twice (and the first identity survives).
    const fingerprint = (await contacts(bob)).get("alice")!.fingerprint;
    fails(await runParley(alice, ["init", "--name", "Alice2", "--relay", relay.url]), 4);
    expect((await contacts(bob)).get("alice")!.fingerprint).toBe(fingerprint);

    // 3: a command on an empty home.
    const empty = await newHome();
    fails(await runParley(empty, ["contacts"]), 3);
    fails(await runParley(empty, ["invite", "--json"]), 3);
    fails(await runParley(empty, ["send", "alice", "hi"]), 3);

    // 12: the relay keeps messages 7 days (its default), longer than this home allows.
    const strict = await newHome();
    const strictInit = await runParley(strict, [
      "init",
      "--name",
      "Strict",
      "--relay",
      relay.url,
      "--max-retention",
      "1d",
    ]);
    if (strictInit.code === 0) fails(await runParley(strict, ["invite", "--json"]), 12);
    else fails(strictInit, 12);

    // 2: usage errors.
    fails(await runParley(alice, ["contacts", "--no-such-option"]), 2);
    fails(await runParley(alice, ["frobnicate"]), 2);
    fails(await runParley(alice, ["history"]), 2);
    fails(await runParley(bob, ["history", "alice", "--limit", "many"]), 2);
    fails(await runParley(bob, ["send", "alice", ""]), 2);
    fails(await runParley(bob, ["invite", "--ttl", "forever"]), 2);
    fails(await runParley(empty, ["init", "--name", "X", "--relay", "http://127.0.0.1:1"]), 2);
    // A value that looks like an option: still one line.
    fails(await runParley(alice, ["sync", "--wait", "soon"]), 2);
    fails(await runParley(bob, ["history", "alice", "--limit", "-3"]), 2);
  });

  it("an invitation whose key is a low-order X25519 point is an invalid invitation (exit 6), refused before any relay hears of it (PROTOCOL.md §4.2)", {
    timeout: 120_000,
  }, async () => {
    const bob = await newHome();
    await init(bob, "Bob", relay.url);
    // A code from a test identity, signed and checksummed properly: only the point is wrong.
    const mallory = Identity.generate();
    const lowOrder = fromHex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"); // order 8
    expect(x25519IsLowOrder(lowOrder)).toBe(true);
    const forge = (prekey: Uint8Array, agreementKey: Uint8Array): string => {
      const expiresAt = Math.floor(Date.now() / 1000) + 3600;
      const url = new TextEncoder().encode(relay.url);
      const expires = new Uint8Array(4);
      new DataView(expires.buffer).setUint32(0, expiresAt);
      // PROTOCOL.md §4.1: version, expiresAt, mailbox, signing key, agreement key, prekey, URL.
      const signed = Uint8Array.from([
        1,
        ...expires,
        ...randomBytes(32),
        ...mallory.publicIdentity.signingKey,
        ...agreementKey,
        ...prekey,
        url.length,
        ...url,
      ]);
      const signature = mallory.sign(
        Uint8Array.from([...new TextEncoder().encode(LABELS.invitationSignature), ...signed]),
      );
      const code = encodeInvitation({
        version: 1,
        kemCommitment: null,
        relayUrl: relay.url,
        mailbox: signed.subarray(5, 37),
        identity: { signingKey: mallory.publicIdentity.signingKey, agreementKey },
        prekey,
        expiresAt,
        signature,
      });
      // The checksum and the signature verify: the decoder takes it.
      expect(decodeInvitation(code).prekey).toEqual(prekey);
      return code;
    };
    const connections = async () =>
      Number(
        /^parley_relay_connections_total (\d+)$/m.exec(
          await (await fetch(`http://127.0.0.1:${relay.port}/metrics`)).text(),
        )?.[1],
      );
    const before = await connections();
    const badPrekey = fails(
      await runParley(bob, ["accept", forge(lowOrder, mallory.publicIdentity.agreementKey), "--name", "m"]),
      6,
    );
    expect(badPrekey).toMatch(/invalid invitation.*prekey.*low-order/);
    const badAgreement = fails(
      await runParley(bob, ["accept", forge(x25519KeyPair().publicKey, lowOrder), "--name", "m"]),
      6,
    );
    expect(badAgreement).toMatch(/invalid invitation.*agreement key.*low-order/);
    expect((await contacts(bob)).size).toBe(0);
    // Nothing reached the relay: no mailbox was made for a code that can never work.
    expect(await connections()).toBe(before);
  });

  it("a post-quantum code (PARLEY2-, PROTOCOL.md §4.1) is refused in words (exit 6) until this client fetches hosted KEM keys", {
    timeout: 120_000,
  }, async () => {
    const bob = await newHome();
    await init(bob, "Bob", relay.url);
    const { code } = createInvitation(Identity.generate(), { relayUrl: relay.url, mailbox: randomBytes(32) });
    expect(code.startsWith("PARLEY2-")).toBe(true);
    const refusal = fails(await runParley(bob, ["accept", code, "--name", "pq"]), 6);
    expect(refusal).toMatch(/post-quantum invitation/);
    expect((await contacts(bob)).size).toBe(0);
  });

  it("a message the relay refuses is shown in history with the reason, not as queued for ever", {
    timeout: 120_000,
  }, async () => {
    const small = await startRelay([
      "--storage",
      "memory",
      "--max-message-size",
      "2048",
      "--unsafe-small-messages",
    ]);
    const { alice } = await aliceAndBob(small.url);
    fails(await runParley(alice, ["send", "Bob", "x".repeat(3000)]), 12);
    const history = await parley(alice, ["history", "Bob"]);
    expect(history.stdout).toContain("[failed: too large for Bob's relay (it takes at most 2048 bytes)]");
  });
});
