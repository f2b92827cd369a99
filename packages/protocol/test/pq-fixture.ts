// Post-quantum session pairs (PROTOCOL.md §6.7) built directly from Session.initiate / respond: the
// handshake that negotiates them lives in handshake.ts, so these tests need only what a handshake
// hands the ratchet — a shared key, the session AD, the inviter's prekey and the Accept's identity
// parts — and bind them as the handshake would.
import { x25519 } from "@noble/curves/ed25519.js";
import { acceptDigest, encodeAcceptPrefix } from "../src/envelope.js";
import {
  hkdfSha256,
  hmacSha256,
  type RandomSource,
  Session,
  systemRandom,
  x25519KeyPair,
  xseal,
} from "../src/index.js";

export interface PairOptions {
  /** Random sources of each side; the system's by default. */
  readonly alice?: RandomSource;
  readonly bob?: RandomSource;
  /** Where the pair's fixed inputs (shared key, AD, prekey, handshake id) come from. */
  readonly setup?: RandomSource;
  /** false: a classical pair built the same way, for comparisons. */
  readonly postQuantum?: boolean;
}

/**
 * Alice (the inviter, "respond") and Bob (the accepter, "initiate"); Bob wraps his messages in an
 * Accept until he hears from Alice, and Alice can send only after her first decryption.
 */
export function sessionPair(options: PairOptions = {}): { alice: Session; bob: Session } {
  const setup = options.setup ?? systemRandom;
  const postQuantum = options.postQuantum ?? true;
  const sharedKey = setup(32);
  const ad = setup(32);
  const prekey = x25519KeyPair(setup);
  const invitationId = setup(16);
  const ephemeralKey = setup(32);
  const handshakeId = new Uint8Array([...invitationId, ...ephemeralKey]);
  const prefix = encodeAcceptPrefix(invitationId, ephemeralKey);
  const sealedIdentity = setup(32);
  const bob = Session.initiate(
    sharedKey,
    ad,
    prekey.publicKey,
    handshakeId,
    { prefix, sealedIdentity },
    { postQuantum, ...(options.bob ? { random: options.bob } : {}) },
  );
  const alice = Session.respond(sharedKey, ad, prekey, handshakeId, acceptDigest(prefix, sealedIdentity), {
    postQuantum,
    ...(options.alice ? { random: options.alice } : {}),
  });
  return { alice, bob };
}

const u32At = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at);

/** The fields of a serialized session (§6.5) that the tests below need, read as the spec lays them out. */
export interface StateFields {
  readonly version: number;
  readonly ad: Uint8Array;
  readonly ratchetSecret: Uint8Array;
  readonly flags: number;
  readonly sendChain: Uint8Array | null;
  readonly sendIndex: number;
  readonly previousSendCount: number;
  /** Version 2: where the KEM block (epoch, phase, MIXED, …) starts. */
  readonly kemOffset: number;
}

export function stateFields(state: Uint8Array): StateFields {
  const flags = state[177]!;
  let at = 178;
  if (flags & 1) at += 32;
  const sendChain = flags & 2 ? state.slice(at, at + 32) : null;
  if (flags & 2) at += 32;
  if (flags & 4) at += 32;
  if (flags & 8) at += 50 + 2 + ((state[at + 50]! << 8) | state[at + 51]!);
  const sendIndex = u32At(state, at);
  const previousSendCount = u32At(state, at + 8);
  const skipped = u32At(state, at + 12);
  return {
    version: state[0]!,
    ad: state.slice(1, 33),
    ratchetSecret: state.slice(65, 97),
    flags,
    sendChain,
    sendIndex,
    previousSendCount,
    kemOffset: at + 16 + 68 * skipped,
  };
}

/**
 * A v3 Message sealed by hand from the sender's serialized state (§6.2, §6.3, §6.7), with any
 * plaintext — the KEM extension included — and any header flags: what a faulty or hostile peer
 * holding the session could send. It takes the sender's next position without advancing it.
 */
export function sealByHand(senderState: Uint8Array, inner: Uint8Array, flags = 0): Uint8Array {
  const s = stateFields(senderState);
  if (!s.sendChain) throw new Error("the sender has no sending chain");
  const messageKey = hmacSha256(s.sendChain, Uint8Array.of(1));
  const key = hkdfSha256(
    messageKey,
    new Uint8Array(0),
    new TextEncoder().encode("parley/v2/message-key"),
    32,
  );
  const nonce = systemRandom(24);
  const header = new Uint8Array(67);
  const view = new DataView(header.buffer);
  header.set([2, 3]);
  header.set(x25519.getPublicKey(s.ratchetSecret), 2);
  view.setUint32(34, s.previousSendCount);
  view.setUint32(38, s.sendIndex);
  header.set(nonce, 42);
  header[66] = flags;
  return new Uint8Array([...header, ...xseal(key, nonce, inner, new Uint8Array([...s.ad, ...header]))]);
}
