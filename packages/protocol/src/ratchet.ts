// The Double Ratchet (Signal specification, revision 1, §3), with Parley's KDFs and framing.
// PROTOCOL.md §6 is the normative description; section numbers below refer to Signal's spec.
import { checkBytes, concat, equalConstantTime, Reader, toHex, Writer, wipe } from "./_bytes.js";
import {
  dh,
  hkdfSha256,
  hmacSha256,
  KEY_LENGTH,
  type KeyPair,
  label,
  NONCE_LENGTH,
  open,
  type RandomSource,
  systemRandom,
  TAG_LENGTH,
  XNONCE_LENGTH,
  x25519KeyPair,
  x25519PublicKey,
  xopen,
  xseal,
} from "./crypto.js";
import {
  acceptDigest,
  decodeEnvelope,
  encodeAccept,
  encodeHeader,
  encodeMessage,
  MAX_SEALED_IDENTITY_LENGTH,
  MESSAGE_VERSION,
  type MessageEnvelope,
} from "./envelope.js";
import { CryptoError, DecodeError, PayloadError, RatchetError } from "./errors.js";
import { MAX_PADDED_LENGTH } from "./payload.js";

/** Most message keys skipped within the current receiving chain (a larger gap: TOO_FAR_AHEAD). */
export const MAX_SKIP = 1000;
/**
 * Most message keys skipped, old chain and new chain together, by a message that introduces a
 * ratchet key not yet seen. Such a message costs its receiver two DH operations and this many
 * chain steps before its tag can be checked, and anyone who knows a mailbox address can deposit
 * one, so the bound is small.
 */
export const MAX_SKIP_NEW_KEY = 64;
/** Most skipped message keys kept in total; beyond it the oldest are deleted. */
export const MAX_STORED_SKIPPED = 2000;
/** Chain indices are u32; a chain never reaches this. */
const MAX_INDEX = 0xffffffff;

const CHAIN_MESSAGE_KEY = Uint8Array.of(0x01);
const CHAIN_NEXT_KEY = Uint8Array.of(0x02);

/** KDF_RK (§5.2): HKDF-SHA256(salt = root key, ikm = DH output, info = label) -> root key', chain key. */
function kdfRoot(rootKey: Uint8Array, dhOut: Uint8Array): [Uint8Array, Uint8Array] {
  const out = hkdfSha256(dhOut, rootKey, label("ratchetRoot"), 64);
  const keys: [Uint8Array, Uint8Array] = [out.slice(0, 32), out.slice(32, 64)];
  wipe(out, dhOut);
  return keys;
}

/** KDF_CK (§5.2): message key = HMAC(ck, 0x01), next chain key = HMAC(ck, 0x02). */
function kdfChain(chainKey: Uint8Array): [Uint8Array, Uint8Array] {
  return [hmacSha256(chainKey, CHAIN_NEXT_KEY), hmacSha256(chainKey, CHAIN_MESSAGE_KEY)];
}

/**
 * v2 (PROTOCOL.md §6.2): the XChaCha20-Poly1305 key of a message key,
 * HKDF-SHA256(ikm = message key, salt = none, info = "parley/v2/message-key", 32). The nonce is not
 * derived: each encryption draws 24 fresh random bytes and sends them in the header, so a sender
 * whose state was rewound (a restored backup, a cloned VM) re-derives the same key but never the
 * same (key, nonce) pair.
 */
function messageKeyV2(messageKey: Uint8Array): Uint8Array {
  return hkdfSha256(messageKey, new Uint8Array(0), label("messageKeyV2"), KEY_LENGTH);
}

/**
 * v1 (legacy, decrypt only): HKDF-SHA256(ikm = message key, salt = none,
 * info = "parley/v1/message-keys", 44) = ChaCha20-Poly1305 key (32) || nonce (12). The nonce is a
 * function of the message key, which is why v1 is no longer sent (PROTOCOL.md §6.2).
 */
function messageCipherV1(messageKey: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
  const out = hkdfSha256(messageKey, new Uint8Array(0), label("messageKeys"), 32 + NONCE_LENGTH);
  return { key: out.subarray(0, 32), nonce: out.subarray(32) };
}

