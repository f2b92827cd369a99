// Messages: each conversation's history, read in windows, marked read, and each outgoing
// message's status, which only ever moves forward. Owns the messages table.
import type { MessageRow, MessagesTable } from "../store/messages.js";
import type { ContactRecord, DeliveryFailure, MessageRecord, MessageStatus } from "../store/records.js";
import { humanDuration } from "../text.js";
import type { Contacts } from "./contacts.js";
import type { Context } from "./context.js";
import { failureWords, sameFailure } from "./deposits.js";
import type { Receipts } from "./receipts.js";
import type { ClientEvent, ConversationEntry, MessageFile, MessageView } from "./types.js";

const fileField = (file: MessageFile | null) => (file ? { file } : {});

/** Order of outgoing statuses: a status only ever moves forward (expired can still become delivered). */
const RANK: Record<MessageStatus, number> = {
  queued: 0,
  stored: 1,
  expired: 2,
  delivered: 3,
  read: 4,
  received: 0,
  failed: 5,
};

/** Does a receipt saying `to` move an outgoing message whose status is `from`? */
export const advances = (from: MessageStatus, to: MessageStatus): boolean => RANK[from] < RANK[to];

export type StatusEvent = Extract<ClientEvent, { type: "status" }>;

export class Messages {
  constructor(
    private readonly ctx: Context,
    private readonly table: MessagesTable,
    private readonly contacts: Pick<Contacts, "findListed" | "put">,
    private readonly receipts: Pick<Receipts, "queue">,
    /** The retention a relay announced, in seconds, if known (for the words of an expiry). */
    private readonly retentionOf: (relay: string) => number | undefined,
    /** The file of a file message, by its id. */
    private readonly fileOf: (id: string) => MessageFile | null = () => null,
  ) {}

  // ---------------------------------------------------------------------------- views

  view(contact: ContactRecord, m: MessageRecord): MessageView {
    return {
      contact: contact.name,
      id: m.id,
      direction: m.direction,
      text: m.text,
      sentAt: m.sentAt,
      receivedAt: m.receivedAt,
      status: m.status,
      failure: this.failureOf(contact, m),
      ...(m.file ? fileField(this.fileOf(m.file)) : {}),
    };
  }

  statusEvent(contact: ContactRecord, m: MessageRecord): StatusEvent {
    return {
      type: "status",
      contact: contact.name,
      id: m.id,
      status: m.status,
      failure: this.failureOf(contact, m),
    };
  }

  /** Why an outgoing message is not delivered, in words (MessageView.failure). */
  failureOf(contact: ContactRecord, m: MessageRecord): string | null {
    if (m.direction !== "out") return null;
    switch (m.status) {
      case "expired": {
        const retention = this.retentionOf(contact.outbox.relay);
        return `${contact.name} did not fetch it before the relay dropped it${retention ? ` (it keeps messages ${humanDuration(retention)})` : ""}`;
      }
      case "queued":
        if (contact.keyChanged) {
          return `held until you compare safety numbers with ${contact.name} and confirm the new key`;
        }
        return m.failure ? failureWords(contact.name, m.failure) : null;
      case "failed":
        return failureWords(contact.name, m.failure ?? { code: "refused" });
      default:
        return null;
    }
  }

  // ------------------------------------------------------------------------ reading

  /** The conversation, oldest first. Shown messages are marked read and read receipts queued. */
  history(name: string, limit = 50): MessageView[] {
    return this.ctx.tx(() => {
      const { id, contact } = this.contacts.findListed(name);
      const rows = this.table.before(id, undefined, limit);
      let shown = 0;
      for (const row of rows) {
        if (row.value.direction === "in" && row.value.status === "received") {
          this.table.put(id, row.seq, { ...row.value, status: "read" });
          this.receipts.queue(id, "read", row.value.id);
          shown++;
        }
      }
      if (shown > 0) this.contacts.put(id, { ...contact, unread: Math.max(0, contact.unread - shown) });
      return rows.map((r) => this.view(contact, r.value));
    });
  }

  /**
   * A window of the conversation, oldest first, without marking anything read: up to `limit`
   * messages older than `before` (the newest when undefined), or from the seq `from` on. Only the
   * window is decrypted and it is found by seq, so a conversation of any length pages in constant
   * time.
   */
  conversation(
    name: string,
    at: { readonly before?: number } | { readonly from: number },
    limit: number,
  ): ConversationEntry[] {
    const { id, contact } = this.contacts.findListed(name);
    const rows = "from" in at ? this.table.from(id, at.from, limit) : this.table.before(id, at.before, limit);
    return rows.map((r) => ({ seq: r.seq, message: this.view(contact, r.value) }));
  }

