// Post-quantum break-in recovery for the Double Ratchet (PROTOCOL.md §6.7). The two sides of a
// post-quantum session keep one ML-KEM-768 exchange in flight at all times: in each epoch one side,
// the keyholder, sends a fresh encapsulation key; the other encapsulates to it and sends the
// ciphertext back; the shared secret enters the root chain at the keyholder's next DH ratchet step,
// and the roles swap. Key and ciphertext travel in 16-byte units written over the zero bytes that
// pad an ordinary message's plaintext, so they cost no bytes on the wire where there is room.
import { equalConstantTime, type Reader, type Writer, wipe } from "./_bytes.js";
import type { RandomSource } from "./crypto.js";
import { DecodeError } from "./errors.js";
import {
  ML_KEM_CIPHERTEXT_LENGTH,
  ML_KEM_PUBLIC_KEY_LENGTH,
  ML_KEM_SEED_LENGTH,
  ML_KEM_SHARED_SECRET_LENGTH,
  mlKemDecapsulate,
  mlKemEncapsulate,
  mlKemKeyPair,
  mlKemPublicKey,
  mlKemPublicKeyProblem,
} from "./kem.js";

/** Key and ciphertext travel in units of this many bytes. */
export const KEM_UNIT_LENGTH = 16;
/** 1184 / 16: units of an encapsulation key. */
export const KEY_UNITS = ML_KEM_PUBLIC_KEY_LENGTH / KEM_UNIT_LENGTH;
/** 1088 / 16: units of a ciphertext. */
export const CIPHERTEXT_UNITS = ML_KEM_CIPHERTEXT_LENGTH / KEM_UNIT_LENGTH;
/** A piece's bytes after its units: kind (1), epoch (4), first unit (1), unit count (1), descriptor (1). */
export const PIECE_OVERHEAD = 8;

/** The last byte of a v3 plaintext says what precedes it (§6.7 "The KEM extension"). */
const Descriptor = { borrowed: 0x00, appended: 0x01, piece: 0x02 } as const;
/** What a piece carries. */
export const PieceKind = { encapsulationKey: 1, ciphertext: 2 } as const;
type PieceKindValue = (typeof PieceKind)[keyof typeof PieceKind];

/** Part of an encapsulation key or a ciphertext, as one message carries it. */
export interface Piece {
  readonly kind: PieceKindValue;
  readonly epoch: number;
  readonly first: number;
  readonly count: number;
  readonly units: Uint8Array;
}

/** An object being assembled from units that may arrive in any order, and more than once. */
interface Assembly {
  readonly bytes: Uint8Array;
  readonly held: readonly boolean[];
}

/**
 * The KEM half of a post-quantum session's state (§6.7 "Epochs and phases"). The keyholder of an
 * epoch is first "awaiting-ciphertext" (it holds the seed of its key pair and sends the key), then
 * "secret-ready"; the encapsulator is first "awaiting-key", then "ciphertext-sent".
 */
export type KemState =
  | {
      readonly phase: "awaiting-ciphertext";
      readonly epoch: number;
      /** d || z of the epoch's ML-KEM-768 key pair (FIPS 203 seed form). Secret. */
      readonly seed: Uint8Array;
      /** The next unit of the encapsulation key to send. */
      readonly cursor: number;
      readonly ciphertext: Assembly;
    }
  | { readonly phase: "secret-ready"; readonly epoch: number; readonly secret: Uint8Array }
  | { readonly phase: "awaiting-key"; readonly epoch: number; readonly key: Assembly }
  | {
      readonly phase: "ciphertext-sent";
      readonly epoch: number;
      readonly secret: Uint8Array;
      readonly ciphertext: Uint8Array;
      readonly cursor: number;
    };

const PHASES = ["awaiting-ciphertext", "secret-ready", "awaiting-key", "ciphertext-sent"] as const;

/** Encapsulation keys by seed: the key is public and sent piece by piece, so it is kept. */
const keyCache = new WeakMap<Uint8Array, Uint8Array>();

const emptyAssembly = (units: number): Assembly => ({
  bytes: new Uint8Array(units * KEM_UNIT_LENGTH),
  held: new Array<boolean>(units).fill(false),
});

const complete = (a: Assembly): boolean => a.held.every(Boolean);

