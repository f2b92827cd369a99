// Group members as the client reaches them: a member (named by signing key, hex) has a session
// when a contact record (an ordinary contact, or one set up for a group) holds its identity. One
// Peers is made per transaction: it reads the contacts once, encrypts to each over its session,
// and writes back the records whose sessions moved, except the one the caller is holding (the
// contact whose message is being received), which the caller saves itself: two copies of one
// session must never both be written, or a message key would be used twice.
import { fingerprint, type PublicIdentity, toHex } from "@parley/protocol";
import type { ContactRecord } from "../store/records.js";
import { type Contacts, encryptTo, placeholderName } from "./contacts.js";

/** A member's signing key (hex) from a contact record's identity (hex of signing ‖ agreement key). */
export const memberKeyOf = (c: ContactRecord): string => c.identity.slice(0, 64);

/** The form a member takes in an outgoing message's lists (GroupMessageFields). */
export const short = (member: string): string => member.slice(0, 16);

export interface Peer {
  readonly id: string;
  readonly contact: ContactRecord;
}

export class Peers {
  private readonly byKey = new Map<string, Peer>();
  private readonly all: Peer[];
  private readonly dirty = new Set<string>();

  constructor(
    private readonly contacts: Pick<Contacts, "all" | "put">,
    /** The contact the caller holds (and saves): used as it is, never written here. */
    private readonly held?: Peer,
  ) {
    this.all = contacts
      .all()
      .map((r) => (held && r.key === held.id ? held : { id: r.key, contact: r.value }));
    for (const p of this.all) if (!p.contact.keyChanged) this.byKey.set(memberKeyOf(p.contact), p);
  }

  /** The contact whose session reaches `member`, if there is one (none while its key is in doubt). */
  get(member: string): Peer | undefined {
    return this.byKey.get(member);
  }

  has(member: string): boolean {
    return this.byKey.has(member);
  }

  /** Every member (signing key hex) I have a session with. */
  members(): string[] {
    return [...this.byKey.keys()];
  }

  /** The contact that was `identity` until its key changed and is not confirmed yet, if any. */
  keyChanged(identity: PublicIdentity): Peer | undefined {
    const fp = fingerprint(identity);
    return this.all.find((p) => p.contact.keyChanged && p.contact.previousFingerprint === fp);
  }

  /** How a member is named: its contact's name, else a name made from its fingerprint. */
  name(identity: PublicIdentity): string {
    const p = this.byKey.get(toHex(identity.signingKey)) ?? this.keyChanged(identity);
    return p ? p.contact.name : placeholderName(fingerprint(identity));
  }

  /** Encrypts a payload to `member` over its session; null when there is none. */
  encrypt(member: string, payload: Parameters<typeof encryptTo>[1]): { peer: Peer; wire: Uint8Array } | null {
    const peer = this.byKey.get(member);
    if (!peer) return null;
    const wire = encryptTo(peer.contact, payload);
    this.dirty.add(peer.id);
    return { peer, wire };
  }

  /** Writes back every session that moved, but the held contact's. */
  save(): void {
    for (const p of this.all) {
      if (this.dirty.has(p.id) && p.id !== this.held?.id) this.contacts.put(p.id, p.contact);
    }
    this.dirty.clear();
  }
}
