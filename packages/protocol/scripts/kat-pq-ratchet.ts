// Builds the post-quantum ratchet vectors of PROTOCOL.md §11.3 (`pqRatchet`): a post-quantum
// session (§6.7) between Alice (the inviter) and Bob (the accepter), set up from fixed handshake
// outputs, through one complete ML-KEM-768 exchange — its key in three pieces, one delivered out
// of order, its ciphertext in two, then sent again, mixed into the root chain at message 8 — and
// the start of the next. Every random draw is a named value (§11.1).
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { acceptDigest, encodeAcceptPrefix } from "../src/envelope.js";
import {
  decodeEnvelope,
  dh,
  encodePayload,
  hkdfSha256,
  hmacSha256,
  type MessageEnvelope,
  Session,
  type TextPayload,
  toHex,
  x25519KeyPair,
  xopen,
} from "../src/index.js";
import { jsonable, KAT_NOW, katValue, scripted } from "./kat-transcript.js";

const info = (label: string) => new TextEncoder().encode(label);
const u32At = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at);

/** KDF_RK of §6.2 and KDF_RK_KEM of §6.7 "Mixing", written from the spec. */
export function kdfRootSpec(rootKey: Uint8Array, dhOut: Uint8Array, kemSecret?: Uint8Array) {
  const ikm = kemSecret ? new Uint8Array([...dhOut, ...kemSecret]) : dhOut;
  const label = kemSecret ? "parley/v3/ratchet-root-kem" : "parley/v1/ratchet-root";
  const out = hkdfSha256(ikm, rootKey, info(label), 64);
  return { rootKey: out.slice(0, 32), chainKey: out.slice(32, 64) };
}

/** Root key, ratchet secret and sending chain key of a serialized session (§6.5). */
export function stateKeys(state: Uint8Array) {
  const flags = state[177]!;
  const sendChainAt = 178 + (flags & 1 ? 32 : 0);
  return {
    rootKey: state.slice(33, 65),
    ratchetSecret: state.slice(65, 97),
    sendChain: flags & 2 ? state.slice(sendChainAt, sendChainAt + 32) : null,
  };
}

/** MK2(KDF_CK(ck).mk) of §6.2: the XChaCha20-Poly1305 key of the next message of chain `ck`. */
const messageKeyOf = (chainKey: Uint8Array) =>
  hkdfSha256(hmacSha256(chainKey, Uint8Array.of(1)), new Uint8Array(0), info("parley/v2/message-key"), 32);

const messageOf = (wire: Uint8Array): MessageEnvelope => {
  const env = decodeEnvelope(wire);
  return env.kind === "accept" ? env.message : env;
};

/** The piece a v3 plaintext carries (§6.7 "The KEM extension"), read from its end. */
export function pieceOf(inner: Uint8Array) {
  const n = inner.length;
  if (inner[n - 1] !== 2) return null;
  const count = inner[n - 2]!;
  return {
    kind: inner[n - 8]!,
    epoch: u32At(inner, n - 7),
    first: inner[n - 3]!,
    count,
    units: inner.slice(n - 8 - 16 * count, n - 8),
  };
}

/** Texts of the messages, and their lengths: 300 bytes fill a 1024-byte bucket to 330 of it. */
const TEXTS: [from: "alice" | "bob", text: string][] = [
  ["bob", "Hi Alice, it's Bob. ".repeat(15)],
  ["bob", "This one carries units 42 to 52."],
  ["bob", "And this the rest of my key. ".repeat(10).slice(0, 300)],
  ["alice", "Hello Bob! Here is the first part of the ciphertext. ".repeat(6).slice(0, 300)],
  ["alice", "And its last 26 units. ".repeat(13).slice(0, 300)],
  ["bob", "Got it all."],
  ["alice", "Sending some again."],
  ["bob", "Mixed in: MIXED is set."],
  ["alice", "Epoch 2: my key. ".repeat(18).slice(0, 300)],
];
/** What happens, in order: each message is sent, then delivered; message 3 overtakes message 2. */
const SCHEDULE: [action: "send" | "deliver", message: number][] = [
  ["send", 1],
  ["send", 2],
  ["send", 3],
  ["deliver", 1],
  ["deliver", 3],
  ["deliver", 2],
  ["send", 4],
  ["send", 5],
  ["deliver", 4],
  ["deliver", 5],
  ["send", 6],
  ["deliver", 6],
  ["send", 7],
  ["deliver", 7],
  ["send", 8],
  ["deliver", 8],
  ["send", 9],
  ["deliver", 9],
];