/** A new key pair (PROTOCOL.md §1.2: draws d, then z), kept as its seed; its key is cached. */
const drawSeed = (random: RandomSource): Uint8Array => {
  const { seed, publicKey } = mlKemKeyPair(random);
  keyCache.set(seed, publicKey);
  return seed;
};

/** A new session's: the accepter holds the key of epoch 1 (it draws d and z), the inviter waits for it. */
export function initialKem(role: "keyholder" | "encapsulator", random: RandomSource): KemState {
  if (role === "encapsulator") return { phase: "awaiting-key", epoch: 1, key: emptyAssembly(KEY_UNITS) };
  return {
    phase: "awaiting-ciphertext",
    epoch: 1,
    seed: drawSeed(random),
    cursor: 0,
    ciphertext: emptyAssembly(CIPHERTEXT_UNITS),
  };
}

function encapsulationKeyOf(seed: Uint8Array): Uint8Array {
  let key = keyCache.get(seed);
  if (!key) {
    key = mlKemPublicKey(seed);
    keyCache.set(seed, key);
  }
  return key;
}

/** The object this side sends in its padding now, if any (§6.7 "The KEM extension" "what a sender sends"). */
function outgoing(kem: KemState): { kind: PieceKindValue; object: Uint8Array; cursor: number } | null {
  // The keyholder stops sending its key once a piece of the ciphertext shows the peer has it all.
  if (kem.phase === "awaiting-ciphertext" && !kem.ciphertext.held.some(Boolean))
    return { kind: PieceKind.encapsulationKey, object: encapsulationKeyOf(kem.seed), cursor: kem.cursor };
  if (kem.phase === "ciphertext-sent")
    return { kind: PieceKind.ciphertext, object: kem.ciphertext, cursor: kem.cursor };
  return null;
}

function trailingZeros(bytes: Uint8Array): number {
  let n = 0;
  while (n < bytes.length && bytes[bytes.length - 1 - n] === 0) n++;
  return n;
}

/**
 * The v3 plaintext for `plaintext` (§6.7 "The KEM extension"): the next piece written over its
 * trailing zero bytes when they leave room for one, else `plaintext` itself (its last zero byte is
 * the descriptor), or
 * `plaintext || 0x01` when it does not end in a zero byte. `cursor` is the sender's position after
 * this piece (null: no piece), committed once the message is sealed.
 */
export function wrapPlaintext(
  plaintext: Uint8Array,
  kem: KemState,
): { inner: Uint8Array; cursor: number | null } {
  const zeros = trailingZeros(plaintext);
  const out = outgoing(kem);
  const total = out ? out.object.length / KEM_UNIT_LENGTH : 0;
  const room = Math.floor((zeros - PIECE_OVERHEAD) / KEM_UNIT_LENGTH);
  if (out && room >= 1) {
    const count = Math.min(room, total - out.cursor);
    const size = count * KEM_UNIT_LENGTH + PIECE_OVERHEAD;
    const inner = Uint8Array.from(plaintext);
    let at = inner.length - size;
    const start = out.cursor * KEM_UNIT_LENGTH;
    inner.set(out.object.subarray(start, start + count * KEM_UNIT_LENGTH), at);
    at += count * KEM_UNIT_LENGTH;
    inner[at] = out.kind;
    new DataView(inner.buffer, inner.byteOffset).setUint32(at + 1, kem.epoch);
    inner[at + 5] = out.cursor;
    inner[at + 6] = count;
    inner[at + 7] = Descriptor.piece;
    return { inner, cursor: (out.cursor + count) % total };
  }
  // Its last zero byte is the descriptor: the plaintext is sealed as it is (sealing does not change it).
  if (zeros > 0) return { inner: plaintext, cursor: null };
  const inner = new Uint8Array(plaintext.length + 1);
  inner.set(plaintext);
  inner[plaintext.length] = Descriptor.appended;
  return { inner, cursor: null };
}

/** The sender's position after a sealed message. */
export function advanceCursor(kem: KemState, cursor: number): KemState {
  if (kem.phase === "awaiting-ciphertext" || kem.phase === "ciphertext-sent") return { ...kem, cursor };
  return kem;
}

const malformed = (what: string) => new DecodeError(`post-quantum message: ${what}`);