/** Seals under a v2 header: XChaCha20-Poly1305 with the header's random nonce. Wipes `messageKey`. */
function sealWith(
  messageKey: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  const key = messageKeyV2(messageKey);
  try {
    return xseal(key, nonce, plaintext, ad);
  } finally {
    wipe(key, messageKey);
  }
}

/** Opens a Message of either version; returns null when authentication fails, never throws on it. */
function openWith(messageKey: Uint8Array, m: MessageEnvelope, ad: Uint8Array): Uint8Array | null {
  try {
    if (m.header.nonce !== null) {
      // Version 2: only its headers carry a nonce.
      const key = messageKeyV2(messageKey);
      try {
        return xopen(key, m.header.nonce, m.sealed, ad);
      } finally {
        wipe(key);
      }
    }
    const { key, nonce } = messageCipherV1(messageKey);
    try {
      return open(key, nonce, m.sealed, ad);
    } finally {
      wipe(key, nonce);
    }
  } catch (e) {
    if (e instanceof CryptoError) return null;
    throw e;
  }
}

const skippedId = (ratchetKey: Uint8Array, index: number): string => `${toHex(ratchetKey)}:${index}`;

interface SkippedKey {
  readonly ratchetKey: Uint8Array;
  readonly index: number;
  readonly messageKey: Uint8Array;
}

/** State of one side of a session (§3.2), plus Parley's associated data and handshake binding. */
interface State {
  /** 32-byte session associated data (PROTOCOL.md §5.3), prepended to every header as AEAD AD. */
  ad: Uint8Array;
  rootKey: Uint8Array;
  sending: KeyPair;
  remoteKey: Uint8Array | null;
  sendChain: Uint8Array | null;
  receiveChain: Uint8Array | null;
  sendIndex: number;
  receiveIndex: number;
  previousSendCount: number;
  /** Skipped message keys in insertion order (oldest first), keyed by ratchet key and index. */
  skipped: Map<string, SkippedKey>;
  /**
   * The accepter's Accept prefix and sealed identity. While set, every outgoing message is wrapped
   * in an Accept (PROTOCOL.md §5.4), so the first message to arrive can open the session. Cleared
   * once any message from the inviter decrypts.
   */
  acceptPrefix: Uint8Array | null;
  acceptSealedIdentity: Uint8Array | null;
  /** invitation id (16) || accepter ephemeral key (32): names the handshake that opened the session. */
  handshakeId: Uint8Array;
  /** SHA-256 of the opening Accept's prefix and sealed identity: a repeat must match it exactly. */
  acceptDigest: Uint8Array;
}

/** What a successful decryption changes; applied to the state only after authentication. */
interface Pending {
  /**
   * The DH ratchet step, up to the receiving chain. The new sending key pair and chain are made in
   * commit(), after authentication: a forged message costs one X25519 operation, not three.
   */
  step?: {
    remoteKey: Uint8Array;
    /** KDF_RK's root key after the receiving half of the step. */
    rootKey: Uint8Array;
    receiveChain: Uint8Array;
  };
  skipped: SkippedKey[];
  receiveChain: Uint8Array;
  receiveIndex: number;
}

export interface SessionOptions {
  random?: RandomSource;
}

/**
 * One side of a Double Ratchet session.
 *
 * `encrypt` fails only for a plaintext above the largest bucket (TOO_LARGE); `decrypt` either returns the plaintext and advances the
 * state, or throws a {@link RatchetError} / {@link DecodeError} and leaves the state exactly as it was.
 *
 * @example
 * ```ts
 * const wire = alice.encrypt(utf8.encode("hi"));
 * const text = bob.decrypt(wire);
 * ```
 */
export class Session {
  private constructor(
    private state: State,
    private readonly random: RandomSource,
  ) {}

