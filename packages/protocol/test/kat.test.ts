import { readFileSync } from "node:fs";
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { buildBlobs } from "../scripts/kat-blobs.js";
import { buildEdgeCases, type Ed25519Case, type RelayUrlCase } from "../scripts/kat-edge-cases.js";
import { buildFiles } from "../scripts/kat-files.js";
import { buildGroups } from "../scripts/kat-groups.js";
import { buildPostQuantum } from "../scripts/kat-pq.js";
import { buildPqRatchet } from "../scripts/kat-pq-ratchet.js";
import { buildTranscript, katValue } from "../scripts/kat-transcript.js";
import { concat } from "../src/_bytes.js";
import { verify } from "../src/crypto.js";
import {
  acceptInvitation,
  blobTokenHash,
  createInvitation,
  decodeEnvelope,
  decodeFrame,
  decodeInvitation,
  decodePayload,
  depositTokenHash,
  encodeFrame,
  encodeInvitation,
  FileCipher,
  fromHex,
  hkdfSha256,
  hmacSha256,
  Identity,
  InvitationBook,
  InvitationError,
  invitationId,
  MailboxAction,
  PendingInvitation,
  type RandomSource,
  relayUrlFault,
  type Session,
  safetyNumber,
  sessionAd,
  toHex,
  verifyMailboxProof,
  xopen,
} from "../src/index.js";
import { specVerify } from "./ed25519-spec.js";

interface Kat {
  now: number;
  random: Record<string, string>;
  identities: Record<
    "alice" | "bob",
    { signingKey: string; agreementKey: string; fingerprint: string; secret: string }
  >;
  invitation: {
    code: string;
    prekey: string;
    expiresAt: number;
    relayUrl: string;
    mailbox: string;
    id: string;
  };
  handshake: { acceptPayload: string; accept: string };
  messages: { from: "alice" | "bob"; payload: string; wire: string }[];
  messageKeys: { chainKey: string; messageKey: string; key: string; nonce: string };
  legacyV1: {
    accept: string;
    acceptKey: string;
    acceptNonce: string;
    reply: { from: "alice"; payload: string; wire: string };
  };
  mailboxes: Record<
    "alice" | "bob",
    { ownerKey: string; address: string; depositToken?: string; depositTokenHash?: string }
  >;
  frames: { hex: string }[];
  safetyNumber: { digits: string; compact: string };
  ed25519Strictness: Ed25519Case[];
  relayUrls: RelayUrlCase[];
}

const committed = JSON.parse(readFileSync(new URL("../vectors/kat.json", import.meta.url), "utf8")) as Kat;

const utf8 = (s: string) => new TextEncoder().encode(s);
const identity = (who: "alice" | "bob") => ({
  signingKey: fromHex(committed.identities[who].signingKey),
  agreementKey: fromHex(committed.identities[who].agreementKey),
});

/** Replays the named draws from the committed file, in order; an extra or missing name throws. */
const draws =
  (...names: string[]): RandomSource =>
  (length) => {
    const name = names.shift();
    const hex = name === undefined ? undefined : committed.random[name];
    if (hex === undefined) throw new Error(`unexpected draw of ${length} bytes (${name ?? "none left"})`);
    return fromHex(hex);
  };

