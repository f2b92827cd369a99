// The post-quantum known answers (vectors/kat.json `postQuantum`, PROTOCOL.md §11): replayed from
// the recorded bytes and secrets alone, with every intermediate value recomputed from the spec's
// formulas (§4.6, §5.5) rather than taken from the implementation.
import { readFileSync } from "node:fs";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { katValue } from "../scripts/kat-transcript.js";
import { concat } from "../src/_bytes.js";
import {
  acceptInvitation,
  blobTokenHash,
  decodeEnvelope,
  decodeFrame,
  decodeInvitation,
  decodePayload,
  encodeFrame,
  encodeInvitation,
  FileCipher,
  fromHex,
  hkdfSha256,
  Identity,
  InvitationBook,
  invitationId,
  mlKemDecapsulate,
  mlKemEncapsulate,
  mlKemPublicKey,
  open,
  openHostedKemKey,
  PendingInvitation,
  type RandomSource,
  type Session,
  toHex,
} from "../src/index.js";

interface PostQuantumKat {
  random: Record<string, string>;
  kem: { seed: string; encapsulationKey: string; commitment: string };
  invitation: {
    version: number;
    code: string;
    prekey: string;
    kemCommitment: string;
    expiresAt: number;
    relayUrl: string;
    mailbox: string;
    id: string;
  };
  pending: string;
  hostedKey: {
    blobId: string;
    readToken: string;
    readTokenHash: string;
    fileKey: string;
    writeToken: string;
    writeTokenHash: string;
    sealedChunk: string;
    frames: { frame: { type: string }; hex: string }[];
  };
  handshake: {
    dh1: string;
    dh2: string;
    dh3: string;
    kemCiphertext: string;
    kemSharedSecret: string;
    sealKey: string;
    sharedKey: string;
    acceptDigest: string;
    acceptPayload: string;
    accept: string;
  };
  messages: { from: "alice" | "bob"; payload: string; wire: string }[];
}

const file = JSON.parse(readFileSync(new URL("../vectors/kat.json", import.meta.url), "utf8")) as {
  now: number;
  identities: Record<"alice" | "bob", { secret: string }>;
  postQuantum: PostQuantumKat;
};
const pq = file.postQuantum;
const now = file.now;
const utf8 = (s: string) => new TextEncoder().encode(s);
const hex = (b: Uint8Array) => toHex(b);

/** Replays the named draws from the committed file, in order; an extra or missing one throws. */
const draws =
  (...names: string[]): RandomSource =>
  (length) => {
    const name = names.shift();
    const value = name === undefined ? undefined : pq.random[name];
    if (value === undefined) throw new Error(`unexpected draw of ${length} bytes (${name ?? "none left"})`);
    return fromHex(value);
  };

