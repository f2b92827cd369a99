// Post-quantum sessions (PROTOCOL.md §6.7): break-in recovery against an attacker who holds a
// stolen copy of one side's state and can compute every X25519 secret (as a quantum computer
// could), the bytes they cost, their serialization, and the classical state format they keep.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  DecodeError,
  decodeEnvelope,
  decodePayload,
  encodePayload,
  fromHex,
  MAX_ENVELOPE_LENGTH,
  MAX_PADDED_LENGTH,
  newMessageId,
  type RandomSource,
  RatchetError,
  Session,
  systemRandom,
  toHex,
  x25519KeyPair,
} from "../src/index.js";
import { sessionPair, stateFields } from "./pq-fixture.js";

const text = (t: string, length = t.length) =>
  encodePayload({ type: "text", id: newMessageId(), sentAt: 1, text: t.padEnd(length, ".") });
const read = (b: Uint8Array) => {
  const p = decodePayload(b);
  return p.type === "text" ? p.text.replace(/\.+$/, "") : p.type;
};
const same = (a: Uint8Array, b: Uint8Array) => toHex(a) === toHex(b);

type Side = "alice" | "bob";

/**
 * A conversation in turns (Bob speaks first: two 1100-byte texts, whose 4096-byte bucket holds a
 * whole key or ciphertext, then Alice two), watched by an eavesdropper with a copy of `victim`'s
 * state: the clone decrypts every message the victim receives. It is given the victim's new
 * X25519 ratchet secrets as the victim draws them (a quantum attacker computes them from the public
 * keys in the headers); every other draw — the ML-KEM seeds and encapsulation randomness — it makes
 * itself, since those never leave the victim.
 */
class Eavesdropped {
  readonly log: { victimEpoch: number; cloneReads: boolean }[] = [];
  private readonly queue: Uint8Array[] = [];
  private clone: Session | null = null;
  private n = 0;

  constructor(
    readonly alice: Session,
    readonly bob: Session,
    readonly victim: Side,
  ) {}

  /** The attacker copies the victim's state now. */
  steal(): void {
    const random: RandomSource = (length) => this.queue.shift() ?? systemRandom(length);
    this.clone = Session.deserialize(this.session(this.victim).serialize(), { random });
  }

  private session(side: Side): Session {
    return side === "alice" ? this.alice : this.bob;
  }

  private send(from: Side): void {
    const to = from === "alice" ? "bob" : "alice";
    const label = `${from} ${++this.n}`;
    const wire = this.session(from).encrypt(text(label, 1100));
    const receiver = this.session(to);
    const secretBefore = stateFields(receiver.serialize()).ratchetSecret;
    expect(read(receiver.decrypt(wire))).toBe(label);
    if (to !== this.victim || !this.clone) return;
    const secretAfter = stateFields(receiver.serialize()).ratchetSecret;
    this.queue.length = 0;
    if (!same(secretBefore, secretAfter)) this.queue.push(secretAfter);
    let cloneReads = false;
    try {
      cloneReads = read(this.clone.decrypt(wire)) === label;
    } catch (e) {
      expect(e).toBeInstanceOf(RatchetError);
      expect((e as RatchetError).code).toBe("AUTH");
    }
    this.log.push({ victimEpoch: receiver.kemEpoch!, cloneReads });
  }

  turns(count: number): void {
    for (let i = 0; i < count; i++) {
      this.send("bob");
      this.send("bob");
      this.send("alice");
      this.send("alice");
    }
  }

  /**
   * The clone read every message the victim received until the victim's epoch passed `healing`;
   * it failed first on the message that took the victim to epoch `healing + 1` or on a later one
   * in that epoch, and from then on it read nothing.
   */
  expectHealedAt(healing: number): void {
    const first = this.log.findIndex((l) => !l.cloneReads);
    expect(first, "the clone never lost track").toBeGreaterThan(0);
    expect(this.log.slice(0, first).every((l) => l.victimEpoch <= healing + 1)).toBe(true);
    expect(this.log.slice(0, first).some((l) => l.victimEpoch <= healing)).toBe(true);
    expect(this.log[first]!.victimEpoch).toBe(healing + 1);
    expect(this.log.slice(first).every((l) => !l.cloneReads)).toBe(true);
    expect(this.log.length - first).toBeGreaterThan(8);
  }
}