  /**
   * The accepter's side (Signal's "Alice", who sends first): `remoteKey` is the invitation prekey.
   * @internal used by the handshake.
   */
  static initiate(
    sharedKey: Uint8Array,
    ad: Uint8Array,
    remoteKey: Uint8Array,
    handshakeId: Uint8Array,
    accept: { prefix: Uint8Array; sealedIdentity: Uint8Array },
    options: SessionOptions = {},
  ): Session {
    const random = options.random ?? systemRandom;
    const sending = x25519KeyPair(random);
    const [rootKey, sendChain] = kdfRoot(sharedKey, dh(sending.secretKey, remoteKey));
    return new Session(
      {
        ad: Uint8Array.from(ad),
        rootKey,
        sending,
        remoteKey: Uint8Array.from(remoteKey),
        sendChain,
        receiveChain: null,
        sendIndex: 0,
        receiveIndex: 0,
        previousSendCount: 0,
        skipped: new Map(),
        acceptPrefix: accept.prefix,
        acceptSealedIdentity: accept.sealedIdentity,
        handshakeId: Uint8Array.from(handshakeId),
        acceptDigest: acceptDigest(accept.prefix, accept.sealedIdentity),
      },
      random,
    );
  }

  /**
   * The inviter's side (Signal's "Bob"): its first ratchet key pair is the invitation prekey.
   * @internal used by the handshake.
   */
  static respond(
    sharedKey: Uint8Array,
    ad: Uint8Array,
    prekey: KeyPair,
    handshakeId: Uint8Array,
    digest: Uint8Array,
    options: SessionOptions = {},
  ): Session {
    return new Session(
      {
        ad: Uint8Array.from(ad),
        rootKey: Uint8Array.from(sharedKey),
        sending: {
          secretKey: Uint8Array.from(prekey.secretKey),
          publicKey: Uint8Array.from(prekey.publicKey),
        },
        remoteKey: null,
        sendChain: null,
        receiveChain: null,
        sendIndex: 0,
        receiveIndex: 0,
        previousSendCount: 0,
        skipped: new Map(),
        acceptPrefix: null,
        acceptSealedIdentity: null,
        handshakeId: Uint8Array.from(handshakeId),
        acceptDigest: Uint8Array.from(digest),
      },
      options.random ?? systemRandom,
    );
  }

  /** invitation id || accepter ephemeral key: lets the inviter route a repeated Accept here. */
  get handshakeId(): Uint8Array {
    return Uint8Array.from(this.state.handshakeId);
  }

  /** True while this (accepting) side still wraps its messages in an Accept. */
  get awaitingReply(): boolean {
    return this.state.acceptPrefix !== null;
  }

  /** Number of skipped message keys currently stored. */
  get skippedCount(): number {
    return this.state.skipped.size;
  }

  /**
   * Encrypts one plaintext (already padded, see payload.ts) into wire bytes: a v2 Message, or an
   * Accept wrapping one while the peer has not yet replied. Draws a 24-byte nonce from the random
   * source once the checks have passed (a refused call draws nothing).
   */
  encrypt(plaintext: Uint8Array): Uint8Array {
    const s = this.state;
    if (s.sendChain === null) {
      // Only an inviter that has not received anything is in this state, and the handshake never
      // hands one out.
      throw new RatchetError("EXHAUSTED", "this session cannot send before it has received a message");
    }
    if (s.sendIndex >= MAX_INDEX)
      throw new RatchetError("EXHAUSTED", "sending chain exhausted; the peer must reply");
    if (plaintext.length > MAX_PADDED_LENGTH) {
      throw new PayloadError(
        "TOO_LARGE",
        `plaintext of ${plaintext.length} bytes exceeds ${MAX_PADDED_LENGTH}`,
      );
    }
    // A fresh nonce for every encryption, even one from a state that was rewound (PROTOCOL.md §6.2).
    const nonce = checkBytes("random(24)", this.random(XNONCE_LENGTH), XNONCE_LENGTH);
    const [nextChain, messageKey] = kdfChain(s.sendChain);
    const headerBytes = encodeHeader({
      version: MESSAGE_VERSION,
      ratchetKey: s.sending.publicKey,
      previousChainLength: s.previousSendCount,
      index: s.sendIndex,
      nonce,
    });
    const sealed = sealWith(messageKey, nonce, plaintext, concat(s.ad, headerBytes));
    wipe(s.sendChain);
    s.sendChain = nextChain;
    s.sendIndex += 1;
    const message = encodeMessage(headerBytes, sealed);
    if (s.acceptPrefix && s.acceptSealedIdentity)
      return encodeAccept(s.acceptPrefix, s.acceptSealedIdentity, message);
    return message;
  }

