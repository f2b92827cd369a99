// What a post-quantum session refuses (PROTOCOL.md §6.7 "Receiving", §12): Messages of the wrong version,
// undefined header flags, a MIXED step it holds no secret for, and — after authentication —
// malformed KEM extensions and KEM material, written by hand from the sender's state so that each
// message authenticates and only the rule under test refuses it. Every refusal leaves the state
// byte for byte as it was.
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { describe, expect, it } from "vitest";
import {
  decodeEnvelope,
  decodePayload,
  encodePayload,
  newMessageId,
  ParleyError,
  type Session,
  systemRandom,
  toHex,
} from "../src/index.js";
import { sealByHand, sessionPair, stateFields } from "./pq-fixture.js";

const text = (t: string, length = t.length) =>
  encodePayload({ type: "text", id: newMessageId(), sentAt: 1, text: t.padEnd(length, ".") });
const read = (b: Uint8Array) => {
  const p = decodePayload(b);
  return p.type === "text" ? p.text.replace(/\.+$/, "") : p.type;
};

/** A piece's bytes after its units (§6.7): kind, epoch, first unit, unit count, descriptor 2. */
function trailer(kind: number, epoch: number, first: number, count: number): number[] {
  return [kind, epoch >>> 24, (epoch >> 16) & 0xff, (epoch >> 8) & 0xff, epoch & 0xff, first, count, 2];
}

/** A padded payload with `tail` written over the end of its padding, as a sender writes a piece. */
function withTail(tail: Uint8Array | number[], length = 3000): Uint8Array {
  const inner = text("carrier", length);
  inner.set(tail, inner.length - tail.length);
  return inner;
}

/** A piece of `object` (its units first .. first + count − 1), ready for withTail. */
function piece(kind: number, epoch: number, object: Uint8Array, first: number, count: number): Uint8Array {
  return new Uint8Array([
    ...object.subarray(first * 16, (first + count) * 16),
    ...trailer(kind, epoch, first, count),
  ]);
}

/** `call` must throw `name code` and leave `session`'s state unchanged. */
function refused(what: string, session: Session, call: () => unknown, expected: string): void {
  const before = toHex(session.serialize());
  let error: unknown;
  try {
    call();
  } catch (e) {
    error = e;
  }
  expect(error, `${what}: accepted`).toBeInstanceOf(ParleyError);
  const e = error as ParleyError;
  expect(`${e.name} ${e.code}`, what).toBe(expected);
  expect(toHex(session.serialize()), `${what}: state changed`).toBe(before);
}

/** Bob holds epoch 1's key; Alice awaits it. Neither has received anything yet. */
function fresh() {
  return sessionPair();
}

describe("§6.7 version and header checks of post-quantum sessions", () => {
  it("§6.7 a post-quantum session refuses version 1 and 2 Messages, a classical one version 3: UNSUPPORTED_VERSION", () => {
    const { alice, bob } = fresh();
    const classical = sessionPair({ postQuantum: false });
    // The Messages inside the two Accepts: another session's Accept would be refused (AUTH) first.
    const unwrap = (wire: Uint8Array) => wire.subarray(52 + ((wire[50]! << 8) | wire[51]!));
    const v3 = bob.encrypt(text("v3"));
    const v2 = unwrap(classical.bob.encrypt(text("v2")));
    refused(
      "v2 to a post-quantum session",
      alice,
      () => alice.decrypt(v2),
      "DecodeError UNSUPPORTED_VERSION",
    );
    refused(
      "v3 to a classical session",
      classical.alice,
      () => classical.alice.decrypt(unwrap(v3)),
      "DecodeError UNSUPPORTED_VERSION",
    );
    // The same v3 Message relabelled as v2 (its flags byte dropped) is refused before any crypto.
    const env = decodeEnvelope(v3);
    if (env.kind !== "accept") throw new Error("Bob's first message is an Accept");
    const start = v3.length - env.message.sealed.length - 67;
    const relabelled = new Uint8Array([...v3.subarray(0, start + 66), ...env.message.sealed]);
    relabelled[start + 1] = 2;
    refused("v3 relabelled v2", alice, () => alice.decrypt(relabelled), "DecodeError UNSUPPORTED_VERSION");
    relabelled[start + 1] = 1;
    refused("v3 relabelled v1", alice, () => alice.decrypt(relabelled), "DecodeError UNSUPPORTED_VERSION");
    expect(read(alice.decrypt(v3))).toBe("v3");
    expect(read(classical.alice.decrypt(v2))).toBe("v2");
  });

  it("§6.7 a v3 header with a flag bit other than MIXED is BAD_FRAME", () => {
    const { alice, bob } = fresh();
    for (const flags of [0x02, 0x80, 0xff]) {
      const wire = sealByHand(bob.serialize(), text("flags"), flags);
      refused(`flags ${flags}`, alice, () => alice.decrypt(wire), "DecodeError BAD_FRAME");
    }
  });

  it("§6.7 a MIXED ratchet step is AUTH when this side holds no encapsulated secret, before any DH", () => {
    const { alice, bob } = fresh();
    const wire = sealByHand(bob.serialize(), text("mixed"), 0x01);
    refused("MIXED while awaiting the key", alice, () => alice.decrypt(wire), "RatchetError AUTH");
    // The same message without the flag authenticates: only the flag was refused.
    expect(read(alice.decrypt(sealByHand(bob.serialize(), text("plain"), 0)))).toBe("plain");
  });
});

