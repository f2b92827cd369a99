// Contacts: the conversation records (one per person), found by name, named so that no two look
// alike, and verified by safety number. Owns the contacts table; other modules read and write
// contact records only through this one.
import {
  decodePublicIdentity,
  encodePayload,
  fingerprint,
  fromHex,
  type Payload,
  type PublicIdentity,
  Session,
  safetyNumber,
  samePublicIdentity,
  toHex,
  verifySafetyNumber,
} from "@parley/protocol";
import { ClientError } from "../errors.js";
import type { ContactsTable } from "../store/contacts.js";
import type { ContactRecord, Row } from "../store/records.js";
import { MAX_NAME_LENGTH, nameProblem, nameSkeleton } from "../text.js";
import type { Context } from "./context.js";
import type { ContactView, SafetyView } from "./types.js";

/** The contact's public identity, decoded from its record. */
export const identityOf = (c: ContactRecord): PublicIdentity => decodePublicIdentity(fromHex(c.identity));

/** A contact as the CLI and the UI show it; `outbox`: how many of its entries wait to be sent. */
export function contactView(c: ContactRecord, outbox: number): ContactView {
  return {
    contact: c.name,
    fingerprint: fingerprint(identityOf(c)),
    verified: c.verified,
    keyChanged: c.keyChanged,
    relay: c.outbox.relay,
    unread: c.unread,
    lastActivity: c.lastActivity,
    outbox,
  };
}

/**
 * A name that looks like none of `taken` (name skeletons, nameSkeleton): the name itself, else
 * with the first characters of the contact's fingerprint, "Name (ab12)", when one is given, else
 * (or if that looks taken too) "name 2", "name 3", …
 */
export function uniqueName(wanted: string, taken: ReadonlySet<string>, fp?: string): string {
  if (!taken.has(nameSkeleton(wanted))) return wanted;
  if (fp) {
    const candidate = `${[...wanted].slice(0, MAX_NAME_LENGTH - 7).join("")} (${fp.replace(/ /g, "").slice(0, 4)})`;
    if (!taken.has(nameSkeleton(candidate))) return candidate;
  }
  for (let i = 2; ; i++) {
    const candidate = `${[...wanted].slice(0, 60).join("")} ${i}`;
    if (!taken.has(nameSkeleton(candidate))) return candidate;
  }
}

/** The placeholder name of a contact who has not announced one: from its fingerprint. */
export const placeholderName = (fp: string) => `contact-${fp.replace(/ /g, "").slice(0, 8)}`;

/** Encrypts one payload to a contact, advancing the session in `contact` (the caller saves it). */
export function encryptTo(contact: ContactRecord, payload: Payload): Uint8Array {
  const session = Session.deserialize(fromHex(contact.session));
  try {
    const wire = session.encrypt(encodePayload(payload));
    contact.session = toHex(session.serialize());
    return wire;
  } finally {
    session.wipe();
  }
}

export function keyChangedError(name: string): ClientError {
  return new ClientError(
    "KEY_CHANGED",
    `${name}'s identity key changed: nothing is sent until you compare safety numbers (parley verify ${JSON.stringify(name)}) and confirm with --confirm`,
  );
}

export class Contacts {
  constructor(
    private readonly ctx: Context,
    private readonly table: ContactsTable,
    /** The names of my other conversations (groups): a contact's name looks like none of them. */
    private readonly otherNames: () => string[] = () => [],
  ) {}

  all(): Row<ContactRecord>[] {
    return this.table.all();
  }

  get(id: string): ContactRecord | null {
    return this.table.get(id);
  }

  /** Writes a contact (a new one when `id` is null); returns its id. */
  put(id: string | null, value: ContactRecord): string {
    return this.table.put(id, value);
  }

  /** Removes the record only: the caller removes what else belongs to the contact. */
  remove(id: string): void {
    this.table.remove(id);
  }

  /** Finds a contact by its exact name, else by a unique case-insensitive match. */
  find(name: string): { id: string; contact: ContactRecord } {
    const all = this.table.all();
    const exact = all.find((r) => r.value.name === name);
    const folded = all.filter((r) => r.value.name.toLowerCase() === name.toLowerCase());
    const hit = exact ?? (folded.length === 1 ? folded[0] : undefined);
    if (!hit)
      throw new ClientError(
        "UNKNOWN_CONTACT",
        `no contact named ${JSON.stringify(name)} (see \`parley contacts\`)`,
      );
    return { id: hit.key, contact: hit.value };
  }

