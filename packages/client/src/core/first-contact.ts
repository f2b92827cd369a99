// The inviter's side of first contact: an Accept arriving in an invitation's mailbox opens (or
// renews) a conversation, and my intro answers it with the contact's own inbox. The first-contact
// mailbox, whose address anyone who saw the code knows, is read until the contact has moved to
// that inbox with nothing missing, then deleted on the relay. Also: Accept-wrapped messages
// already processed, remembered so that a replay is not taken for a second acceptance.
import { sha256 } from "@noble/hashes/sha2.js";
import {
  type DeliverFrame,
  decodePayload,
  encodePublicIdentity,
  fingerprint,
  fromHex,
  InvitationBook,
  MailboxKey,
  ParleyError,
  type Payload,
  PendingInvitation,
  toHex,
} from "@parley/protocol";
import { RelayRequestError } from "../relay-connection.js";
import type { ContactRecord } from "../store/records.js";
import { type Contacts, encryptTo, placeholderName } from "./contacts.js";
import type { Context } from "./context.js";
import { byInvitation, type InternalEvent } from "./events.js";
import { type Invitations, introPayload } from "./invitations.js";
import type { Mailboxes } from "./mailboxes.js";
import type { Outbox } from "./outbox.js";
import type { Payloads } from "./payloads.js";
import type { RelayPool } from "./relays.js";

/** The first-contact mailbox stays open at least this long after the invitation is accepted. */
const FIRST_CONTACT_MIN_MS = 60 * 60 * 1000;
/** Accept-wrapped messages remembered per contact (ContactRecord.accepts). */
const MAX_REMEMBERED_ACCEPTS = 64;

export const isAccept = (wire: Uint8Array) => wire[0] === 0x01;

/** The digest an Accept-wrapped delivery is remembered by (ContactRecord.accepts). */
export const digestOf = (wire: Uint8Array) => toHex(sha256(wire).subarray(0, 16));

/** Remembers an Accept-wrapped message as processed; the oldest are forgotten past the limit. */
export function rememberAccept(contact: ContactRecord, digest: string): void {
  const accepts = (contact.accepts ?? []).filter((d) => d !== digest);
  accepts.push(digest);
  contact.accepts = accepts.slice(-MAX_REMEMBERED_ACCEPTS);
}

/** A second Accept for a used invitation is worth naming on its own; null for anything else. */
export function secondAccept(name: string, wire: Uint8Array, code: string): string | null {
  if (isAccept(wire) && code === "AUTH") {
    return `refused a second acceptance of the one-time invitation that opened your conversation with ${name}: someone else used the same code`;
  }
  return null;
}

/**
 * The contact wrote to the inbox my intro named (`viaInbox`): once nothing they sent before is
 * missing (no skipped keys), the first-contact mailbox is due for deletion. Messages are
 * encrypted in the order they are sent, so a message still on its way to the first-contact
 * mailbox leaves a skipped key behind. Updates `first`; true when it became due.
 */
export function settleFirstContact(
  first: NonNullable<ContactRecord["firstContact"]>,
  viaInbox: boolean,
  skipped: number,
  now: number,
): boolean {
  if (viaInbox) first.moved = true;
  if (!first.moved || skipped > 0) return false;
  if (first.until > now) first.until = now;
  return true;
}

/** How a forged handshake is accounted, with the receive slice's other failures. */
export interface FailureBudget {
  /** Time spent on a delivery that failed to authenticate. */
  failed(ms: number): void;
  /** An undecryptable delivery, reported with the others (DroppedReport). */
  dropped(name: string, code: string): void;
}

export class FirstContact {
  constructor(
    private readonly ctx: Context,
    private readonly invitations: Pick<Invitations, "get" | "remove" | "retire">,
    private readonly contacts: Contacts,
    private readonly payloads: Pick<Payloads, "apply">,
    private readonly outbox: Pick<Outbox, "enqueue">,
    private readonly pool: Pick<RelayPool, "connect">,
    private readonly mailboxes: Pick<Mailboxes, "invalidate">,
  ) {}

