// The post-quantum ratchet vectors (vectors/kat.json `pqRatchet`, PROTOCOL.md §11.3) checked from
// the recorded bytes and the spec's formulas alone: named values (§11.1), each Message's header and
// v3 plaintext (§6.7), the ML-KEM-768 values (FIPS 203), the mixing step (§6.7) and the
// recorded states (§6.5). kat.test.ts checks that the implementation rebuilds the whole file.
import { readFileSync } from "node:fs";
import { sha256 } from "@noble/hashes/sha2.js";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { describe, expect, it } from "vitest";
import { kdfRootSpec, stateKeys } from "../scripts/kat-pq-ratchet.js";
import {
  decodeEnvelope,
  dh,
  encodePayload,
  fromHex,
  hkdfSha256,
  hmacSha256,
  type MessageEnvelope,
  type RandomSource,
  Session,
  toHex,
  xopen,
} from "../src/index.js";

interface PqVectors {
  inputs: Record<string, string>;
  random: Record<string, string>;
  schedule: ["send" | "deliver", number][];
  messages: {
    n: number;
    from: "alice" | "bob";
    payload: { id: string; sentAt: number; text: string };
    flags: number;
    piece: { kind: number; epoch: number; first: number; count: number } | null;
    messageKey: string;
    inner: string;
    wire: string;
  }[];
  kem: {
    epoch1: Record<"seed" | "encapsulationKey" | "randomness" | "ciphertext" | "sharedSecret", string>;
    epoch2: Record<"seed" | "encapsulationKey", string>;
  };
  mixing: Record<string, string>;
  states: { bobAfterMessage7: string; aliceAfterMessage8: string };
}

const kat = (
  JSON.parse(readFileSync(new URL("../vectors/kat.json", import.meta.url), "utf8")) as {
    pqRatchet: PqVectors;
  }
).pqRatchet;
const hex = (name: string) => fromHex(kat.random[name]!);
const message = (wire: string): MessageEnvelope => {
  const env = decodeEnvelope(fromHex(wire));
  return env.kind === "accept" ? env.message : env;
};

/** §6.7, read from the end of a v3 plaintext: the caller's plaintext and the piece, or null. */
function unwrap(inner: Uint8Array) {
  const n = inner.length;
  const d = inner[n - 1];
  if (d === 0) return { plaintext: inner, piece: null };
  if (d === 1) return { plaintext: inner.slice(0, n - 1), piece: null };
  if (d !== 2) throw new Error(`descriptor ${d}`);
  const count = inner[n - 2]!;
  const size = 16 * count + 8;
  const plaintext = new Uint8Array(n);
  plaintext.set(inner.subarray(0, n - size));
  const epoch = new DataView(inner.buffer, inner.byteOffset).getUint32(n - 7);
  return {
    plaintext,
    piece: { kind: inner[n - 8]!, epoch, first: inner[n - 3]!, count, units: inner.slice(n - size, n - 8) },
  };
}