  /**
   * find(), for a conversation of the user's own: a session set up only for a group (one of its
   * members I was introduced to) is refused until the user makes it a contact.
   */
  findListed(name: string): { id: string; contact: ContactRecord } {
    const hit = this.find(name);
    if (hit.contact.groupScoped)
      throw new ClientError(
        "UNKNOWN_CONTACT",
        `${hit.contact.name} is not one of your contacts, only a member of a group you are in (\`parley group contact GROUP ${hit.contact.name}\` makes them one)`,
      );
    return hit;
  }

  /** The contact with this identity key, if there is one. */
  byIdentity(identity: PublicIdentity): Row<ContactRecord> | undefined {
    return this.table.all().find((r) => samePublicIdentity(identityOf(r.value), identity));
  }

  /** uniqueName() among every conversation's name (contacts' and groups') but contact `except`'s. */
  uniqueName(wanted: string, except?: string, fp?: string): string {
    const taken = new Set(
      [
        ...this.table
          .all()
          .filter((r) => r.key !== except)
          .map((r) => r.value.name),
        ...this.otherNames(),
      ].map(nameSkeleton),
    );
    return uniqueName(wanted, taken, fp);
  }

  /**
   * Another conversation (a contact but `except`, or a group) whose name looks the same as `name`
   * (nameSkeleton), if there is one: its name and what it is.
   */
  lookAlike(name: string, except?: string): { name: string; kind: "contact" | "group" } | undefined {
    const skeleton = nameSkeleton(name);
    const contact = this.table
      .all()
      .find((r) => r.key !== except && nameSkeleton(r.value.name) === skeleton)?.value;
    if (contact) return { name: contact.name, kind: "contact" };
    const group = this.otherNames().find((n) => nameSkeleton(n) === skeleton);
    return group === undefined ? undefined : { name: group, kind: "group" };
  }

  /** Renames a contact locally. */
  rename(name: string, newName: string): string {
    const problem = nameProblem(newName);
    if (problem) throw new ClientError("USAGE", `new name: ${problem}`);
    return this.ctx.tx(() => {
      const { id, contact } = this.find(name);
      const other = this.lookAlike(newName, id);
      if (other?.name.toLowerCase() === newName.toLowerCase())
        throw new ClientError("USAGE", `another ${other.kind} is already called ${JSON.stringify(newName)}`);
      if (other)
        throw new ClientError(
          "USAGE",
          `${JSON.stringify(newName)} looks the same as another ${other.kind}'s name, ${JSON.stringify(other.name)}`,
        );
      this.table.put(id, { ...contact, name: newName, nameSource: "user" });
      return newName;
    });
  }

  safety(name: string): SafetyView {
    const { contact } = this.find(name);
    const sn = this.safetyOf(contact);
    return {
      contact: contact.name,
      safetyNumber: sn.display,
      compact: sn.compact,
      verified: contact.verified,
      keyChanged: contact.keyChanged,
    };
  }

  /**
   * Marks a contact verified; a key-change block is lifted and held messages may leave. With
   * `expected` (the 60 digits or the compact form the other person read out or showed as a QR
   * code), nothing is marked unless it matches the safety number of the key held now.
   */
  confirm(name: string, expected?: string): void {
    this.ctx.tx(() => {
      const { id, contact } = this.find(name);
      if (expected !== undefined) this.checkSafety(contact, expected);
      this.table.put(id, { ...contact, verified: true, keyChanged: false });
    });
  }

  /** Compares a safety number the user has against this contact's, in constant time. */
  matchesSafety(name: string, candidate: string): boolean {
    const { contact } = this.find(name);
    return verifySafetyNumber(this.safetyOf(contact), candidate);
  }

  private safetyOf(contact: ContactRecord) {
    return safetyNumber(this.ctx.identity.publicIdentity, identityOf(contact));
  }

  private checkSafety(contact: ContactRecord, candidate: string): void {
    if (!verifySafetyNumber(this.safetyOf(contact), candidate)) {
      throw new ClientError(
        "SAFETY_MISMATCH",
        `the safety number you have does not match ${contact.name}'s key: do not trust this contact until you find out why`,
      );
    }
  }
}
