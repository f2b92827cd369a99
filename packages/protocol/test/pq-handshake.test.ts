// Post-quantum from the first message (issue 16): version 2 invitations with a KEM commitment
// (PROTOCOL.md §4.1, §4.2, §3.4), the hosted ML-KEM-768 key (§4.6), and the hybrid handshake and
// its version 2 Accept (§5.2, §5.4, §5.5). Downgrades fail closed; tampering fails the handshake.
import { describe, expect, it } from "vitest";
import { concat } from "../src/_bytes.js";
import { dh, hkdfSha256, open, seal, sha256, verify, x25519KeyPair } from "../src/crypto.js";
import { encodeAcceptPrefix } from "../src/envelope.js";
import {
  acceptInvitation,
  base32Decode,
  base32Encode,
  blobSizeProblem,
  checkKemKey,
  createInvitation,
  decodeEnvelope,
  decodeFrame,
  decodeInvitation,
  encodeFrame,
  encodeInvitation,
  FileCipher,
  hostedKemKeyLocation,
  hostedKemKeyUpload,
  Identity,
  type Invitation,
  InvitationBook,
  invitationId,
  kemCommitment,
  MailboxKey,
  mlKemDecapsulate,
  mlKemEncapsulate,
  mlKemKeyPair,
  openHostedKemKey,
  PendingInvitation,
  type RandomSource,
  Session,
  toHex,
} from "../src/index.js";
import { failure, NOW, RELAY, seeded, text } from "./spec-fixture.js";

const utf8 = (s: string) => new TextEncoder().encode(s);
const hex = toHex;
const u16 = (n: number) => Uint8Array.of(n >> 8, n & 0xff);
const flip = (bytes: Uint8Array, at: number) => {
  const out = bytes.slice();
  out[at]! ^= 0x01;
  return out;
};
/** A random source that fails the test on any draw: a refusal must come before the first one. */
const noDraws: RandomSource = () => {
  throw new Error("drew from the random source");
};
const decodePart = (part: string): Uint8Array => {
  const bytes = base32Decode(part);
  if (!(bytes instanceof Uint8Array)) throw new Error("not base32");
  return bytes;
};
/** A code string from a body: the checksum under `label` (PROTOCOL.md §4.1). */
const codeOf = (prefix: string, body: Uint8Array, label = "parley/v2/invitation-checksum") =>
  `${prefix}${base32Encode(body)}-${base32Encode(sha256(concat(utf8(label), body)).subarray(0, 5))}`;

/** Alice invites post-quantum, Bob fetches her key and accepts; every draw is seeded by `tag`. */
function pqConversation(tag = "pq") {
  const alice = Identity.generate(seeded(`${tag}/alice`));
  const bob = Identity.generate(seeded(`${tag}/bob`));
  const aliceMailbox = MailboxKey.generate(seeded(`${tag}/alice-mailbox`));
  const bobMailbox = MailboxKey.generate(seeded(`${tag}/bob-mailbox`));
  const { code, pending } = createInvitation(alice, {
    relayUrl: RELAY,
    mailbox: aliceMailbox.address,
    now: NOW,
    random: seeded(`${tag}/invite`),
  });
  const book = new InvitationBook();
  book.add(pending);
  const upload = hostedKemKeyUpload(pending);
  const decoded = decodeInvitation(code, { now: NOW });
  const kemPublicKey = openHostedKemKey(decoded, upload.sealedChunk);
  const accepted = acceptInvitation(bob, decoded, {
    mailbox: bobMailbox.address,
    relayUrl: RELAY,
    plaintext: text("hello Alice"),
    kemPublicKey,
    random: seeded(`${tag}/bob-accept`),
  });
  return {
    alice,
    bob,
    aliceMailbox,
    bobMailbox,
    code,
    invitation: decoded,
    pending,
    book,
    upload,
    kemPublicKey,
    bobSession: accepted.session,
    accept: accepted.message,
    postQuantum: accepted.postQuantum,
    /** Bob's ephemeral secret: the first draw of his acceptance. */
    ephemeralSecret: seeded(`${tag}/bob-accept`)(32),
  };
}

