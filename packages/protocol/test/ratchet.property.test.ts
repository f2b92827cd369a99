// Model-based tests of the Double Ratchet between two parties set up through the real handshake.
// fast-check generates interleavings of sends, deliveries (in any order), drops, duplicates and
// bit-flipped copies; a simple model says what each delivery must produce. Every refused delivery
// must throw a ParleyError and leave the receiver's serialized state byte-for-byte unchanged.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concat, toHex } from "../src/_bytes.js";
import {
  acceptInvitation,
  createInvitation,
  decodeEnvelope,
  decodeInvitation,
  decodePayload,
  encodePayload,
  HandshakeError,
  Identity,
  InvitationBook,
  MAX_SKIP,
  MAX_SKIP_NEW_KEY,
  MAX_STORED_SKIPPED,
  MailboxKey,
  ParleyError,
  RatchetError,
  Session,
  type TextPayload,
} from "../src/index.js";

const RELAY = "wss://relay.example.org";

type Party = "alice" | "bob";

/** A text payload with a deterministic id, so every message is unique and checkable. */
function textOf(text: string, n: number): TextPayload {
  const id = new Uint8Array(16);
  new DataView(id.buffer).setUint32(12, n);
  return { type: "text", id, sentAt: 1_700_000_000_000 + n, text };
}

/** The same, encoded and padded. */
const textPayload = (text: string, n: number): Uint8Array => encodePayload(textOf(text, n));

function readText(plaintext: Uint8Array): string {
  const p = decodePayload(plaintext);
  if (p.type !== "text") throw new Error(`expected a text payload, got ${p.type}`);
  return p.text;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >>> 3]! ^= 1 << (bit & 7);
  return out;
}

/**
 * Calls `call`, which must throw a ParleyError without changing `snapshot()` (the serialized state).
 * Returns the error so callers can check its class and code.
 */
function expectRefused(what: string, call: () => unknown, snapshot: () => Uint8Array): ParleyError {
  const before = snapshot();
  let error: unknown;
  let threw = false;
  try {
    call();
  } catch (e) {
    threw = true;
    error = e;
  }
  if (!threw) throw new Error(`${what}: accepted, but it must be refused`);
  if (!(error instanceof ParleyError)) {
    throw new Error(`${what}: threw ${String(error)} instead of a ParleyError`, { cause: error });
  }
  if (!sameBytes(before, snapshot())) {
    throw new Error(`${what}: refused (${error.name} ${error.code}) but the state changed`);
  }
  return error;
}

interface Wire {
  readonly from: Party;
  readonly to: Party;
  readonly bytes: Uint8Array;
  readonly text: string;
  /** What decryption must give back, field for field. */
  readonly payload: TextPayload;
  /** Which of the sender's ratchet keys (0 = first) the message was sent under. */
  readonly chain: number;
}

/**
 * The two parties plus the network. Alice is the inviter; Bob accepted her invitation, so his first
 * message (the Accept from acceptInvitation) is in flight when the run starts.
 */
class World {
  readonly alice = Identity.generate();
  readonly bob = Identity.generate();
  readonly book = new InvitationBook();
  aliceSession: Session | null = null;
  bobSession: Session;
  readonly inFlight: Wire[] = [];
  readonly delivered: Wire[] = [];
  /** True once Bob has decrypted something from Alice: from then on he sends plain Messages. */
  bobHeard = false;
  /** Each sender's ratchet keys in the order they appeared (hex). */
  private readonly keys: Record<Party, string[]> = { alice: [], bob: [] };
  /** The newest sender chain each party has received from (-1: none). */
  private readonly newestChain: Record<Party, number> = { alice: -1, bob: -1 };
  private counter = 0;

  constructor() {
    const aliceMailbox = MailboxKey.generate();
    const bobMailbox = MailboxKey.generate();
    const { code, pending } = createInvitation(this.alice, {
      postQuantum: false,
      relayUrl: RELAY,
      mailbox: aliceMailbox.address,
    });
    this.book.add(pending);
    const text = this.nextText("bob");
    const { session, message } = acceptInvitation(this.bob, decodeInvitation(code), {
      mailbox: bobMailbox.address,
      relayUrl: RELAY,
      plaintext: encodePayload(textOf(text, this.counter)),
    });
    this.bobSession = session;
    this.inFlight.push(this.wire("bob", message, textOf(text, this.counter)));
  }