/** Splits an opened v3 plaintext into the caller's plaintext and its piece (§6.7 "The KEM extension"). */
export function unwrapPlaintext(inner: Uint8Array): { plaintext: Uint8Array; piece: Piece | null } {
  const n = inner.length;
  if (n === 0) throw malformed("empty plaintext, no KEM descriptor");
  const descriptor = inner[n - 1]!;
  if (descriptor === Descriptor.borrowed) return { plaintext: inner, piece: null };
  if (descriptor === Descriptor.appended) {
    if (n > 1 && inner[n - 2] === 0)
      throw malformed(
        "descriptor 1 appended to a plaintext that ends in a zero byte (descriptor 0 borrows it)",
      );
    return { plaintext: inner.slice(0, n - 1), piece: null };
  }
  if (descriptor !== Descriptor.piece) throw malformed(`unknown KEM descriptor ${descriptor}`);
  if (n < PIECE_OVERHEAD)
    throw malformed(`a KEM piece needs ${PIECE_OVERHEAD} bytes, the plaintext has ${n}`);
  const kind = inner[n - 8]!;
  const epoch = new DataView(inner.buffer, inner.byteOffset).getUint32(n - 7);
  const first = inner[n - 3]!;
  const count = inner[n - 2]!;
  if (kind !== PieceKind.encapsulationKey && kind !== PieceKind.ciphertext)
    throw malformed(`unknown KEM piece kind ${kind}`);
  if (epoch === 0) throw malformed("KEM piece for epoch 0 (epochs start at 1)");
  if (count === 0) throw malformed("KEM piece of 0 units");
  const total = kind === PieceKind.encapsulationKey ? KEY_UNITS : CIPHERTEXT_UNITS;
  if (first + count > total)
    throw malformed(`KEM piece units ${first}..${first + count - 1} outside the ${total} of its object`);
  const size = count * KEM_UNIT_LENGTH + PIECE_OVERHEAD;
  if (n < size) throw malformed(`KEM piece of ${count} units needs ${size} bytes, the plaintext has ${n}`);
  const units = inner.slice(n - size, n - PIECE_OVERHEAD);
  // The piece was written over zero bytes of the sender's plaintext: they come back as zeros.
  const plaintext = new Uint8Array(n);
  plaintext.set(inner.subarray(0, n - size));
  return { plaintext, piece: { kind, epoch, first, count, units } };
}

/** `a` with the piece's units added; null when it brings nothing new. Refuses a contradiction. */
function assemble(a: Assembly, piece: Piece, epoch: number): Assembly | null {
  let fresh = false;
  for (let i = 0; i < piece.count; i++) {
    const unit = piece.first + i;
    if (!a.held[unit]) {
      fresh = true;
      continue;
    }
    const at = unit * KEM_UNIT_LENGTH;
    const mine = a.bytes.subarray(at, at + KEM_UNIT_LENGTH);
    const theirs = piece.units.subarray(i * KEM_UNIT_LENGTH, (i + 1) * KEM_UNIT_LENGTH);
    if (!equalConstantTime(mine, theirs))
      throw malformed(`KEM piece unit ${unit} differs from the one already received for epoch ${epoch}`);
  }
  if (!fresh) return null;
  const bytes = Uint8Array.from(a.bytes);
  const held = [...a.held];
  bytes.set(piece.units, piece.first * KEM_UNIT_LENGTH);
  for (let i = 0; i < piece.count; i++) held[piece.first + i] = true;
  return { bytes, held };
}

/** What an authenticated message does to the KEM state, worked out before anything changes. */
export interface KemPlan {
  /**
   * The state to commit. It may share arrays (the seed) with the current state, which the session
   * drops at commit; it changes none of the current state's arrays.
   */
  readonly next: KemState;
  /** This message's DH ratchet step mixed the encapsulator's secret: the next epoch starts. */
  readonly startEpoch: boolean;
}

/**
 * Plans the effect of an authenticated message: its ratchet step mixed this side's secret
 * (`mixedStep`, only ever in "ciphertext-sent"), and the piece it carries. Throws DecodeError for a
 * piece no honest peer sends (§6.7 "Receiving"); returns null when nothing changes.
 */
