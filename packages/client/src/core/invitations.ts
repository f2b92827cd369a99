// Invitations, both sides of the handshake's start: invite() makes the first-contact mailbox the
// code names (and the contact's own inbox) and keeps the pending invitation; accept() opens a
// conversation from someone's code and queues the Accept. The inviter's side of an Accept
// arriving is first-contact.ts. Owns the invitations and used-invitations tables.

import { randomBytes } from "@noble/hashes/utils.js";
import {
  acceptInvitation,
  checkInvitationKeys,
  createInvitation,
  decodeInvitation,
  encodePayload,
  encodePublicIdentity,
  fingerprint,
  HandshakeError,
  InvitationError,
  invitationId,
  MailboxKey,
  newMessageId,
  type Payload,
  samePublicIdentity,
  toHex,
} from "@parley/protocol";
import { ClientError } from "../errors.js";
import { encodeIntro } from "../intro.js";
import type { InvitationsTable } from "../store/invitations.js";
import type { ContactRecord, InvitationRecord, Row } from "../store/records.js";
import { nameProblem } from "../text.js";
import { type Contacts, identityOf, placeholderName } from "./contacts.js";
import type { Context } from "./context.js";
import type { Delivery } from "./delivery.js";
import { changed, type InternalEvent, type Publisher } from "./events.js";
import type { Live } from "./live.js";
import type { Outbox } from "./outbox.js";
import type { RelayPool } from "./relays.js";
import type { ClientEvent } from "./types.js";

/** Earlier conversations of one contact whose mailboxes are still read. */
const MAX_PREVIOUS = 3;

/** My intro (PROTOCOL.md §7.4): my name and, to the contact I invited, their inbox and its token. */
export function introPayload(
  name: string,
  to: { inbox?: Uint8Array; token?: Uint8Array | undefined } = {},
): Payload {
  const text = encodeIntro({
    name,
    ...(to.inbox ? { inbox: to.inbox } : {}),
    ...(to.token ? { token: to.token } : {}),
  });
  return { type: "text", id: newMessageId(), sentAt: Date.now(), text };
}

/**
 * Keeps a contact's current conversation readable after a new one replaces it: messages already
 * on their way to its mailbox still decrypt until `until` (ms), when the relay would have dropped
 * them. Returns the contact's new list of earlier conversations (at most MAX_PREVIOUS, newest last).
 */
export function retire(
  old: ContactRecord,
  now: number,
  until: number,
): NonNullable<ContactRecord["previous"]> {
  const kept = (old.previous ?? []).filter((p) => p.until > now);
  // A first-contact mailbox still open belongs to the conversation being replaced.
  const first = old.firstContact;
  if (first) kept.push({ inbox: { relay: first.relay, key: first.key }, session: old.session, until });
  kept.push({ inbox: old.inbox, session: old.session, until });
  return kept.slice(-MAX_PREVIOUS);
}

const alreadyUsed = () =>
  new ClientError("BAD_INVITATION", "this invitation was already accepted; a code opens one conversation");

export class Invitations {
  constructor(
    private readonly ctx: Context,
    private readonly table: InvitationsTable,
    private readonly contacts: Contacts,
    private readonly outbox: Pick<Outbox, "enqueue">,
    private readonly pool: RelayPool,
    private readonly delivery: Pick<Delivery, "flush">,
    private readonly live: Pick<Live, "on">,
    private readonly publisher: Publisher,
  ) {}

  all(): Row<InvitationRecord>[] {
    return this.table.all();
  }

  get(id: string): InvitationRecord | null {
    return this.table.get(id);
  }

  remove(id: string): void {
    this.table.remove(id);
  }

  /** A contact's earlier conversations once a new one replaces the current (retire()). */
  retire(old: ContactRecord, now: number): NonNullable<ContactRecord["previous"]> {
    return retire(old, now, now + this.pool.expiryDelayMs(old.inbox.relay));
  }

  /** The intro inside my Accept: my name and my mailbox's deposit token. */
  acceptIntro(token: Uint8Array): Payload {
    return introPayload(this.ctx.name, { token });
  }