describe("known-answer vectors (vectors/kat.json)", () => {
  it("the implementation reproduces the committed transcript byte for byte", () => {
    expect(
      JSON.parse(
        JSON.stringify({
          ...buildTranscript(),
          ...buildEdgeCases(),
          ...buildGroups(),
          ...buildFiles(),
          ...buildBlobs(),
          ...buildPostQuantum(),
          ...buildPqRatchet(),
        }),
      ),
    ).toEqual(committed);
  });

  it("the invitation code decodes to the recorded fields and re-encodes identically", () => {
    const inv = decodeInvitation(committed.invitation.code, { now: committed.now });
    expect(toHex(inv.prekey)).toBe(committed.invitation.prekey);
    expect(toHex(inv.mailbox)).toBe(committed.invitation.mailbox);
    expect(inv.relayUrl).toBe(committed.invitation.relayUrl);
    expect(inv.expiresAt).toBe(committed.invitation.expiresAt);
    expect(toHex(invitationId(inv.prekey))).toBe(committed.invitation.id);
    expect(encodeInvitation(inv)).toBe(committed.invitation.code);
  });

  it("the recorded Accept and messages decrypt, from the recorded secrets alone, to the recorded payloads", () => {
    const alice = Identity.deserialize(fromHex(committed.identities.alice.secret));
    const bob = Identity.deserialize(fromHex(committed.identities.bob.secret));
    expect(toHex(alice.publicIdentity.signingKey)).toBe(committed.identities.alice.signingKey);
    expect(toHex(bob.publicIdentity.agreementKey)).toBe(committed.identities.bob.agreementKey);
    expect(alice.fingerprint).toBe(committed.identities.alice.fingerprint);

    const prekey = fromHex(committed.invitation.prekey);
    const book = new InvitationBook();
    book.add(
      new PendingInvitation(
        invitationId(prekey),
        fromHex(committed.random["alice/prekey-secret"]!),
        prekey,
        committed.invitation.expiresAt,
      ),
    );
    const contact = book.accept(alice, fromHex(committed.handshake.accept), {
      now: committed.now,
      // Alice only decrypts here, so she draws her ratchet keys and none of her nonces.
      random: draws("alice/ratchet-1", "alice/ratchet-2"),
    });
    expect(toHex(contact.plaintext)).toBe(committed.handshake.acceptPayload);
    expect(toHex(contact.identity.signingKey)).toBe(committed.identities.bob.signingKey);

    // Bob's side is replayed from his recorded draws; his Accept must come out identical.
    const bobSide = acceptInvitation(
      bob,
      decodeInvitation(committed.invitation.code, { now: committed.now }),
      {
        mailbox: contact.mailbox,
        relayUrl: contact.relayUrl,
        plaintext: fromHex(committed.handshake.acceptPayload),
        // Bob encrypts only message 1 here (the Accept), so message 4's nonce is not drawn.
        random: draws(
          "bob/ephemeral-secret",
          "bob/ratchet-1",
          "bob/msg-1-nonce",
          "bob/ratchet-2",
          "bob/ratchet-3",
        ),
      },
    );
    expect(toHex(bobSide.message)).toBe(committed.handshake.accept);

    const sessions: Record<"alice" | "bob", Session> = { alice: contact.session, bob: bobSide.session };
    for (const m of committed.messages) {
      const receiver = m.from === "alice" ? sessions.bob : sessions.alice;
      const plaintext = receiver.decrypt(fromHex(m.wire));
      expect(toHex(plaintext)).toBe(m.payload);
      expect(() => decodePayload(plaintext)).not.toThrow();
    }
  });

  it("§6.3 every recorded Message is version 2 and carries its sender's named nonce in its header", () => {
    const wires = [committed.handshake.accept, ...committed.messages.map((m) => m.wire)];
    const nonces = ["bob/msg-1-nonce", "alice/msg-2-nonce", "alice/msg-3-nonce", "bob/msg-4-nonce"];
    nonces.push("alice/msg-5-nonce");
    wires.forEach((wire, i) => {
      const env = decodeEnvelope(fromHex(wire));
      const m = env.kind === "accept" ? env.message : env;
      expect(m.header.version).toBe(2);
      expect(m.headerBytes.length).toBe(66);
      expect(toHex(m.header.nonce!)).toBe(committed.random[nonces[i]!]);
      expect(m.sealed.length).toBe(256 + 16);
    });
    expect(toHex(katValue(nonces[0]!, 24))).toBe(committed.random[nonces[0]!]);
  });

  it("§6.2 message 1's recorded keys follow KDF_CK and the v2 key derivation, and open its ciphertext", () => {
    const k = committed.messageKeys;
    expect(toHex(hmacSha256(fromHex(k.chainKey), Uint8Array.of(1)))).toBe(k.messageKey);
    const key = hkdfSha256(fromHex(k.messageKey), new Uint8Array(0), utf8("parley/v2/message-key"), 32);
    expect(toHex(key)).toBe(k.key);
    const env = decodeEnvelope(fromHex(committed.handshake.accept));
    if (env.kind !== "accept") throw new Error("message 1 is not an Accept");
    const ad = fromHex(
      `${toHex(sessionAd(identity("alice"), identity("bob")))}${toHex(env.message.headerBytes)}`,
    );
    expect(toHex(xopen(key, fromHex(k.nonce), env.message.sealed, ad))).toBe(
      committed.handshake.acceptPayload,
    );
  });

  it("§6.3 legacy v1 Messages still decrypt: a v1 message wrapped in an Accept opens the session, and a v1 reply decrypts", () => {
    const legacy = committed.legacyV1;
    const accept = decodeEnvelope(fromHex(legacy.accept));
    if (accept.kind !== "accept") throw new Error("not an Accept");
    expect(accept.message.header.version).toBe(1);
    expect(accept.message.header.nonce).toBeNull();
    expect(accept.message.headerBytes.length).toBe(42);

    const alice = Identity.deserialize(fromHex(committed.identities.alice.secret));
    const bob = Identity.deserialize(fromHex(committed.identities.bob.secret));
    const prekey = fromHex(committed.invitation.prekey);
    const book = new InvitationBook();
    book.add(
      new PendingInvitation(
        invitationId(prekey),
        fromHex(committed.random["alice/prekey-secret"]!),
        prekey,
        committed.invitation.expiresAt,
      ),
    );
    const contact = book.accept(alice, fromHex(legacy.accept), {
      now: committed.now,
      random: draws("alice/ratchet-1"),
    });
    expect(toHex(contact.plaintext)).toBe(committed.handshake.acceptPayload);

    // Bob, replayed up to his first message, decrypts Alice's v1 reply with a DH ratchet step.
    const bobSide = acceptInvitation(
      bob,
      decodeInvitation(committed.invitation.code, { now: committed.now }),
      {
        mailbox: contact.mailbox,
        relayUrl: contact.relayUrl,
        plaintext: fromHex(committed.handshake.acceptPayload),
        random: draws(
          "bob/ephemeral-secret",
          "bob/ratchet-1",
          "bob/msg-1-nonce",
          "bob/ratchet-2",
          "bob/msg-4-nonce",
        ),
      },
    );
    const reply = bobSide.session.decrypt(fromHex(legacy.reply.wire));
    expect(toHex(reply)).toBe(legacy.reply.payload);
    expect(decodePayload(reply)).toMatchObject({ type: "text", text: "Hello Bob, from a v1 sender." });
    // A v1 message is still a one-time key: the same bytes again are a DUPLICATE.
    expect(() => bobSide.session.decrypt(fromHex(legacy.reply.wire))).toThrow(/already received/);
    // What Bob sends next is v2, whatever version he received.
    const next = decodeEnvelope(bobSide.session.encrypt(fromHex(legacy.reply.payload)));
    expect(next.kind === "message" && next.header.version).toBe(2);
  });

  it("every recorded frame decodes and re-encodes to the same bytes", () => {
    expect(committed.frames).toHaveLength(13);
    for (const f of committed.frames) expect(toHex(encodeFrame(decodeFrame(fromHex(f.hex))))).toBe(f.hex);
  });

  it("§8.1 step 8, §8.3: the deposit token's hash, and the owner's proof over it, are the recorded ones", () => {
    const bob = committed.mailboxes.bob;
    const token = fromHex(bob.depositToken!);
    expect(toHex(depositTokenHash(token))).toBe(bob.depositTokenHash);
    expect(toHex(sha256(concat(utf8("parley/v1/deposit-token"), token)))).toBe(bob.depositTokenHash);
    const set = decodeFrame(fromHex(committed.frames[11]!.hex));
    const deposit = decodeFrame(fromHex(committed.frames[12]!.hex));
    if (set.type !== "setDepositToken" || deposit.type !== "tokenDeposit") throw new Error("frames 12, 13");
    const welcome = decodeFrame(fromHex(committed.frames[1]!.hex));
    if (welcome.type !== "welcome") throw new Error("frame 2 is the welcome");
    const challenge = welcome.challenge;
    const owner = fromHex(bob.ownerKey);
    const args = [owner, MailboxAction.setDepositToken, challenge, set.address, set.signature] as const;
    expect(verifyMailboxProof(...args, set.tokenHash)).toBe(true);
    // The proof signs the hash: for another one, or as a proof of another action, it fails.
    expect(verifyMailboxProof(...args, new Uint8Array(32))).toBe(false);
    expect(verifyMailboxProof(...args)).toBe(false);
    expect(toHex(deposit.token)).toBe(bob.depositToken);
    expect(toHex(depositTokenHash(deposit.token))).toBe(toHex(set.tokenHash));
  });

  it("the safety number is the recorded one, whichever side computes it", () => {
    const a = {
      signingKey: fromHex(committed.identities.alice.signingKey),
      agreementKey: fromHex(committed.identities.alice.agreementKey),
    };
    const b = {
      signingKey: fromHex(committed.identities.bob.signingKey),
      agreementKey: fromHex(committed.identities.bob.agreementKey),
    };
    expect(safetyNumber(a, b).digits).toBe(committed.safetyNumber.digits);
    expect(safetyNumber(b, a).compact).toBe(committed.safetyNumber.compact);
  });
});