  /** Marks every shown message of a conversation read (queuing read receipts) and clears its unread count. */
  markRead(name: string): void {
    this.ctx.tx(() => {
      const { id, contact } = this.contacts.findListed(name);
      if (contact.unread === 0) return;
      for (const row of unreadRows(this.table, id, contact.unread)) {
        this.table.put(id, row.seq, { ...row.value, status: "read" });
        this.receipts.queue(id, "read", row.value.id);
      }
      this.contacts.put(id, { ...contact, unread: 0 });
    });
  }

  /** Deletes a conversation's local history (the contact stays). */
  deleteHistory(name: string): void {
    this.ctx.tx(() => {
      const { id, contact } = this.contacts.findListed(name);
      this.table.removeAll(id);
      this.contacts.put(id, { ...contact, unread: 0, awaiting: [] });
    });
  }

  // ------------------------------------------------------- writing (inside a transaction)

  /** Adds a message unless one with its id is there (shown once, whatever the relay repeats); its seq or null. */
  add(contactId: string, m: MessageRecord): number | null {
    return this.table.add(contactId, m);
  }

  bySeq(contactId: string, seq: number): MessageRecord | null {
    return this.table.bySeq(contactId, seq);
  }

  /** A message of a conversation (a contact's or a group's) by its id (hex), with its seq. */
  byId(conversation: string, id: string): MessageRow | null {
    return this.table.byId(conversation, id);
  }

  /** Rewrites a message of a conversation. */
  update(conversation: string, seq: number, value: MessageRecord): void {
    this.table.put(conversation, seq, value);
  }

  /** A window of a conversation, oldest first (see conversation()). */
  rows(
    conversation: string,
    at: { readonly before?: number } | { readonly from: number },
    limit: number,
  ): MessageRow[] {
    return "from" in at
      ? this.table.from(conversation, at.from, limit)
      : this.table.before(conversation, at.before, limit);
  }

  removeAll(contactId: string): void {
    this.table.removeAll(contactId);
  }

  /** The relay stored a queued message: "stored", its failure cleared. Null if it was not queued. */
  markStored(contactId: string, seq: number): MessageRecord | null {
    const m = this.table.bySeq(contactId, seq);
    if (m?.status !== "queued") return null;
    const { failure: _cleared, ...rest } = m;
    const stored: MessageRecord = { ...rest, status: "stored" };
    this.table.put(contactId, seq, stored);
    return stored;
  }

  /** A queued message is given up: "failed", with why. Null if it was not queued. */
  markFailed(contactId: string, seq: number, failure: DeliveryFailure): MessageRecord | null {
    const m = this.table.bySeq(contactId, seq);
    if (m?.status !== "queued") return null;
    const failed: MessageRecord = { ...m, status: "failed", failure };
    this.table.put(contactId, seq, failed);
    return failed;
  }

  /** Records why a queued message waits; null when it is not queued or already says so. */
  noteFailure(contactId: string, seq: number, failure: DeliveryFailure): MessageRecord | null {
    const m = this.table.bySeq(contactId, seq);
    if (m?.status !== "queued" || sameFailure(m.failure, failure)) return null;
    const updated: MessageRecord = { ...m, failure };
    this.table.put(contactId, seq, updated);
    return updated;
  }

  /** A stored message whose relay surely dropped it unread: "expired". Null if it was not stored. */
  markExpired(contactId: string, seq: number): MessageRecord | null {
    const m = this.table.bySeq(contactId, seq);
    if (m?.status !== "stored") return null;
    const expired: MessageRecord = { ...m, status: "expired" };
    this.table.put(contactId, seq, expired);
    return expired;
  }

  /**
   * A receipt names an outgoing message (`id`, hex) as delivered or read: its status moves there
   * if that is forward, its failure cleared. The row it changed, or null.
   */
  acknowledge(contactId: string, id: string, status: "delivered" | "read"): MessageRow | null {
    const hit = this.table.byId(contactId, id);
    if (!hit) return null;
    if (hit.value.direction !== "out" || !advances(hit.value.status, status)) return null;
    const { failure: _gone, ...rest } = hit.value;
    const updated: MessageRecord = { ...rest, status };
    this.table.put(contactId, hit.seq, updated);
    return { seq: hit.seq, value: updated };
  }
}

/**
 * The newest `count` unread messages of a conversation, newest first: found by walking back from
 * its end, since my own messages and a group's notes may come after them.
 */
export function* unreadRows(
  table: { before(conversation: string, before: number | undefined, limit: number): MessageRow[] },
  conversation: string,
  count: number,
): Generator<MessageRow> {
  let left = count;
  let before: number | undefined;
  while (left > 0) {
    const rows = table.before(conversation, before, Math.max(left, 32));
    if (rows.length === 0) return;
    for (const row of rows.reverse()) {
      if (row.value.direction !== "in" || row.value.status !== "received") continue;
      yield row;
      if (--left === 0) return;
    }
    before = rows.at(-1)!.seq;
  }
}
