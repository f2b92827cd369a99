// Post-quantum sessions (PROTOCOL.md §6.7) in `pnpm bench`: throughput as a ratio to classical
// sessions measured in the same run, and the bytes a conversation costs.
//
//   1. Throughput: encrypt + decrypt per message, post-quantum and classical pairs built the same
//      way (Session.initiate / respond from random handshake outputs), one-way and alternating,
//      interleaved round by round like the other measurements. The plaintexts leave padding room:
//      a 40-byte text (256-byte bucket, 12 units of KEM material per message) and a 300-byte text
//      (1024-byte bucket, 42 units), so alternating post-quantum runs keep completing KEM exchanges
//      (keygen, encapsulation, decapsulation) and their cost is in the figure; the count of
//      exchanges completed per 1000 messages is printed beside it.
//   2. Bytes: one simulated conversation of CONVERSATION_MESSAGES messages from a seeded generator —
//      bursts of one to four messages per speaker; texts of 1–80 bytes (60 %), 81–225 (25 %),
//      226–993 (10 %) and 994–3000 (5 %), each 225 / 993 bytes (filling the 256 / 1024 bucket
//      exactly) once in 100; a read receipt for the other side's burst before each burst — sent
//      through a classical and a post-quantum pair. Reported: mean wire bytes per message for both,
//      how many post-quantum messages left their payload's bucket (their sealed plaintext is
//      longer than the padded payload), and the KEM exchanges completed with the messages per
//      exchange.
import { acceptDigest, encodeAcceptPrefix } from "../src/envelope.js";
import {
  decodeEnvelope,
  encodePayload,
  type Payload,
  Session,
  systemRandom,
  x25519KeyPair,
} from "../src/index.js";

const CONVERSATION_MESSAGES = 4000;
const TAG_LENGTH = 16;

type Op = () => Uint8Array;
interface Pair {
  inviter: Session;
  accepter: Session;
}

/** A pair built from random handshake outputs, opened: both have sent and received. */
export function directPair(postQuantum: boolean): Pair {
  const prekey = x25519KeyPair();
  const id = systemRandom(16);
  const ephemeral = systemRandom(32);
  const handshakeId = new Uint8Array([...id, ...ephemeral]);
  const prefix = encodeAcceptPrefix(id, ephemeral);
  const sealedIdentity = systemRandom(200);
  const [sk, ad] = [systemRandom(32), systemRandom(32)];
  const accepter = Session.initiate(
    sk,
    ad,
    prekey.publicKey,
    handshakeId,
    { prefix, sealedIdentity },
    { postQuantum },
  );
  const inviter = Session.respond(sk, ad, prekey, handshakeId, acceptDigest(prefix, sealedIdentity), {
    postQuantum,
  });
  const hello = textPayload("hello", 1);
  inviter.decrypt(accepter.encrypt(hello));
  accepter.decrypt(inviter.encrypt(hello));
  return { inviter, accepter };
}

function textPayload(text: string, n: number): Uint8Array {
  const id = new Uint8Array(16);
  new DataView(id.buffer).setUint32(12, n);
  return encodePayload({ type: "text", id, sentAt: 1_767_225_600_000 + n, text });
}

export function oneWay(pair: Pair, plaintext: Uint8Array): Op {
  return () => pair.accepter.decrypt(pair.inviter.encrypt(plaintext));
}

export function alternating(pair: Pair, plaintext: Uint8Array): Op {
  let inviterSpeaks = true;
  return () => {
    const [from, to] = inviterSpeaks ? [pair.inviter, pair.accepter] : [pair.accepter, pair.inviter];
    inviterSpeaks = !inviterSpeaks;
    return to.decrypt(from.encrypt(plaintext));
  };
}

/** The plaintexts of the throughput rows: texts that leave room for KEM pieces. */
export const PQ_PLAINTEXTS = [
  { label: "40-byte text, 256 B bucket", plaintext: textPayload("x".repeat(40), 2) },
  { label: "300-byte text, 1024 B bucket", plaintext: textPayload("x".repeat(300), 3) },
] as const;

