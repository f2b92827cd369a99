// A deterministic conversation for the section-named tests of PROTOCOL.md's MUSTs
// (conventions, must-reject, …): every random draw comes from a named seed, so each call builds
// the same bytes, and a test can rebuild a fresh copy to try one more way of breaking it.
import { createHash } from "node:crypto";
import { concat } from "../src/_bytes.js";
import { dh, hkdfSha256, open, seal } from "../src/crypto.js";
import {
  acceptInvitation,
  base32Encode,
  createInvitation,
  decodeEnvelope,
  decodeInvitation,
  encodePayload,
  Identity,
  InvitationBook,
  MailboxKey,
  type RandomSource,
} from "../src/index.js";

export const NOW = Date.UTC(2026, 0, 1);
export const RELAY = "wss://relay.example.org";

export const sha256 = (...parts: (string | Uint8Array)[]): Uint8Array => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

/** A random source whose i-th draw is SHA-256(`name/i`), truncated (draws of at most 32 bytes). */
export function seeded(name: string): RandomSource {
  let i = 0;
  return (length) => sha256(`${name}/${i++}`).slice(0, length);
}

export const text = (t: string, sentAt = NOW): Uint8Array =>
  encodePayload({ type: "text", id: new Uint8Array(16).fill(7), sentAt, text: t });

/** The code string of an invitation body: its checksum recomputed (PROTOCOL.md §4.1). */
export const codeOfBody = (body: Uint8Array): string =>
  `PARLEY1-${base32Encode(body)}-${base32Encode(sha256("parley/v1/invitation-checksum", body).slice(0, 5))}`;

/**
 * Alice invites, Bob accepts: a fresh book holding the pending invitation, Bob's session and his
 * Accept (not yet given to the book). `tag` names an independent conversation.
 */
export function conversation(tag = "spec") {
  const alice = Identity.generate(seeded(`${tag}/alice`));
  const bob = Identity.generate(seeded(`${tag}/bob`));
  const aliceMailbox = MailboxKey.generate(seeded(`${tag}/alice-mailbox`));
  const bobMailbox = MailboxKey.generate(seeded(`${tag}/bob-mailbox`));
  const { code, invitation, pending } = createInvitation(alice, {
    postQuantum: false,
    relayUrl: RELAY,
    mailbox: aliceMailbox.address,
    now: NOW,
    random: seeded(`${tag}/prekey`),
  });
  const book = new InvitationBook();
  book.add(pending);
  const accepted = acceptInvitation(bob, decodeInvitation(code, { now: NOW }), {
    mailbox: bobMailbox.address,
    relayUrl: RELAY,
    plaintext: text("hello Alice"),
    random: seeded(`${tag}/bob-accept`),
  });
  return {
    alice,
    bob,
    aliceMailbox,
    bobMailbox,
    code,
    invitation,
    pending,
    book,
    bobSession: accepted.session,
    accept: accepted.message,
    /** Bob's ephemeral secret: the first draw of his acceptance. */
    ephemeralSecret: seeded(`${tag}/bob-accept`)(32),
  };
}

/**
 * An Accept whose sealed details were opened with the spec's SealKey (§5.2), changed by `edit`,
 * and sealed again: how a forger who holds the ephemeral secret would build one.
 */
export function resealDetails(
  accept: Uint8Array,
  ephemeralSecret: Uint8Array,
  prekey: Uint8Array,
  edit: (details: Uint8Array) => Uint8Array,
): Uint8Array {
  const env = decodeEnvelope(accept);
  if (env.kind !== "accept") throw new Error("not an Accept");
  const info = concat(new TextEncoder().encode("parley/v1/accept-seal"), env.ephemeralKey, prekey);
  const key = hkdfSha256(dh(ephemeralSecret, prekey), new Uint8Array(32), info, 32);
  const nonce = new Uint8Array(12);
  const details = edit(open(key, nonce, env.sealedIdentity, env.prefixBytes));
  const sealed = seal(key, nonce, details, env.prefixBytes);
  const s = new Uint8Array([sealed.length >> 8, sealed.length & 0xff]);
  const rest = accept.subarray(52 + env.sealedIdentity.length);
  return concat(env.prefixBytes, s, sealed, rest);
}

/** Runs `f` and returns the thrown error's class name and code ("RangeError" has no code). */
export function failure(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    const err = e as { name: string; code?: string };
    return err.code === undefined ? err.name : `${err.name} ${err.code}`;
  }
  return "no error";
}
