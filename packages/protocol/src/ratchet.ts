// The Double Ratchet (Signal specification, revision 1, §3), with Parley's KDFs and framing, and
// optional post-quantum break-in recovery (ratchet-pq.ts). PROTOCOL.md §6 is the normative
// description; section numbers below refer to Signal's spec unless they name PROTOCOL.md.
import { checkBytes, concat, equalConstantTime, wipe } from "./_bytes.js";
import { dh, type KeyPair, type RandomSource, systemRandom, XNONCE_LENGTH, x25519KeyPair } from "./crypto.js";
import {
  acceptDigest,
  decodeEnvelope,
  encodeAccept,
  encodeHeader,
  encodeMessage,
  HEADER_FLAG_KEM_MIXED,
  MESSAGE_VERSION,
  type MessageEnvelope,
  PQ_MESSAGE_VERSION,
} from "./envelope.js";
import { CryptoError, DecodeError, PayloadError, RatchetError } from "./errors.js";
import { MAX_PADDED_LENGTH } from "./payload.js";
import { kdfChain, kdfRoot, openWith, sealWith, skipKeys } from "./ratchet-kdf.js";
import {
  advanceCursor,
  commitKem,
  initialKem,
  type KemPlan,
  planKem,
  secretForReceiving,
  takeSecretForSending,
  unwrapPlaintext,
  wipeKem,
  wrapPlaintext,
} from "./ratchet-pq.js";
import {
  deserializeState,
  MAX_STORED_SKIPPED,
  type SkippedKey,
  type State,
  serializeState,
  skippedId,
} from "./ratchet-state.js";

export { MAX_STORED_SKIPPED };

/** Most message keys skipped within the current receiving chain (a larger gap: TOO_FAR_AHEAD). */
export const MAX_SKIP = 1000;
/**
 * Most message keys skipped, old chain and new chain together, by a message that introduces a
 * ratchet key not yet seen. Such a message costs its receiver two DH operations and this many
 * chain steps before its tag can be checked, and anyone who knows a mailbox address can deposit
 * one, so the bound is small.
 */
export const MAX_SKIP_NEW_KEY = 64;
/** Chain indices are u32; a chain never reaches this. */
const MAX_INDEX = 0xffffffff;

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
    /** The peer's header said MIXED: the receiving half used this side's KEM secret (§6.7 "Mixing"). */
    mixed: boolean;
  };
  skipped: SkippedKey[];
  receiveChain: Uint8Array;
  receiveIndex: number;
}

