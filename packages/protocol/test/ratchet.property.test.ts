// Model-based tests of the Double Ratchet between two parties set up through the real handshake
// (the model is in ratchet-model.ts; ratchet-pq.property.test.ts runs it on post-quantum sessions).
// fast-check generates interleavings of sends, deliveries (in any order), drops, duplicates and
// bit-flipped copies; a simple model says what each delivery must produce. Every refused delivery
// must throw a ParleyError and leave the receiver's serialized state byte-for-byte unchanged.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concat } from "../src/_bytes.js";
import {
  decodeEnvelope,
  HandshakeError,
  MAX_SKIP,
  MAX_SKIP_NEW_KEY,
  MAX_STORED_SKIPPED,
  RatchetError,
  Session,
} from "../src/index.js";
import {
  expectRefused,
  flipBit,
  opArb,
  readText,
  run,
  sameBytes,
  textPayload,
  World,
} from "./ratchet-model.js";

describe("Double Ratchet against a model (random interleavings)", () => {
  // 400 random interleavings in four tests of 100 (each with its own random seed): the same
  // coverage, and no single test near the test timeout on a busy two-core machine (pure-JS X25519).
  for (const part of [1, 2, 3, 4]) {
    it(`delivers every message exactly once, in any order, and refuses duplicates and forgeries unchanged (runs ${part} of 4)`, () => {
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: 60, size: "max" }), (ops) => run(ops)),
        { numRuns: 100 },
      );
    });
  }
});

/** A fresh pair whose first Accept has reached Alice: both sessions exist, Bob still wraps. */
function openedPair(): { world: World; alice: Session; bob: Session } {
  const world = new World();
  world.deliver(0);
  return { world, alice: world.aliceSession!, bob: world.bobSession };
}

/** `count` messages from `from`, texts `${tag}${i}`. */
function burst(from: Session, tag: string, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => from.encrypt(textPayload(`${tag}${i}`, i)));
}

function expectRatchetError(
  what: string,
  code: string,
  call: () => unknown,
  snapshot: () => Uint8Array,
): void {
  const error = expectRefused(what, call, snapshot);
  expect(error).toBeInstanceOf(RatchetError);
  expect(error.code).toBe(code);
}