export function buildPqRatchet(): Record<string, unknown> {
  const random: Record<string, string> = {};
  const sharedKey = katValue("pqr/shared-key");
  const ad = katValue("pqr/session-ad");
  const prekey = x25519KeyPair(() => katValue("pqr/prekey-secret"));
  const invitationId = katValue("pqr/invitation-id", 16);
  const ephemeralKey = katValue("pqr/ephemeral-key");
  const handshakeId = new Uint8Array([...invitationId, ...ephemeralKey]);
  const acceptPrefix = encodeAcceptPrefix(invitationId, ephemeralKey);
  const sealedIdentity = katValue("pqr/sealed-identity");

  const bob = Session.initiate(
    sharedKey,
    ad,
    prekey.publicKey,
    handshakeId,
    { prefix: acceptPrefix, sealedIdentity },
    {
      postQuantum: true,
      random: scripted(
        random,
        "pqr/bob/ratchet-1",
        "pqr/bob/kem-d-1",
        "pqr/bob/kem-z-1",
        "pqr/bob/msg-1-nonce",
        "pqr/bob/msg-2-nonce",
        "pqr/bob/msg-3-nonce",
        "pqr/bob/ratchet-2",
        "pqr/bob/msg-6-nonce",
        "pqr/bob/ratchet-3",
        "pqr/bob/msg-8-nonce",
        "pqr/bob/ratchet-4",
      ),
    },
  );
  const alice = Session.respond(
    sharedKey,
    ad,
    prekey,
    handshakeId,
    acceptDigest(acceptPrefix, sealedIdentity),
    {
      postQuantum: true,
      random: scripted(
        random,
        "pqr/alice/ratchet-1",
        "pqr/alice/kem-m-1",
        "pqr/alice/msg-4-nonce",
        "pqr/alice/msg-5-nonce",
        "pqr/alice/ratchet-2",
        "pqr/alice/msg-7-nonce",
        "pqr/alice/ratchet-3",
        "pqr/alice/kem-d-2",
        "pqr/alice/kem-z-2",
        "pqr/alice/msg-9-nonce",
      ),
    },
  );
  const sessions = { alice, bob };

  const send = (n: number) => {
    const [from, text] = TEXTS[n - 1]!;
    const payload: TextPayload = {
      type: "text",
      id: katValue(`pqr/msg/${n}/id`, 16),
      sentAt: KAT_NOW + n * 1000,
      text,
    };
    // The message key from the sender's state (§6.2), to record the v3 plaintext it seals.
    const sendChain = stateKeys(sessions[from].serialize()).sendChain!;
    const wire = sessions[from].encrypt(encodePayload(payload));
    const m = messageOf(wire);
    const messageKey = messageKeyOf(sendChain);
    const inner = xopen(messageKey, m.header.nonce!, m.sealed, new Uint8Array([...ad, ...m.headerBytes]));
    return { n, from, payload, messageKey, inner, wire };
  };

  // Bob's state around message 7, whose ratchet step mixes the secret, and Alice's after 8.
  const sent: ReturnType<typeof send>[] = [];
  let bobBefore7: Uint8Array = new Uint8Array(0);
  let bobAfter7: Uint8Array = new Uint8Array(0);
  let aliceAfter8: Uint8Array = new Uint8Array(0);
  for (const [action, n] of SCHEDULE) {
    if (action === "send") {
      sent.push(send(n));
      continue;
    }
    const m = sent.find((x) => x.n === n)!;
    const to = m.from === "alice" ? bob : alice;
    if (n === 7) bobBefore7 = bob.serialize();
    const back = to.decrypt(m.wire);
    if (toHex(back) !== toHex(encodePayload(m.payload))) throw new Error(`pqRatchet: message ${n} changed`);
    if (n === 7) bobAfter7 = bob.serialize();
    if (n === 8) aliceAfter8 = alice.serialize();
  }
  if (bob.kemEpoch !== 2 || alice.kemEpoch !== 2) throw new Error("pqRatchet: epoch 1 did not complete");

  // Epoch 1's ML-KEM values from FIPS 203 alone, and the pieces that carried them.
  const seed = new Uint8Array([...katValue("pqr/bob/kem-d-1"), ...katValue("pqr/bob/kem-z-1")]);
  const seed2 = new Uint8Array([...katValue("pqr/alice/kem-d-2"), ...katValue("pqr/alice/kem-z-2")]);
  const { publicKey: encapsulationKey, secretKey } = ml_kem768.keygen(seed);
  const { cipherText: ciphertext, sharedSecret } = ml_kem768.encapsulate(
    encapsulationKey,
    katValue("pqr/alice/kem-m-1"),
  );
  if (toHex(ml_kem768.decapsulate(ciphertext, secretKey)) !== toHex(sharedSecret))
    throw new Error("pqRatchet: ML-KEM round trip");
  const assembled = { 1: new Uint8Array(1184), 2: new Uint8Array(1088) };
  for (const m of sent) {
    const piece = pieceOf(m.inner);
    if (piece?.epoch === 1) assembled[piece.kind as 1 | 2].set(piece.units, piece.first * 16);
  }
  if (toHex(assembled[1]) !== toHex(encapsulationKey) || toHex(assembled[2]) !== toHex(ciphertext))
    throw new Error("pqRatchet: the pieces do not assemble to epoch 1's key and ciphertext");

  // The mixing step (§6.7 "Mixing"): Bob receives message 7 (a new ratchet key from Alice) holding the
  // secret; the receiving half is classical, the sending half mixes.
  const before = stateKeys(bobBefore7);
  const aliceKey7 = messageOf(sent[6]!.wire).header.ratchetKey;
  const receiving = kdfRootSpec(before.rootKey, dh(before.ratchetSecret, aliceKey7));
  const ratchet3 = katValue("pqr/bob/ratchet-3");
  const dhOut = dh(ratchet3, aliceKey7);
  const mixed = kdfRootSpec(receiving.rootKey, dhOut, sharedSecret);
  const after = stateKeys(bobAfter7);
  if (toHex(after.rootKey) !== toHex(mixed.rootKey) || toHex(after.sendChain!) !== toHex(mixed.chainKey))
    throw new Error("pqRatchet: Bob's state after message 7 does not follow KDF_RK_KEM");

  return {
    pqRatchet: jsonable({
      description:
        "A post-quantum session (PROTOCOL.md §6.7) from fixed handshake outputs: Bob's epoch-1 ML-KEM-768 key in messages 1-3 (3 delivered before 2), Alice's ciphertext in 4-5 and again in 7, the secret mixed into Bob's sending chain at message 7 (message 8 is MIXED), Alice's epoch-2 key in message 9. Named values as in §11.1, under pqr/.",
      inputs: {
        sharedKey,
        sessionAd: ad,
        prekeySecret: katValue("pqr/prekey-secret"),
        prekey: prekey.publicKey,
        handshakeId,
        acceptPrefix,
        sealedIdentity,
      },
      random,
      schedule: SCHEDULE,
      messages: sent.map((m) => {
        const header = messageOf(m.wire).header;
        const piece = pieceOf(m.inner);
        return {
          n: m.n,
          from: m.from,
          payload: { id: m.payload.id, sentAt: m.payload.sentAt, text: m.payload.text },
          flags: header.flags,
          piece: piece && { kind: piece.kind, epoch: piece.epoch, first: piece.first, count: piece.count },
          messageKey: m.messageKey,
          inner: m.inner,
          wire: m.wire,
        };
      }),
      kem: {
        epoch1: {
          seed,
          encapsulationKey,
          randomness: katValue("pqr/alice/kem-m-1"),
          ciphertext,
          sharedSecret,
        },
        epoch2: {
          seed: seed2,
          encapsulationKey: ml_kem768.keygen(seed2).publicKey,
        },
      },
      mixing: {
        description:
          "Bob's DH ratchet step on message 7: receiving half KDF_RK(rootKeyBefore, DH(Bob's ratchet secret, Alice's key)), then sending half KDF_RK_KEM(rootKey, DH(pqr/bob/ratchet-3, Alice's key), epoch 1's shared secret)",
        rootKeyBefore: before.rootKey,
        aliceRatchetKey: aliceKey7,
        receivingRootKey: receiving.rootKey,
        dhOutput: dhOut,
        sharedSecret,
        rootKey: mixed.rootKey,
        sendingChainKey: mixed.chainKey,
      },
      states: { bobAfterMessage7: bobAfter7, aliceAfterMessage8: aliceAfter8 },
    }),
  };
}