/**
 * A version 2 Accept whose sealed details were opened with the spec's SealKey (§5.2: DH3 and SS,
 * AD AcceptPrefix || CT), changed by `edit`, and sealed again: how a forger who holds the
 * ephemeral secret and the KEM secret would build one.
 */
function resealV2(
  c: ReturnType<typeof pqConversation>,
  edit: (details: Uint8Array) => Uint8Array,
  accept = c.accept,
): Uint8Array {
  const env = decodeEnvelope(accept);
  if (env.kind !== "accept" || env.kemCiphertext === null) throw new Error("not a version 2 Accept");
  const ss = mlKemDecapsulate(c.pending.kemSeed!, env.kemCiphertext);
  const info = concat(utf8("parley/v2/accept-seal"), env.ephemeralKey, c.pending.prekey);
  const key = hkdfSha256(concat(dh(c.ephemeralSecret, c.pending.prekey), ss), new Uint8Array(0), info, 32);
  const ad = concat(env.prefixBytes, env.kemCiphertext);
  const nonce = new Uint8Array(12);
  const details = edit(open(key, nonce, env.sealedIdentity.subarray(1088), ad));
  const sealed = seal(key, nonce, details, ad);
  const rest = accept.subarray(52 + env.sealedIdentity.length);
  return concat(env.prefixBytes, u16(1088 + sealed.length), env.kemCiphertext, sealed, rest);
}

/** Details signed again by Bob over `signed(prefix, details-before-signature)`. */
function resign(
  c: ReturnType<typeof pqConversation>,
  signed: (prefix: Uint8Array, d: Uint8Array) => Uint8Array,
) {
  const env = decodeEnvelope(c.accept);
  if (env.kind !== "accept") throw new Error("not an Accept");
  return resealV2(c, (d) => {
    const out = d.slice();
    const m = out[96]!;
    out.set(c.bob.sign(signed(env.prefixBytes, out.subarray(0, 97 + m))), 97 + m);
    return out;
  });
}