  /**
   * Decrypts wire bytes (a Message, or an Accept of the handshake that opened this session).
   * Throws DecodeError for malformed bytes and RatchetError for refused messages:
   * AUTH (forged, corrupted, replayed from an old chain, or not of this session), DUPLICATE (this
   * message key was already used), TOO_FAR_AHEAD (a gap above MAX_SKIP, or MAX_SKIP_NEW_KEY for a new ratchet key). On any throw the state is
   * unchanged.
   */
  decrypt(wire: Uint8Array): Uint8Array {
    const envelope = decodeEnvelope(wire);
    if (envelope.kind === "accept") {
      const id = concat(envelope.invitationId, envelope.ephemeralKey);
      if (!equalConstantTime(id, this.state.handshakeId)) {
        throw new RatchetError("AUTH", "this Accept belongs to another handshake, not to this session");
      }
      // The sealed identity is only authenticated when the Accept opens the session; a repeat must
      // carry exactly the same bytes, so nothing in it can be altered unnoticed.
      if (
        !equalConstantTime(
          acceptDigest(envelope.prefixBytes, envelope.sealedIdentity),
          this.state.acceptDigest,
        )
      ) {
        throw new RatchetError("AUTH", "this Accept differs from the one that opened the session");
      }
      return this.decryptMessage(envelope.message);
    }
    return this.decryptMessage(envelope);
  }

  private decryptMessage(m: MessageEnvelope): Uint8Array {
    const s = this.state;
    const ad = concat(s.ad, m.headerBytes);
    const { ratchetKey, index, previousChainLength } = m.header;

    // §3.5 TrySkippedMessageKeys
    const id = s.skipped.size > 0 ? skippedId(ratchetKey, index) : "";
    const stored = s.skipped.get(id);
    if (stored) {
      const plaintext = openWith(Uint8Array.from(stored.messageKey), m, ad);
      if (!plaintext) throw new RatchetError("AUTH", "message failed authentication");
      s.skipped.delete(id);
      wipe(stored.messageKey);
      this.sawReply();
      return plaintext;
    }

    const pending = this.plan(ratchetKey, index, previousChainLength);
    const [nextChain, messageKey] = kdfChain(pending.receiveChain);
    const plaintext = openWith(messageKey, m, ad);
    wipe(messageKey);
    if (!plaintext) {
      discard(pending, nextChain);
      throw new RatchetError("AUTH", "message failed authentication");
    }
    this.commit(pending, nextChain);
    return plaintext;
  }

  /** Works out every change the message implies without touching the state. */
  private plan(ratchetKey: Uint8Array, index: number, previousChainLength: number): Pending {
    const s = this.state;
    const skipped: SkippedKey[] = [];
    // The accepter starts with the prekey as remote key but no receiving chain: a message claiming
    // that key takes the ratchet-step path and fails authentication there.
    const sameChain =
      s.remoteKey !== null && s.receiveChain !== null && equalConstantTime(ratchetKey, s.remoteKey);
    if (sameChain) {
      if (index < s.receiveIndex)
        throw new RatchetError("DUPLICATE", "message already received (or its key expired)");
      if (index - s.receiveIndex > MAX_SKIP) {
        throw new RatchetError(
          "TOO_FAR_AHEAD",
          `message skips ${index - s.receiveIndex} keys; at most ${MAX_SKIP}`,
        );
      }
      const chain = skipKeys(s.receiveChain!, s.remoteKey!, s.receiveIndex, index, skipped);
      return { skipped, receiveChain: chain, receiveIndex: index };
    }
    // §3.5 DHRatchet: first skip what is left of the current receiving chain.
    const gap = s.receiveChain ? Math.max(0, previousChainLength - s.receiveIndex) : 0;
    if (gap + index > MAX_SKIP_NEW_KEY) {
      throw new RatchetError(
        "TOO_FAR_AHEAD",
        `a message with a new ratchet key skips ${gap + index} keys; at most ${MAX_SKIP_NEW_KEY}`,
      );
    }
    if (s.receiveChain && s.remoteKey && gap > 0) {
      const done = skipKeys(s.receiveChain, s.remoteKey, s.receiveIndex, previousChainLength, skipped);
      wipe(done);
    }
    let rootKey: Uint8Array;
    let receiveChain: Uint8Array;
    try {
      [rootKey, receiveChain] = kdfRoot(s.rootKey, dh(s.sending.secretKey, ratchetKey));
    } catch (e) {
      for (const k of skipped) wipe(k.messageKey);
      if (e instanceof CryptoError && e.code === "LOW_ORDER") throw new RatchetError("LOW_ORDER", e.message);
      throw e;
    }
    const start = skipKeys(receiveChain, ratchetKey, 0, index, skipped);
    wipe(receiveChain);
    return {
      step: { remoteKey: Uint8Array.from(ratchetKey), rootKey, receiveChain: start },
      skipped,
      receiveChain: start,
      receiveIndex: index,
    };
  }