  /** See Client.invite(); `group`: an invitation for a member of a group (InvitationRecord.group). */
  async invite(
    options: { relay?: string; ttlSeconds?: number; group?: InvitationRecord["group"] } = {},
  ): Promise<{
    code: string;
    expiresAt: number;
    relay: string;
  }> {
    const relay = this.pool.relayFor(options.relay);
    const ttl = options.ttlSeconds ?? 7 * 86400;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 90 * 86400) {
      throw new ClientError("USAGE", "--ttl: an invitation lives between 1 second and 90 days");
    }
    const conn = await this.pool.connect(relay);
    const key = MailboxKey.generate();
    // The contact's own inbox, made now so that accepting needs no relay round trip: my intro
    // names it, and the first-contact mailbox can then be deleted.
    const inbox = MailboxKey.generate();
    await this.pool.request(relay, () => conn.createMailbox(key));
    await this.pool.request(relay, () => conn.createMailbox(inbox));
    // Its deposit token goes in my intro; the relay gets it once the contact shows it uses tokens.
    const inboxToken = randomBytes(32);
    const { code, pending } = createInvitation(this.ctx.identity, {
      // Classical until this client hosts the invitation's ML-KEM key at the relay and fetches it
      // on accept (issue 16, client half; PROTOCOL.md §4.6): a post-quantum code could not be accepted.
      postQuantum: false,
      relayUrl: relay,
      mailbox: key.address,
      ttlSeconds: ttl,
    });
    this.ctx.tx(() =>
      this.table.add({
        pending: toHex(pending.serialize()),
        mailboxKey: toHex(key.serialize()),
        inboxKey: toHex(inbox.serialize()),
        inboxToken: toHex(inboxToken),
        relay,
        expiresAt: pending.expiresAt,
        ...(options.group ? { group: options.group } : {}),
      }),
    );
    if (this.live.on) {
      await this.pool.subscribe(conn, key).catch(() => {});
      await this.pool.subscribe(conn, inbox).catch(() => {});
    }
    return { code, expiresAt: pending.expiresAt * 1000, relay };
  }

  /**
   * See Client.accept(). With `groupScoped`, a code a group member sent me through the group: the
   * contact it makes is group-scoped, and no event is published for it (null).
   */
  async accept(
    code: string,
    options: { name?: string; relay?: string; groupScoped?: boolean } = {},
  ): Promise<ClientEvent | null> {
    if (options.name !== undefined) {
      const problem = nameProblem(options.name);
      if (problem) throw new ClientError("USAGE", `--name: ${problem}`);
    }
    let inv: ReturnType<typeof decodeInvitation>;
    try {
      inv = decodeInvitation(code);
    } catch (e) {
      if (e instanceof InvitationError) {
        if (e.code === "EXPIRED")
          throw new ClientError("EXPIRED_INVITATION", `invitation expired: ${e.message}`);
        throw new ClientError("BAD_INVITATION", `bad invitation code (${e.code}): ${e.message}`);
      }
      throw e;
    }
    // A code can decode and verify and still carry a key no handshake can use: refuse it before
    // any relay hears of it.
    try {
      checkInvitationKeys(inv);
    } catch (e) {
      if (e instanceof HandshakeError)
        throw new ClientError("BAD_INVITATION", `invalid invitation: ${e.message}`);
      throw e;
    }
    // Until this client fetches the hosted ML-KEM key (issue 16, client half; PROTOCOL.md §4.6), a
    // post-quantum code cannot be accepted here: say so rather than fail inside the handshake.
    if (inv.version === 2) {
      throw new ClientError(
        "BAD_INVITATION",
        "this is a post-quantum invitation (PARLEY2-), which this version of Parley cannot accept yet",
      );
    }
    if (samePublicIdentity(inv.identity, this.ctx.identity.publicIdentity)) {
      throw new ClientError(
        "BAD_INVITATION",
        "this is your own invitation: give it to the person you invite",
      );
    }
    const invId = toHex(invitationId(inv.prekey));
    if (this.table.used(invId)) throw alreadyUsed();
    if (options.name !== undefined) {
      // A name given to a new contact must not look like another contact's (the same name, in
      // any case, means that contact: the invitation renews it).
      const wanted = options.name.toLowerCase();
      if (!this.contacts.all().some((r) => r.value.name.toLowerCase() === wanted)) {
        const same = this.contacts.byIdentity(inv.identity);
        const other = this.contacts.lookAlike(options.name, same?.key);
        if (other)
          throw new ClientError(
            "USAGE",
            `--name: ${JSON.stringify(options.name)} looks the same as another ${other.kind}'s name, ${JSON.stringify(other.name)}`,
          );
      }
    }
    const relay = this.pool.relayFor(options.relay);
    // The inviter's relay will hold what I send: refuse it now if its retention is too long. If it
    // is unreachable, the handshake waits in the outbox and is vetted before it is deposited.
    try {
      await this.pool.vet(inv.relayUrl);
    } catch (e) {
      if (!(e instanceof ClientError && e.code === "UNREACHABLE")) throw e;
    }
    const conn = await this.pool.connect(relay);
    const key = MailboxKey.generate();
    await this.pool.request(relay, () => conn.createMailbox(key));
    // Its deposit token goes in my intro; the relay gets it once the inviter shows it uses tokens.
    const token = randomBytes(32);

    const pending = this.ctx.tx((): InternalEvent => {
      if (!this.table.use(invId)) throw alreadyUsed();
      const all = this.contacts.all();
      const byName = options.name
        ? all.find((r) => r.value.name.toLowerCase() === options.name!.toLowerCase())
        : undefined;
      const byIdentity = all.find((r) => samePublicIdentity(identityOf(r.value), inv.identity));
      // A name the user gives wins; an identity already known is the same person under another name.
      const target = byName ?? byIdentity;
      if (target && options.name && target === byIdentity && !byName) {
        target.value.name = options.name;
        target.value.nameSource = "user";
      }
      const intro = this.acceptIntro(token);
      const { session, message } = acceptInvitation(this.ctx.identity, inv, {
        mailbox: key.address,
        relayUrl: relay,
        plaintext: encodePayload(intro),
      });
      const now = Date.now();
      const theirFp = fingerprint(inv.identity);
      let contactId: string;
      let ev: InternalEvent;
      if (target) {
        const old = target.value;
        const sameKey = samePublicIdentity(identityOf(old), inv.identity);
        const keyChanged = !sameKey || old.keyChanged;
        const updated: ContactRecord = {
          ...old,
          identity: toHex(encodePublicIdentity(inv.identity)),
          session: toHex(session.serialize()),
          verified: sameKey ? old.verified : false,
          keyChanged,
          previousFingerprint: sameKey ? old.previousFingerprint : fingerprint(identityOf(old)),
          inbox: { relay, key: toHex(key.serialize()), token: toHex(token) },
          outbox: { relay: inv.relayUrl, address: toHex(inv.mailbox) },
          firstContact: undefined,
          previous: this.retire(old, now),
          lastActivity: now,
          introExpected: true,
        };
        contactId = this.contacts.put(target.key, updated);
        ev = changed(contactId, sameKey ? "renewed" : "key-changed");
      } else {
        const name = options.name ?? this.contacts.uniqueName(placeholderName(theirFp));
        contactId = this.contacts.put(null, {
          name,
          nameSource: options.name ? "user" : "auto",
          identity: toHex(encodePublicIdentity(inv.identity)),
          session: toHex(session.serialize()),
          verified: false,
          keyChanged: false,
          inbox: { relay, key: toHex(key.serialize()), token: toHex(token) },
          outbox: { relay: inv.relayUrl, address: toHex(inv.mailbox) },
          createdAt: now,
          lastActivity: now,
          unread: 0,
          awaiting: [],
          introExpected: true,
          ...(options.groupScoped ? { groupScoped: true as const } : {}),
        });
        ev = changed(contactId, "added");
      }
      session.wipe();
      this.outbox.enqueue(contactId, "accept", { relay: inv.relayUrl, address: toHex(inv.mailbox) }, message);
      return ev;
    });
    // Null for a group-scoped contact: it is no contact of the user's (see Publisher).
    const event = this.publisher.emit(pending);
    if (this.live.on) await this.pool.subscribe(conn, key).catch(() => {});
    const { unreachable, refused } = await this.delivery.flush({ force: true });
    const who = event?.type === "contact" ? `contact ${event.contact}` : "a group member's session";
    const held = event?.type === "contact" && event.event === "key-changed";
    if (refused.length > 0 && !held) {
      throw new ClientError(
        "RELAY_REFUSED",
        `${who} added, but ${refused.join("; ")}; the handshake waits in the outbox`,
      );
    }
    if (unreachable.length > 0 && !held) {
      throw new ClientError(
        "UNREACHABLE",
        `${who} added, but relay ${unreachable.join(", ")} is unreachable: the handshake waits in the outbox`,
      );
    }
    return event;
  }
}
