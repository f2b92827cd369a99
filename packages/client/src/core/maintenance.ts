// Forgetting: a contact deleted with everything of theirs, and, from time to time, invitations
// and earlier conversations that can receive nothing more, and sessions set up for groups
// (group-scoped) once I share no group with their member and nothing waits to go to it. Their
// mailboxes are deleted on the relay, best effort: an abandoned mailbox holds nothing past the
// relay's retention anyway.
import type { ContactRecord } from "../store/records.js";
import type { Contacts } from "./contacts.js";
import type { Context } from "./context.js";
import type { DepositTokens } from "./deposit-tokens.js";
import type { Files } from "./files.js";
import type { FirstContact } from "./first-contact.js";
import { memberKeyOf } from "./group-peers.js";
import type { Groups } from "./groups.js";
import type { Invitations } from "./invitations.js";
import type { Mailboxes } from "./mailboxes.js";
import type { Messages } from "./messages.js";
import type { Outbox } from "./outbox.js";
import type { Receipts } from "./receipts.js";
import type { RelayPool } from "./relays.js";

export class Maintenance {
  constructor(
    private readonly ctx: Context,
    private readonly contacts: Contacts,
    private readonly messages: Pick<Messages, "removeAll">,
    private readonly outbox: Pick<Outbox, "removeAll" | "size">,
    private readonly receipts: Pick<Receipts, "removeAll">,
    private readonly invitations: Pick<Invitations, "all" | "remove">,
    private readonly firstContact: Pick<FirstContact, "deleteDue">,
    private readonly mailboxes: Pick<Mailboxes, "invalidate">,
    private readonly pool: Pick<RelayPool, "expiryDelayMs" | "forgetMailbox">,
    private readonly tokens: Pick<DepositTokens, "lockDue">,
    private readonly files: Pick<Files, "removeAll">,
    private readonly groups: Pick<Groups, "coMembers">,
  ) {}

  /** Deletes a contact, its history and its outbox; its mailboxes are deleted on the relay (best effort). */
  async deleteContact(name: string): Promise<void> {
    const keys = this.ctx.tx(() => {
      const { id, contact } = this.contacts.find(name);
      return this.forget(id, contact);
    });
    this.mailboxes.invalidate();
    for (const { relay, key } of keys) await this.pool.forgetMailbox(relay, key);
  }

  /** Removes a contact and everything of theirs; returns its mailboxes. Inside a transaction. */
  private forget(id: string, contact: ContactRecord): { relay: string; key: string }[] {
    this.messages.removeAll(id);
    this.outbox.removeAll(id);
    this.receipts.removeAll(id);
    this.files.removeAll(id);
    this.contacts.remove(id);
    return [
      contact.inbox,
      ...(contact.previous ?? []).map((p) => p.inbox),
      ...(contact.firstContact ? [contact.firstContact] : []),
    ];
  }

  /**
   * Forgets invitations that expired so long ago that no Accept for them can still be waiting,
   * and earlier conversations whose mailboxes can hold nothing more; their mailboxes are then
   * deleted on the relay (best effort: an abandoned mailbox holds nothing past the retention).
   */
  async prune(now = Date.now()): Promise<void> {
    const gone = this.ctx.tx(() => {
      const keys: { relay: string; key: string }[] = [];
      for (const r of this.invitations.all()) {
        if (r.value.expiresAt * 1000 + this.pool.expiryDelayMs(r.value.relay) > now) continue;
        this.invitations.remove(r.key);
        keys.push({ relay: r.value.relay, key: r.value.mailboxKey });
        if (r.value.inboxKey) keys.push({ relay: r.value.relay, key: r.value.inboxKey });
      }
      // A session made for groups, once no group of mine needs it and my last items (a leave, a
      // removal) have gone over it.
      const needed = this.contacts.all().some((r) => r.value.groupScoped) ? this.groups.coMembers() : null;
      for (const r of this.contacts.all()) {
        if (!r.value.groupScoped || !needed || needed.has(memberKeyOf(r.value))) continue;
        if (this.outbox.size(r.key) === 0) keys.push(...this.forget(r.key, r.value));
      }
      for (const r of this.contacts.all()) {
        const previous = r.value.previous ?? [];
        const keep = previous.filter((p) => p.until > now);
        if (keep.length === previous.length) continue;
        for (const p of previous) if (p.until <= now) keys.push(p.inbox);
        this.contacts.put(r.key, { ...r.value, previous: keep });
      }
      return keys;
    });
    await this.firstContact.deleteDue(now);
    await this.tokens.lockDue();
    if (gone.length > 0) this.mailboxes.invalidate();
    for (const { relay, key } of gone) await this.pool.forgetMailbox(relay, key);
  }
}