describe("skipped message keys: MAX_SKIP and MAX_STORED_SKIPPED", () => {
  it("a gap above MAX_SKIP within the current chain is TOO_FAR_AHEAD, state unchanged", () => {
    const { alice, bob } = openedPair();
    const wires = burst(alice, "a", MAX_SKIP + 3);
    expect(readText(bob.decrypt(wires[0]!))).toBe("a0");
    // Bob expects index 1: index MAX_SKIP + 2 would skip MAX_SKIP + 1 keys.
    expectRatchetError(
      "gap MAX_SKIP + 1",
      "TOO_FAR_AHEAD",
      () => bob.decrypt(wires[MAX_SKIP + 2]!),
      () => bob.serialize(),
    );
    expect(readText(bob.decrypt(wires[MAX_SKIP + 1]!))).toBe(`a${MAX_SKIP + 1}`);
    expect(bob.skippedCount).toBe(MAX_SKIP);
    expect(readText(bob.decrypt(wires[MAX_SKIP + 2]!))).toBe(`a${MAX_SKIP + 2}`);
    expect(readText(bob.decrypt(wires[1]!))).toBe("a1");
    expect(bob.skippedCount).toBe(MAX_SKIP - 1);
  });

  it("a new chain starting above MAX_SKIP_NEW_KEY is TOO_FAR_AHEAD, state unchanged", () => {
    const { alice, bob } = openedPair();
    const wires = burst(alice, "a", MAX_SKIP_NEW_KEY + 2);
    expectRatchetError(
      "new chain at MAX_SKIP_NEW_KEY + 1",
      "TOO_FAR_AHEAD",
      () => bob.decrypt(wires[MAX_SKIP_NEW_KEY + 1]!),
      () => bob.serialize(),
    );
    expect(bob.awaitingReply).toBe(true);
    expect(readText(bob.decrypt(wires[MAX_SKIP_NEW_KEY]!))).toBe(`a${MAX_SKIP_NEW_KEY}`);
    expect(bob.skippedCount).toBe(MAX_SKIP_NEW_KEY);
    expect(bob.awaitingReply).toBe(false);
  });

  it("more than MAX_SKIP_NEW_KEY keys left in the previous chain is TOO_FAR_AHEAD, state unchanged", () => {
    const { alice, bob } = openedPair();
    // Alice's first chain: Bob gets a0 only, so 1..K + 1 are left (K + 1 keys).
    const first = burst(alice, "a", MAX_SKIP_NEW_KEY + 2);
    expect(readText(bob.decrypt(first[0]!))).toBe("a0");
    expect(readText(alice.decrypt(bob.encrypt(textPayload("b", 0))))).toBe("b");
    const next = alice.encrypt(textPayload("next chain", 0));
    expectRatchetError(
      "previous chain gap",
      "TOO_FAR_AHEAD",
      () => bob.decrypt(next),
      () => bob.serialize(),
    );
    // With a1 received, exactly K keys are left: accepted.
    expect(readText(bob.decrypt(first[1]!))).toBe("a1");
    expect(readText(bob.decrypt(next))).toBe("next chain");
    expect(bob.skippedCount).toBe(MAX_SKIP_NEW_KEY);
    expect(readText(bob.decrypt(first[MAX_SKIP_NEW_KEY + 1]!))).toBe(`a${MAX_SKIP_NEW_KEY + 1}`);
  });

  it("a new ratchet key may skip at most MAX_SKIP_NEW_KEY keys in total, old chain and new together", () => {
    const { alice, bob } = openedPair();
    const old = MAX_SKIP_NEW_KEY / 2;
    // Bob gets a0 only, leaving `old` keys of Alice's first chain (1..old).
    const first = burst(alice, "a", old + 1);
    expect(readText(bob.decrypt(first[0]!))).toBe("a0");
    expect(readText(alice.decrypt(bob.encrypt(textPayload("b", 0))))).toBe("b");
    // Alice's second chain: its message at index K - old + 1 would make K + 1 in total.
    const second = burst(alice, "c", MAX_SKIP_NEW_KEY - old + 2);
    expectRatchetError(
      "old + new above the bound",
      "TOO_FAR_AHEAD",
      () => bob.decrypt(second[MAX_SKIP_NEW_KEY - old + 1]!),
      () => bob.serialize(),
    );
    const last = MAX_SKIP_NEW_KEY - old;
    expect(readText(bob.decrypt(second[last]!))).toBe(`c${last}`);
    expect(bob.skippedCount).toBe(MAX_SKIP_NEW_KEY);
    // Every skipped key still opens its message, and the rest of the chain follows.
    expect(readText(bob.decrypt(first[old]!))).toBe(`a${old}`);
    expect(readText(bob.decrypt(second[0]!))).toBe("c0");
    expect(readText(bob.decrypt(second[last + 1]!))).toBe(`c${last + 1}`);
  });

  it("within one chain, the store keeps the newest MAX_STORED_SKIPPED keys; an evicted one is DUPLICATE", () => {
    const { alice, bob } = openedPair();
    const wires = burst(alice, "a", 3 * MAX_SKIP + 4);
    expect(readText(bob.decrypt(wires[0]!))).toBe("a0");
    // Each delivery skips exactly MAX_SKIP keys: 1000, 2000, then 3000 of which the oldest 1000 go.
    for (const [index, stored] of [
      [MAX_SKIP + 1, MAX_SKIP],
      [2 * MAX_SKIP + 2, 2 * MAX_SKIP],
      [3 * MAX_SKIP + 3, MAX_STORED_SKIPPED],
    ] as const) {
      expect(readText(bob.decrypt(wires[index]!))).toBe(`a${index}`);
      expect(bob.skippedCount).toBe(stored);
      expect(bob.skippedCount).toBeLessThanOrEqual(MAX_STORED_SKIPPED);
    }
    // Keys 1..1000 were evicted: their messages now count as already received.
    for (const index of [1, 5, MAX_SKIP]) {
      expectRatchetError(
        `evicted a${index}`,
        "DUPLICATE",
        () => bob.decrypt(wires[index]!),
        () => bob.serialize(),
      );
    }
    // The oldest kept key and the newest still work.
    expect(readText(bob.decrypt(wires[MAX_SKIP + 2]!))).toBe(`a${MAX_SKIP + 2}`);
    expect(readText(bob.decrypt(wires[3 * MAX_SKIP + 2]!))).toBe(`a${3 * MAX_SKIP + 2}`);
    expect(bob.skippedCount).toBe(MAX_STORED_SKIPPED - 2);
  });

  it("across chains, the oldest chain's keys are evicted first and its messages are then refused", () => {
    const { alice, bob } = openedPair();
    const chains: Uint8Array[][] = [];
    for (let c = 0; c < 3; c++) {
      // Alice sends MAX_SKIP + 1 messages; Bob receives the first and the last, skipping the
      // MAX_SKIP - 1 keys between them.
      const wires = burst(alice, `c${c}-`, MAX_SKIP + 1);
      chains.push(wires);
      expect(readText(bob.decrypt(wires[0]!))).toBe(`c${c}-0`);
      expect(readText(bob.decrypt(wires[MAX_SKIP]!))).toBe(`c${c}-${MAX_SKIP}`);
      expect(bob.skippedCount).toBe(Math.min((c + 1) * (MAX_SKIP - 1), MAX_STORED_SKIPPED));
      // Bob answers, so Alice's next burst is a new chain.
      expect(readText(alice.decrypt(bob.encrypt(textPayload(`b${c}`, c))))).toBe(`b${c}`);
    }
    // 3 × 999 keys were set aside and 2000 are kept: chain 0's 1..997 were evicted. Its messages
    // belong to an old chain, which the ratchet refuses as AUTH ("replayed from an old chain"),
    // leaving the state unchanged (indices at most MAX_SKIP_NEW_KEY pass the skip bound).
    for (const index of [1, 2, MAX_SKIP_NEW_KEY]) {
      expectRatchetError(
        `evicted c0-${index}`,
        "AUTH",
        () => bob.decrypt(chains[0]![index]!),
        () => bob.serialize(),
      );
    }
    expect(readText(bob.decrypt(chains[0]![998]!))).toBe("c0-998");
    expect(readText(bob.decrypt(chains[1]![1]!))).toBe("c1-1");
    expect(readText(bob.decrypt(chains[2]![MAX_SKIP - 1]!))).toBe(`c2-${MAX_SKIP - 1}`);
    expect(bob.skippedCount).toBe(MAX_STORED_SKIPPED - 3);
    // Traffic continues both ways.
    expect(readText(bob.decrypt(alice.encrypt(textPayload("still here", 0))))).toBe("still here");
    expect(readText(alice.decrypt(bob.encrypt(textPayload("me too", 0))))).toBe("me too");
  });
});