  private commit(p: Pending, nextChain: Uint8Array): void {
    const s = this.state;
    if (p.step) {
      // The sending half of the step: the remote key already passed the LOW_ORDER check of the
      // receiving half, so this DH cannot fail.
      const sending = x25519KeyPair(this.random);
      const [rootKey, sendChain] = kdfRootReplacing(p.step.rootKey, dh(sending.secretKey, p.step.remoteKey));
      wipe(s.rootKey, s.sending.secretKey, s.sendChain ?? undefined);
      s.previousSendCount = s.sendIndex;
      s.sendIndex = 0;
      s.remoteKey = p.step.remoteKey;
      s.rootKey = rootKey;
      s.sending = sending;
      s.sendChain = sendChain;
    }
    // p.receiveChain is the (copied) chain key that produced this message's key: done with both.
    wipe(s.receiveChain ?? undefined, p.receiveChain);
    s.receiveChain = nextChain;
    s.receiveIndex = p.receiveIndex + 1;
    for (const k of p.skipped) s.skipped.set(skippedId(k.ratchetKey, k.index), k);
    // Bound the store: delete the oldest keys first (Map keeps insertion order).
    for (const [key, value] of s.skipped) {
      if (s.skipped.size <= MAX_STORED_SKIPPED) break;
      wipe(value.messageKey);
      s.skipped.delete(key);
    }
    this.sawReply();
  }

  /** The peer has answered, so it holds the session: stop wrapping messages in the Accept. */
  private sawReply(): void {
    const s = this.state;
    if (s.acceptPrefix) {
      s.acceptPrefix = null;
      s.acceptSealedIdentity = null;
    }
  }

  /**
   * Serializes the full state for storage (PROTOCOL.md §6.5). Contains secret keys: the client
   * encrypts it at rest.
   */
  serialize(): Uint8Array {
    const s = this.state;
    const w = new Writer()
      .u8(1)
      .bytes(s.ad)
      .bytes(s.rootKey)
      .bytes(s.sending.secretKey)
      .bytes(s.handshakeId)
      .bytes(s.acceptDigest);
    const flags =
      (s.remoteKey ? 1 : 0) | (s.sendChain ? 2 : 0) | (s.receiveChain ? 4 : 0) | (s.acceptPrefix ? 8 : 0);
    w.u8(flags);
    if (s.remoteKey) w.bytes(s.remoteKey);
    if (s.sendChain) w.bytes(s.sendChain);
    if (s.receiveChain) w.bytes(s.receiveChain);
    if (s.acceptPrefix && s.acceptSealedIdentity) w.bytes(s.acceptPrefix).varBytes(s.acceptSealedIdentity, 2);
    w.u32(s.sendIndex).u32(s.receiveIndex).u32(s.previousSendCount).u32(s.skipped.size);
    for (const k of s.skipped.values()) w.bytes(k.ratchetKey).u32(k.index).bytes(k.messageKey);
    return w.finish();
  }