describe("§4.1 version 2 invitations", () => {
  it("§4.1 an encoder MUST emit exactly PARLEY2- || B32(body) || - || B32(checksum) for a post-quantum invitation, the default: the body adds the 32-byte commitment after the prekey", () => {
    const c = pqConversation("layout");
    const [bodyPart, sumPart] = c.code.slice("PARLEY2-".length).split("-") as [string, string];
    const body = decodePart(bodyPart);
    const n = RELAY.length;
    expect(body).toHaveLength(230 + n);
    expect(body[0]).toBe(2);
    expect(new DataView(body.buffer).getUint32(1)).toBe(NOW / 1000 + 7 * 86400);
    expect(hex(body.subarray(5, 37))).toBe(hex(c.aliceMailbox.address));
    expect(hex(body.subarray(37, 69))).toBe(hex(c.alice.publicIdentity.signingKey));
    expect(hex(body.subarray(69, 101))).toBe(hex(c.alice.publicIdentity.agreementKey));
    expect(hex(body.subarray(101, 133))).toBe(hex(c.pending.prekey));
    expect(hex(body.subarray(133, 165))).toBe(hex(kemCommitment(c.pending.kemPublicKey!)));
    expect(hex(body.subarray(133, 165))).toBe(
      hex(sha256(concat(utf8("parley/v2/kem-commitment"), c.pending.kemPublicKey!))),
    );
    expect(body[165]).toBe(n);
    expect(new TextDecoder().decode(body.subarray(166, 166 + n))).toBe(RELAY);
    const signed = concat(utf8("parley/v2/invitation-signature"), body.subarray(0, 166 + n));
    expect(verify(c.alice.publicIdentity.signingKey, signed, body.subarray(166 + n))).toBe(true);
    expect(codeOf("PARLEY2-", body)).toBe(c.code);
    expect(sumPart).toHaveLength(8);
    expect(c.code).toHaveLength(17 + Math.ceil((8 * (230 + n)) / 5));
    expect(encodeInvitation(decodeInvitation(c.code, { now: NOW }))).toBe(c.code);
    // 52 characters more than the classical code of the same inviter and relay.
    const classical = createInvitation(c.alice, {
      postQuantum: false,
      relayUrl: RELAY,
      mailbox: c.aliceMailbox.address,
    });
    expect(classical.code.startsWith("PARLEY1-")).toBe(true);
    expect(classical.invitation.version).toBe(1);
    expect(classical.invitation.kemCommitment).toBeNull();
    expect(c.code.length - classical.code.length).toBe(51);
  });

  it("§4.2 a version 2 code: its body version must be its prefix's, its fixed part is 230 bytes, its checksum and signature use the v2 labels", () => {
    const c = pqConversation("decode");
    const body = decodePart(c.code.slice(8).split("-")[0]!);
    const signedPart = body.subarray(0, body.length - 64);
    const resigned = (label: string, part: Uint8Array) =>
      concat(part, c.alice.sign(concat(utf8(label), part)));
    const withCommitment = flip(signedPart, 140);
    const cases: [string, string, string][] = [
      ["a v2 body under PARLEY1-", codeOf("PARLEY1-", body, "parley/v1/invitation-checksum"), "MALFORMED"],
      ["the v1 checksum label", codeOf("PARLEY2-", body, "parley/v1/invitation-checksum"), "CHECKSUM"],
      ["a body of 229 bytes", codeOf("PARLEY2-", body.subarray(0, 229)), "TRUNCATED"],
      [
        "body version 1 under PARLEY2-",
        codeOf(
          "PARLEY2-",
          resigned(
            "parley/v2/invitation-signature",
            signedPart.map((b, i) => (i === 0 ? 1 : b)),
          ),
        ),
        "MALFORMED",
      ],
      [
        "signed with the v1 label",
        codeOf("PARLEY2-", resigned("parley/v1/invitation-signature", signedPart)),
        "BAD_SIGNATURE",
      ],
      [
        "another commitment",
        codeOf("PARLEY2-", concat(withCommitment, body.subarray(body.length - 64))),
        "BAD_SIGNATURE",
      ],
    ];
    for (const [what, code, expected] of cases)
      expect(
        failure(() => decodeInvitation(code, { now: NOW })),
        what,
      ).toBe(`InvitationError ${expected}`);
    expect(
      decodeInvitation(codeOf("PARLEY2-", resigned("parley/v2/invitation-signature", withCommitment)), {
        now: NOW,
      }).version,
    ).toBe(2);
  });

  it("§3.4 a version 2 PendingInvitation is 133 bytes (the KEM seed after the prekey) and round-trips; the book keeps it", () => {
    const c = pqConversation("pending");
    const bytes = c.pending.serialize();
    expect(bytes).toHaveLength(133);
    expect(bytes[0]).toBe(2);
    expect(hex(bytes.subarray(69))).toBe(hex(c.pending.kemSeed!));
    const back = PendingInvitation.deserialize(bytes);
    expect([back.version, hex(back.id), hex(back.kemPublicKey!)]).toEqual([
      2,
      hex(c.pending.id),
      hex(c.pending.kemPublicKey!),
    ]);
    for (const bad of [bytes.subarray(0, 132), concat(bytes, new Uint8Array(1)), flip(bytes, 68)])
      expect(failure(() => PendingInvitation.deserialize(bad))).toBe("DecodeError BAD_FRAME");
    const book = new InvitationBook();
    book.add(back);
    const serialized = book.serialize();
    expect(serialized).toHaveLength(9 + 2 + 133);
    const restored = InvitationBook.deserialize(serialized);
    expect(restored.accept(c.alice, c.accept, { now: NOW }).postQuantum).toBe(true);
  });
});

describe("§4.1 one-time keys", () => {
  it("§4.1 every invitation has its own prekey and KEM key: two invitations of one inviter share neither", () => {
    const alice = Identity.generate();
    const mailbox = MailboxKey.generate().address;
    const [one, two] = [0, 1].map(() => createInvitation(alice, { relayUrl: RELAY, mailbox }));
    expect(hex(one!.pending.prekey)).not.toBe(hex(two!.pending.prekey));
    expect(hex(one!.pending.kemSeed!)).not.toBe(hex(two!.pending.kemSeed!));
    expect(hex(one!.invitation.kemCommitment!)).not.toBe(hex(two!.invitation.kemCommitment!));
    expect(hex(one!.pending.kemPublicKey!)).not.toBe(hex(two!.pending.kemPublicKey!));
  });
});