export interface SessionOptions {
  random?: RandomSource;
  /**
   * A post-quantum session (PROTOCOL.md §6.7): ML-KEM-768 secrets enter the root chain, so that a
   * session whose state was stolen heals even against an attacker who can break X25519. Both sides
   * must agree (the handshake decides); its Messages are version 3 and its state serializes as
   * version 2. Default: a classical session.
   */
  postQuantum?: boolean;
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
   * A post-quantum accepter holds the key of KEM epoch 1: it draws that key pair (d, then z) after
   * its first ratchet secret.
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
        kem: options.postQuantum ? initialKem("keyholder", random) : null,
        sendMixed: false,
      },
      random,
    );
  }

  /**
   * The inviter's side (Signal's "Bob"): its first ratchet key pair is the invitation prekey. A
   * post-quantum inviter encapsulates in KEM epoch 1.
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
    const random = options.random ?? systemRandom;
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
        kem: options.postQuantum ? initialKem("encapsulator", random) : null,
        sendMixed: false,
      },
      random,
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

  /** True for a post-quantum session (PROTOCOL.md §6.7). */
  get postQuantum(): boolean {
    return this.state.kem !== null;
  }

  /**
   * A post-quantum session's KEM epoch in progress (1 at the start; each completed exchange, once
   * mixed into the root chain on this side, adds one), or null for a classical session.
   */
  get kemEpoch(): number | null {
    return this.state.kem?.epoch ?? null;
  }

  /**
   * Encrypts one plaintext (already padded, see payload.ts) into wire bytes: a Message (v2, or v3
   * in a post-quantum session), or an Accept wrapping one while the peer has not yet replied. Draws
   * a 24-byte nonce from the random source once the checks have passed (a refused call draws
   * nothing).
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
    // A post-quantum session writes its KEM piece over the plaintext's padding (PROTOCOL.md §6.7).
    const wrapped = s.kem ? wrapPlaintext(plaintext, s.kem) : null;
    const [nextChain, messageKey] = kdfChain(s.sendChain);
    const headerBytes = encodeHeader({
      version: s.kem ? PQ_MESSAGE_VERSION : MESSAGE_VERSION,
      ratchetKey: s.sending.publicKey,
      previousChainLength: s.previousSendCount,
      index: s.sendIndex,
      nonce,
      ...(s.kem ? { flags: s.sendMixed ? HEADER_FLAG_KEM_MIXED : 0 } : {}),
    });
    const sealed = sealWith(messageKey, nonce, wrapped?.inner ?? plaintext, concat(s.ad, headerBytes));
    wipe(s.sendChain);
    s.sendChain = nextChain;
    s.sendIndex += 1;
    if (s.kem && wrapped?.cursor != null) s.kem = advanceCursor(s.kem, wrapped.cursor);
    const message = encodeMessage(headerBytes, sealed);
    if (s.acceptPrefix && s.acceptSealedIdentity)
      return encodeAccept(s.acceptPrefix, s.acceptSealedIdentity, message);
    return message;
  }

  /**
   * Decrypts wire bytes (a Message, or an Accept of the handshake that opened this session).
   * Throws DecodeError for malformed bytes (and, in a post-quantum session, for a message of
   * another version or with malformed KEM material) and RatchetError for refused messages:
   * AUTH (forged, corrupted, replayed from an old chain, or not of this session), DUPLICATE (this
   * message key was already used), TOO_FAR_AHEAD (a gap above MAX_SKIP, or MAX_SKIP_NEW_KEY for a
   * new ratchet key). On any throw the state is unchanged.
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
    // A post-quantum session takes only v3 Messages, a classical one never: no downgrade, and no
    // v3 Message is read without its KEM extension.
    if ((s.kem !== null) !== (m.header.version === PQ_MESSAGE_VERSION)) {
      throw new DecodeError(
        s.kem
          ? `message: version ${m.header.version}, but a post-quantum session takes only version 3`
          : "message: version 3 belongs to post-quantum sessions, and this session is classical",
        "UNSUPPORTED_VERSION",
      );
    }
    const ad = concat(s.ad, m.headerBytes);
    const { ratchetKey, index, previousChainLength } = m.header;

    // §3.5 TrySkippedMessageKeys
    const id = s.skipped.size > 0 ? skippedId(ratchetKey, index) : "";
    const stored = s.skipped.get(id);
    if (stored) {
      const opened = openWith(Uint8Array.from(stored.messageKey), m, ad);
      if (!opened) throw new RatchetError("AUTH", "message failed authentication");
      const { plaintext, kem } = this.receiveKem(opened, false);
      s.skipped.delete(id);
      wipe(stored.messageKey);
      this.commitKem(kem);
      this.sawReply();
      return plaintext;
    }

    const mixed = ((m.header.flags ?? 0) & HEADER_FLAG_KEM_MIXED) !== 0;
    const pending = this.plan(ratchetKey, index, previousChainLength, mixed);
    const [nextChain, messageKey] = kdfChain(pending.receiveChain);
    const opened = openWith(messageKey, m, ad);
    wipe(messageKey);
    if (!opened) {
      discard(pending, nextChain);
      throw new RatchetError("AUTH", "message failed authentication");
    }
    let received: ReturnType<Session["receiveKem"]>;
    try {
      received = this.receiveKem(opened, pending.step?.mixed ?? false);
    } catch (e) {
      discard(pending, nextChain);
      throw e;
    }
    this.commit(pending, nextChain, received.kem);
    return received.plaintext;
  }

  /**
   * A post-quantum session's authenticated plaintext: the caller's plaintext and the plan for the
   * KEM piece it carries (PROTOCOL.md §6.7 "The KEM extension"). Throws DecodeError, before
   * anything changes, for malformed KEM material. A classical session's plaintext is returned as
   * it is.
   */
  private receiveKem(opened: Uint8Array, mixedStep: boolean): { plaintext: Uint8Array; kem: KemPlan | null } {
    const kem = this.state.kem;
    if (!kem) return { plaintext: opened, kem: null };
    const { plaintext, piece } = unwrapPlaintext(opened);
    return { plaintext, kem: planKem(kem, piece, mixedStep) };
  }

  /** Commits a KEM plan outside a DH ratchet step (draws, if any, as §6.7 "Epochs and phases" lists). */
  private commitKem(plan: KemPlan | null): void {
    const s = this.state;
    if (s.kem && plan) s.kem = commitKem(s.kem, plan, this.random);
  }

  /** Works out every change the message implies without touching the state. */
  private plan(ratchetKey: Uint8Array, index: number, previousChainLength: number, mixed: boolean): Pending {
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
    // MIXED: the peer derived this chain with the secret this side encapsulated (PROTOCOL.md §6.7 "Mixing").
    const kemSecret = mixed && s.kem ? secretForReceiving(s.kem) : null;
    if (mixed && !kemSecret) {
      throw new RatchetError("AUTH", "message claims a KEM secret that this session does not hold");
    }
    if (s.receiveChain && s.remoteKey && gap > 0) {
      const done = skipKeys(s.receiveChain, s.remoteKey, s.receiveIndex, previousChainLength, skipped);
      wipe(done);
    }
    let rootKey: Uint8Array;
    let receiveChain: Uint8Array;
    try {
      [rootKey, receiveChain] = kdfRoot(
        s.rootKey,
        dh(s.sending.secretKey, ratchetKey),
        kemSecret ?? undefined,
      );
    } catch (e) {
      for (const k of skipped) wipe(k.messageKey);
      if (e instanceof CryptoError && e.code === "LOW_ORDER") throw new RatchetError("LOW_ORDER", e.message);
      throw e;
    }
    const start = skipKeys(receiveChain, ratchetKey, 0, index, skipped);
    wipe(receiveChain);
    return {
      step: { remoteKey: Uint8Array.from(ratchetKey), rootKey, receiveChain: start, mixed },
      skipped,
      receiveChain: start,
      receiveIndex: index,
    };
  }

  private commit(p: Pending, nextChain: Uint8Array, kemPlan: KemPlan | null): void {
    const s = this.state;
    if (p.step) {
      // The sending half of the step: the remote key already passed the LOW_ORDER check of the
      // receiving half, so this DH cannot fail. Its ratchet secret is drawn before any KEM draw.
      const sending = x25519KeyPair(this.random);
      this.commitKem(kemPlan);
      // A keyholder whose secret is ready mixes it into its new sending chain (PROTOCOL.md §6.7 "Mixing").
      const ready = s.kem ? takeSecretForSending(s.kem) : null;
      const dhOut = dh(sending.secretKey, p.step.remoteKey);
      const [rootKey, sendChain] = kdfRoot(p.step.rootKey, dhOut, ready?.secret);
      wipe(s.rootKey, p.step.rootKey, s.sending.secretKey, s.sendChain ?? undefined, ready?.secret);
      if (ready) s.kem = ready.next;
      s.sendMixed = ready !== null;
      s.previousSendCount = s.sendIndex;
      s.sendIndex = 0;
      s.remoteKey = p.step.remoteKey;
      s.rootKey = rootKey;
      s.sending = sending;
      s.sendChain = sendChain;
    } else {
      this.commitKem(kemPlan);
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
   * Serializes the full state for storage (PROTOCOL.md §6.5): version 1 for a classical session,
   * version 2 for a post-quantum one. Contains secret keys: the client encrypts it at rest.
   */
  serialize(): Uint8Array {
    return serializeState(this.state);
  }

  /** Restores a session from {@link serialize}'s bytes (either version); malformed bytes: DecodeError. */
  static deserialize(bytes: Uint8Array, options: Omit<SessionOptions, "postQuantum"> = {}): Session {
    return new Session(deserializeState(bytes), options.random ?? systemRandom);
  }

  /** Overwrites every secret in the state; the session is unusable afterwards. */
  wipe(): void {
    const s = this.state;
    wipe(s.rootKey, s.sending.secretKey, s.sendChain ?? undefined, s.receiveChain ?? undefined);
    for (const k of s.skipped.values()) wipe(k.messageKey);
    if (s.kem) wipeKem(s.kem);
    s.skipped.clear();
    s.sendChain = null;
    s.receiveChain = null;
  }
}

function discard(p: Pending, nextChain: Uint8Array): void {
  wipe(nextChain, p.receiveChain);
  for (const k of p.skipped) wipe(k.messageKey);
  if (p.step) wipe(p.step.rootKey);
}
