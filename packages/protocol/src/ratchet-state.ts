// The state of one side of a Double Ratchet session and its serialization (PROTOCOL.md §6.1, §6.5):
// version 1 for classical sessions (unchanged since the first release), version 2 for post-quantum
// sessions, which append their KEM state (§6.7).
import { equalConstantTime, Reader, toHex, Writer } from "./_bytes.js";
import { type KeyPair, TAG_LENGTH, x25519PublicKey } from "./crypto.js";
import { acceptDigest, MAX_SEALED_IDENTITY_LENGTH } from "./envelope.js";
import { DecodeError } from "./errors.js";
import { type KemState, readKem, writeKem } from "./ratchet-pq.js";

/** Most skipped message keys kept in total; beyond it the oldest are deleted. */
export const MAX_STORED_SKIPPED = 2000;

/** Serialization version of a classical session. */
const CLASSICAL_STATE_VERSION = 1;
/** Serialization version of a post-quantum session: version 1's fields, then the KEM state. */
const PQ_STATE_VERSION = 2;

export interface SkippedKey {
  readonly ratchetKey: Uint8Array;
  readonly index: number;
  readonly messageKey: Uint8Array;
}

export const skippedId = (ratchetKey: Uint8Array, index: number): string => `${toHex(ratchetKey)}:${index}`;

/** State of one side of a session (Signal §3.2), plus Parley's associated data and handshake binding. */
export interface State {
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
  /** Post-quantum sessions only (§6.7): the KEM exchange in flight. Null: a classical session. */
  kem: KemState | null;
  /** The current sending chain was derived with a KEM secret: its headers carry MIXED (§6.7 "Mixing"). */
  sendMixed: boolean;
}

/** The state's bytes (PROTOCOL.md §6.5). Contains secret keys: the client encrypts them at rest. */
export function serializeState(s: State): Uint8Array {
  const w = new Writer()
    .u8(s.kem ? PQ_STATE_VERSION : CLASSICAL_STATE_VERSION)
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
  if (s.kem) writeKem(w, s.kem, s.sendMixed);
  return w.finish();
}

/** Strictly decodes a serialized state; any malformed input is a {@link DecodeError}. */
export function deserializeState(bytes: Uint8Array): State {
  const r = new Reader(bytes, "session");
  const version = r.u8("version");
  if (version !== CLASSICAL_STATE_VERSION && version !== PQ_STATE_VERSION)
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
  const pq = version === PQ_STATE_VERSION ? readKem(r) : null;
  if (pq?.sendMixed && !sendChain) throw new DecodeError("session: MIXED without a sending chain");
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
  return {
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
    kem: pq?.kem ?? null,
    sendMixed: pq?.sendMixed ?? false,
  };
}
