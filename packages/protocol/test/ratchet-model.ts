// The model behind the Double Ratchet's property tests (ratchet.property.test.ts, classical
// sessions set up through the real handshake; ratchet-pq.property.test.ts, post-quantum sessions,
// PROTOCOL.md §6.7). fast-check generates interleavings of sends, deliveries (in any order), drops,
// duplicates and bit-flipped copies; a simple model says what each delivery must produce. Every
// refused delivery must throw a ParleyError and leave the receiver's serialized state
// byte-for-byte unchanged.
import fc from "fast-check";
import { expect } from "vitest";
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
  MAX_STORED_SKIPPED,
  MailboxKey,
  ParleyError,
  RatchetError,
  Session,
  type TextPayload,
} from "../src/index.js";
import { sessionPair } from "./pq-fixture.js";

const RELAY = "wss://relay.example.org";

export type Party = "alice" | "bob";

/** A text payload with a deterministic id, so every message is unique and checkable. */
export function textOf(text: string, n: number): TextPayload {
  const id = new Uint8Array(16);
  new DataView(id.buffer).setUint32(12, n);
  return { type: "text", id, sentAt: 1_700_000_000_000 + n, text };
}

/** The same, encoded and padded. */
export const textPayload = (text: string, n: number): Uint8Array => encodePayload(textOf(text, n));

export function readText(plaintext: Uint8Array): string {
  const p = decodePayload(plaintext);
  if (p.type !== "text") throw new Error(`expected a text payload, got ${p.type}`);
  return p.text;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >>> 3]! ^= 1 << (bit & 7);
  return out;
}

/**
 * Calls `call`, which must throw a ParleyError without changing `snapshot()` (the serialized state).
 * Returns the error so callers can check its class and code.
 */