describe("§1.2 Ed25519 strictness vectors (kat.json ed25519Strictness)", () => {
  const cases = committed.ed25519Strictness;

  it.each(cases.map((c) => [c.name, c] as const))("§1.2 Verify: %s", (_name, c) => {
    const [pk, msg, sig] = [fromHex(c.pk), fromHex(c.msg), fromHex(c.sig)];
    expect(verify(pk, msg, sig), c.reason).toBe(c.valid);
    // The spec read literally (test/ed25519-spec.ts) agrees with the vector.
    expect(specVerify(pk, msg, sig), c.reason).toBe(c.valid);
  });

  const named = (names: string[]) =>
    names.map((name) => {
      const c = cases.find((x) => x.name === name);
      if (!c) throw new Error(`no vector named ${name}`);
      return c;
    });

  it("§1.2 non-canonical encodings and small-order keys are refused by strictness alone: a ZIP-215 verifier accepts them", () => {
    const encodings = [
      "identity-sign-bit",
      "y-p-minus-1-sign-bit",
      "y-p-plus-1",
      "y-p-plus-1-sign-bit",
      "y-p",
      "y-p-sign-bit",
    ];
    const strictOnly = named([
      ...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => `a-small-order-${i}`),
      ...encodings.flatMap((e) => [`r-${e}`, `a-${e}`]),
    ]);
    for (const c of strictOnly) {
      expect(c.valid, c.name).toBe(false);
      expect(ed25519.verify(fromHex(c.sig), fromHex(c.msg), fromHex(c.pk), { zip215: true }), c.name).toBe(
        true,
      );
    }
  });

  it("§1.2 S + nL is refused by the range check alone: reduced mod L, the same signature verifies", () => {
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    for (const c of named(["s-plus-l", "s-plus-2l", "s-plus-max-multiple-of-l"])) {
      const sig = fromHex(c.sig);
      const s = Buffer.from(sig.subarray(32)).reverse().toString("hex");
      const reduced = (BigInt(`0x${s}`) % L).toString(16).padStart(64, "0");
      sig.set(Buffer.from(reduced, "hex").reverse(), 32);
      expect(c.valid).toBe(false);
      expect(verify(fromHex(c.pk), fromHex(c.msg), sig), c.name).toBe(true);
    }
  });

  it("§1.2 the equation is cofactored: small-order and mixed-order R, and mixed-order A, verify; a cofactorless check refuses them", () => {
    for (const c of named([
      ...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => `r-small-order-${i}`),
      "r-mixed-order",
      "a-mixed-order",
    ])) {
      const [pk, msg, sig] = [fromHex(c.pk), fromHex(c.msg), fromHex(c.sig)];
      expect(verify(pk, msg, sig), c.name).toBe(true);
      const identity = c.sig.startsWith(`01${"00".repeat(31)}`);
      expect(specVerify(pk, msg, sig, false), c.name).toBe(identity);
    }
  });

  it("§1.2 covers each of the eight small-order points as R and as A", () => {
    for (const side of ["r", "a"]) {
      const encodings = new Set(
        cases
          .filter((c) => c.name.startsWith(`${side}-small-order-`))
          .map((c) => (side === "r" ? c.sig.slice(0, 64) : c.pk)),
      );
      expect(encodings.size).toBe(8);
    }
  });
});