  static deserialize(bytes: Uint8Array, options: SessionOptions = {}): Session {
    const r = new Reader(bytes, "session");
    const version = r.u8("version");
    if (version !== 1)
      throw new DecodeError(`session: unsupported version ${version}`, "UNSUPPORTED_VERSION");
    const ad = r.bytes(32, "ad");
    const rootKey = r.bytes(32, "root key");
    const secretKey = r.bytes(32, "ratchet secret");
    const handshakeId = r.bytes(48, "handshake id");
    const digest = r.bytes(32, "accept digest");
    const flags = r.u8("flags");
    if (flags > 15) throw new DecodeError(`session: unknown flags ${flags}`);
    const remoteKey = flags & 1 ? r.bytes(32, "remote key") : null;
    const sendChain = flags & 2 ? r.bytes(32, "send chain") : null;
    const receiveChain = flags & 4 ? r.bytes(32, "receive chain") : null;
    const acceptPrefix = flags & 8 ? r.bytes(50, "accept prefix") : null;
    const acceptSealedIdentity =
      flags & 8 ? r.varBytes(2, "sealed identity", MAX_SEALED_IDENTITY_LENGTH) : null;
    if (acceptSealedIdentity && acceptSealedIdentity.length < TAG_LENGTH) {
      throw new DecodeError("session: sealed identity too short");
    }
    // Only the accepter waits for a reply, and it always has a sending chain and a remote key.
    if (flags & 8 && (flags & 3) !== 3) throw new DecodeError("session: inconsistent flags");
    if (flags & 4 && !(flags & 1)) throw new DecodeError("session: receiving chain without a remote key");
    if (acceptPrefix && acceptSealedIdentity) {
      const expected = acceptDigest(acceptPrefix, acceptSealedIdentity);
      const prefixId = acceptPrefix.subarray(2, 50);
      if (!equalConstantTime(expected, digest) || !equalConstantTime(prefixId, handshakeId)) {
        throw new DecodeError("session: stored Accept does not match its handshake id and digest");
      }
    }
    const sendIndex = r.u32("send index");
    const receiveIndex = r.u32("receive index");
    const previousSendCount = r.u32("previous send count");
    const count = r.u32("skipped count");
    if (count > MAX_STORED_SKIPPED)
      throw new DecodeError(`session: ${count} skipped keys, more than ${MAX_STORED_SKIPPED}`);
    const skipped = new Map<string, SkippedKey>();
    for (let i = 0; i < count; i++) {
      const k = {
        ratchetKey: r.bytes(32, "skipped ratchet key"),
        index: r.u32("skipped index"),
        messageKey: r.bytes(32, "skipped key"),
      };
      const id = skippedId(k.ratchetKey, k.index);
      if (skipped.has(id)) throw new DecodeError("session: duplicate skipped key");
      skipped.set(id, k);
    }
    r.end();
    // The public key is computed when first needed (to encrypt): receiving does not use it, and
    // an X25519 operation per delivery is most of what a forged one costs.
    let publicKey: Uint8Array | null = null;
    const sending = {
      secretKey,
      get publicKey(): Uint8Array {
        publicKey ??= x25519PublicKey(secretKey);
        return publicKey;
      },
    };
    return new Session(
      {
        ad,
        rootKey,
        sending,
        remoteKey,
        sendChain,
        receiveChain,
        sendIndex,
        receiveIndex,
        previousSendCount,
        skipped,
        acceptPrefix,
        acceptSealedIdentity,
        handshakeId,
        acceptDigest: digest,
      },
      options.random ?? systemRandom,
    );
  }

  /** Overwrites every secret in the state; the session is unusable afterwards. */
  wipe(): void {
    const s = this.state;
    wipe(s.rootKey, s.sending.secretKey, s.sendChain ?? undefined, s.receiveChain ?? undefined);
    for (const k of s.skipped.values()) wipe(k.messageKey);
    s.skipped.clear();
    s.sendChain = null;
    s.receiveChain = null;
  }
}

/** Derives the message keys from `from` up to (not including) `to`; returns the chain key at `to`. */
function skipKeys(
  chain: Uint8Array,
  ratchetKey: Uint8Array,
  from: number,
  to: number,
  out: SkippedKey[],
): Uint8Array {
  let ck: Uint8Array = Uint8Array.from(chain);
  for (let i = from; i < to; i++) {
    const [next, messageKey] = kdfChain(ck);
    wipe(ck);
    ck = next;
    out.push({ ratchetKey: Uint8Array.from(ratchetKey), index: i, messageKey });
  }
  return ck;
}

function kdfRootReplacing(rootKey: Uint8Array, dhOut: Uint8Array): [Uint8Array, Uint8Array] {
  const result = kdfRoot(rootKey, dhOut);
  wipe(rootKey);
  return result;
}

function discard(p: Pending, nextChain: Uint8Array): void {
  wipe(nextChain, p.receiveChain);
  for (const k of p.skipped) wipe(k.messageKey);
  if (p.step) wipe(p.step.rootKey);
}