export function planKem(kem: KemState, piece: Piece | null, mixedStep: boolean): KemPlan | null {
  let next: KemState = kem;
  if (mixedStep) {
    // The seed is drawn at commit; until then it is a placeholder no one reads.
    next = {
      phase: "awaiting-ciphertext",
      epoch: kem.epoch + 1,
      seed: new Uint8Array(ML_KEM_SEED_LENGTH),
      cursor: 0,
      ciphertext: emptyAssembly(CIPHERTEXT_UNITS),
    };
  }
  if (piece && piece.epoch > next.epoch)
    throw malformed(`KEM piece for epoch ${piece.epoch}, ahead of this session's epoch ${next.epoch}`);
  // A piece of an earlier epoch was delayed or sent again: its exchange is over, it is ignored.
  if (piece && piece.epoch === next.epoch) {
    const keyholder = next.phase === "awaiting-ciphertext" || next.phase === "secret-ready";
    const expected = keyholder ? PieceKind.ciphertext : PieceKind.encapsulationKey;
    if (piece.kind !== expected) {
      throw malformed(
        `KEM piece of kind ${piece.kind} in epoch ${piece.epoch}, where the peer sends ${keyholder ? "the ciphertext (2)" : "the encapsulation key (1)"}`,
      );
    }
    // Pieces of an object already complete are retransmissions: ignored.
    if (next.phase === "awaiting-ciphertext") {
      const ciphertext = assemble(next.ciphertext, piece, next.epoch);
      if (ciphertext) next = { ...next, ciphertext };
    } else if (next.phase === "awaiting-key") {
      const key = assemble(next.key, piece, next.epoch);
      if (key) next = { ...next, key };
    }
  }
  if (next === kem) return null;
  if (next.phase === "awaiting-key" && complete(next.key)) {
    const problem = mlKemPublicKeyProblem(next.key.bytes);
    if (problem) throw malformed(`the assembled encapsulation key: ${problem}`);
  }
  return { next, startEpoch: mixedStep };
}

/**
 * Commits a plan (§6.7 "Epochs and phases"): draws the new keyholder's key pair (d, z) when an
 * epoch starts, decapsulates a completed ciphertext, or draws 32 bytes and encapsulates to a completed
 * key. Wipes what the previous state used up.
 */
export function commitKem(previous: KemState, plan: KemPlan, random: RandomSource): KemState {
  let next = plan.next;
  if (plan.startEpoch) {
    if (previous.phase === "ciphertext-sent") wipe(previous.secret);
    if (next.phase === "awaiting-ciphertext") next = { ...next, seed: drawSeed(random) };
  }
  if (next.phase === "awaiting-ciphertext" && complete(next.ciphertext)) {
    const secret = mlKemDecapsulate(next.seed, next.ciphertext.bytes);
    wipe(next.seed);
    return { phase: "secret-ready", epoch: next.epoch, secret };
  }
  if (next.phase === "awaiting-key" && complete(next.key)) {
    // Draws m (32 bytes) and wipes it; the key passed the §7.2 check in planKem.
    const { ciphertext, sharedSecret } = mlKemEncapsulate(next.key.bytes, random);
    return { phase: "ciphertext-sent", epoch: next.epoch, secret: sharedSecret, ciphertext, cursor: 0 };
  }
  return next;
}

/** The secret a MIXED DH ratchet step from the peer uses on this side (§6.7 "Mixing"), or null. */
export function secretForReceiving(kem: KemState): Uint8Array | null {
  return kem.phase === "ciphertext-sent" ? kem.secret : null;
}

/**
 * At the sending half of a DH ratchet step: the keyholder's secret, if ready, and the state after
 * it is used (the next epoch, in which this side encapsulates). The caller wipes the secret.
 */
export function takeSecretForSending(kem: KemState): { secret: Uint8Array; next: KemState } | null {
  if (kem.phase !== "secret-ready") return null;
  return {
    secret: kem.secret,
    next: { phase: "awaiting-key", epoch: kem.epoch + 1, key: emptyAssembly(KEY_UNITS) },
  };
}

export function wipeKem(kem: KemState): void {
  if (kem.phase === "awaiting-ciphertext") wipe(kem.seed);
  else if (kem.phase === "secret-ready" || kem.phase === "ciphertext-sent") wipe(kem.secret);
}

