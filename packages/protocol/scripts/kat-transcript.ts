// Builds the known-answer transcript of PROTOCOL.md §11 from fixed inputs. Every random draw is a
// named value listed in the output, so another implementation can replay the same conversation and
// compare bytes. `pnpm vectors` writes it to vectors/kat.json; test/kat.test.ts checks the file.
import { sha256 } from "@noble/hashes/sha2.js";
import {
  acceptInvitation,
  createInvitation,
  decodeEnvelope,
  decodeInvitation,
  depositTokenHash,
  dh,
  encodeFrame,
  encodePayload,
  type Frame,
  fingerprint,
  fromHex,
  hkdfSha256,
  hmacSha256,
  Identity,
  InvitationBook,
  invitationId,
  MailboxAction,
  MailboxKey,
  type Payload,
  type RandomSource,
  safetyNumber,
  seal,
  sessionAd,
  toHex,
  x25519KeyPair,
  xseal,
} from "../src/index.js";

/** The fixed value named `name`: SHA-256("parley-kat/" || name), truncated to `length`. */
export function katValue(name: string, length = 32): Uint8Array {
  return sha256(new TextEncoder().encode(`parley-kat/${name}`)).slice(0, length);
}

/** A random source that returns the named values in order, and fails loudly on any other draw. */
export function scripted(record: Record<string, string>, ...names: string[]): RandomSource {
  let i = 0;
  return (length) => {
    const name = names[i++];
    if (name === undefined) throw new Error(`unexpected random draw #${i} of ${length} bytes`);
    const v = katValue(name, length);
    record[name] = toHex(v);
    return v;
  };
}

const cat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));
const u16 = (n: number) => Uint8Array.of(n >>> 8, n & 0xff);
const u32 = (n: number) => Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
const info = (label: string) => new TextEncoder().encode(label);

/** KDF_RK of PROTOCOL.md §6.2. */
function kdfRoot(rootKey: Uint8Array, dhOut: Uint8Array): [Uint8Array, Uint8Array] {
  const out = hkdfSha256(dhOut, rootKey, info("parley/v1/ratchet-root"), 64);
  return [out.slice(0, 32), out.slice(32, 64)];
}

/** The message key at index 0 of a chain (KDF_CK of §6.2). */
const firstMessageKey = (chainKey: Uint8Array) => hmacSha256(chainKey, Uint8Array.of(0x01));

/** A legacy v1 Message (§6.3), which no sender produces any more: header || Seal(Expand(mk), ...). */
function legacyMessage(
  ad: Uint8Array,
  ratchetKey: Uint8Array,
  messageKey: Uint8Array,
  plaintext: Uint8Array,
): { key: Uint8Array; nonce: Uint8Array; wire: Uint8Array } {
  const header = cat(Uint8Array.of(0x02, 0x01), ratchetKey, u32(0), u32(0));
  const out = hkdfSha256(messageKey, new Uint8Array(0), info("parley/v1/message-keys"), 44);
  const key = out.slice(0, 32);
  const nonce = out.slice(32, 44);
  return { key, nonce, wire: cat(header, seal(key, nonce, plaintext, cat(ad, header))) };
}

/** Byte strings as hex, recursively: the form every vector is written in. */
export const jsonable = (v: unknown): unknown => {
  if (v instanceof Uint8Array) return toHex(v);
  if (Array.isArray(v)) return v.map(jsonable);
  if (v && typeof v === "object")
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonable(x)]));
  return v;
};

export const KAT_NOW = Date.UTC(2026, 0, 1); // 2026-01-01T00:00:00Z
const RELAY = "wss://relay.parley.example";