  private nextText(from: Party): string {
    this.counter += 1;
    return `${from} #${this.counter}`;
  }

  private wire(from: Party, bytes: Uint8Array, payload: TextPayload): Wire {
    const envelope = decodeEnvelope(bytes);
    const header = envelope.kind === "accept" ? envelope.message.header : envelope.header;
    const key = toHex(header.ratchetKey);
    const keys = this.keys[from];
    if (!keys.includes(key)) keys.push(key);
    const to = from === "alice" ? "bob" : "alice";
    return { from, to, bytes, text: payload.text, payload, chain: keys.indexOf(key) };
  }

  session(party: Party): Session | null {
    return party === "alice" ? this.aliceSession : this.bobSession;
  }

  /** Everything a failed delivery to `party` must leave unchanged. */
  snapshot(party: Party): Uint8Array {
    if (party === "bob") return this.bobSession.serialize();
    return concat(this.book.serialize(), this.aliceSession?.serialize() ?? new Uint8Array(0));
  }

  /** Sends one new text message; returns false when `from` cannot send yet (Alice before any Accept). */
  send(from: Party): boolean {
    const session = this.session(from);
    if (!session) return false;
    const text = this.nextText(from);
    const payload = textOf(text, this.counter);
    const bytes = session.encrypt(encodePayload(payload));
    const kind = decodeEnvelope(bytes).kind;
    // Bob wraps every message in the Accept until he hears from Alice; Alice never does.
    const wrapped = from === "bob" && !this.bobHeard;
    expect(kind).toBe(wrapped ? "accept" : "message");
    expect(session.awaitingReply).toBe(wrapped);
    this.inFlight.push(this.wire(from, bytes, payload));
    return true;
  }

  /**
   * What Alice's client does with bytes from her first-contact mailbox: before she has a session, an
   * Accept goes to the invitation book; after, a Message goes to the session, and an Accept whose
   * invitation is consumed and whose handshake id (invitation id || ephemeral key) matches the session
   * is routed to that session. Anything else goes to the book, which refuses it.
   */
  private aliceReceive(bytes: Uint8Array): Uint8Array {
    const session = this.aliceSession;
    if (session) {
      const envelope = decodeEnvelope(bytes);
      if (envelope.kind === "message") return session.decrypt(bytes);
      const id = concat(envelope.invitationId, envelope.ephemeralKey);
      if (this.book.isConsumed(envelope.invitationId) && sameBytes(id, session.handshakeId)) {
        return session.decrypt(bytes);
      }
    }
    const contact = this.book.accept(this.alice, bytes);
    // Reaching here with a session would mean one invitation opened two sessions.
    expect(session).toBeNull();
    expect(sameBytes(contact.identity.signingKey, this.bob.publicIdentity.signingKey)).toBe(true);
    this.aliceSession = contact.session;
    return contact.plaintext;
  }

  receive(to: Party, bytes: Uint8Array): Uint8Array {
    return to === "alice" ? this.aliceReceive(bytes) : this.bobSession.decrypt(bytes);
  }

  /** Delivers an in-flight message; it must decrypt to exactly what was sent. */
  deliver(index: number): void {
    const [w] = this.inFlight.splice(index, 1);
    if (!w) return;
    const plaintext = this.receive(w.to, w.bytes);
    expect(decodePayload(plaintext)).toEqual(w.payload);
    this.delivered.push(w);
    this.newestChain[w.to] = Math.max(this.newestChain[w.to], w.chain);
    if (w.to === "bob") this.bobHeard = true;
  }

  drop(index: number): void {
    this.inFlight.splice(index, 1);
  }

