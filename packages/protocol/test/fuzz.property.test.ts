// Fuzzing with fast-check: every decoder and every entry point that takes untrusted bytes (or an
// untrusted string) either succeeds or throws one of the package's typed errors (a ParleyError),
// never a TypeError, RangeError or anything else. Inputs are random bytes and mutated valid
// encodings (bits flipped, bytes set, inserted, deleted, truncated, appended). A decoder that
// accepts something must accept only the canonical encoding of what it returns. Refused messages
// leave sessions and the invitation book byte-for-byte unchanged. Encode -> decode -> encode is the
// identity for every frame type, for invitation codes and for payloads.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concat, fromHex, toHex, utf8 } from "../src/_bytes.js";
import type { RandomSource } from "../src/crypto.js";
import {
  type Envelope,
  encodeAccept,
  encodeAcceptPrefix,
  encodeHeader,
  encodeMessage,
  type MessageEnvelope,
} from "../src/envelope.js";
import {
  acceptInvitation,
  bucketFor,
  createInvitation,
  decodeEnvelope,
  decodeFrame,
  decodeInvitation,
  decodePayload,
  decodePublicIdentity,
  encodeFrame,
  encodeInvitation,
  encodePayload,
  encodePublicIdentity,
  type Frame,
  Identity,
  type Invitation,
  InvitationBook,
  MAX_RECEIPT_IDS,
  MAX_TEXT_BYTES,
  MailboxKey,
  PADDING_BUCKETS,
  ParleyError,
  type Payload,
  PayloadError,
  PendingInvitation,
  RelayErrorCode,
  type RelayErrorName,
  relayUrlProblem,
  Session,
} from "../src/index.js";
import { MAX_INVITATION_TTL_SECONDS } from "../src/invitation.js";

const RELAY = "wss://relay.example.org";
/** Runs for decoders that cost microseconds. */
const CHEAP = 2000;
/** Runs for inputs that may reach X25519, Ed25519 or a ratchet step (a few milliseconds each). */
const COSTLY = 600;

// ---------------------------------------------------------------------------------------------
// Helpers

type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: ParleyError };

/** Calls a function on untrusted input: it may return or throw a ParleyError, and nothing else. */
function typed<T>(what: string, call: () => T): Outcome<T> {
  try {
    return { ok: true, value: call() };
  } catch (e) {
    if (e instanceof ParleyError) return { ok: false, error: e };
    const shown = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    throw new Error(`${what} threw ${shown}, not a ParleyError`, { cause: e });
  }
}