describe("§12 MUST-reject, version 2", () => {
  it("§12 Accept at the inviter (§5.4): the version check comes after EXPIRED and before the DH, KEM and seal checks; the invitation stays pending", () => {
    const c = pqConversation("order");
    const classical: Invitation = { ...c.invitation, version: 1, kemCommitment: null };
    const v1 = acceptInvitation(c.bob, classical, {
      mailbox: c.bobMailbox.address,
      relayUrl: RELAY,
      plaintext: text("x"),
    }).message;
    const lowOrder = (wire: Uint8Array) => {
      const out = wire.slice();
      out.set(new Uint8Array(32), 18);
      return out;
    };
    const late = c.pending.expiresAt * 1000;
    const cases: [string, Uint8Array, number, string][] = [
      ["3 before 4: an expired invitation, a version 1 Accept", v1, late, "HandshakeError EXPIRED"],
      ["4: a version 1 Accept", v1, NOW, "HandshakeError DOWNGRADE"],
      ["4 before 5: a version 1 Accept with a low-order EK_B", lowOrder(v1), NOW, "HandshakeError DOWNGRADE"],
      ["5: a version 2 Accept with a low-order EK_B", lowOrder(c.accept), NOW, "HandshakeError LOW_ORDER"],
      ["6: an altered CT", flip(c.accept, 60), NOW, "HandshakeError AUTH"],
      ["6: an altered sealed identity", flip(c.accept, 1200), NOW, "HandshakeError AUTH"],
    ];
    for (const [what, wire, now, expected] of cases) {
      expect(
        failure(() => c.book.accept(c.alice, wire, { now })),
        what,
      ).toBe(expected);
      expect(c.book.size, what).toBe(1);
    }
    expect(c.book.accept(c.alice, c.accept, { now: NOW }).postQuantum).toBe(true);
  });

  it("§12 invitation code (§4.2), version 2: PARLEY3- is UNSUPPORTED_VERSION, and a PARLEY2- body of a version 1 code is TRUNCATED", () => {
    const c = pqConversation("code");
    const rest = c.code.slice("PARLEY2-".length);
    expect(failure(() => decodeInvitation(`PARLEY3-${rest}`, { now: NOW }))).toBe(
      "InvitationError UNSUPPORTED_VERSION",
    );
    const classical = createInvitation(c.alice, {
      postQuantum: false,
      relayUrl: RELAY,
      mailbox: c.aliceMailbox.address,
    });
    const body = decodePart(classical.code.slice(8).split("-")[0]!);
    expect(failure(() => decodeInvitation(codeOf("PARLEY2-", body), { now: NOW }))).toBe(
      "InvitationError TRUNCATED",
    );
  });
});

