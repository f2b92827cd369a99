// Files in conversations (PROTOCOL.md §14): an offered file (a manifest) becomes a file message and
// a record of what is needed to fetch it; the records of files sent and received (with a contact
// or in a group), listed with their state. Owns the files table. Moving the bytes is
// file-upload.ts and file-download.ts; a group's copies of a manifest, group-files.ts.
import { type FileManifest, type FilePayload, fromHex, toHex } from "@parley/protocol";
import { ClientError } from "../errors.js";
import type { FilesTable } from "../store/files.js";
import type { ContactRecord, FileRecord, MessageRecord } from "../store/records.js";
import type { Contacts } from "./contacts.js";
import type { Context } from "./context.js";
import type { InternalEvent } from "./events.js";
import type { Messages } from "./messages.js";
import type { Receipts } from "./receipts.js";
import type { FileView, MessageFile } from "./types.js";

/** How the files list names a group's files (bound once the groups are built). */
export interface GroupParties {
  /** The row key of the group I call `name`, or null when no group is called so. */
  keyOf(name: string): string | null;
  /**
   * For a group's row key: my name for the group and how `author` (a member's signing key hex;
   * undefined: me) is named there. Null when `key` is not a group's.
   */
  party(key: string, author: string | undefined): { group: string; contact: string } | null;
}

export class Files {
  constructor(
    private readonly ctx: Context,
    private readonly table: FilesTable,
    private readonly contacts: Pick<Contacts, "get" | "findListed">,
    private readonly messages: Pick<Messages, "add" | "view">,
    private readonly receipts: Pick<Receipts, "queue">,
    private readonly groups: GroupParties = { keyOf: () => null, party: () => null },
  ) {}

  // ------------------------------------------------------------------------ records

  get(id: string): FileRecord | null {
    return this.table.get(id);
  }

  /** A file by its id as the user typed it (hex, any case), or UNKNOWN_FILE. */
  find(id: string): FileRecord {
    const rec = /^[0-9a-fA-F]{32}$/.test(id) ? this.table.get(id.toLowerCase()) : null;
    if (!rec)
      throw new ClientError("UNKNOWN_FILE", `no file with id ${JSON.stringify(id)} (see \`parley files\`)`);
    return rec;
  }

  /** Writes a record, in its own transaction unless inside one. */
  put(rec: FileRecord): void {
    this.ctx.tx(() => this.table.put(rec));
  }

  /** Whether a file with this id (hex) is held, in any conversation. */
  has(id: string): boolean {
    return this.table.get(id) !== null;
  }

  /** Records a file offered to me (see offeredFile). Inside a transaction. */
  offered(conversation: string, id: string, m: FileManifest, author?: string): void {
    this.table.put(offeredFile(conversation, id, m, author));
  }

  /** Every unfinished upload of mine, oldest first. */
  uploading(): FileRecord[] {
    return this.table.all().filter((f) => f.direction === "out" && f.state === "uploading");
  }

  removeAll(conversation: string): void {
    this.table.removeAll(conversation);
  }

  // ------------------------------------------------------------------------ views

  /** What a file message shows of its file (MessageView.file). */
  summary(id: string): MessageFile | null {
    const f = this.table.get(id);
    return f ? { id: f.id, name: f.name, size: f.size, mediaType: f.mediaType, state: f.state } : null;
  }

  /** Files sent and received, oldest first; with `name`, only those with that contact or in that group. */
  list(name?: string): FileView[] {
    const only = name === undefined ? null : (this.groups.keyOf(name) ?? this.contacts.findListed(name).id);
    const out: FileView[] = [];
    for (const f of this.table.all()) {
      if (only !== null && f.conversation !== only) continue;
      const contact = this.contacts.get(f.conversation);
      if (contact) {
        out.push(fileView(contact.name, f));
        continue;
      }
      const party = this.groups.party(f.conversation, f.author);
      if (party) out.push(fileView(party.contact, f, party.group));
    }
    return out;
  }

  // ------------------------------------------------------------- receiving (in a transaction)

  /**
   * A manifest arrived from a contact: a file message (shown once, whatever the relay repeats), a
   * record to fetch it by, and a delivered receipt when `current`.
   */
  receive(
    contactId: string,
    contact: ContactRecord,
    payload: FilePayload,
    current: boolean,
  ): InternalEvent[] {
    const now = Date.now();
    const id = toHex(payload.id);
    // A file's id names one record: an offer reusing the id of a file I hold (in any
    // conversation) is not let to replace it.
    if (this.has(id)) return [];
    const rec: MessageRecord = {
      id,
      direction: "in",
      text: "",
      sentAt: payload.sentAt,
      receivedAt: now,
      status: "received",
      file: id,
    };
    if (this.messages.add(contactId, rec) === null) return [];
    this.offered(contactId, id, payload.file);
    contact.unread += 1;
    contact.lastActivity = now;
    if (current) this.receipts.queue(contactId, "delivered", id);
    return [{ type: "message", ...this.messages.view(contact, rec) }];
  }
}

/**
 * Records a file offered to me (`id`, hex: the manifest's message id) in a conversation, to fetch
 * it by; `author` is the member who sent it, in a group. Inside a transaction; the caller has
 * checked that no file has this id yet (has()).
 */
function offeredFile(conversation: string, id: string, m: FileManifest, author?: string): FileRecord {
  return {
    id,
    direction: "in",
    conversation,
    name: m.name,
    mediaType: m.mediaType,
    size: m.size,
    chunkCount: m.chunkCount,
    relay: m.relay,
    blobId: toHex(m.blobId),
    fileKey: toHex(m.fileKey),
    sha256: toHex(m.sha256),
    expiresAt: m.expiresAt,
    readToken: toHex(m.readToken),
    state: "offered",
    createdAt: Date.now(),
    ...(author === undefined ? {} : { author }),
  };
}

/**
 * The manifest of a file I sent to a group, as member `member` (signing key hex) gets it: with its
 * own read token. Null when the file was not for that member (it joined later) or is not uploaded.
 */
export function groupManifest(rec: FileRecord, member: string): FileManifest | null {
  const i = rec.readers?.indexOf(member) ?? -1;
  const token = i < 0 ? undefined : rec.readTokens?.[i];
  if (token === undefined || rec.sha256 === undefined || rec.expiresAt === undefined) return null;
  return {
    name: rec.name,
    mediaType: rec.mediaType,
    size: rec.size,
    sha256: fromHex(rec.sha256),
    chunkCount: rec.chunkCount,
    relay: rec.relay,
    blobId: fromHex(rec.blobId),
    readToken: fromHex(token),
    fileKey: fromHex(rec.fileKey),
    expiresAt: rec.expiresAt,
  };
}

/** A file as listed; `contact` is the other side's name, or in a group its author's (mine: my name). */
export function fileView(contact: string, f: FileRecord, group?: string): FileView {
  return {
    id: f.id,
    contact,
    ...(group === undefined ? {} : { group }),
    direction: f.direction,
    name: f.name,
    size: f.size,
    mediaType: f.mediaType,
    state: f.state,
    createdAt: f.createdAt,
    expiresAt: f.expiresAt ?? null,
    savedAs: f.savedAs ?? null,
    sha256: f.sha256 ?? null,
    error: f.error ?? null,
  };
}