/** Like `typed`, but the call must be refused and `snapshot()` must be unchanged afterwards. */
function refusedUnchanged(what: string, call: () => unknown, snapshot: () => Uint8Array): ParleyError {
  const before = snapshot();
  const outcome = typed(what, call);
  if (outcome.ok) throw new Error(`${what}: accepted, but it must be refused`);
  if (!sameBytes(before, snapshot())) {
    throw new Error(`${what}: refused (${outcome.error.name} ${outcome.error.code}) but the state changed`);
  }
  return outcome.error;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
/** Random bytes, up to a few KiB. */
const junk = fc.uint8Array({ maxLength: 4096, size: "max" });
/** Random bytes after a chosen prefix (a valid version and kind byte, say), to get past the first checks. */
const junkAfter = (...prefixes: number[][]) =>
  fc
    .tuple(fc.constantFrom(...prefixes), fc.uint8Array({ maxLength: 1024, size: "max" }))
    .map(([prefix, rest]) => concat(Uint8Array.from(prefix), rest));

type Mutation =
  | { readonly m: "flip"; readonly at: number; readonly bit: number }
  | { readonly m: "set"; readonly at: number; readonly value: number }
  | { readonly m: "insert"; readonly at: number; readonly bytes: Uint8Array }
  | { readonly m: "delete"; readonly at: number; readonly count: number }
  | { readonly m: "truncate"; readonly at: number }
  | { readonly m: "append"; readonly bytes: Uint8Array };

const at = fc.nat();
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ m: fc.constant("flip" as const), at, bit: fc.nat(7) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      m: fc.constant("set" as const),
      at,
      value: fc.oneof(fc.constantFrom(0, 1, 2, 0x7f, 0x80, 0xfe, 0xff), fc.nat(255)),
    }),
  },
  fc.record({ m: fc.constant("insert" as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ m: fc.constant("delete" as const), at, count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ m: fc.constant("truncate" as const), at }),
  fc.record({ m: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
);

/** Applies the mutations (positions taken modulo the current length); also describes what was done. */
function mutate(input: Uint8Array, mutations: readonly Mutation[]): { bytes: Uint8Array; applied: string[] } {
  let out: Uint8Array = Uint8Array.from(input);
  const applied: string[] = [];
  for (const mu of mutations) {
    switch (mu.m) {
      case "flip": {
        if (out.length === 0) break;
        const i = mu.at % out.length;
        out[i]! ^= 1 << mu.bit;
        applied.push(`flip bit ${mu.bit} of byte ${i}`);
        break;
      }
      case "set": {
        if (out.length === 0) break;
        const i = mu.at % out.length;
        out[i] = mu.value;
        applied.push(`set byte ${i} to ${mu.value}`);
        break;
      }
      case "insert": {
        const i = mu.at % (out.length + 1);
        out = concat(out.subarray(0, i), mu.bytes, out.subarray(i));
        applied.push(`insert [${mu.bytes.join(",")}] at ${i}`);
        break;
      }
      case "delete": {
        const i = mu.at % (out.length + 1);
        out = concat(out.subarray(0, i), out.subarray(i + mu.count));
        applied.push(`delete ${mu.count} bytes at ${i}`);
        break;
      }
      case "truncate": {
        const n = mu.at % (out.length + 1);
        out = out.slice(0, n);
        applied.push(`truncate to ${n} bytes`);
        break;
      }
      case "append":
        out = concat(out, mu.bytes);
        applied.push(`append [${mu.bytes.join(",")}]`);
        break;
    }
  }
  return { bytes: out, applied };
}

interface Mutated {
  readonly original: Uint8Array;
  readonly bytes: Uint8Array;
}

/** Pairs an original with its mutated bytes; counterexamples print as "<what> (<n> bytes): <mutations>". */
function mutatedValue(what: string, original: Uint8Array, mutations: readonly Mutation[]): Mutated {
  const { bytes, applied } = mutate(original, mutations);
  return {
    original,
    bytes,
    [fc.toStringMethod]: () => `${what} (${original.length} bytes): ${applied.join("; ")}`,
  } as Mutated;
}

const mutationsArb = fc.array(mutationArb, { minLength: 1, maxLength: 4 });

/** A valid encoding (from `valid`) with one to four mutations applied. */
function mutatedFrom(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Mutated> {
  return fc
    .tuple(valid, mutationsArb)
    .map(([original, ms]) => mutatedValue(fc.stringify(original), original, ms));
}

/** One of the named valid encodings with one to four mutations applied. */
function mutatedOf(valid: Record<string, Uint8Array>): fc.Arbitrary<Mutated> {
  return fc
    .tuple(fc.constantFrom(...Object.keys(valid)), mutationsArb)
    .map(([name, ms]) => mutatedValue(name, valid[name]!, ms));
}

/** Random bytes as a Mutated with nothing to compare against. */
const asMutated = (arb: fc.Arbitrary<Uint8Array>) =>
  arb.map(
    (b) => ({ original: new Uint8Array(0), bytes: b, [fc.toStringMethod]: () => fc.stringify(b) }) as Mutated,
  );

/** A RandomSource handing out the given bytes in order (for reproducible keys from fast-check). */
function randomFrom(seed: Uint8Array): RandomSource {
  let offset = 0;
  return (length) => {
    if (offset + length > seed.length) throw new Error("test random source exhausted");
    const out = seed.slice(offset, offset + length);
    offset += length;
    return out;
  };
}

const text = (t: string) =>
  encodePayload({ type: "text", id: new Uint8Array(16).fill(7), sentAt: 1, text: t });

// ---------------------------------------------------------------------------------------------
// One conversation, built once, whose valid encodings the mutations start from.
//
// Alice invites Bob (first invitation) and Carol (second). Bob's Accept opened Alice's session;
// his second message b1 (still wrapped in the Accept) and his first plain message b2 are not yet
// delivered to Alice. Alice sent a0..a3; Bob received a0 and a2, so a1's key is in his skipped
// store and a3 is ahead of his chain. Carol's Accept has not reached Alice's book.

const legacy = (
  JSON.parse(readFileSync(new URL("../vectors/kat.json", import.meta.url), "utf8")) as {
    legacyV1: { accept: string; reply: { wire: string } };
  }
).legacyV1;

const fx = (() => {
  const alice = Identity.generate();
  const bob = Identity.generate();
  const carol = Identity.generate();
  const aliceMailbox = MailboxKey.generate();
  const bobMailbox = MailboxKey.generate();
  const book = new InvitationBook();
  const first = createInvitation(alice, {
    postQuantum: false,
    relayUrl: RELAY,
    mailbox: aliceMailbox.address,
  });
  // The second invitation is post-quantum (version 2, PROTOCOL.md §4.1): Carol's Accept and session
  // carry a KEM ciphertext, and its code is the one the mutations start from.
  const second = createInvitation(alice, {
    relayUrl: "ws://127.0.0.1:7070/inbox?x=1",
    mailbox: bobMailbox.address,
  });
  const pendingV2Bytes = second.pending.serialize();
  const pendingBytes = first.pending.serialize();
  book.add(first.pending);
  book.add(second.pending);

  const accepted = acceptInvitation(bob, decodeInvitation(first.code), {
    mailbox: bobMailbox.address,
    relayUrl: RELAY,
    plaintext: text("b0"),
  });
  const bobSession = accepted.session;
  const b0 = accepted.message;
  const b1 = bobSession.encrypt(text("b1"));
  const aliceSession = book.accept(alice, b0).session;
  const [a0, a1, a2, a3] = ["a0", "a1", "a2", "a3"].map((t) => aliceSession.encrypt(text(t))) as [
    Uint8Array,
    Uint8Array,
    Uint8Array,
    Uint8Array,
  ];
  bobSession.decrypt(a0);
  bobSession.decrypt(a2);
  const b2 = bobSession.encrypt(text("b2"));
  const carolAccepted = acceptInvitation(carol, decodeInvitation(second.code), {
    mailbox: MailboxKey.generate().address,
    relayUrl: RELAY,
    plaintext: text("c0"),
    kemPublicKey: second.pending.kemPublicKey,
  });
  expect(bobSession.skippedCount).toBe(1);
  return {
    alice,
    book,
    aliceSession,
    bobSession,
    carolSession: carolAccepted.session,
    carolAccept: carolAccepted.message,
    invitation: second.invitation,
    code: second.code,
    pendingBytes,
    pendingV2Bytes,
    mailboxBytes: aliceMailbox.serialize(),
    publicIdentity: encodePublicIdentity(alice.publicIdentity),
    /** Already delivered (replays). */
    delivered: { alice: { b0 }, bob: { a0, a2 } },
    /** Valid and not yet delivered. */
    undelivered: { alice: { b1, b2 }, bob: { a1, a3 } },
    envelopes: {
      b0,
      b1,
      b2,
      a0,
      a1,
      a2,
      a3,
      carolAccept: carolAccepted.message,
      // Legacy v1 Messages (decrypt-only, PROTOCOL.md §6.3), from the known-answer vectors.
      legacyAccept: fromHex(legacy.accept),
      legacyMessage: fromHex(legacy.reply.wire),
    },
  };
})();

// ---------------------------------------------------------------------------------------------
// Frames

const requestId = u32;
const address = bytes(32);
const signature = bytes(64);
const ciphertext = fc.uint8Array({ minLength: 1, maxLength: 2048 });

const blobId = bytes(32);
const token = bytes(32);
/** Sealed chunks of every length 16 … 65 552, the longest ones at their bounds only (to stay fast). */
const sealedChunk = fc.oneof(
  { arbitrary: fc.uint8Array({ minLength: 16, maxLength: 600 }), weight: 30 },
  { arbitrary: fc.constantFrom(65551, 65552).map((n) => new Uint8Array(n).fill(0xa5)), weight: 1 },
);
/** A chunk count and a sealed size that fits it (PROTOCOL.md §14.2). */
const blobShape = fc
  .tuple(fc.integer({ min: 1, max: 0xffffffff }), fc.integer({ min: 16, max: 65552 }))
  .map(([chunkCount, last]) => ({ chunkCount, sealedSize: (chunkCount - 1) * 65552 + last }));

/** One arbitrary per frame type: the mapped type makes the compiler insist on all of them. */
const frameArbs: { readonly [K in Frame["type"]]: fc.Arbitrary<Extract<Frame, { type: K }>> } = {
  hello: fc.record({
    type: fc.constant("hello" as const),
    requestId,
    maxVersion: fc.integer({ min: 1, max: 255 }),
  }),
  createMailbox: fc.record({
    type: fc.constant("createMailbox" as const),
    requestId,
    ownerKey: bytes(32),
    signature,
  }),
  deposit: fc.record({
    type: fc.constant("deposit" as const),
    requestId,
    address,
    clientMessageId: bytes(16),
    ciphertext,
  }),
  subscribe: fc.record({ type: fc.constant("subscribe" as const), requestId, address, signature }),
  unsubscribe: fc.record({ type: fc.constant("unsubscribe" as const), requestId, address }),
  ack: fc.record({ type: fc.constant("ack" as const), requestId, address, messageId: bytes(16) }),
  deleteMailbox: fc.record({ type: fc.constant("deleteMailbox" as const), requestId, address, signature }),
  setDepositToken: fc.record({
    type: fc.constant("setDepositToken" as const),
    requestId,
    address,
    tokenHash: bytes(32),
    signature,
  }),
  tokenDeposit: fc.record({
    type: fc.constant("tokenDeposit" as const),
    requestId,
    address,
    token: bytes(32),
    clientMessageId: bytes(16),
    ciphertext,
  }),
  createBlob: fc
    .record({
      requestId,
      blobId,
      writeTokenHash: bytes(32),
      shape: blobShape,
      readTokenHashes: fc.uniqueArray(bytes(32), { minLength: 1, maxLength: 64, selector: toHex }),
    })
    .filter((r) => r.readTokenHashes.every((h) => toHex(h) !== toHex(r.writeTokenHash)))
    .map(({ shape, ...r }) => ({ type: "createBlob" as const, ...r, ...shape })),
  putChunk: fc.record({
    type: fc.constant("putChunk" as const),
    requestId,
    blobId,
    writeToken: token,
    index: u32,
    sealedChunk,
  }),
  blobStatus: fc.record({ type: fc.constant("blobStatus" as const), requestId, blobId, token }),
  getChunk: fc.record({
    type: fc.constant("getChunk" as const),
    requestId,
    blobId,
    readToken: token,
    index: u32,
  }),
  blobDone: fc.record({ type: fc.constant("blobDone" as const), requestId, blobId, readToken: token }),
  deleteBlob: fc.record({ type: fc.constant("deleteBlob" as const), requestId, blobId, writeToken: token }),
  blobInfo: fc
    .record({
      requestId,
      chunkCount: fc.integer({ min: 1, max: 0xffffffff }),
      written: fc.double({ min: 0, max: 1, noNaN: true }),
      readersLeft: fc.nat(64),
      expiresAt: fc.maxSafeNat(),
    })
    .map(({ written, ...r }) => ({
      type: "blobInfo" as const,
      ...r,
      written: Math.floor(written * r.chunkCount),
    })),
  chunk: fc.record({ type: fc.constant("chunk" as const), requestId, index: u32, sealedChunk }),
  welcome: fc.record({
    type: fc.constant("welcome" as const),
    requestId,
    version: fc.integer({ min: 1, max: 255 }),
    challenge: bytes(32),
    maxCiphertext: u32,
    retentionSeconds: u32,
  }),
  ok: fc.record({ type: fc.constant("ok" as const), requestId }),
  deliver: fc.record({
    type: fc.constant("deliver" as const),
    requestId,
    address,
    messageId: bytes(16),
    receivedAt: fc.maxSafeNat(),
    ciphertext,
  }),
  error: fc.record({
    type: fc.constant("error" as const),
    requestId,
    code: fc.constantFrom(...(Object.keys(RelayErrorCode) as RelayErrorName[])),
    // At most 256 code points of at most 4 UTF-8 bytes: within the 1024-byte limit.
    message: fc.string({ unit: "binary", maxLength: 256 }),
  }),
};
const anyFrame: fc.Arbitrary<Frame> = fc.oneof(...Object.values(frameArbs));
/** Frames whose fields hold any value that fits them (a version of 0 included). */
const anyFittingFrame: fc.Arbitrary<Frame> = fc.oneof(
  anyFrame,
  fc.record({ type: fc.constant("hello" as const), requestId, maxVersion: fc.nat(255) }),
  fc.record({
    type: fc.constant("welcome" as const),
    requestId,
    version: fc.nat(255),
    challenge: bytes(32),
    maxCiphertext: u32,
    retentionSeconds: u32,
  }),
  // Sizes, counts and lists that need not agree: the encoder refuses what the decoder would.
  fc.record({
    type: fc.constant("createBlob" as const),
    requestId,
    blobId,
    writeTokenHash: fc.constantFrom(new Uint8Array(32), new Uint8Array(32).fill(1)),
    chunkCount: u32,
    sealedSize: fc.oneof(fc.nat(200_000), fc.maxSafeNat()),
    readTokenHashes: fc.array(fc.constantFrom(new Uint8Array(32), new Uint8Array(32).fill(2)), {
      maxLength: 66,
    }),
  }),
  fc.record({
    type: fc.constant("blobInfo" as const),
    requestId,
    chunkCount: fc.nat(3),
    written: fc.nat(3),
    readersLeft: fc.nat(255),
    expiresAt: fc.maxSafeNat(),
  }),
);
const FRAME_CODES = [
  0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x81, 0x82, 0x83,
  0x84, 0x85, 0x86,
];

describe("frames", () => {
  it("every frame encodeFrame accepts, decodeFrame accepts and returns unchanged", () => {
    fc.assert(
      fc.property(anyFittingFrame, (frame) => {
        // The encoder may refuse a value with a RangeError (its documented contract for callers)...
        let encoded: Uint8Array;
        try {
          encoded = encodeFrame(frame);
        } catch (e) {
          expect(e).toBeInstanceOf(RangeError);
          return;
        }
        // ...but never write bytes that the decoder refuses.
        const decoded = typed("decodeFrame of encodeFrame output", () => decodeFrame(encoded));
        if (!decoded.ok)
          throw new Error(`encodeFrame wrote a frame decodeFrame refuses: ${decoded.error.message}`);
        expect(decoded.value).toEqual(frame);
      }),
      { numRuns: CHEAP },
    );
  });

  for (const [type, arb] of Object.entries(frameArbs) as [string, fc.Arbitrary<Frame>][]) {
    it(`${type}: decode(encode(frame)) equals the frame and encodes to the same bytes`, () => {
      fc.assert(
        fc.property(arb, (frame) => {
          const encoded = encodeFrame(frame);
          const decoded = decodeFrame(encoded);
          expect(decoded).toEqual(frame);
          expect(sameBytes(encodeFrame(decoded), encoded)).toBe(true);
        }),
        { numRuns: 200 },
      );
    });
  }

  /** A frame the decoder accepts must be the canonical encoding of what it returns. */
  const decodeFrameTyped = (input: Uint8Array, maxCiphertext?: number) => {
    const outcome = typed("decodeFrame", () =>
      decodeFrame(input, maxCiphertext === undefined ? {} : { maxCiphertext }),
    );
    if (outcome.ok) expect(sameBytes(encodeFrame(outcome.value), input)).toBe(true);
  };

  it("decodeFrame: random bytes are decoded or refused with a DecodeError", () => {
    fc.assert(
      fc.property(
        fc.oneof(junk, junkAfter(...FRAME_CODES.map((c) => [1, c]))),
        fc.option(fc.nat(4096)),
        (input, max) => decodeFrameTyped(input, max ?? undefined),
      ),
      { numRuns: CHEAP },
    );
  });

  it("decodeFrame: mutated valid frames are decoded or refused with a DecodeError", () => {
    fc.assert(
      fc.property(mutatedFrom(anyFrame.map(encodeFrame)), (m) => decodeFrameTyped(m.bytes)),
      { numRuns: CHEAP },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Envelopes

function reencodeEnvelope(e: Envelope): Uint8Array {
  const message = (m: MessageEnvelope) => {
    expect(sameBytes(encodeHeader(m.header), m.headerBytes)).toBe(true);
    return encodeMessage(m.headerBytes, m.sealed);
  };
  if (e.kind === "message") return message(e);
  expect(sameBytes(encodeAcceptPrefix(e.invitationId, e.ephemeralKey, e.version), e.prefixBytes)).toBe(true);
  // A version 2 Accept's body starts with its KEM ciphertext (PROTOCOL.md §5.4).
  if (e.version === 2) expect(sameBytes(e.kemCiphertext!, e.sealedIdentity.subarray(0, 1088))).toBe(true);
  else expect(e.kemCiphertext).toBeNull();
  return encodeAccept(e.prefixBytes, e.sealedIdentity, message(e.message));
}

describe("envelopes", () => {
  const decodeEnvelopeTyped = (input: Uint8Array) => {
    const outcome = typed("decodeEnvelope", () => decodeEnvelope(input));
    if (outcome.ok) expect(sameBytes(reencodeEnvelope(outcome.value), input)).toBe(true);
  };

  it("decodeEnvelope: random bytes are decoded or refused with a DecodeError", () => {
    fc.assert(fc.property(fc.oneof(junk, junkAfter([1, 1], [2, 1], [2, 2])), decodeEnvelopeTyped), {
      numRuns: CHEAP,
    });
  });

  it("decodeEnvelope: mutated Accepts and Messages are decoded or refused with a DecodeError", () => {
    fc.assert(
      fc.property(mutatedOf(fx.envelopes), (m) => decodeEnvelopeTyped(m.bytes)),
      { numRuns: CHEAP },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Payloads

const UTF8_UNITS = ["a", "é", "€", "😀"];
/** Texts up to the largest that fits, with lengths on both sides of every bucket boundary. */
const textArb = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc
    .tuple(
      fc.string({ unit: "binary", maxLength: 8 }),
      fc.constantFrom(...UTF8_UNITS),
      fc.oneof(
        fc.nat(MAX_TEXT_BYTES),
        // 30 fixed bytes and the 0x80 marker: a text of b - 31 bytes just fits bucket b.
        fc.constantFrom(
          ...PADDING_BUCKETS.flatMap((b) => [b - 31, b - 30]).filter((n) => n <= MAX_TEXT_BYTES),
        ),
      ),
    )
    .map(([head, unit, n]) => {
      const room = Math.max(0, Math.min(n, MAX_TEXT_BYTES) - utf8.encode(head).length);
      const t = head + unit.repeat(Math.floor(room / utf8.encode(unit).length));
      return t + "a".repeat(Math.max(0, Math.min(n, MAX_TEXT_BYTES) - utf8.encode(t).length));
    }),
);

const payloadArb: fc.Arbitrary<Payload> = fc.oneof(
  fc.record({ type: fc.constant("text" as const), id: bytes(16), sentAt: fc.maxSafeNat(), text: textArb }),
  fc.record({
    type: fc.constantFrom("delivered" as const, "read" as const),
    id: bytes(16),
    sentAt: fc.maxSafeNat(),
    ids: fc.oneof(
      fc.array(bytes(16), { minLength: 1, maxLength: 8 }),
      fc.array(bytes(16), { minLength: 1, maxLength: MAX_RECEIPT_IDS, size: "max" }),
    ),
  }),
);

/** Unpadded size: version, type, id, timestamp, then a u32-prefixed text or a u16-prefixed id list. */
const rawLength = (p: Payload) => {
  if (p.type === "group" || p.type === "file")
    throw new Error("the 1:1 payload arbitrary makes no group or file payloads");
  return p.type === "text" ? 30 + utf8.encode(p.text).length : 28 + 16 * p.ids.length;
};

/** Random content, properly padded to a bucket, so decoding gets past the padding check. */
const paddedJunk = fc
  .tuple(
    fc.constantFrom(...PADDING_BUCKETS),
    fc.option(fc.tuple(fc.constant(1), fc.nat(4))),
    fc.uint8Array({ maxLength: 600, size: "max" }),
  )
  .map(([bucket, head, body]) => {
    const raw = concat(head ? Uint8Array.from(head) : new Uint8Array(0), body);
    const padded = new Uint8Array(bucket);
    padded.set(raw.subarray(0, bucket - 1));
    padded[Math.min(raw.length, bucket - 1)] = 0x80;
    return padded;
  });

describe("payloads", () => {
  it("decode(encode(p)) equals p, padded to the smallest bucket that fits", () => {
    fc.assert(
      fc.property(payloadArb, (p) => {
        const padded = encodePayload(p);
        expect(PADDING_BUCKETS).toContain(padded.length);
        expect(padded.length).toBe(bucketFor(rawLength(p)));
        const decoded = decodePayload(padded);
        expect(decoded).toEqual(p);
        expect(sameBytes(encodePayload(decoded), padded)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("a text one byte over the limit is TOO_LARGE", () => {
    const p: Payload = {
      type: "text",
      id: new Uint8Array(16),
      sentAt: 0,
      text: "x".repeat(MAX_TEXT_BYTES + 1),
    };
    const outcome = typed("encodePayload", () => encodePayload(p));
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) {
      expect(outcome.error).toBeInstanceOf(PayloadError);
      expect(outcome.error.code).toBe("TOO_LARGE");
    }
  });

  const decodePayloadTyped = (input: Uint8Array) => {
    const outcome = typed("decodePayload", () => decodePayload(input));
    if (!outcome.ok) expect(outcome.error).toBeInstanceOf(PayloadError);
    else expect(sameBytes(encodePayload(outcome.value), input)).toBe(true);
  };

  it("decodePayload: random bytes are decoded or refused with a PayloadError", () => {
    fc.assert(fc.property(fc.oneof(junk, paddedJunk), decodePayloadTyped), { numRuns: CHEAP });
  });

  it("decodePayload: mutated valid payloads are decoded or refused with a PayloadError", () => {
    fc.assert(
      fc.property(mutatedFrom(payloadArb.map(encodePayload)), (m) => decodePayloadTyped(m.bytes)),
      {
        numRuns: CHEAP,
      },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Invitation codes

const relayUrlArb = fc
  .webUrl({
    validSchemes: ["ws", "wss"],
    withQueryParameters: true,
    authoritySettings: { withPort: true, withIPv4: true, withIPv6: true },
  })
  .filter((url) => relayUrlProblem(url) === null);

interface Invited {
  readonly invitation: Invitation;
  readonly code: string;
  readonly now: number;
}

/**
 * A real signed invitation of either version: keys from fast-check's bytes (identity 64, prekey 32,
 * KEM d and z 64), any valid relay URL, expiry and lifetime.
 */
const invitationArb: fc.Arbitrary<Invited> = fc
  .record({
    seed: bytes(160),
    postQuantum: fc.boolean(),
    relayUrl: relayUrlArb,
    mailbox: bytes(32),
    ttlSeconds: fc.integer({ min: 1, max: MAX_INVITATION_TTL_SECONDS }),
    nowSeconds: fc.integer({ min: 0, max: 0xffffffff - MAX_INVITATION_TTL_SECONDS }),
    ms: fc.nat(999),
  })
  .map(({ seed, postQuantum, relayUrl, mailbox, ttlSeconds, nowSeconds, ms }) => {
    const random = randomFrom(seed);
    const now = nowSeconds * 1000 + ms;
    const { invitation, code } = createInvitation(Identity.generate(random), {
      postQuantum,
      relayUrl,
      mailbox,
      ttlSeconds,
      now,
      random,
    });
    return { invitation, code, now };
  });

type CharMutation =
  | { readonly m: "replace"; readonly at: number; readonly ch: string }
  | { readonly m: "insert"; readonly at: number; readonly ch: string }
  | { readonly m: "delete"; readonly at: number }
  | { readonly m: "truncate"; readonly at: number }
  | { readonly m: "case"; readonly at: number }
  | { readonly m: "swap"; readonly at: number };

const codeChar = fc.oneof(
  fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZ234567abcz0189-_ \n\t\r"),
  // Non-ASCII look-alikes that Unicode case mapping or \s would turn into code characters or
  // whitespace (long s, dotless i, sharp s, ligatures, Kelvin sign, no-break and line separators).
  fc.constantFrom("\u017f", "\u0131", "\u00df", "\ufb00", "\ufb06", "\u212a", "\u00a0", "\u2028", "\ufeff"),
  fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
);
const charMutationArb: fc.Arbitrary<CharMutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ m: fc.constant("replace" as const), at, ch: codeChar }) },
  fc.record({ m: fc.constant("insert" as const), at, ch: codeChar }),
  fc.record({ m: fc.constant("delete" as const), at }),
  fc.record({ m: fc.constant("truncate" as const), at }),
  fc.record({ m: fc.constant("case" as const), at }),
  fc.record({ m: fc.constant("swap" as const), at }),
);

function mutateCode(code: string, mutations: readonly CharMutation[]): string {
  let s = code;
  for (const mu of mutations) {
    const i = mu.at % (s.length + 1);
    switch (mu.m) {
      case "replace":
        s = s.slice(0, i) + mu.ch + s.slice(i + 1);
        break;
      case "insert":
        s = s.slice(0, i) + mu.ch + s.slice(i);
        break;
      case "delete":
        s = s.slice(0, i) + s.slice(i + 1);
        break;
      case "truncate":
        s = s.slice(0, i);
        break;
      case "case":
        s = s.slice(0, i) + s.slice(i, i + 1).toLowerCase() + s.slice(i + 1);
        break;
      case "swap":
        s = s.slice(0, i) + s.slice(i + 1, i + 2) + s.slice(i, i + 1) + s.slice(i + 2);
        break;
    }
  }
  return s;
}

/** The documented leniency: ASCII whitespace (line wrapping) is ignored, ASCII letters in either case. */
const asciiNormalized = (code: string) =>
  code.replace(/[ \t\r\n]+/g, "").replace(/[a-z]/g, (c) => c.toUpperCase());

describe("invitation codes", () => {
  it("decode(encode(invitation)) equals the invitation and encodes to the same code", () => {
    fc.assert(
      fc.property(invitationArb, ({ invitation, code, now }) => {
        const decoded = decodeInvitation(code, { now });
        expect(decoded).toEqual(invitation);
        expect(encodeInvitation(decoded)).toBe(code);
        // Line wrapping and letter case do not matter.
        const wrapped = code.toLowerCase().replace(/(.{20})/g, "$1\n  ");
        expect(decodeInvitation(wrapped, { now })).toEqual(invitation);
      }),
      { numRuns: 150 },
    );
  });

  /** An accepted code decodes to the invitation it encodes, whatever its case and whitespace. */
  const decodeInvitationTyped = (input: string) => {
    const outcome = typed("decodeInvitation", () => decodeInvitation(input));
    if (outcome.ok) expect(encodeInvitation(outcome.value)).toBe(asciiNormalized(input));
  };

  it("decodeInvitation: random strings are decoded or refused with an InvitationError", () => {
    const codeLike = fc.stringMatching(/^(PARLEY|parley)[0-9]{0,2}-[A-Za-z2-7 \n-]{0,400}$/);
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary", maxLength: 1000 }), codeLike), decodeInvitationTyped),
      { numRuns: CHEAP },
    );
  });

  it("decodeInvitation: mutated valid codes are refused, or decode to the same invitation", () => {
    fc.assert(
      fc.property(fc.array(charMutationArb, { minLength: 1, maxLength: 4 }), (mutations) => {
        const input = mutateCode(fx.code, mutations);
        const outcome = typed("decodeInvitation", () => decodeInvitation(input));
        if (outcome.ok) expect(outcome.value).toEqual(fx.invitation);
        decodeInvitationTyped(input);
      }),
      { numRuns: CHEAP },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Stored state: identities, mailbox keys, pending invitations, the invitation book, sessions

describe("stored state decoders", () => {
  /** `decode` either refuses the input with a ParleyError or returns something `encode` maps back to it. */
  function canonical<T>(what: string, decode: (b: Uint8Array) => T, encode: (v: T) => Uint8Array) {
    return (input: Uint8Array) => {
      const outcome = typed(what, () => decode(input));
      if (outcome.ok) expect(sameBytes(encode(outcome.value), input)).toBe(true);
    };
  }

  const cases: [string, Record<string, Uint8Array>, (input: Uint8Array) => void][] = [
    [
      "decodePublicIdentity",
      { publicIdentity: fx.publicIdentity },
      canonical("decodePublicIdentity", decodePublicIdentity, encodePublicIdentity),
    ],
    [
      "Identity.deserialize",
      { identity: fx.alice.serialize() },
      canonical("Identity.deserialize", Identity.deserialize, (i) => i.serialize()),
    ],
    [
      "MailboxKey.deserialize",
      { mailboxKey: fx.mailboxBytes },
      canonical("MailboxKey.deserialize", MailboxKey.deserialize, (k) => k.serialize()),
    ],
    [
      "PendingInvitation.deserialize",
      { pendingInvitation: fx.pendingBytes, pendingInvitationV2: fx.pendingV2Bytes },
      canonical("PendingInvitation.deserialize", PendingInvitation.deserialize, (p) => p.serialize()),
    ],
  ];
  for (const [name, valid, check] of cases) {
    it(`${name}: random and mutated bytes are decoded canonically or refused with a ParleyError`, () => {
      fc.assert(
        fc.property(fc.oneof(asMutated(junk), asMutated(junkAfter([1])), mutatedOf(valid)), (m) =>
          check(m.bytes),
        ),
        { numRuns: CHEAP },
      );
    });
  }

  it("InvitationBook.deserialize: random and mutated bytes are decoded or refused with a ParleyError", () => {
    fc.assert(
      fc.property(
        fc.oneof(asMutated(junk), asMutated(junkAfter([1])), mutatedOf({ book: fx.book.serialize() })),
        (m) => {
          const outcome = typed("InvitationBook.deserialize", () => InvitationBook.deserialize(m.bytes));
          if (outcome.ok) {
            const again = outcome.value.serialize();
            expect(sameBytes(InvitationBook.deserialize(again).serialize(), again)).toBe(true);
          }
        },
      ),
      { numRuns: CHEAP },
    );
  });

  it("Session.deserialize: random and mutated bytes are refused, or give a session that fails only typed", () => {
    const states = {
      alice: fx.aliceSession.serialize(),
      bob: fx.bobSession.serialize(),
      carol: fx.carolSession.serialize(),
    };
    const wires = [
      ...Object.values(fx.undelivered.alice),
      ...Object.values(fx.undelivered.bob),
      fx.carolAccept,
    ];
    fc.assert(
      fc.property(
        fc.oneof(
          { weight: 1, arbitrary: asMutated(junk) },
          { weight: 1, arbitrary: asMutated(junkAfter([1])) },
          { weight: 4, arbitrary: mutatedOf(states) },
        ),
        fc.constantFrom(...wires),
        (m, wire) => {
          const outcome = typed("Session.deserialize", () => Session.deserialize(m.bytes));
          if (!outcome.ok) return;
          // Whatever state was accepted, using it fails only with typed errors.
          const session = outcome.value;
          // Accepted state is the canonical encoding of the session it gives.
          expect(sameBytes(session.serialize(), m.bytes)).toBe(true);
          typed("decrypt on a deserialized session", () => session.decrypt(wire));
          typed("encrypt on a deserialized session", () => session.encrypt(text("after")));
        },
      ),
      { numRuns: 1000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Sessions and the invitation book fed hostile bytes

// Each run works on a fresh copy restored from the fixture's serialized state, so a run that wrongly
// changed it cannot affect the next (and shrinking stays meaningful).
describe("hostile input to live sessions and the invitation book", () => {
  const parties = [
    { name: "Alice", state: fx.aliceSession.serialize(), party: "alice" as const },
    { name: "Bob", state: fx.bobSession.serialize(), party: "bob" as const },
  ];
  for (const { name, state, party } of parties) {
    it(`${name}'s session.decrypt refuses random and mutated bytes with a ParleyError, state unchanged`, () => {
      const valid = { ...fx.undelivered[party], ...fx.delivered[party] };
      fc.assert(
        fc.property(
          fc.oneof(
            { weight: 1, arbitrary: asMutated(junk) },
            { weight: 1, arbitrary: asMutated(junkAfter([1, 1], [2, 1])) },
            { weight: 4, arbitrary: mutatedOf(valid) },
          ),
          ({ original, bytes }) => {
            // A no-op mutation of an undelivered message would rightly decrypt.
            if (sameBytes(original, bytes)) return;
            const session = Session.deserialize(state);
            refusedUnchanged(
              `${name}'s session.decrypt`,
              () => session.decrypt(bytes),
              () => session.serialize(),
            );
          },
        ),
        { numRuns: COSTLY },
      );
    });
  }

  it("InvitationBook.accept refuses random and mutated Accepts with a ParleyError, book unchanged", () => {
    const accepts = { carolAccept: fx.carolAccept, ...fx.delivered.alice, b1: fx.undelivered.alice.b1 };
    const state = fx.book.serialize();
    fc.assert(
      fc.property(
        fc.oneof(
          { weight: 1, arbitrary: asMutated(junk) },
          { weight: 1, arbitrary: asMutated(junkAfter([1, 1])) },
          { weight: 4, arbitrary: mutatedOf(accepts) },
        ),
        ({ original, bytes }) => {
          // Carol's untouched Accept would rightly open a session.
          if (sameBytes(original, bytes) && sameBytes(original, fx.carolAccept)) return;
          const book = InvitationBook.deserialize(state);
          refusedUnchanged(
            "InvitationBook.accept",
            () => book.accept(fx.alice, bytes),
            () => book.serialize(),
          );
        },
      ),
      { numRuns: COSTLY },
    );
  });
});