  /**
   * An Accept arrived in the mailbox of my invitation `invitationKey`: the conversation opens (a
   * contact added, or renewed), the invitation is used up, and my intro is queued. Inside the
   * receiving transaction; returns what the user should see.
   */
  receiveAccept(invitationKey: string, frame: DeliverFrame, budget: FailureBudget): InternalEvent[] {
    const inv = this.invitations.get(invitationKey)!;
    const book = new InvitationBook();
    book.add(PendingInvitation.deserialize(fromHex(inv.pending)));
    let accepted: ReturnType<InvitationBook["accept"]>;
    const started = performance.now();
    try {
      accepted = book.accept(this.ctx.identity, frame.ciphertext, { now: frame.receivedAt });
    } catch (e) {
      if (e instanceof ParleyError) {
        // Anyone who saw the code can deposit here: a forged handshake counts against the slice's
        // budget and is reported with the others, like a forged message.
        budget.failed(performance.now() - started);
        budget.dropped("one of your invitations", e.code);
        return [];
      }
      throw e;
    }
    let payload: Payload | null = null;
    try {
      payload = decodePayload(accepted.plaintext);
    } catch {
      // The session still opens; a malformed first payload is just not shown.
    }
    const now = Date.now();
    const existing = this.contacts.byIdentity(accepted.identity);
    // The contact moves to the inbox made with the invitation once my intro reaches them; the
    // first-contact mailbox is read until then (invitations made before inboxKey keep it).
    const moving = inv.inboxKey !== undefined;
    const base = {
      identity: toHex(encodePublicIdentity(accepted.identity)),
      session: toHex(accepted.session.serialize()),
      inbox: {
        relay: inv.relay,
        key: inv.inboxKey ?? inv.mailboxKey,
        ...(inv.inboxKey && inv.inboxToken ? { token: inv.inboxToken } : {}),
      },
      outbox: { relay: accepted.relayUrl, address: toHex(accepted.mailbox) },
      firstContact: moving
        ? {
            relay: inv.relay,
            key: inv.mailboxKey,
            until: Math.max(inv.expiresAt * 1000, now + FIRST_CONTACT_MIN_MS),
          }
        : undefined,
      lastActivity: now,
    };
    accepted.session.wipe();
    let id: string;
    let contact: ContactRecord;
    const events: InternalEvent[] = [];
    if (existing) {
      contact = { ...existing.value, ...base, previous: this.invitations.retire(existing.value, now) };
      id = existing.key;
      events.push(byInvitation(id, "renewed"));
    } else {
      contact = {
        ...base,
        name: this.contacts.uniqueName(placeholderName(fingerprint(accepted.identity))),
        nameSource: "auto",
        verified: false,
        keyChanged: false,
        createdAt: now,
        unread: 0,
        awaiting: [],
        // An invitation made for a group member opens a session for the group only.
        ...(inv.group ? { groupScoped: true as const } : {}),
      };
      id = this.contacts.put(null, contact);
    }
    this.invitations.remove(invitationKey);
    rememberAccept(contact, digestOf(frame.ciphertext));
    // The Accept's payload is the accepter's first message: its intro names the contact.
    contact.introExpected = true;
    if (payload) {
      const applied = this.payloads.apply(id, contact, payload);
      if (!existing) {
        events.push(byInvitation(id, "added"));
      }
      events.push(
        ...applied.filter((e) => !(e.type === "contact-ref" && e.event === "renamed" && !existing)),
      );
    } else if (!existing) {
      events.push(byInvitation(id, "added"));
    }
    delete contact.introExpected;
    if (!moving) delete contact.firstContact;
    // Tell the accepter who we are, and where to write from now on; this also ends its Accept
    // wrapping.
    const inbox = moving ? MailboxKey.deserialize(fromHex(inv.inboxKey!)).address : undefined;
    const token = moving && inv.inboxToken ? fromHex(inv.inboxToken) : undefined;
    const wire = encryptTo(contact, introPayload(this.ctx.name, { inbox, token }));
    this.contacts.put(id, contact);
    this.outbox.enqueue(id, "intro", contact.outbox, wire);
    return events;
  }

  /**
   * Deletes on the relay the first-contact mailboxes that are due, and forgets them once the
   * relay confirms (an unreachable relay is tried again at the next prune).
   */
  async deleteDue(now = Date.now()): Promise<void> {
    const due = this.contacts
      .all()
      .filter((r) => r.value.firstContact && r.value.firstContact.until <= now)
      .map((r) => ({ id: r.key, ...r.value.firstContact! }));
    for (const { id, relay, key } of due) {
      try {
        const conn = await this.pool.connect(relay);
        await conn.deleteMailbox(MailboxKey.deserialize(fromHex(key)));
      } catch (e) {
        if (!(e instanceof RelayRequestError && e.code === "UNKNOWN_MAILBOX")) continue;
      }
      this.ctx.tx(() => {
        const contact = this.contacts.get(id);
        if (contact?.firstContact?.key !== key) return;
        delete contact.firstContact;
        this.contacts.put(id, contact);
      });
      this.mailboxes.invalidate();
    }
  }
}
