// Builds the post-quantum known-answer transcript of PROTOCOL.md §11 (key `postQuantum`): a
// version 2 invitation, its hosted ML-KEM-768 key (§4.6) with the blob frames that upload and fetch
// it, the hybrid handshake (§5.5) with every intermediate value, and a whole conversation over the
// session it opens. Identities and mailboxes are those of the classical transcript; every other
// random draw is named under "pq/". `pnpm vectors` writes it; test/kat.test.ts checks it.
import { sha256 } from "@noble/hashes/sha2.js";
import {
  acceptInvitation,
  blobTokenHash,
  createInvitation,
  decodeEnvelope,
  decodeInvitation,
  dh,
  encodeFrame,
  encodePayload,
  FileCipher,
  type Frame,
  hkdfSha256,
  hmacSha256,
  hostedKemKeyLocation,
  hostedKemKeyUpload,
  Identity,
  InvitationBook,
  invitationId,
  MailboxKey,
  mlKemEncapsulate,
  mlKemPublicKey,
  open,
  openHostedKemKey,
  type Payload,
  sessionAd,
  toHex,
  x25519KeyPair,
  xopen,
} from "../src/index.js";
import { jsonable, KAT_NOW, katValue, scripted } from "./kat-transcript.js";

const RELAY = "wss://relay.parley.example";
const utf8 = (s: string) => new TextEncoder().encode(s);
const cat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));
const same = (a: Uint8Array, b: Uint8Array) => toHex(a) === toHex(b);