describe("§6.7 KEM extensions and material, refused after authentication (BAD_FRAME)", () => {
  const key = ml_kem768.keygen(systemRandom(64)).publicKey;

  it("§6.7 a malformed extension is BAD_FRAME and changes nothing", () => {
    const { alice, bob } = fresh();
    const cases: [string, Uint8Array][] = [
      ["an empty plaintext", new Uint8Array(0)],
      ["descriptor 3", withTail([3])],
      ["descriptor 1 after a zero byte", withTail([0, 1])],
      ["descriptor 2 in a plaintext of 7 bytes", new Uint8Array([1, 0, 0, 0, 1, 0, 2])],
      ["piece kind 0", withTail(piece(0, 1, key, 0, 1))],
      ["piece kind 3", withTail(piece(3, 1, key, 0, 1))],
      ["piece epoch 0", withTail(piece(1, 0, key, 0, 1))],
      ["piece of 0 units", withTail(trailer(1, 1, 0, 0))],
      ["key units 70 .. 74", withTail([...new Uint8Array(80), ...trailer(1, 1, 70, 5)])],
      ["ciphertext units 60 .. 68", withTail([...new Uint8Array(144), ...trailer(2, 1, 60, 9)])],
      ["a piece longer than the plaintext", new Uint8Array([...new Uint8Array(40), ...trailer(1, 1, 0, 3)])],
    ];
    for (const [what, inner] of cases) {
      const wire = sealByHand(bob.serialize(), inner);
      refused(what, alice, () => alice.decrypt(wire), "DecodeError BAD_FRAME");
    }
    expect(read(alice.decrypt(sealByHand(bob.serialize(), withTail(piece(1, 1, key, 0, 3)))))).toBe(
      "carrier",
    );
  });

  it("§6.7 a piece of a later epoch, or of the kind this side sends, is BAD_FRAME", () => {
    const { alice, bob } = fresh();
    for (const [what, inner] of [
      ["epoch 2 while Alice is in epoch 1", withTail(piece(1, 2, key, 0, 2))],
      ["a ciphertext piece to the encapsulator", withTail(piece(2, 1, key, 0, 2))],
    ] as const) {
      const wire = sealByHand(bob.serialize(), inner);
      refused(what, alice, () => alice.decrypt(wire), "DecodeError BAD_FRAME");
    }
  });

  it("§6.7 a unit that contradicts one already received is BAD_FRAME; repeating it is not", () => {
    const { alice, bob } = fresh();
    expect(read(alice.decrypt(sealByHand(bob.serialize(), withTail(piece(1, 1, key, 0, 2)))))).toBe(
      "carrier",
    );
    const other = Uint8Array.from(key);
    other[16] = other[16]! ^ 1; // unit 1
    const bobState = bob.serialize();
    // Alice has Bob's index 0; the next hand-sealed messages need the next index: advance Bob's copy.
    bob.encrypt(text("advance"));
    const next = bob.serialize();
    expect(stateFields(next).sendIndex).toBe(stateFields(bobState).sendIndex + 1);
    const wire = sealByHand(next, withTail(piece(1, 1, other, 1, 2)));
    refused("unit 1 changed", alice, () => alice.decrypt(wire), "DecodeError BAD_FRAME");
    expect(read(alice.decrypt(sealByHand(next, withTail(piece(1, 1, key, 1, 2)))))).toBe("carrier");
  });

  it("§6.7 an assembled encapsulation key failing the FIPS 203 modulus check is BAD_FRAME at the piece that completes it", () => {
    const { alice, bob } = fresh();
    const bad = Uint8Array.from(key);
    bad[0] = 0x01;
    bad[1] = (bad[1]! & 0xf0) | 0x0d; // coefficient 0 = 0xd01 = 3329 = q
    expect(read(alice.decrypt(sealByHand(bob.serialize(), withTail(piece(1, 1, bad, 0, 40)))))).toBe(
      "carrier",
    );
    bob.encrypt(text("advance"));
    const completing = sealByHand(bob.serialize(), withTail(piece(1, 1, bad, 40, 34)));
    refused("coefficient 0 = q", alice, () => alice.decrypt(completing), "DecodeError BAD_FRAME");
    expect(alice.kemEpoch).toBe(1);
  });

  it("§6.7 a piece of an earlier epoch is ignored: the message decrypts and the KEM state does not change", () => {
    const { alice, bob } = fresh();
    // Epoch 1 in a few messages (4096-byte buckets hold a whole key or ciphertext), then epoch 2.
    for (let i = 0; i < 4 && (alice.kemEpoch !== 2 || bob.kemEpoch !== 2); i++) {
      expect(read(alice.decrypt(bob.encrypt(text("b", 1100))))).toBe("b");
      expect(read(bob.decrypt(alice.encrypt(text("a", 1100))))).toBe("a");
    }
    expect([alice.kemEpoch, bob.kemEpoch]).toEqual([2, 2]);
    const before = bob.serialize();
    const kemBefore = toHex(before.subarray(stateFields(before).kemOffset + 4));
    // Alice encapsulated in epoch 1: a late copy of a ciphertext piece of epoch 1, sent by her.
    const stale = sealByHand(alice.serialize(), withTail(piece(2, 1, new Uint8Array(1088), 0, 3)));
    expect(read(bob.decrypt(stale))).toBe("carrier");
    const after = bob.serialize();
    expect(toHex(after.subarray(stateFields(after).kemOffset + 4))).toBe(kemBefore);
    expect(bob.kemEpoch).toBe(2);
  });
});