describe("§4.3 relay URL vectors (kat.json relayUrls)", () => {
  const cases = committed.relayUrls;
  const alice = Identity.deserialize(fromHex(committed.identities.alice.secret));
  const bob = Identity.deserialize(fromHex(committed.identities.bob.secret));
  const mailbox = fromHex(committed.invitation.mailbox);
  const now = committed.now;

  it("§4.3 every rule that a URL can break after the rules before it has a refused case, and there are accepted cases", () => {
    const rules = new Set(cases.flatMap((c) => (c.valid ? [] : [c.rule])));
    // Rules 5 and 6 cannot fail once 3 and 4 pass: the WHATWG parser gives ws:// and wss:// URLs a
    // host or fails.
    expect([...rules].sort()).toEqual([1, 2, 3, 4, 7, 8]);
    expect(cases.filter((c) => c.valid).length).toBeGreaterThan(20);
  });

  // Test names show the URL as printable ASCII (a bidi override or ESC stays escaped), shortened.
  const shown = (url: string) => {
    const ascii = JSON.stringify(url).replace(
      /[^\x20-\x7e]/g,
      (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
    return ascii.length > 60
      ? `${ascii.slice(0, 40)}… (${new TextEncoder().encode(url).length} bytes)`
      : ascii;
  };

  it.each(cases.map((c) => [shown(c.url), c] as const))("§4.3 %s", (_url, c) => {
    const fault = relayUrlFault(c.url);
    if (c.valid) {
      expect(fault, c.reason).toBeNull();
      expect(new URL(c.url).href, c.reason).toBe(c.normalized);
      // An invitation carries the exact string, not its normalized form.
      const { code } = createInvitation(alice, {
        postQuantum: false,
        relayUrl: c.url,
        mailbox,
        now,
        random: () => fromHex(committed.random["alice/prekey-secret"]!),
      });
      expect(decodeInvitation(code, { now }).relayUrl).toBe(c.url);
    } else {
      expect(fault?.rule, c.reason).toBe(c.rule);
      expect(() => createInvitation(alice, { postQuantum: false, relayUrl: c.url, mailbox, now })).toThrow(
        expect.objectContaining({ name: InvitationError.name, code: "MALFORMED" }),
      );
      // A code carrying it is MALFORMED (§4.2 step 11, before the signature is checked); a URL over
      // 255 bytes cannot be carried at all.
      if (c.rule !== 1) {
        const invitation = decodeInvitation(committed.invitation.code, { now });
        const forged = encodeInvitation({ ...invitation, relayUrl: c.url });
        expect(() => decodeInvitation(forged, { now })).toThrow(
          expect.objectContaining({ name: InvitationError.name, code: "MALFORMED" }),
        );
      }
      // An accepter's own relay URL is checked too.
      const invitation = decodeInvitation(committed.invitation.code, { now });
      expect(() =>
        acceptInvitation(bob, invitation, { mailbox, relayUrl: c.url, plaintext: new Uint8Array(1) }),
      ).toThrow(RangeError);
    }
  });
});

describe("§14.2 blob vectors (kat.json blobs)", () => {
  const blobs = (
    JSON.parse(readFileSync(new URL("../vectors/kat.json", import.meta.url), "utf8")) as {
      blobs: {
        blobId: string;
        writeToken: string;
        writeTokenHash: string;
        readTokens: string[];
        readTokenHashes: string[];
        sealedChunk: string;
        frames: { frame: Record<string, unknown>; hex: string }[];
      };
    }
  ).blobs;

  it("§14.2 the tokens' hashes are SHA-256 of the blob-token label and the token", () => {
    expect(blobs.blobId).toBe(toHex(katValue("blob/id")));
    const h = (t: string) => toHex(sha256(concat(utf8("parley/v1/blob-token"), fromHex(t))));
    expect(h(blobs.writeToken)).toBe(blobs.writeTokenHash);
    expect(blobs.readTokens.map(h)).toEqual(blobs.readTokenHashes);
    expect(blobs.readTokens.map((t) => toHex(blobTokenHash(fromHex(t))))).toEqual(blobs.readTokenHashes);
  });

  it("§8.2 every blob frame decodes to its recorded fields and re-encodes to the same bytes", () => {
    expect(blobs.frames.map((f) => f.frame.type)).toEqual([
      "createBlob",
      "ok",
      "putChunk",
      "ok",
      "blobStatus",
      "blobInfo",
      "getChunk",
      "chunk",
      "blobDone",
      "ok",
      "blobDone",
      "ok",
      "blobStatus",
      "error",
      "deleteBlob",
    ]);
    const hexed = (v: unknown): unknown =>
      v instanceof Uint8Array
        ? toHex(v)
        : Array.isArray(v)
          ? v.map(hexed)
          : v && typeof v === "object"
            ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, hexed(x)]))
            : v;
    for (const f of blobs.frames) {
      const frame = decodeFrame(fromHex(f.hex));
      expect(hexed(frame)).toEqual(f.frame);
      expect(toHex(encodeFrame(frame))).toBe(f.hex);
    }
    // The chunk uploaded is the 3-byte file of `files`, opened with its file key.
    const put = decodeFrame(fromHex(blobs.frames[2]!.hex));
    if (put.type !== "putChunk") throw new Error("frame 3 is the putChunk");
    expect(toHex(put.sealedChunk)).toBe(blobs.sealedChunk);
    expect([...new FileCipher(katValue("file/key")).open(0, true, put.sealedChunk)]).toEqual([0, 1, 2]);
  });
});