export function buildPostQuantum(): Record<string, unknown> {
  const randomValues: Record<string, string> = {};
  // The classical transcript's identities and mailboxes; their draws are recorded there.
  const unrecorded: Record<string, string> = {};
  const alice = Identity.generate(scripted(unrecorded, "alice/signing-seed", "alice/agreement-secret"));
  const bob = Identity.generate(scripted(unrecorded, "bob/signing-seed", "bob/agreement-secret"));
  const aliceMailbox = MailboxKey.generate(scripted(unrecorded, "alice/mailbox-seed"));
  const bobMailbox = MailboxKey.generate(scripted(unrecorded, "bob/mailbox-seed"));

  const { code, invitation, pending } = createInvitation(alice, {
    relayUrl: RELAY,
    mailbox: aliceMailbox.address,
    ttlSeconds: 7 * 24 * 3600,
    now: KAT_NOW,
    random: scripted(randomValues, "pq/alice/prekey-secret", "pq/alice/kem-d", "pq/alice/kem-z"),
  });
  // Serialized now: accepting wipes the pending secrets.
  const pendingBytes = pending.serialize();
  const book = new InvitationBook();
  book.add(pending);

  // §4.6 from the spec's formulas: the key, its commitment, the blob's id, tokens and sealing.
  const seed = cat(katValue("pq/alice/kem-d"), katValue("pq/alice/kem-z"));
  const ek = mlKemPublicKey(seed);
  const commitment = sha256(cat(utf8("parley/v2/kem-commitment"), ek));
  const hostIkm = cat(commitment, invitation.prekey);
  const derive = (label: string) => hkdfSha256(hostIkm, new Uint8Array(0), utf8(label), 32);
  const blobId = derive("parley/v2/kem-blob-id");
  const readToken = derive("parley/v2/kem-blob-read-token");
  const fileKey = derive("parley/v2/kem-blob-file-key");
  const writeToken = hkdfSha256(seed, new Uint8Array(0), utf8("parley/v2/kem-blob-write-token"), 32);
  const sealedChunk = new FileCipher(fileKey).seal(0, true, ek);
  const upload = hostedKemKeyUpload(pending);
  const location = hostedKemKeyLocation(decodeInvitation(code, { now: KAT_NOW }));
  if (
    !same(invitation.kemCommitment!, commitment) ||
    !same(upload.blobId, blobId) ||
    !same(location.blobId, blobId) ||
    !same(upload.readToken, readToken) ||
    !same(location.readToken, readToken) ||
    !same(upload.writeToken, writeToken) ||
    !same(upload.sealedChunk, sealedChunk)
  )
    throw new Error("postQuantum: the hosted key is not the one §4.6 describes");
  const fetched = openHostedKemKey(decodeInvitation(code, { now: KAT_NOW }), sealedChunk);

  const payloads: Payload[] = [];
  const payload = (p: Payload) => {
    payloads.push(p);
    return encodePayload(p);
  };
  const first = payload({
    type: "text",
    id: katValue("pq/msg/1/id", 16),
    sentAt: KAT_NOW + 1000,
    text: "Hi Alice, it's Bob, post-quantum this time.",
  });
  const accepted = acceptInvitation(bob, decodeInvitation(code, { now: KAT_NOW }), {
    mailbox: bobMailbox.address,
    relayUrl: RELAY,
    plaintext: first,
    kemPublicKey: fetched,
    random: scripted(
      randomValues,
      "pq/bob/ephemeral-secret",
      "pq/bob/kem-m",
      "pq/bob/ratchet-1",
      "pq/bob/ratchet-kem-d",
      "pq/bob/ratchet-kem-z",
      "pq/bob/msg-1-nonce",
      "pq/bob/ratchet-2",
      "pq/bob/msg-4-nonce",
      "pq/bob/ratchet-3",
    ),
  });
  const contact = book.accept(alice, accepted.message, {
    now: KAT_NOW,
    random: scripted(
      randomValues,
      "pq/alice/ratchet-1",
      "pq/alice/msg-2-nonce",
      "pq/alice/msg-3-nonce",
      "pq/alice/ratchet-2",
      "pq/alice/msg-5-nonce",
    ),
  });
  if (!accepted.postQuantum || !contact.postQuantum || toHex(contact.plaintext) !== toHex(first))
    throw new Error("postQuantum: the hybrid handshake did not open a post-quantum session");

  const messages: { from: string; payload: string; wire: string }[] = [];
  const exchange = (from: "alice" | "bob", p: Payload) => {
    const [tx, rx] =
      from === "alice" ? [contact.session, accepted.session] : [accepted.session, contact.session];
    const padded = payload(p);
    const wire = tx.encrypt(padded);
    if (toHex(rx.decrypt(wire)) !== toHex(padded)) throw new Error("postQuantum: round trip failed");
    messages.push({ from, payload: toHex(padded), wire: toHex(wire) });
  };
  exchange("alice", {
    type: "text",
    id: katValue("pq/msg/2/id", 16),
    sentAt: KAT_NOW + 2000,
    text: "Hello Bob! Safe from a quantum computer, too.",
  });
  exchange("alice", {
    type: "delivered",
    id: katValue("pq/msg/3/id", 16),
    sentAt: KAT_NOW + 2001,
    ids: [katValue("pq/msg/1/id", 16)],
  });
  exchange("bob", {
    type: "read",
    id: katValue("pq/msg/4/id", 16),
    sentAt: KAT_NOW + 3000,
    ids: [katValue("pq/msg/2/id", 16), katValue("pq/msg/3/id", 16)],
  });
  exchange("alice", {
    type: "text",
    id: katValue("pq/msg/5/id", 16),
    sentAt: KAT_NOW + 4000,
    text: "Either X25519 or ML-KEM holding is enough.",
  });

  // §5.1, §5.2, §5.5 from the spec's formulas with the public primitives.
  const ephemeral = katValue("pq/bob/ephemeral-secret");
  const dh1 = dh(katValue("bob/agreement-secret"), invitation.prekey);
  const dh2 = dh(ephemeral, alice.publicIdentity.agreementKey);
  const dh3 = dh(ephemeral, invitation.prekey);
  const { ciphertext, sharedSecret } = mlKemEncapsulate(ek, () => katValue("pq/bob/kem-m"));
  const ephemeralKey = x25519KeyPair(() => ephemeral).publicKey;
  const sk = hkdfSha256(
    cat(new Uint8Array(32).fill(0xff), dh1, dh2, dh3, sharedSecret),
    new Uint8Array(32),
    utf8("parley/v2/pqxdh"),
    32,
  );
  const sealKey = hkdfSha256(
    cat(dh3, sharedSecret),
    new Uint8Array(0),
    cat(utf8("parley/v2/accept-seal"), ephemeralKey, invitation.prekey),
    32,
  );
  const env = decodeEnvelope(accepted.message);
  if (env.kind !== "accept" || env.version !== 2 || !same(env.kemCiphertext!, ciphertext))
    throw new Error("postQuantum: the Accept does not carry the ciphertext of §5.5");
  const acceptDigest = sha256(cat(env.prefixBytes, env.sealedIdentity));
  // SealKey opens the sealed identity (AD: AcceptPrefix || CT), and SK is the session's root: KDF_RK
  // and KDF_CK of §6.2 from it give the key of message 1 (Bob's first chain, index 0).
  open(sealKey, new Uint8Array(12), env.sealedIdentity.subarray(1088), cat(env.prefixBytes, ciphertext));
  const bobRatchet = x25519KeyPair(() => katValue("pq/bob/ratchet-1"));
  const root = hkdfSha256(
    dh(bobRatchet.secretKey, invitation.prekey),
    sk,
    utf8("parley/v1/ratchet-root"),
    64,
  );
  const messageKey = hmacSha256(root.slice(32), Uint8Array.of(1));
  const aeadKey = hkdfSha256(messageKey, new Uint8Array(0), utf8("parley/v2/message-key"), 32);
  const ad = cat(sessionAd(alice.publicIdentity, bob.publicIdentity), env.message.headerBytes);
  // The session is post-quantum (§6.7), so what is sealed is the padded payload with KEM units
  // written over its padding: it opens (the tag proves SK), and its payload bytes are message 1's.
  const opened = xopen(aeadKey, env.message.header.nonce!, env.message.sealed, ad);
  let used = first.length;
  while (used > 0 && first[used - 1] === 0) used--;
  if (opened.length !== first.length || toHex(opened.subarray(0, used)) !== toHex(first.subarray(0, used)))
    throw new Error("postQuantum: SK is not the session's root key");

  const frames: Frame[] = [
    {
      type: "createBlob",
      requestId: 1,
      blobId,
      writeTokenHash: blobTokenHash(writeToken),
      chunkCount: 1,
      sealedSize: sealedChunk.length,
      readTokenHashes: [blobTokenHash(readToken)],
    },
    { type: "putChunk", requestId: 2, blobId, writeToken, index: 0, sealedChunk },
    { type: "getChunk", requestId: 3, blobId, readToken, index: 0 },
    { type: "chunk", requestId: 3, index: 0, sealedChunk },
    { type: "deleteBlob", requestId: 4, blobId, writeToken },
  ];

  return {
    postQuantum: jsonable({
      description:
        "PROTOCOL.md §11: a version 2 (post-quantum) invitation, its hosted ML-KEM-768 key (§4.6), the hybrid handshake (§5.5) and a conversation. Identities and mailboxes are the classical transcript's; every other draw is named in `random` (value = SHA-256('parley-kat/' || name), truncated).",
      random: randomValues,
      kem: {
        seed,
        encapsulationKey: ek,
        commitment,
      },
      invitation: { ...invitation, id: invitationId(invitation.prekey), code },
      pending: pendingBytes,
      hostedKey: {
        blobId,
        readToken,
        readTokenHash: blobTokenHash(readToken),
        fileKey,
        writeToken,
        writeTokenHash: blobTokenHash(writeToken),
        sealedChunk,
        frames: frames.map((frame) => ({ frame, hex: encodeFrame(frame) })),
      },
      handshake: {
        dh1,
        dh2,
        dh3,
        kemCiphertext: ciphertext,
        kemSharedSecret: sharedSecret,
        sealKey,
        sharedKey: sk,
        sessionAd: sessionAd(alice.publicIdentity, bob.publicIdentity),
        acceptDigest,
        acceptPayload: first,
        accept: accepted.message,
      },
      payloads,
      messages,
    }),
  };
}