describe("§11.3 post-quantum ratchet vectors (kat.json pqRatchet)", () => {
  it("§11.1 every named value is SHA-256 of parley-kat/<name>, truncated to its draw", () => {
    const names = Object.keys(kat.random);
    expect(names).toHaveLength(21);
    for (const name of names) {
      expect(name.startsWith("pqr/"), name).toBe(true);
      const value = hex(name);
      const expected = sha256(new TextEncoder().encode(`parley-kat/${name}`)).slice(0, value.length);
      expect(toHex(value), name).toBe(toHex(expected));
    }
  });

  it("§6.7 every Message is version 3 with its named nonce; its key opens its v3 plaintext, which unwraps to its payload and piece", () => {
    const ad = fromHex(kat.inputs.sessionAd!);
    for (const m of kat.messages) {
      const env = message(m.wire);
      expect(env.header.version).toBe(3);
      expect(env.header.flags).toBe(m.flags);
      expect(toHex(env.header.nonce!)).toBe(kat.random[`pqr/${m.from}/msg-${m.n}-nonce`]);
      const inner = xopen(
        fromHex(m.messageKey),
        env.header.nonce!,
        env.sealed,
        new Uint8Array([...ad, ...env.headerBytes]),
      );
      expect(toHex(inner)).toBe(m.inner);
      const { plaintext, piece } = unwrap(inner);
      const payload = encodePayload({
        type: "text",
        id: fromHex(m.payload.id),
        sentAt: m.payload.sentAt,
        text: m.payload.text,
      });
      expect(toHex(plaintext), `message ${m.n}`).toBe(toHex(payload));
      // A Parley payload fits its bucket, so the v3 plaintext is exactly as long.
      expect(inner.length).toBe(payload.length);
      expect(
        piece && { kind: piece.kind, epoch: piece.epoch, first: piece.first, count: piece.count },
      ).toEqual(m.piece);
    }
    // Only message 8, the first of Bob's sending chain that mixed the secret, is MIXED.
    expect(kat.messages.filter((m) => m.flags === 1).map((m) => m.n)).toEqual([8]);
  });

  it("§6.7 the pieces assemble to epoch 1's ML-KEM-768 key and ciphertext, which FIPS 203 derives from the named seed and randomness", () => {
    const e1 = kat.kem.epoch1;
    const { publicKey, secretKey } = ml_kem768.keygen(fromHex(e1.seed));
    expect(toHex(publicKey)).toBe(e1.encapsulationKey);
    // The seed is d || z, drawn in that order (§1.2).
    expect(e1.seed).toBe(kat.random["pqr/bob/kem-d-1"]! + kat.random["pqr/bob/kem-z-1"]);
    expect(kat.kem.epoch2.seed).toBe(kat.random["pqr/alice/kem-d-2"]! + kat.random["pqr/alice/kem-z-2"]);
    expect(e1.randomness).toBe(kat.random["pqr/alice/kem-m-1"]);
    const { cipherText, sharedSecret } = ml_kem768.encapsulate(publicKey, fromHex(e1.randomness));
    expect(toHex(cipherText)).toBe(e1.ciphertext);
    expect(toHex(sharedSecret)).toBe(e1.sharedSecret);
    expect(toHex(ml_kem768.decapsulate(cipherText, secretKey))).toBe(e1.sharedSecret);
    const objects = { 1: new Uint8Array(1184), 2: new Uint8Array(1088) };
    for (const m of kat.messages) {
      const { piece } = unwrap(fromHex(m.inner));
      if (piece?.epoch === 1) objects[piece.kind as 1 | 2].set(piece.units, piece.first * 16);
    }
    expect(toHex(objects[1])).toBe(e1.encapsulationKey);
    expect(toHex(objects[2])).toBe(e1.ciphertext);
    expect(toHex(ml_kem768.keygen(fromHex(kat.kem.epoch2.seed)).publicKey)).toBe(
      kat.kem.epoch2.encapsulationKey,
    );
    const m9 = unwrap(fromHex(kat.messages[8]!.inner)).piece!;
    expect(toHex(m9.units)).toBe(kat.kem.epoch2.encapsulationKey.slice(0, m9.count * 32));
  });

  it("§6.7 the mixing step follows KDF_RK then KDF_RK_KEM, and message 8's key comes from the mixed chain", () => {
    const x = kat.mixing;
    const aliceKey = message(kat.messages[6]!.wire).header.ratchetKey;
    expect(toHex(aliceKey)).toBe(x.aliceRatchetKey);
    // Bob's ratchet secret before message 7 is the one he drew receiving message 4.
    const receiving = kdfRootSpec(fromHex(x.rootKeyBefore!), dh(hex("pqr/bob/ratchet-2"), aliceKey));
    expect(toHex(receiving.rootKey)).toBe(x.receivingRootKey);
    const dhOut = dh(hex("pqr/bob/ratchet-3"), aliceKey);
    expect(toHex(dhOut)).toBe(x.dhOutput);
    expect(x.sharedSecret).toBe(kat.kem.epoch1.sharedSecret);
    const out = hkdfSha256(
      new Uint8Array([...dhOut, ...fromHex(x.sharedSecret!)]),
      receiving.rootKey,
      new TextEncoder().encode("parley/v3/ratchet-root-kem"),
      64,
    );
    expect(toHex(out.slice(0, 32))).toBe(x.rootKey);
    expect(toHex(out.slice(32))).toBe(x.sendingChainKey);
    const mk = hmacSha256(out.slice(32), Uint8Array.of(1));
    const key = hkdfSha256(mk, new Uint8Array(0), new TextEncoder().encode("parley/v2/message-key"), 32);
    expect(toHex(key)).toBe(kat.messages[7]!.messageKey);
    const bob = stateKeys(fromHex(kat.states.bobAfterMessage7));
    expect(toHex(bob.rootKey)).toBe(x.rootKey);
    expect(toHex(bob.sendChain!)).toBe(x.sendingChainKey);
  });

  it("§6.5 the recorded version-2 states restore byte for byte, and Bob's decrypts message 9 from his named draw", () => {
    for (const state of Object.values(kat.states)) {
      const bytes = fromHex(state);
      expect(bytes[0]).toBe(2);
      const session = Session.deserialize(bytes);
      expect(toHex(session.serialize())).toBe(state);
      expect(session.kemEpoch).toBe(2);
    }
    const draws = [hex("pqr/bob/ratchet-4")];
    const random: RandomSource = (length) => {
      const v = draws.shift();
      if (v?.length !== length) throw new Error(`unexpected draw of ${length} bytes`);
      return v;
    };
    const bob = Session.deserialize(fromHex(kat.states.bobAfterMessage7), { random });
    const m9 = kat.messages[8]!;
    const expected = encodePayload({
      type: "text",
      id: fromHex(m9.payload.id),
      sentAt: m9.payload.sentAt,
      text: m9.payload.text,
    });
    expect(toHex(bob.decrypt(fromHex(m9.wire)))).toBe(toHex(expected));
    expect(draws).toHaveLength(0);
  });
});