describe("§11 post-quantum known answers (kat.json postQuantum)", () => {
  it("§11 every recorded draw is its named value", () => {
    for (const [name, value] of Object.entries(pq.random)) {
      expect(value, name).toBe(hex(katValue(name, value.length / 2)));
    }
    expect(Object.keys(pq.random)).toHaveLength(17);
  });

  it("§4.1 the version 2 code decodes to the recorded fields and re-encodes identically", () => {
    const inv = decodeInvitation(pq.invitation.code, { now });
    expect(pq.invitation.code.startsWith("PARLEY2-")).toBe(true);
    expect(inv.version).toBe(2);
    expect(hex(inv.prekey)).toBe(pq.invitation.prekey);
    expect(hex(inv.kemCommitment!)).toBe(pq.invitation.kemCommitment);
    expect(hex(invitationId(inv.prekey))).toBe(pq.invitation.id);
    expect(encodeInvitation(inv)).toBe(pq.invitation.code);
  });

  it("§4.6 the KEM key is KeyGen(d || z) of the named draws, and the commitment is SHA-256 of its label and the key", () => {
    const seed = concat(katValue("pq/alice/kem-d"), katValue("pq/alice/kem-z"));
    expect(hex(seed)).toBe(pq.kem.seed);
    const ek = mlKemPublicKey(seed);
    expect(hex(ek)).toBe(pq.kem.encapsulationKey);
    expect(hex(sha256(concat(utf8("parley/v2/kem-commitment"), ek)))).toBe(pq.kem.commitment);
    expect(pq.invitation.kemCommitment).toBe(pq.kem.commitment);
  });

  it("§4.6 the hosted key's blob id, read token and file key derive from the commitment and the prekey; the write token from the seed", () => {
    const ikm = concat(fromHex(pq.kem.commitment), fromHex(pq.invitation.prekey));
    const derive = (label: string) => hex(hkdfSha256(ikm, new Uint8Array(0), utf8(label), 32));
    const h = pq.hostedKey;
    expect(derive("parley/v2/kem-blob-id")).toBe(h.blobId);
    expect(derive("parley/v2/kem-blob-read-token")).toBe(h.readToken);
    expect(derive("parley/v2/kem-blob-file-key")).toBe(h.fileKey);
    const writeToken = hkdfSha256(
      fromHex(pq.kem.seed),
      new Uint8Array(0),
      utf8("parley/v2/kem-blob-write-token"),
      32,
    );
    expect(hex(writeToken)).toBe(h.writeToken);
    expect(hex(blobTokenHash(writeToken))).toBe(h.writeTokenHash);
    expect(hex(blobTokenHash(fromHex(h.readToken)))).toBe(h.readTokenHash);
    // One chunk, sealed as §14.1 chunk 0 (the last) under the file key: 1184 + 16 bytes.
    const sealed = fromHex(h.sealedChunk);
    expect(sealed).toHaveLength(1200);
    expect(hex(new FileCipher(fromHex(h.fileKey)).open(0, true, sealed))).toBe(pq.kem.encapsulationKey);
    const inv = decodeInvitation(pq.invitation.code, { now });
    expect(hex(openHostedKemKey(inv, sealed))).toBe(pq.kem.encapsulationKey);
  });

  it("§8.2 the hosted key's frames (createBlob, putChunk, getChunk, chunk, deleteBlob) round-trip and carry the recorded values", () => {
    const h = pq.hostedKey;
    expect(h.frames.map((f) => f.frame.type)).toEqual([
      "createBlob",
      "putChunk",
      "getChunk",
      "chunk",
      "deleteBlob",
    ]);
    const frames = h.frames.map((f) => decodeFrame(fromHex(f.hex)));
    for (const [i, frame] of frames.entries()) expect(hex(encodeFrame(frame))).toBe(h.frames[i]!.hex);
    const [create, put, get, chunk] = frames;
    if (
      create?.type !== "createBlob" ||
      put?.type !== "putChunk" ||
      get?.type !== "getChunk" ||
      chunk?.type !== "chunk"
    )
      throw new Error("frame order");
    expect([hex(create.blobId), create.chunkCount, create.sealedSize]).toEqual([h.blobId, 1, 1200]);
    expect(hex(create.writeTokenHash)).toBe(h.writeTokenHash);
    expect(create.readTokenHashes.map(hex)).toEqual([h.readTokenHash]);
    expect([hex(put.writeToken), hex(put.sealedChunk)]).toEqual([h.writeToken, h.sealedChunk]);
    expect([hex(get.readToken), get.index]).toEqual([h.readToken, 0]);
    expect(hex(chunk.sealedChunk)).toBe(h.sealedChunk);
  });

  it("§5.5 the handshake's values follow the formulas: SS, SealKey, SK, the accept digest", () => {
    const hs = pq.handshake;
    const ciphertext = fromHex(hs.kemCiphertext);
    // Encaps(ek, m) with Bob's named m, and Decaps with Alice's seed, give the same SS.
    const encaps = mlKemEncapsulate(fromHex(pq.kem.encapsulationKey), () => katValue("pq/bob/kem-m"));
    expect(hex(encaps.ciphertext)).toBe(hs.kemCiphertext);
    expect(hex(encaps.sharedSecret)).toBe(hs.kemSharedSecret);
    expect(hex(mlKemDecapsulate(fromHex(pq.kem.seed), ciphertext))).toBe(hs.kemSharedSecret);
    const ss = fromHex(hs.kemSharedSecret);
    const ikm = concat(new Uint8Array(32).fill(0xff), fromHex(hs.dh1), fromHex(hs.dh2), fromHex(hs.dh3), ss);
    expect(hex(hkdfSha256(ikm, new Uint8Array(32), utf8("parley/v2/pqxdh"), 32))).toBe(hs.sharedKey);

    const wire = fromHex(hs.accept);
    const env = decodeEnvelope(wire);
    if (env.kind !== "accept") throw new Error("not an Accept");
    // Its message is version 3: the session is post-quantum (§6.7).
    expect([env.version, wire[1], wire.length, env.message.header.version]).toEqual([2, 2, 1682, 3]);
    // The body: u16 S = 1088 + the sealed identity's length, the ciphertext first.
    const s = (wire[50]! << 8) | wire[51]!;
    expect(s).toBe(1088 + 203);
    expect(hex(wire.subarray(52, 52 + 1088))).toBe(hs.kemCiphertext);
    const info = concat(utf8("parley/v2/accept-seal"), env.ephemeralKey, fromHex(pq.invitation.prekey));
    const sealKey = hkdfSha256(concat(fromHex(hs.dh3), ss), new Uint8Array(0), info, 32);
    expect(hex(sealKey)).toBe(hs.sealKey);
    // Its AD is the AcceptPrefix and the ciphertext, without the length between them.
    const ad = concat(wire.subarray(0, 50), wire.subarray(52, 52 + 1088));
    const details = open(sealKey, new Uint8Array(12), wire.subarray(52 + 1088, 52 + s), ad);
    expect(details).toHaveLength(161 + pq.invitation.relayUrl.length);
    expect(hex(sha256(concat(wire.subarray(0, 50), wire.subarray(52, 52 + s))))).toBe(hs.acceptDigest);
  });

  it("§11.4 the recorded Accept and messages decrypt from the recorded secrets alone, and Bob's side rebuilds the identical Accept", () => {
    const alice = Identity.deserialize(fromHex(file.identities.alice.secret));
    const bob = Identity.deserialize(fromHex(file.identities.bob.secret));
    const pending = PendingInvitation.deserialize(fromHex(pq.pending));
    expect(pending.version).toBe(2);
    expect(hex(pending.kemSeed!)).toBe(pq.kem.seed);
    const book = new InvitationBook();
    book.add(pending);
    const contact = book.accept(alice, fromHex(pq.handshake.accept), {
      now,
      random: draws("pq/alice/ratchet-1", "pq/alice/ratchet-2"),
    });
    expect(contact.postQuantum).toBe(true);
    expect(hex(contact.plaintext)).toBe(pq.handshake.acceptPayload);

    const invitation = decodeInvitation(pq.invitation.code, { now });
    const bobSide = acceptInvitation(bob, invitation, {
      mailbox: contact.mailbox,
      relayUrl: contact.relayUrl,
      plaintext: fromHex(pq.handshake.acceptPayload),
      kemPublicKey: openHostedKemKey(invitation, fromHex(pq.hostedKey.sealedChunk)),
      random: draws(
        "pq/bob/ephemeral-secret",
        "pq/bob/kem-m",
        "pq/bob/ratchet-1",
        "pq/bob/ratchet-kem-d",
        "pq/bob/ratchet-kem-z",
        "pq/bob/msg-1-nonce",
        "pq/bob/ratchet-2",
        "pq/bob/ratchet-3",
      ),
    });
    expect(bobSide.postQuantum).toBe(true);
    expect(hex(bobSide.message)).toBe(pq.handshake.accept);

    const sessions: Record<"alice" | "bob", Session> = { alice: contact.session, bob: bobSide.session };
    expect(pq.messages.map((m) => m.from)).toEqual(["alice", "alice", "bob", "alice"]);
    for (const m of pq.messages) {
      const plaintext = (m.from === "alice" ? sessions.bob : sessions.alice).decrypt(fromHex(m.wire));
      expect(hex(plaintext)).toBe(m.payload);
      expect(() => decodePayload(plaintext)).not.toThrow();
    }
  });
});