export function buildTranscript(): Record<string, unknown> {
  const randomValues: Record<string, string> = {};
  const alice = Identity.generate(scripted(randomValues, "alice/signing-seed", "alice/agreement-secret"));
  const bob = Identity.generate(scripted(randomValues, "bob/signing-seed", "bob/agreement-secret"));
  const aliceMailbox = MailboxKey.generate(scripted(randomValues, "alice/mailbox-seed"));
  const bobMailbox = MailboxKey.generate(scripted(randomValues, "bob/mailbox-seed"));

  const { code, invitation, pending } = createInvitation(alice, {
    postQuantum: false,
    relayUrl: RELAY,
    mailbox: aliceMailbox.address,
    ttlSeconds: 7 * 24 * 3600,
    now: KAT_NOW,
    random: scripted(randomValues, "alice/prekey-secret"),
  });
  const book = new InvitationBook();
  book.add(pending);

  const payloads: Payload[] = [];
  const payload = (p: Payload) => {
    payloads.push(p);
    return encodePayload(p);
  };
  const payloadOf = (p: Payload) => encodePayload(p);
  const first = payload({
    type: "text",
    id: katValue("msg/1/id", 16),
    sentAt: KAT_NOW + 1000,
    text: "Hi Alice, it's Bob.",
  });
  const bobRandom = scripted(
    randomValues,
    "bob/ephemeral-secret",
    "bob/ratchet-1",
    "bob/msg-1-nonce",
    "bob/ratchet-2",
    "bob/msg-4-nonce",
    "bob/ratchet-3",
  );
  const { session: bobSession, message: acceptWire } = acceptInvitation(
    bob,
    decodeInvitation(code, { now: KAT_NOW }),
    {
      mailbox: bobMailbox.address,
      relayUrl: RELAY,
      plaintext: first,
      random: bobRandom,
    },
  );
  const contact = book.accept(alice, acceptWire, {
    now: KAT_NOW,
    random: scripted(
      randomValues,
      "alice/ratchet-1",
      "alice/msg-2-nonce",
      "alice/msg-3-nonce",
      "alice/ratchet-2",
      "alice/msg-5-nonce",
    ),
  });
  const aliceSession = contact.session;

  const messages: { from: string; payload: string; wire: string }[] = [];
  const exchange = (from: "alice" | "bob", p: Payload) => {
    const [tx, rx] = from === "alice" ? [aliceSession, bobSession] : [bobSession, aliceSession];
    const padded = payload(p);
    const wire = tx.encrypt(padded);
    const back = rx.decrypt(wire);
    if (toHex(back) !== toHex(padded)) throw new Error("transcript: round trip failed");
    messages.push({ from, payload: toHex(padded), wire: toHex(wire) });
  };
  exchange("alice", {
    type: "text",
    id: katValue("msg/2/id", 16),
    sentAt: KAT_NOW + 2000,
    text: "Hello Bob!",
  });
  exchange("alice", {
    type: "delivered",
    id: katValue("msg/3/id", 16),
    sentAt: KAT_NOW + 2001,
    ids: [katValue("msg/1/id", 16)],
  });
  exchange("bob", {
    type: "read",
    id: katValue("msg/4/id", 16),
    sentAt: KAT_NOW + 3000,
    ids: [katValue("msg/2/id", 16), katValue("msg/3/id", 16)],
  });
  exchange("alice", {
    type: "text",
    id: katValue("msg/5/id", 16),
    sentAt: KAT_NOW + 4000,
    text: "Let's compare safety numbers. 🔐",
  });

  // Intermediate handshake values, computed from the spec's formulas with the public primitives.
  const ephemeral = katValue("bob/ephemeral-secret");
  const prekeySecret = katValue("alice/prekey-secret");
  const dh1 = dh(katValue("bob/agreement-secret"), invitation.prekey);
  const dh2 = dh(ephemeral, alice.publicIdentity.agreementKey);
  const dh3 = dh(ephemeral, invitation.prekey);
  const ikm = new Uint8Array([...new Uint8Array(32).fill(0xff), ...dh1, ...dh2, ...dh3]);
  const sk = hkdfSha256(ikm, new Uint8Array(32), new TextEncoder().encode("parley/v1/x3dh"), 32);
  if (toHex(dh(prekeySecret, bob.publicIdentity.agreementKey)) !== toHex(dh1))
    throw new Error("DH1 asymmetric");

  // Message 1's keys from the spec's formulas (§6.1, §6.2), and a check that the v2 AEAD of §6.3
  // reproduces the Accept's embedded Message from them.
  const ad = sessionAd(alice.publicIdentity, bob.publicIdentity);
  const bobRatchet = x25519KeyPair(() => katValue("bob/ratchet-1"));
  const aliceRatchet = x25519KeyPair(() => katValue("alice/ratchet-1"));
  const [rootKey1, bobChain] = kdfRoot(sk, dh(bobRatchet.secretKey, invitation.prekey));
  const [, aliceChain] = kdfRoot(rootKey1, dh(aliceRatchet.secretKey, bobRatchet.publicKey));
  const accept = decodeEnvelope(acceptWire);
  if (accept.kind !== "accept") throw new Error("transcript: message 1 is not an Accept");
  const messageKey1 = firstMessageKey(bobChain);
  const aeadKey1 = hkdfSha256(messageKey1, new Uint8Array(0), info("parley/v2/message-key"), 32);
  const nonce1 = katValue("bob/msg-1-nonce", 24);
  const header1 = cat(Uint8Array.of(0x02, 0x02), bobRatchet.publicKey, u32(0), u32(0), nonce1);
  if (
    toHex(accept.message.headerBytes) !== toHex(header1) ||
    toHex(xseal(aeadKey1, nonce1, first, cat(ad, header1))) !== toHex(accept.message.sealed)
  )
    throw new Error("transcript: message 1 is not the v2 AEAD of §6.3");

  // Legacy v1 Messages, decrypt-only (§6.3): message 1 as a v1 Message inside the same Accept, and
  // Alice's first reply (ratchet key alice/ratchet-1, PN 0, N 0) as a v1 Message.
  const legacyAccept = legacyMessage(ad, bobRatchet.publicKey, messageKey1, first);
  const legacyPayload = payloadOf({
    type: "text",
    id: katValue("legacy/msg/id", 16),
    sentAt: KAT_NOW + 2000,
    text: "Hello Bob, from a v1 sender.",
  });
  const legacyReply = legacyMessage(ad, aliceRatchet.publicKey, firstMessageKey(aliceChain), legacyPayload);

  const challenge = katValue("relay/challenge");
  const bobToken = katValue("bob/deposit-token");
  const bobTokenHash = depositTokenHash(bobToken);
  const address = aliceMailbox.address;
  const frames: Frame[] = [
    { type: "hello", requestId: 1, maxVersion: 1 },
    { type: "welcome", requestId: 1, version: 1, challenge, maxCiphertext: 65536, retentionSeconds: 604800 },
    {
      type: "createMailbox",
      requestId: 2,
      ownerKey: aliceMailbox.publicKey,
      signature: aliceMailbox.prove(MailboxAction.create, challenge),
    },
    { type: "ok", requestId: 2 },
    {
      type: "subscribe",
      requestId: 3,
      address,
      signature: aliceMailbox.prove(MailboxAction.subscribe, challenge),
    },
    {
      type: "deposit",
      requestId: 4,
      address,
      clientMessageId: katValue("deposit/1/id", 16),
      ciphertext: acceptWire,
    },
    {
      type: "deliver",
      requestId: 0,
      address,
      messageId: katValue("relay/message/1", 16),
      receivedAt: KAT_NOW + 1500,
      ciphertext: acceptWire,
    },
    { type: "ack", requestId: 5, address, messageId: katValue("relay/message/1", 16) },
    { type: "unsubscribe", requestId: 6, address },
    {
      type: "deleteMailbox",
      requestId: 7,
      address,
      signature: aliceMailbox.prove(MailboxAction.delete, challenge),
    },
    { type: "error", requestId: 8, code: "QUOTA", message: "mailbox is full" },
    // Bob's mailbox takes deposits with its deposit token only (§8.1 step 8), and Alice deposits
    // her first message there with it.
    {
      type: "setDepositToken",
      requestId: 9,
      address: bobMailbox.address,
      tokenHash: bobTokenHash,
      signature: bobMailbox.prove(MailboxAction.setDepositToken, challenge, bobTokenHash),
    },
    {
      type: "tokenDeposit",
      requestId: 10,
      address: bobMailbox.address,
      token: bobToken,
      clientMessageId: katValue("deposit/2/id", 16),
      ciphertext: fromHex(messages.find((m) => m.from === "alice")!.wire),
    },
  ];
  const safety = safetyNumber(alice.publicIdentity, bob.publicIdentity);

  return jsonable({
    description:
      "Parley protocol known-answer transcript (PROTOCOL.md §11): v2 Messages, and v1 Messages under legacyV1. Every random draw is named in `random`: value = SHA-256('parley-kat/' || name), truncated to the draw's length.",
    now: KAT_NOW,
    random: randomValues,
    identities: {
      alice: {
        ...alice.publicIdentity,
        fingerprint: fingerprint(alice.publicIdentity),
        secret: alice.serialize(),
      },
      bob: { ...bob.publicIdentity, fingerprint: fingerprint(bob.publicIdentity), secret: bob.serialize() },
    },
    mailboxes: {
      alice: { ownerKey: aliceMailbox.publicKey, address: aliceMailbox.address },
      bob: {
        ownerKey: bobMailbox.publicKey,
        address: bobMailbox.address,
        depositToken: bobToken,
        depositTokenHash: bobTokenHash,
      },
    },
    invitation: { ...invitation, id: invitationId(invitation.prekey), code },
    handshake: {
      dh1,
      dh2,
      dh3,
      sharedKey: sk,
      sessionAd: sessionAd(alice.publicIdentity, bob.publicIdentity),
      acceptPayload: first,
      accept: acceptWire,
    },
    payloads,
    messages,
    messageKeys: {
      description:
        "message 1 (Bob, chain of bob/ratchet-1, N 0): its chain key, message key (§6.2), v2 AEAD key and nonce (§6.3)",
      chainKey: bobChain,
      messageKey: messageKey1,
      key: aeadKey1,
      nonce: nonce1,
    },
    legacyV1: {
      description:
        "v1 Messages (decrypt-only, §6.3): `accept` is message 1 as a v1 Message in the same Accept; `reply` is Alice's first message as v1",
      accept: cat(
        accept.prefixBytes,
        u16(accept.sealedIdentity.length),
        accept.sealedIdentity,
        legacyAccept.wire,
      ),
      acceptKey: legacyAccept.key,
      acceptNonce: legacyAccept.nonce,
      reply: { from: "alice", payload: legacyPayload, wire: legacyReply.wire },
      replyKey: legacyReply.key,
      replyNonce: legacyReply.nonce,
    },
    frames: frames.map((f) => ({ frame: f, hex: encodeFrame(f) })),
    safetyNumber: { digits: safety.digits, display: safety.display, compact: safety.compact },
  }) as Record<string, unknown>;
}