describe("§6.7 break-in recovery: a stolen state stops decrypting after a completed KEM exchange", () => {
  it("§6.7 an encapsulator stolen before it encapsulates heals at that epoch: the clone's own randomness gives another secret", () => {
    const { alice, bob } = sessionPair();
    const world = new Eavesdropped(alice, bob, "alice");
    world.steal(); // Alice awaits epoch 1's key: nothing of the exchange is in her state yet.
    world.turns(8);
    world.expectHealedAt(1);
    expect(alice.kemEpoch).toBeGreaterThanOrEqual(3);
  });

  it("§6.7 a keyholder stolen with its key pair's seed does not heal at that epoch, but at the next one", () => {
    const { alice, bob } = sessionPair();
    const world = new Eavesdropped(alice, bob, "bob");
    world.steal(); // Bob holds epoch 1's seed: the thief can decapsulate epoch 1 as he does.
    world.turns(8);
    world.expectHealedAt(2);
  });

  it("§6.7 an encapsulator stolen holding its secret does not heal at that epoch; as the next keyholder it heals", () => {
    const { alice, bob } = sessionPair();
    const world = new Eavesdropped(alice, bob, "alice");
    expect(read(alice.decrypt(bob.encrypt(text("whole key", 1100))))).toBe("whole key");
    // Bob's first message carried his whole key: Alice encapsulated, and holds the secret (phase 4).
    expect(phaseOf(alice.serialize())).toBe(4);
    world.steal();
    world.turns(8);
    world.expectHealedAt(2);
  });

  it("§6.7 without post-quantum sessions the same eavesdropper reads on forever: classical steps do not heal against it", () => {
    const { alice, bob } = sessionPair({ postQuantum: false });
    const world = new Eavesdropped(alice, bob, "alice");
    world.steal();
    world.turns(8);
    expect(world.log.length).toBe(16);
    expect(world.log.every((l) => l.cloneReads)).toBe(true);
  });
});

describe("§6.7 bandwidth: KEM pieces travel in the padding", () => {
  it("§6.7 a v3 Message is its v2 counterpart plus the flags byte, and only a plaintext that does not end in a zero byte grows, by one", () => {
    const pq = sessionPair();
    const classical = sessionPair({ postQuantum: false });
    // Open both sessions, so neither side wraps in an Accept.
    for (const p of [pq, classical]) {
      p.alice.decrypt(p.bob.encrypt(text("hi")));
      p.bob.decrypt(p.alice.encrypt(text("hi")));
    }
    let grown = 0;
    for (const length of [0, 1, 50, 100, 150, 190, 200, 223, 224, 225, 226, 500, 993, 994, 3000, 32737]) {
      const padded = text("x", length);
      for (const [from, to] of [
        ["bob", "alice"],
        ["alice", "bob"],
      ] as const) {
        const a = pq[from].encrypt(padded);
        const b = classical[from].encrypt(padded);
        const endsInZero = padded[padded.length - 1] === 0;
        expect(a.length - b.length, `${length} bytes`).toBe(endsInZero ? 1 : 2);
        if (!endsInZero) grown++;
        expect(same(pq[to].decrypt(a), padded)).toBe(true);
        expect(same(classical[to].decrypt(b), padded)).toBe(true);
      }
    }
    // Only the texts that fill their bucket exactly (225, 993, 32737 bytes), each way.
    expect(grown).toBe(6);
    expect(pq.alice.kemEpoch! + pq.bob.kemEpoch!).toBeGreaterThan(2);
  });

  it("§8.4 MAX_ENVELOPE_LENGTH is a version 2 Accept with the largest body wrapping the largest v3 Message", () => {
    const prekey = x25519KeyPair();
    const handshakeId = systemRandom(48);
    const prefix = new Uint8Array([1, 2, ...handshakeId]);
    const bob = Session.initiate(
      systemRandom(32),
      systemRandom(32),
      prekey.publicKey,
      handshakeId,
      // A version 2 Accept's body: the KEM ciphertext (1088) and the largest sealed identity (432).
      { prefix, sealedIdentity: systemRandom(1088 + 432) },
      { postQuantum: true },
    );
    const wire = bob.encrypt(new Uint8Array(MAX_PADDED_LENGTH).fill(0x80));
    expect(wire.length).toBe(MAX_ENVELOPE_LENGTH);
    expect(MAX_ENVELOPE_LENGTH).toBe(34424);
    const env = decodeEnvelope(wire);
    expect(env.kind === "accept" && env.message.sealed.length).toBe(32785);
  });
});

/** The phase byte of a version-2 state's KEM block (§6.5). */
const phaseOf = (state: Uint8Array) => state[stateFields(state).kemOffset + 4]!;