describe("the first Accept and its repeats", () => {
  it("a replay of the first Accept opens no second session and changes nothing", () => {
    const world = new World();
    const first = world.inFlight[0]!.bytes;
    world.deliver(0);
    const alice = world.aliceSession!;
    const book = world.book;
    const envelope = decodeEnvelope(first);
    if (envelope.kind !== "accept") throw new Error("Bob's first message must be an Accept");
    expect(book.isConsumed(envelope.invitationId)).toBe(true);
    expect(book.size).toBe(0);
    const error = expectRefused(
      "replayed Accept",
      () => book.accept(world.alice, first),
      () => concat(book.serialize(), alice.serialize()),
    );
    expect(error).toBeInstanceOf(HandshakeError);
    expect(error.code).toBe("CONSUMED");
    // Routed to the session it opened, the replay is a duplicate.
    expectRatchetError(
      "replayed Accept, routed",
      "DUPLICATE",
      () => alice.decrypt(first),
      () => alice.serialize(),
    );
    // Bob's later Accepts: refused by the book, decrypted by the session they route to.
    world.send("bob");
    const later = world.inFlight[0]!.bytes;
    const consumed = expectRefused(
      "later Accept to the book",
      () => book.accept(world.alice, later),
      () => concat(book.serialize(), alice.serialize()),
    );
    expect(consumed.code).toBe("CONSUMED");
    world.deliver(0);
    world.finish();
  });

  it("a repeated Accept whose sealed identity was altered is refused by the session it routes to", () => {
    // Bob keeps wrapping his messages in the same Accept prefix and sealed identity until Alice
    // replies. Alice's session checks the prefix (handshake id) of such a repeat; the sealed identity
    // travels with it and must not be alterable either.
    const { world, alice } = openedPair();
    world.send("bob");
    const wire = world.inFlight[0]!.bytes;
    const sealedLength = (wire[50]! << 8) | wire[51]!;
    for (const offset of [52, 52 + (sealedLength >> 1), 52 + sealedLength - 1]) {
      expectRefused(
        `sealed identity byte ${offset} flipped`,
        () => alice.decrypt(flipBit(wire, offset * 8)),
        () => alice.serialize(),
      );
    }
    world.deliver(0);
    world.finish();
  });
});

describe("serialize / deserialize mid-conversation", () => {
  it("restored sessions are byte-identical copies that keep working, skipped keys included", () => {
    const { world } = openedPair();
    // Bob still wraps his messages (he has not heard from Alice): that survives a restore.
    world.send("bob");
    world.restore("bob");
    expect(world.bobSession.awaitingReply).toBe(true);
    world.send("bob");
    world.deliver(1);
    // Alice sends three; Bob gets the last first, so two keys wait in his store.
    for (let i = 0; i < 3; i++) world.send("alice");
    const aliceToBob = world.inFlight.filter((w) => w.to === "bob").length;
    expect(aliceToBob).toBe(3);
    world.deliver(world.inFlight.findLastIndex((w) => w.to === "bob"));
    expect(world.bobSession.skippedCount).toBe(2);

    // A restored copy decrypts exactly what the original does.
    const copy = Session.deserialize(world.bobSession.serialize());
    expect(sameBytes(copy.serialize(), world.bobSession.serialize())).toBe(true);
    const pending = world.inFlight.find((w) => w.to === "bob")!;
    expect(readText(copy.decrypt(pending.bytes))).toBe(pending.text);

    world.restore("alice");
    world.restore("bob");
    expect(world.bobSession.skippedCount).toBe(2);
    world.finish();
    world.restore("alice");
    world.restore("bob");
    world.finish();
  });
});