describe("§4.6 the hosted KEM key", () => {
  it("§4.6 the inviter's upload and the accepter's location name one blob, derived from the commitment and the prekey; the write token from the KEM seed", () => {
    const c = pqConversation("host");
    const u = c.upload;
    const ikm = concat(c.invitation.kemCommitment!, c.invitation.prekey);
    const derive = (label: string) => hex(hkdfSha256(ikm, new Uint8Array(0), utf8(label), 32));
    expect(hex(u.blobId)).toBe(derive("parley/v2/kem-blob-id"));
    expect(hex(u.readToken)).toBe(derive("parley/v2/kem-blob-read-token"));
    const fileKey = hkdfSha256(ikm, new Uint8Array(0), utf8("parley/v2/kem-blob-file-key"), 32);
    expect(hex(new FileCipher(fileKey).open(0, true, u.sealedChunk))).toBe(hex(c.pending.kemPublicKey!));
    expect(hex(u.writeToken)).toBe(
      hex(hkdfSha256(c.pending.kemSeed!, new Uint8Array(0), utf8("parley/v2/kem-blob-write-token"), 32)),
    );
    const location = hostedKemKeyLocation(c.invitation);
    expect([hex(location.blobId), hex(location.readToken)]).toEqual([hex(u.blobId), hex(u.readToken)]);
    expect(Object.keys(location).sort()).toEqual(["blobId", "chunkCount", "readToken", "sealedSize"]);
    expect([u.chunkCount, u.sealedSize, u.sealedChunk.length]).toEqual([1, 1200, 1200]);
    expect(blobSizeProblem(u.chunkCount, u.sealedSize)).toBeUndefined();
    const create = encodeFrame({ type: "createBlob", requestId: 1, ...u });
    expect(decodeFrame(create)).toMatchObject({ type: "createBlob", chunkCount: 1, sealedSize: 1200 });
    const put = {
      type: "putChunk",
      requestId: 2,
      blobId: u.blobId,
      writeToken: u.writeToken,
      index: 0,
      sealedChunk: u.sealedChunk,
    } as const;
    expect(hex(encodeFrame(decodeFrame(encodeFrame(put))))).toBe(hex(encodeFrame(put)));
  });

  it("§4.6 uploading again re-creates the same blob, also from a pending invitation restored from storage", () => {
    const c = pqConversation("recreate");
    const again = hostedKemKeyUpload(PendingInvitation.deserialize(c.pending.serialize()));
    expect(hex(encodeFrame({ type: "createBlob", requestId: 1, ...again }))).toBe(
      hex(encodeFrame({ type: "createBlob", requestId: 1, ...c.upload })),
    );
    expect([hex(again.writeToken), hex(again.sealedChunk)]).toEqual([
      hex(c.upload.writeToken),
      hex(c.upload.sealedChunk),
    ]);
  });

  it("§4.6 the blob is unlinkable to the mailbox, the Accept and the inviter's other invitations", () => {
    const c = pqConversation("unlinkable");
    const other = createInvitation(c.alice, { relayUrl: RELAY, mailbox: c.aliceMailbox.address });
    const otherUpload = hostedKemKeyUpload(other.pending);
    expect(hex(otherUpload.blobId)).not.toBe(hex(c.upload.blobId));
    const visible = hex(concat(c.aliceMailbox.address, invitationId(c.invitation.prekey), c.accept));
    for (const value of [c.upload.blobId, c.upload.readToken, c.upload.writeToken])
      expect(visible).not.toContain(hex(value));
  });

  it("§4.6 the accepter MUST refuse to continue without a key matching the commitment: no blob is KEM_KEY_MISSING; another invitation's blob, an altered or a cut one KEM_KEY_MISMATCH", () => {
    const c = pqConversation("fetch");
    const other = pqConversation("fetch/other");
    expect(failure(() => openHostedKemKey(c.invitation, null))).toBe("HandshakeError KEM_KEY_MISSING");
    expect(failure(() => openHostedKemKey(c.invitation, undefined))).toBe("HandshakeError KEM_KEY_MISSING");
    expect(() => openHostedKemKey(c.invitation, null)).toThrow(/post-quantum key is missing/);
    const chunk = c.upload.sealedChunk;
    // Someone who holds the code can seal another key under its file key; the commitment catches it.
    const ikm = concat(c.invitation.kemCommitment!, c.invitation.prekey);
    const fileKey = hkdfSha256(ikm, new Uint8Array(0), utf8("parley/v2/kem-blob-file-key"), 32);
    const substitute = new FileCipher(fileKey).seal(0, true, mlKemKeyPair().publicKey);
    for (const [what, served] of [
      ["another invitation's key", other.upload.sealedChunk],
      ["an altered chunk", flip(chunk, 600)],
      ["a cut chunk", chunk.subarray(0, 1199)],
      ["an empty chunk", new Uint8Array(0)],
      ["another key under this invitation's file key", substitute],
    ] as const) {
      expect(
        failure(() => openHostedKemKey(c.invitation, served)),
        what,
      ).toBe("HandshakeError KEM_KEY_MISMATCH");
    }
    expect(() => openHostedKemKey(c.invitation, substitute)).toThrow(/not the one the inviter signed/);
    expect(hex(openHostedKemKey(c.invitation, chunk))).toBe(hex(c.pending.kemPublicKey!));
  });

  it("§4.6 a classical invitation has no hosted key (RangeError)", () => {
    const alice = Identity.generate();
    const { invitation, pending } = createInvitation(alice, {
      postQuantum: false,
      relayUrl: RELAY,
      mailbox: new Uint8Array(32),
    });
    expect(failure(() => hostedKemKeyLocation(invitation))).toBe("RangeError");
    expect(failure(() => hostedKemKeyUpload(pending))).toBe("RangeError");
    expect(failure(() => openHostedKemKey(invitation, new Uint8Array(1200)))).toBe("RangeError");
  });
});