describe("§6.5 serialization of post-quantum sessions, and of classical ones written before them", () => {
  it("§6.5 a post-quantum state is version 2 and restores to a byte-identical session in every KEM phase, mid-transfer included", () => {
    const { alice, bob } = sessionPair();
    const phases = new Set<number>();
    let n = 0;
    const pass = (from: Session, to: Session, length: number) => {
      const label = `m${++n}`;
      expect(read(to.decrypt(from.encrypt(text(label, length))))).toBe(label);
    };
    const sides = { alice, bob };
    for (let turn = 0; turn < 12; turn++) {
      pass(sides.bob, sides.alice, turn % 3 === 0 ? 0 : 700);
      // Two in a row: a ciphertext completed by the second waits (phase 2) for the next ratchet step.
      pass(sides.alice, sides.bob, turn % 2 === 0 ? 300 : 40);
      pass(sides.alice, sides.bob, 300);
      for (const side of ["alice", "bob"] as const) {
        const state = sides[side].serialize();
        expect(state[0]).toBe(2);
        phases.add(phaseOf(state));
        const restored = Session.deserialize(state);
        expect(same(restored.serialize(), state)).toBe(true);
        sides[side] = restored;
      }
    }
    expect([...phases].sort()).toEqual([1, 2, 3, 4]);
    expect(sides.alice.kemEpoch).toBeGreaterThanOrEqual(3);
  });

  it("§6.5 a version-1 state written by the code before post-quantum sessions loads, decrypts, and is written back as the old code did", () => {
    const v1 = JSON.parse(
      readFileSync(new URL("fixtures/session-v1.json", import.meta.url), "utf8"),
    ) as Record<string, string>;
    const alice = Session.deserialize(fromHex(v1.aliceState!));
    expect(alice.postQuantum).toBe(false);
    expect(alice.kemEpoch).toBeNull();
    expect(toHex(alice.serialize())).toBe(v1.aliceState);
    expect(read(alice.decrypt(fromHex(v1.inFlight!)))).toBe(v1.inFlightText);
    expect(toHex(alice.serialize())).toBe(v1.aliceStateAfter);
    expect(read(alice.decrypt(fromHex(v1.skipped!)))).toBe(v1.skippedText);
    expect(toHex(alice.serialize())).toBe(v1.aliceStateAfterSkipped);
    // Bob's old state keeps talking to Alice's, in version 2 Messages, and stays version 1.
    const bob = Session.deserialize(fromHex(v1.bobState!));
    const wire = alice.encrypt(text("still classical"));
    expect(decodeEnvelope(wire).kind === "message" && decodeEnvelope(wire)).toMatchObject({
      header: { version: 2 },
    });
    expect(read(bob.decrypt(wire))).toBe("still classical");
    expect(bob.serialize()[0]).toBe(1);
  });

  it("§6.5 decoding refuses every inconsistent KEM block (BAD_FRAME)", () => {
    const { alice, bob } = sessionPair();
    // Bob awaits the ciphertext (phase 1) with part of it; Alice has sent it (phase 4).
    expect(read(alice.decrypt(bob.encrypt(text("key", 1100))))).toBe("key");
    expect(read(bob.decrypt(alice.encrypt(text("part of the ciphertext", 700))))).toBe(
      "part of the ciphertext",
    );
    const k1 = bob.serialize();
    const e2 = alice.serialize();
    const unopened = sessionPair().alice.serialize();
    expect([phaseOf(k1), phaseOf(e2)]).toEqual([1, 4]);
    const at1 = stateFields(k1).kemOffset;
    const at4 = stateFields(e2).kemOffset;
    const edit = (state: Uint8Array, at: number, value: number) => {
      const out = Uint8Array.from(state);
      out[at] = value;
      return out;
    };
    // Phase 1 layout: epoch (4), phase, MIXED, seed (64), cursor, bitmap (9), ciphertext (1088).
    const bitmap = at1 + 6 + 64 + 1;
    const held = k1.subarray(bitmap, bitmap + 9);
    const missing = [...Array(68).keys()].find((i) => !(held[i >> 3]! & (0x80 >> (i & 7))))!;
    const cases: [string, Uint8Array][] = [
      ["epoch 0", new Uint8Array([...k1.subarray(0, at1), 0, 0, 0, 0, ...k1.subarray(at1 + 4)])],
      ["phase 0", edit(k1, at1 + 4, 0)],
      ["phase 5", edit(k1, at1 + 4, 5)],
      ["MIXED 2", edit(k1, at1 + 5, 2)],
      ["key cursor 74", edit(k1, at1 + 70, 74)],
      ["ciphertext cursor 68", edit(e2, at4 + 6 + 32, 68)],
      ["bitmap bit 68 set", edit(k1, bitmap + 8, held[8]! | 0x08)],
      [
        "every unit held",
        new Uint8Array([
          ...k1.subarray(0, bitmap),
          ...[255, 255, 255, 255, 255, 255, 255, 255, 0xf0],
          ...k1.subarray(bitmap + 9),
        ]),
      ],
      ["a unit not held but not zero", edit(k1, bitmap + 9 + missing * 16, 1)],
      ["MIXED without a sending chain", edit(unopened, stateFields(unopened).kemOffset + 5, 1)],
      ["truncated", k1.subarray(0, k1.length - 1)],
      ["trailing byte", new Uint8Array([...k1, 0])],
    ];
    for (const [what, bytes] of cases) {
      expect(() => Session.deserialize(bytes), what).toThrow(DecodeError);
      try {
        Session.deserialize(bytes);
      } catch (e) {
        expect((e as DecodeError).code, what).toBe("BAD_FRAME");
      }
    }
    expect(same(Session.deserialize(k1).serialize(), k1)).toBe(true);
  });
});