// Serialization (§6.5, version 2): epoch, phase, MIXED, then the phase's fields.

function writeAssembly(w: Writer, a: Assembly): void {
  const bitmap = new Uint8Array(Math.ceil(a.held.length / 8));
  a.held.forEach((h, i) => {
    if (h) bitmap[i >> 3]! |= 0x80 >> (i & 7);
  });
  w.bytes(bitmap).bytes(a.bytes);
}

function readAssembly(r: Reader, units: number, what: string): Assembly {
  const bitmap = r.bytes(Math.ceil(units / 8), `${what} bitmap`);
  const bytes = r.bytes(units * KEM_UNIT_LENGTH, what);
  const held = Array.from({ length: units }, (_, i) => (bitmap[i >> 3]! & (0x80 >> (i & 7))) !== 0);
  for (let i = units; i < bitmap.length * 8; i++) {
    if (bitmap[i >> 3]! & (0x80 >> (i & 7))) throw malformedState(`${what} bitmap has bit ${i} set`);
  }
  if (held.every(Boolean)) throw malformedState(`${what} complete but not yet used`);
  for (let i = 0; i < units; i++) {
    if (held[i]) continue;
    const unit = bytes.subarray(i * KEM_UNIT_LENGTH, (i + 1) * KEM_UNIT_LENGTH);
    if (unit.some((b) => b !== 0)) throw malformedState(`${what} unit ${i} not received but not zero`);
  }
  return { bytes, held };
}

const malformedState = (what: string) => new DecodeError(`session: ${what}`);

export function writeKem(w: Writer, kem: KemState, sendMixed: boolean): void {
  w.u32(kem.epoch)
    .u8(PHASES.indexOf(kem.phase) + 1)
    .u8(sendMixed ? 1 : 0);
  switch (kem.phase) {
    case "awaiting-ciphertext":
      w.bytes(kem.seed).u8(kem.cursor);
      writeAssembly(w, kem.ciphertext);
      break;
    case "secret-ready":
      w.bytes(kem.secret);
      break;
    case "awaiting-key":
      writeAssembly(w, kem.key);
      break;
    case "ciphertext-sent":
      w.bytes(kem.secret).u8(kem.cursor).bytes(kem.ciphertext);
      break;
  }
}

export function readKem(r: Reader): { kem: KemState; sendMixed: boolean } {
  const epoch = r.u32("KEM epoch");
  const code = r.u8("KEM phase");
  const mixed = r.u8("MIXED");
  if (epoch === 0) throw malformedState("KEM epoch 0");
  const phase = PHASES[code - 1];
  if (!phase) throw malformedState(`unknown KEM phase ${code}`);
  if (mixed > 1) throw malformedState(`MIXED is ${mixed}, not 0 or 1`);
  const cursorOf = (units: number) => {
    const cursor = r.u8("KEM cursor");
    if (cursor >= units) throw malformedState(`KEM cursor ${cursor} outside the ${units} units`);
    return cursor;
  };
  let kem: KemState;
  switch (phase) {
    case "awaiting-ciphertext": {
      const seed = r.bytes(ML_KEM_SEED_LENGTH, "KEM seed");
      const cursor = cursorOf(KEY_UNITS);
      kem = { phase, epoch, seed, cursor, ciphertext: readAssembly(r, CIPHERTEXT_UNITS, "KEM ciphertext") };
      break;
    }
    case "secret-ready":
      kem = { phase, epoch, secret: r.bytes(ML_KEM_SHARED_SECRET_LENGTH, "KEM secret") };
      break;
    case "awaiting-key":
      kem = { phase, epoch, key: readAssembly(r, KEY_UNITS, "KEM encapsulation key") };
      break;
    case "ciphertext-sent": {
      const secret = r.bytes(ML_KEM_SHARED_SECRET_LENGTH, "KEM secret");
      const cursor = cursorOf(CIPHERTEXT_UNITS);
      kem = {
        phase,
        epoch,
        secret,
        cursor,
        ciphertext: r.bytes(ML_KEM_CIPHERTEXT_LENGTH, "KEM ciphertext"),
      };
      break;
    }
  }
  return { kem, sendMixed: mixed === 1 };
}
