// Files in conversations (PROTOCOL.md §14): an offered file (a manifest) becomes a file message and
// a record of what is needed to fetch it; the records of files sent and received, listed with
// their state. Owns the files table. Moving the bytes is file-upload.ts and file-download.ts.
import { type FilePayload, toHex } from "@parley/protocol";
import { ClientError } from "../errors.js";
import type { FilesTable } from "../store/files.js";
import type { ContactRecord, FileRecord, MessageRecord } from "../store/records.js";
import type { Contacts } from "./contacts.js";
import type { Context } from "./context.js";
import type { InternalEvent } from "./events.js";
import type { Messages } from "./messages.js";
import type { Receipts } from "./receipts.js";
import type { FileView, MessageFile } from "./types.js";

export class Files {
  constructor(
    private readonly ctx: Context,
    private readonly table: FilesTable,
    private readonly contacts: Pick<Contacts, "get" | "findListed">,
    private readonly messages: Pick<Messages, "add" | "view">,
    private readonly receipts: Pick<Receipts, "queue">,
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

  /** Files sent and received, oldest first; with `name`, only those with that contact. */
  list(name?: string): FileView[] {
    const only = name === undefined ? null : this.contacts.findListed(name).id;
    const out: FileView[] = [];
    for (const f of this.table.all()) {
      if (only !== null && f.conversation !== only) continue;
      const contact = this.contacts.get(f.conversation);
      if (!contact) continue;
      out.push(fileView(contact, f));
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
    const m = payload.file;
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
    this.table.put({
      id,
      direction: "in",
      conversation: contactId,
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
      createdAt: now,
    });
    contact.unread += 1;
    contact.lastActivity = now;
    if (current) this.receipts.queue(contactId, "delivered", id);
    return [{ type: "message", ...this.messages.view(contact, rec) }];
  }
}

export function fileView(contact: ContactRecord, f: FileRecord): FileView {
  return {
    id: f.id,
    contact: contact.name,
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