describe("§5.5 the hybrid handshake", () => {
  it("§5.5 a post-quantum invitation opens a post-quantum session: both sides say so, and messages flow both ways, across a restore", () => {
    const c = pqConversation("session");
    expect(c.postQuantum).toBe(true);
    const env = decodeEnvelope(c.accept);
    expect(env.kind === "accept" && [env.version, env.kemCiphertext?.length]).toEqual([2, 1088]);
    // While Bob waits for a reply his state holds the whole body, and a restored copy re-sends it.
    const restored = Session.deserialize(c.bobSession.serialize());
    const repeat = restored.encrypt(text("again"));
    expect(hex(repeat.subarray(0, 52 + 1088))).toBe(hex(c.accept.subarray(0, 52 + 1088)));
    const contact = c.book.accept(c.alice, repeat, { now: NOW });
    expect(contact.postQuantum).toBe(true);
    expect(hex(contact.identity.signingKey)).toBe(hex(c.bob.publicIdentity.signingKey));
    expect(contact.session.decrypt(c.accept)).toEqual(text("hello Alice"));
    expect(restored.decrypt(contact.session.encrypt(text("hi Bob")))).toEqual(text("hi Bob"));
    expect(contact.session.decrypt(restored.encrypt(text("and back")))).toEqual(text("and back"));
  });

  it("§5.5 a downgrade at the accepter fails closed before any draw: no key is KEM_KEY_MISSING, another key KEM_KEY_MISMATCH, an invalid key that matches KEM_KEY_INVALID", () => {
    const c = pqConversation("downgrade");
    const options = { mailbox: c.bobMailbox.address, relayUrl: RELAY, plaintext: text("x"), random: noDraws };
    expect(failure(() => acceptInvitation(c.bob, c.invitation, options))).toBe(
      "HandshakeError KEM_KEY_MISSING",
    );
    expect(failure(() => acceptInvitation(c.bob, c.invitation, { ...options, kemPublicKey: null }))).toBe(
      "HandshakeError KEM_KEY_MISSING",
    );
    const another = mlKemKeyPair().publicKey;
    expect(failure(() => acceptInvitation(c.bob, c.invitation, { ...options, kemPublicKey: another }))).toBe(
      "HandshakeError KEM_KEY_MISMATCH",
    );
    expect(
      failure(() =>
        acceptInvitation(c.bob, c.invitation, { ...options, kemPublicKey: c.kemPublicKey.subarray(1) }),
      ),
    ).toBe("HandshakeError KEM_KEY_MISMATCH");
    // A key with a coefficient of q (FIPS 203 §7.2) that an inviter committed to: refused all the same.
    const invalid = c.kemPublicKey.slice();
    invalid.set([0x01, 0x0d], 0); // coefficient 0 = 0xd01 = 3329 = q
    const committed: Invitation = { ...c.invitation, kemCommitment: kemCommitment(invalid) };
    expect(failure(() => checkKemKey(committed, invalid))).toBe("HandshakeError KEM_KEY_INVALID");
    expect(failure(() => acceptInvitation(c.bob, committed, { ...options, kemPublicKey: invalid }))).toBe(
      "HandshakeError KEM_KEY_INVALID",
    );
    // A classical invitation takes no KEM key.
    const classical: Invitation = { ...c.invitation, version: 1, kemCommitment: null };
    expect(
      failure(() => acceptInvitation(c.bob, classical, { ...options, kemPublicKey: c.kemPublicKey })),
    ).toBe("RangeError");
  });

  it("§5.4 a classical Accept for a post-quantum invitation is DOWNGRADE, a post-quantum Accept for a classical one VERSION_MISMATCH; the invitation stays pending", () => {
    const c = pqConversation("versions");
    // Bob (or a relay that strips the ciphertext and re-signs nothing) answers with a version 1 Accept.
    const classical: Invitation = { ...c.invitation, version: 1, kemCommitment: null };
    const v1 = acceptInvitation(c.bob, classical, {
      mailbox: c.bobMailbox.address,
      relayUrl: RELAY,
      plaintext: text("x"),
    });
    expect(v1.postQuantum).toBe(false);
    expect(failure(() => c.book.accept(c.alice, v1.message, { now: NOW }))).toBe("HandshakeError DOWNGRADE");
    expect(() => c.book.accept(c.alice, v1.message, { now: NOW })).toThrow(/post-quantum/);
    expect(c.book.accept(c.alice, c.accept, { now: NOW }).postQuantum).toBe(true);

    const alice = Identity.generate();
    const { invitation, pending } = createInvitation(alice, {
      postQuantum: false,
      relayUrl: RELAY,
      mailbox: new Uint8Array(32),
    });
    const book = new InvitationBook();
    book.add(pending);
    const kem = mlKemKeyPair();
    const dressedUp: Invitation = { ...invitation, version: 2, kemCommitment: kemCommitment(kem.publicKey) };
    const v2 = acceptInvitation(c.bob, dressedUp, {
      mailbox: c.bobMailbox.address,
      relayUrl: RELAY,
      plaintext: text("x"),
      kemPublicKey: kem.publicKey,
    });
    expect(failure(() => book.accept(alice, v2.message))).toBe("HandshakeError VERSION_MISMATCH");
    expect(book.size).toBe(1);
  });

  it("§5.5 a tampered KEM ciphertext fails the handshake (AUTH), wherever it is changed or replaced, and the invitation stays usable", () => {
    const c = pqConversation("tamper");
    for (const at of [52, 52 + 544, 52 + 1087]) {
      expect(
        failure(() => c.book.accept(c.alice, flip(c.accept, at), { now: NOW })),
        `byte ${at}`,
      ).toBe("HandshakeError AUTH");
    }
    // A fresh, valid encapsulation to the same key (anyone with the code can make one) in its place.
    const fresh = mlKemEncapsulate(c.kemPublicKey).ciphertext;
    const swapped = c.accept.slice();
    swapped.set(fresh, 52);
    expect(failure(() => c.book.accept(c.alice, swapped, { now: NOW }))).toBe("HandshakeError AUTH");
    expect(c.book.size).toBe(1);
    const contact = c.book.accept(c.alice, c.accept, { now: NOW });
    // Once open, a repeat whose ciphertext differs is refused by the session it routes to.
    expect(failure(() => contact.session.decrypt(flip(c.bobSession.encrypt(text("r")), 100)))).toBe(
      "RatchetError AUTH",
    );
  });

  it("§5.5 the accepter's signature covers the commitment and the ciphertext: details signed over the v1 layout, or without them, are BAD_SIGNATURE", () => {
    const c = pqConversation("signature");
    const tail = concat(c.alice.publicIdentity.signingKey, c.alice.publicIdentity.agreementKey);
    const env = decodeEnvelope(c.accept);
    if (env.kind !== "accept") throw new Error("not an Accept");
    const v2 = (label: string, extra: Uint8Array) => (prefix: Uint8Array, d: Uint8Array) =>
      concat(utf8(label), prefix, d, tail, extra);
    const good = resign(
      c,
      v2("parley/v2/accept-signature", concat(c.invitation.kemCommitment!, env.kemCiphertext!)),
    );
    const cases: [string, Uint8Array][] = [
      ["the v1 label and layout", resign(c, v2("parley/v1/accept-signature", new Uint8Array(0)))],
      ["the v2 label without C and CT", resign(c, v2("parley/v2/accept-signature", new Uint8Array(0)))],
      [
        "another commitment",
        resign(c, v2("parley/v2/accept-signature", concat(new Uint8Array(32), env.kemCiphertext!))),
      ],
    ];
    for (const [what, wire] of cases)
      expect(
        failure(() => c.book.accept(c.alice, wire, { now: NOW })),
        what,
      ).toBe("HandshakeError BAD_SIGNATURE");
    expect(c.book.accept(c.alice, good, { now: NOW }).plaintext).toEqual(text("hello Alice"));
  });

  it("§5.2 version 2 seals the accepter's identity under DH3 and SS: the prekey and ephemeral secrets alone do not open it", () => {
    const c = pqConversation("hiding");
    const env = decodeEnvelope(c.accept);
    if (env.kind !== "accept") throw new Error("not an Accept");
    const dh3 = dh(c.ephemeralSecret, c.pending.prekey);
    const ad = concat(env.prefixBytes, env.kemCiphertext!);
    const sealed = env.sealedIdentity.subarray(1088);
    for (const [label, ikm] of [
      ["parley/v1/accept-seal", dh3],
      ["parley/v2/accept-seal", dh3],
    ] as const) {
      const key = hkdfSha256(
        ikm,
        new Uint8Array(0),
        concat(utf8(label), env.ephemeralKey, c.pending.prekey),
        32,
      );
      expect(
        failure(() => open(key, new Uint8Array(12), sealed, ad)),
        label,
      ).toBe("CryptoError AUTH");
    }
    expect(hex(c.accept)).not.toContain(hex(c.bob.publicIdentity.signingKey));
  });

  it("§1.4 a version 2 invitation draws the prekey secret, then d and z; a version 2 acceptance the ephemeral secret, m, the first ratchet secret, the ratchet's first KEM key pair and the nonce", () => {
    const log: number[] = [];
    const recording = (name: string): RandomSource => {
      const inner = seeded(name);
      return (n) => {
        log.push(n);
        return inner(n);
      };
    };
    const alice = Identity.generate();
    const { code, pending } = createInvitation(alice, {
      relayUrl: RELAY,
      mailbox: new Uint8Array(32),
      now: NOW,
      random: recording("draws/invite"),
    });
    expect(log).toEqual([32, 32, 32]);
    const draws = seeded("draws/invite");
    const [, d, z] = [draws(32), draws(32), draws(32)];
    expect(hex(pending.kemSeed!)).toBe(hex(concat(d!, z!)));
    log.length = 0;
    const { message } = acceptInvitation(Identity.generate(), decodeInvitation(code, { now: NOW }), {
      mailbox: new Uint8Array(32),
      relayUrl: RELAY,
      plaintext: text("x"),
      kemPublicKey: pending.kemPublicKey,
      random: recording("draws/accept"),
    });
    // The hybrid handshake starts a post-quantum ratchet: its first key pair (d, z) follows the
    // first ratchet secret (§6.7).
    expect(log).toEqual([32, 32, 32, 32, 32, 24]);
    const bobDraws = seeded("draws/accept");
    const [ephemeral, m] = [bobDraws(32), bobDraws(32)];
    const env = decodeEnvelope(message);
    if (env.kind !== "accept") throw new Error("not an Accept");
    expect(hex(env.prefixBytes)).toBe(
      hex(encodeAcceptPrefix(invitationId(pending.prekey), env.ephemeralKey, 2)),
    );
    expect(hex(mlKemEncapsulate(pending.kemPublicKey!, () => m!).ciphertext)).toBe(hex(env.kemCiphertext!));
    expect(hex(x25519KeyPair(() => ephemeral!).publicKey)).toBe(hex(env.ephemeralKey));
  });

  it("§5.4 decoding a version 2 Accept: a body under 1104 or over 1520 bytes is BAD_FRAME", () => {
    const c = pqConversation("decoding");
    const env = decodeEnvelope(c.accept);
    if (env.kind !== "accept") throw new Error("not an Accept");
    const message = c.accept.subarray(52 + env.sealedIdentity.length);
    const withBody = (n: number) => concat(env.prefixBytes, u16(n), new Uint8Array(n), message);
    expect(decodeEnvelope(withBody(1104)).kind).toBe("accept");
    expect(decodeEnvelope(withBody(1520)).kind).toBe("accept");
    for (const n of [0, 16, 1088, 1103, 1521])
      expect(
        failure(() => decodeEnvelope(withBody(n))),
        `${n}`,
      ).toBe("DecodeError BAD_FRAME");
  });
});
