// Which mailboxes are mine: every contact's inbox (and first-contact and earlier mailboxes) and
// every open invitation's, by relay (to subscribe) and by address (to route a delivery), and the
// relays this identity uses. Read from the contact and invitation records; nothing is stored.
import { sha256 } from "@noble/hashes/sha2.js";
import { fromHex, MailboxKey, toHex } from "@parley/protocol";
import type { ContactRecord, InvitationRecord, Row } from "../store/records.js";

/** inboxSlot of the first-contact mailbox: read with the current session (ContactRecord.firstContact). */
export const FIRST_CONTACT = -2;

/** Who a mailbox of mine belongs to. */
export interface Owner {
  readonly kind: "contact" | "invitation";
  readonly id: string;
}

/** My mailboxes, grouped by relay. */
export function mailboxesByRelay(
  contacts: readonly Row<ContactRecord>[],
  invitations: readonly Row<InvitationRecord>[],
): Map<string, MailboxKey[]> {
  const boxes = new Map<string, MailboxKey[]>();
  const add = (relay: string, key: string) => {
    const list = boxes.get(relay) ?? [];
    list.push(MailboxKey.deserialize(fromHex(key)));
    boxes.set(relay, list);
  };
  for (const r of contacts) {
    // The first-contact mailbox before the inbox that replaces it: what waits there is older.
    const first = r.value.firstContact;
    if (first) add(first.relay, first.key);
    add(r.value.inbox.relay, r.value.inbox.key);
    for (const p of r.value.previous ?? []) add(p.inbox.relay, p.inbox.key);
  }
  for (const r of invitations) {
    add(r.value.relay, r.value.mailboxKey);
    if (r.value.inboxKey) add(r.value.relay, r.value.inboxKey);
  }
  return boxes;
}

/** Every relay this identity uses: its mailboxes', its contacts' and the default one. */
export function relaysInUse(
  contacts: readonly Row<ContactRecord>[],
  invitations: readonly Row<InvitationRecord>[],
  defaultRelay: string | undefined,
): Set<string> {
  const urls = new Set<string>();
  for (const r of contacts) {
    urls.add(r.value.inbox.relay);
    urls.add(r.value.outbox.relay);
  }
  for (const r of invitations) urls.add(r.value.relay);
  if (defaultRelay) urls.add(defaultRelay);
  return urls;
}

/** Which contact or invitation each of my mailbox addresses (hex) belongs to. */
export function indexInboxes(
  contacts: readonly Row<ContactRecord>[],
  invitations: readonly Row<InvitationRecord>[],
): Map<string, Owner> {
  const index = new Map<string, Owner>();
  for (const r of contacts) {
    const first = r.value.firstContact ? [r.value.firstContact] : [];
    for (const inbox of [r.value.inbox, ...(r.value.previous ?? []).map((p) => p.inbox), ...first]) {
      index.set(addressOf(inbox.key), { kind: "contact", id: r.key });
    }
  }
  for (const r of invitations) {
    index.set(addressOf(r.value.mailboxKey), { kind: "invitation", id: r.key });
  }
  return index;
}

/** Which of a contact's conversations reads the mailbox `address`: -1 the current, i an earlier, null none. */
export function inboxSlot(contact: ContactRecord, address: string): number | null {
  if (addressOf(contact.inbox.key) === address) return -1;
  if (contact.firstContact && addressOf(contact.firstContact.key) === address) return FIRST_CONTACT;
  const i = (contact.previous ?? []).findIndex((p) => addressOf(p.inbox.key) === address);
  return i >= 0 ? i : null;
}

/**
 * Mailbox addresses, by a digest of their key (never the key itself): deriving one is an Ed25519
 * public-key computation, which every delivery would otherwise repeat for each inbox it checks.
 */
const addresses = new Map<string, string>();
const ADDRESS_CACHE_LIMIT = 4096;

export function addressOf(mailboxKey: string): string {
  const tag = toHex(sha256(new TextEncoder().encode(mailboxKey)));
  let address = addresses.get(tag);
  if (address === undefined) {
    const key = MailboxKey.deserialize(fromHex(mailboxKey));
    address = key.addressHex;
    key.wipe();
    if (addresses.size >= ADDRESS_CACHE_LIMIT) addresses.clear();
    addresses.set(tag, address);
  }
  return address;
}

/** Forgets every cached address (a client closing). */
export function clearAddresses(): void {
  addresses.clear();
}

/** The records mailboxes are read from, and the default relay. */
export interface MailboxSources {
  contacts(): Row<ContactRecord>[];
  invitations(): Row<InvitationRecord>[];
  defaultRelay(): string | undefined;
}

/** The above over the current records, with the address index cached until a mailbox changes hands. */
export class Mailboxes {
  private index: Map<string, Owner> | null = null;

  constructor(private readonly from: MailboxSources) {}

  byRelay(): Map<string, MailboxKey[]> {
    return mailboxesByRelay(this.from.contacts(), this.from.invitations());
  }

  relaysInUse(): Set<string> {
    return relaysInUse(this.from.contacts(), this.from.invitations(), this.from.defaultRelay());
  }

  /** Who the mailbox `address` (hex) belongs to, from the cached index (`rebuild`: from the store). */
  owner(address: string, rebuild = false): Owner | undefined {
    if (rebuild || !this.index) this.index = indexInboxes(this.from.contacts(), this.from.invitations());
    return this.index.get(address);
  }

  /** A mailbox changed hands (or went): the index is rebuilt when next needed. */
  invalidate(): void {
    this.index = null;
  }
}