  /**
   * Re-delivers a message that was already delivered: refused, state unchanged. A message of the
   * receiver's current receiving chain is a DUPLICATE; one of an older chain no longer has a key in
   * the store and fails authentication there.
   */
  duplicate(index: number): void {
    const w = this.delivered[index];
    if (!w) return;
    const error = expectRefused(
      `duplicate of "${w.text}"`,
      () => this.receive(w.to, w.bytes),
      () => this.snapshot(w.to),
    );
    expect(error).toBeInstanceOf(RatchetError);
    expect(error.code).toBe(w.chain === this.newestChain[w.to] ? "DUPLICATE" : "AUTH");
    if (w.to === "alice" && decodeEnvelope(w.bytes).kind === "accept") {
      // Straight to the book, a replayed Accept opens no second session.
      const replay = expectRefused(
        "replayed Accept",
        () => this.book.accept(this.alice, w.bytes),
        () => this.snapshot("alice"),
      );
      expect(replay).toBeInstanceOf(HandshakeError);
      expect(replay.code).toBe("CONSUMED");
    }
  }

  /** Delivers a copy of an in-flight message with one bit flipped; the original stays in flight. */
  tamper(index: number, bit: number): void {
    const w = this.inFlight[index];
    if (!w) return;
    const forged = flipBit(w.bytes, bit % (w.bytes.length * 8));
    const sessionBefore = this.aliceSession;
    expectRefused(
      `"${w.text}" with bit ${bit % (w.bytes.length * 8)} flipped`,
      () => this.receive(w.to, forged),
      () => this.snapshot(w.to),
    );
    expect(this.aliceSession).toBe(sessionBefore);
  }

  /** Replaces a party's session by its serialized-and-restored copy. */
  restore(party: Party): void {
    const session = this.session(party);
    if (!session) return;
    const bytes = session.serialize();
    const restored = Session.deserialize(bytes);
    expect(sameBytes(restored.serialize(), bytes)).toBe(true);
    if (party === "alice") this.aliceSession = restored;
    else this.bobSession = restored;
  }

  /** Delivers whatever is still in flight, then one fresh message each way. */
  finish(): void {
    while (this.inFlight.length > 0) this.deliver(0);
    expect(this.send("bob")).toBe(true);
    this.deliver(0);
    expect(this.send("alice")).toBe(true);
    this.deliver(0);
    expect(this.send("bob")).toBe(true);
    this.deliver(0);
    expect(this.bobSession.awaitingReply).toBe(false);
  }

  checkBounds(): void {
    for (const party of ["alice", "bob"] as const) {
      expect(this.session(party)?.skippedCount ?? 0).toBeLessThanOrEqual(MAX_STORED_SKIPPED);
    }
  }
}

type Op =
  | { readonly op: "send"; readonly from: Party }
  | { readonly op: "deliver"; readonly pick: number }
  | { readonly op: "drop"; readonly pick: number }
  | { readonly op: "duplicate"; readonly pick: number }
  | { readonly op: "tamper"; readonly pick: number; readonly bit: number }
  | { readonly op: "restore"; readonly who: Party };

const party = fc.constantFrom<Party>("alice", "bob");
// Picks shrink towards 0, in-order delivery; larger ones reorder.
const pick = fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.nat(64) });
// Half the flips land in the first 96 bytes (kind, version, ids, keys, counters), half anywhere
// (taken modulo the message's length in bits).
const bit = fc.oneof(fc.nat(8 * 96 - 1), fc.nat(8 * 1024 - 1));

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("send" as const), from: party }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant("deliver" as const), pick }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("drop" as const), pick }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("duplicate" as const), pick }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("tamper" as const), pick, bit }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("restore" as const), who: party }) },
);

function run(ops: readonly Op[]): void {
  const world = new World();
  for (const o of ops) {
    switch (o.op) {
      case "send":
        world.send(o.from);
        break;
      case "deliver":
        if (world.inFlight.length > 0) world.deliver(o.pick % world.inFlight.length);
        break;
      case "drop":
        if (world.inFlight.length > 0) world.drop(o.pick % world.inFlight.length);
        break;
      case "duplicate":
        if (world.delivered.length > 0) world.duplicate(o.pick % world.delivered.length);
        break;
      case "tamper":
        if (world.inFlight.length > 0) world.tamper(o.pick % world.inFlight.length, o.bit);
        break;
      case "restore":
        world.restore(o.who);
        break;
    }
    world.checkBounds();
  }
  world.finish();
}

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