/** KEM exchanges completed per 1000 alternating messages on a fresh pair (not timed). */
export function exchangesPer1000(plaintext: Uint8Array): number {
  const pair = directPair(true);
  const op = alternating(pair, plaintext);
  const start = pair.inviter.kemEpoch!;
  for (let i = 0; i < 1000; i++) op();
  return pair.inviter.kemEpoch! - start;
}

/** A small seeded generator (mulberry32), so every run simulates the same conversation. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface Sent {
  from: "inviter" | "accepter";
  payload: Uint8Array;
}

/** The simulated conversation's payloads, in order (see the header). */
function conversation(): Sent[] {
  const rand = seeded(16);
  const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const out: Sent[] = [];
  let speaker: Sent["from"] = "accepter";
  let n = 0;
  const ids: Uint8Array[] = [];
  while (out.length < CONVERSATION_MESSAGES) {
    const heard = ids.splice(0);
    if (heard.length > 0) {
      const receipt: Payload = { type: "read", id: systemRandom(16), sentAt: 1, ids: heard };
      out.push({ from: speaker, payload: encodePayload(receipt) });
    }
    for (let burst = between(1, 4); burst > 0; burst--) {
      const r = rand();
      let length =
        r < 0.6
          ? between(1, 80)
          : r < 0.85
            ? between(81, 225)
            : r < 0.95
              ? between(226, 993)
              : between(994, 3000);
      if (rand() < 0.01) length = rand() < 0.5 ? 225 : 993;
      const id = systemRandom(16);
      ids.push(id);
      out.push({
        from: speaker,
        payload: encodePayload({ type: "text", id, sentAt: ++n, text: "y".repeat(length) }),
      });
    }
    speaker = speaker === "inviter" ? "accepter" : "inviter";
  }
  return out.slice(0, CONVERSATION_MESSAGES);
}

export interface BytesResult {
  messages: number;
  classicalMeanBytes: number;
  postQuantumMeanBytes: number;
  /** Post-quantum messages whose sealed plaintext is longer than their padded payload. */
  leftBucket: number;
  /** Messages of either session whose payload filled its bucket exactly. */
  fullBucketPayloads: number;
  kemExchanges: number;
  messagesPerExchange: number;
}

/** Sends the simulated conversation through a classical and a post-quantum pair. */
export function conversationBytes(): BytesResult {
  const messages = conversation();
  const totals = { classical: 0, postQuantum: 0 };
  let leftBucket = 0;
  let full = 0;
  let exchanges = 0;
  for (const postQuantum of [false, true]) {
    const pair = directPair(postQuantum);
    const start = pair.inviter.kemEpoch ?? 0;
    for (const m of messages) {
      const [from, to] = m.from === "inviter" ? [pair.inviter, pair.accepter] : [pair.accepter, pair.inviter];
      const wire = from.encrypt(m.payload);
      to.decrypt(wire);
      totals[postQuantum ? "postQuantum" : "classical"] += wire.length;
      if (!postQuantum) {
        if (m.payload[m.payload.length - 1] !== 0) full++;
        continue;
      }
      const env = decodeEnvelope(wire);
      const sealed = env.kind === "accept" ? env.message.sealed : env.sealed;
      if (sealed.length - TAG_LENGTH > m.payload.length) leftBucket++;
    }
    if (postQuantum) exchanges = Math.min(pair.inviter.kemEpoch!, pair.accepter.kemEpoch!) - start;
  }
  return {
    messages: messages.length,
    classicalMeanBytes: totals.classical / messages.length,
    postQuantumMeanBytes: totals.postQuantum / messages.length,
    leftBucket,
    fullBucketPayloads: full,
    kemExchanges: exchanges,
    messagesPerExchange: messages.length / Math.max(1, exchanges),
  };
}