export function expectRefused(what: string, call: () => unknown, snapshot: () => Uint8Array): ParleyError {
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

export interface Wire {
  readonly from: Party;
  readonly to: Party;
  readonly bytes: Uint8Array;
  readonly text: string;
  /** What decryption must give back, field for field. */
  readonly payload: TextPayload;
  /** Which of the sender's ratchet keys (0 = first) the message was sent under. */
  readonly chain: number;
}

export interface WorldOptions {
  /**
   * Post-quantum sessions (PROTOCOL.md §6.7), built from Session.initiate / respond (pq-fixture.ts)
   * instead of the handshake: Alice's session exists from the start and opens on her first
   * decryption. Default: classical sessions through the real handshake.
   */
  readonly postQuantum?: boolean;
}

/**
 * Text lengths (UTF-8 bytes) a message may have, chosen by the send op: short; leaving room for a
 * KEM piece of 2 units (§6.7); leaving 1 zero byte of padding (no piece); filling the 256-byte
 * bucket exactly (the plaintext ends in 0x80, so a v3 Message appends its descriptor); a
 * 1024-byte bucket (room for 17 units); a 4096-byte bucket (room for a whole key or ciphertext).
 */
export const TEXT_LENGTHS = [0, 180, 224, 225, 700, 1100] as const;

/**
 * The two parties plus the network. Alice is the inviter; Bob accepted her invitation, so his first
 * message (the Accept from acceptInvitation) is in flight when the run starts.
 */
export class World {
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
  readonly postQuantum: boolean;
  /** Post-quantum mode: Alice's session before her first decryption opens it. */
  private unopenedAlice: Session | null = null;
  /** Post-quantum mode: the highest KEM epoch either side has reached. */
  private highestEpoch = 1;

  constructor(options: WorldOptions = {}) {
    this.postQuantum = options.postQuantum ?? false;
    if (this.postQuantum) {
      const { alice, bob } = sessionPair();
      this.unopenedAlice = alice;
      this.bobSession = bob;
      const text = this.nextText("bob");
      const message = bob.encrypt(encodePayload(textOf(text, this.counter)));
      this.inFlight.push(this.wire("bob", message, textOf(text, this.counter)));
      return;
    }
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

  private nextText(from: Party, length = 0): string {
    this.counter += 1;
    const text = `${from} #${this.counter}`;
    return text.length >= length ? text : text + "x".repeat(length - text.length);
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
    const alice = this.aliceSession ?? this.unopenedAlice;
    return concat(this.book.serialize(), alice?.serialize() ?? new Uint8Array(0));
  }

  /**
   * Sends one new text message of about `length` bytes (TEXT_LENGTHS); returns false when `from`
   * cannot send yet (Alice before any Accept).
   */
  send(from: Party, length = 0): boolean {
    const session = this.session(from);
    if (!session) return false;
    const text = this.nextText(from, length);
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
    if (this.postQuantum) {
      // The session is Alice's from the start; her first decryption opens it.
      const session = this.aliceSession ?? this.unopenedAlice!;
      const plaintext = session.decrypt(bytes);
      this.aliceSession = session;
      return plaintext;
    }
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
    if (w.to === "alice" && decodeEnvelope(w.bytes).kind === "accept" && !this.postQuantum) {
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
    if (this.postQuantum) this.completeKemStep();
  }

  /**
   * Whatever the run lost or reordered, a KEM exchange still completes (§6.7: pieces are sent
   * again until the peer shows it has them all): with texts of 1100 bytes, whose 4096-byte bucket
   * holds a whole key or ciphertext, both sides pass the highest epoch either had within a few turns.
   */
  private completeKemStep(): void {
    const alice = this.aliceSession!;
    const target = Math.max(alice.kemEpoch!, this.bobSession.kemEpoch!) + 1;
    for (let turn = 0; turn < 8; turn++) {
      if (alice.kemEpoch! >= target && this.bobSession.kemEpoch! >= target) break;
      expect(this.send("bob", 1100)).toBe(true);
      this.deliver(0);
      expect(this.send("alice", 1100)).toBe(true);
      this.deliver(0);
    }
    expect(alice.kemEpoch).toBeGreaterThanOrEqual(target);
    expect(this.bobSession.kemEpoch).toBeGreaterThanOrEqual(target);
  }

  checkBounds(): void {
    for (const party of ["alice", "bob"] as const) {
      expect(this.session(party)?.skippedCount ?? 0).toBeLessThanOrEqual(MAX_STORED_SKIPPED);
    }
    if (this.postQuantum) {
      // Each side moves one epoch at a time, and never more than one ahead of the other (§6.7).
      const alice = (this.aliceSession ?? this.unopenedAlice)!.kemEpoch!;
      const bob = this.bobSession.kemEpoch!;
      expect(Math.abs(alice - bob)).toBeLessThanOrEqual(1);
      expect(Math.max(alice, bob)).toBeGreaterThanOrEqual(this.highestEpoch);
      this.highestEpoch = Math.max(alice, bob);
    }
  }
}

export type Op =
  | { readonly op: "send"; readonly from: Party; readonly length: number }
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

/**
 * One op; `lengths` weighs the text lengths of sends (TEXT_LENGTHS). The classical runs send mostly
 * short texts; the post-quantum runs more long ones, whose room lets KEM exchanges complete within
 * a run, with their pieces lost, reordered and sent again.
 */
function ops(lengths: fc.Arbitrary<number>): fc.Arbitrary<Op> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ op: fc.constant("send" as const), from: party, length: lengths }) },
    { weight: 6, arbitrary: fc.record({ op: fc.constant("deliver" as const), pick }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("drop" as const), pick }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("duplicate" as const), pick }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("tamper" as const), pick, bit }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("restore" as const), who: party }) },
  );
}

export const opArb = ops(
  fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, fc.constantFrom(...TEXT_LENGTHS)),
);
export const pqOpArb = ops(
  fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(...TEXT_LENGTHS) },
    { weight: 3, arbitrary: fc.constant(1100) },
  ),
);

export function run(ops: readonly Op[], options: WorldOptions = {}): void {
  const world = new World(options);
  for (const o of ops) {
    switch (o.op) {
      case "send":
        world.send(o.from, o.length);
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
