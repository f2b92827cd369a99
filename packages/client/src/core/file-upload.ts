// Sending a file to a contact (PROTOCOL.md §14): the file is read 64 KiB at a time (never whole),
// hashed as it goes, each chunk sealed (FileCipher, in a worker thread: file-work.ts) and written in order to a blob on the
// contact's relay, several in flight (chunk-pipeline.ts); then the manifest goes out as a ratchet message, with a text's outbox and
// receipts. The upload's record (blob id, tokens, path) is kept from the start, so an interrupted
// upload resumes at the chunk the relay says it has (blobStatus), after a restart of either side.
import { randomBytes } from "node:crypto";
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import {
  FILE_CHUNK_BYTES,
  FILE_CHUNK_OVERHEAD,
  fileChunkCount,
  fromHex,
  newMessageId,
  toHex,
} from "@parley/protocol";
import { ClientError } from "../errors.js";
import type { FileRecord, MessageRecord, MessageStatus } from "../store/records.js";
import { type BlobLink, isUnknownBlob, transferError } from "./blobs.js";
import { putChunks } from "./chunk-pipeline.js";
import { type Contacts, encryptTo, keyChangedError } from "./contacts.js";
import type { Context } from "./context.js";
import type { Delivery } from "./delivery.js";
import { mediaTypeOf, sentFileName } from "./file-names.js";
import { FileJobError, fileWork } from "./file-work.js";
import type { Files } from "./files.js";
import type { Messages } from "./messages.js";
import type { Outbox } from "./outbox.js";
import type { Progress } from "./types.js";

/** Chunks between two notes of the upload's progress in the store (the relay's count is what counts). */
const SAVE_EVERY = 64;
/**
 * An upload is claimed by the process sending it (FileRecord.uploader), so that a sync or the
 * terminal UI does not continue an upload that another parley process is still sending. A claim
 * lapses once its process is gone (a crash, kill -9), or when it was not renewed for CLAIM_MS.
 */
const CLAIM_MS = 60_000;
const RENEW_MS = 15_000;
/** Chunks asked of the file worker ahead of the one the upload sends. */
const SEAL_AHEAD = 4;

export interface FileSent {
  readonly contact: string;
  /** The file's id (the manifest's message id). */
  readonly id: string;
  readonly name: string;
  readonly size: number;
  /** The manifest's status: "stored" (or beyond) once a relay took it, "queued" while it waits. */
  readonly status: MessageStatus;
  /** When the relay deletes the file. */
  readonly expiresAt: number;
  /** Chunks this run uploaded (fewer than the file's when it resumed an earlier upload). */
  readonly uploadedChunks: number;
}

export class FileUpload {
  constructor(
    private readonly ctx: Context,
    private readonly files: Pick<Files, "get" | "put" | "uploading" | "find">,
    private readonly contacts: Pick<Contacts, "findListed" | "get" | "put">,
    private readonly messages: Pick<Messages, "add" | "bySeq">,
    private readonly outbox: Pick<Outbox, "enqueue">,
    private readonly delivery: Pick<Delivery, "flush">,
    private readonly connect: (relay: string) => Promise<BlobLink>,
  ) {}

  /** Ids of the uploads this process is sending now. */
  private readonly sending = new Set<string>();

  /** See Client.sendFile(). */
  async send(name: string, path: string, progress?: Progress): Promise<FileSent> {
    const abs = resolve(path);
    const st = await stat(abs).catch((e: NodeJS.ErrnoException) => {
      throw new ClientError("USAGE", `cannot read ${path}: ${e.code === "ENOENT" ? "no such file" : e.code}`);
    });
    if (!st.isFile()) throw new ClientError("USAGE", `${path} is not a regular file`);
    fileChunkCount(st.size);
    const rec = this.ctx.tx(() => {
      const { id, contact } = this.contacts.findListed(name);
      if (contact.keyChanged) throw keyChangedError(contact.name);
      // The same file to the same contact, interrupted: continue it rather than start again.
      const earlier = this.files
        .uploading()
        .find(
          (f) => f.conversation === id && f.path === abs && f.size === st.size && f.mtimeMs === st.mtimeMs,
        );
      if (earlier) return this.take(earlier);
      const fresh: FileRecord = {
        id: toHex(newMessageId()),
        direction: "out",
        conversation: id,
        name: sentFileName(abs),
        mediaType: mediaTypeOf(abs),
        size: st.size,
        chunkCount: fileChunkCount(st.size),
        relay: contact.outbox.relay,
        blobId: toHex(randomBytes(32)),
        fileKey: toHex(randomBytes(32)),
        writeToken: toHex(randomBytes(32)),
        readTokens: [toHex(randomBytes(32))],
        path: abs,
        mtimeMs: st.mtimeMs,
        next: 0,
        state: "uploading",
        createdAt: Date.now(),
      };
      return this.take(fresh);
    });
    try {
      return await this.finish(rec, progress);
    } finally {
      this.release(rec);
    }
  }

  /**
   * Claims a pending upload for this process (see CLAIM_MS): the record, or null when it is not
   * pending any more or another process (or this one) is sending it. release() when done.
   */
  claim(id: string): FileRecord | null {
    return this.ctx.tx(() => {
      const rec = this.files.get(id);
      if (rec?.direction !== "out" || rec.state !== "uploading" || this.busy(rec)) return null;
      return this.claimed(rec);
    });
  }

  /**
   * Claims an upload this process is about to continue (in the caller's transaction): LOCKED while
   * another process, or this one, is sending it. release() when done.
   */
  take(rec: FileRecord): FileRecord {
    const busy = this.busy(rec);
    if (busy) throw new ClientError("LOCKED", busy);
    return this.claimed(rec);
  }

  /** Uploads the chunks a claimed upload still lacks, then sends its manifest. */
  async finish(rec: FileRecord, progress?: Progress): Promise<FileSent> {
    const uploaded = await this.upload(rec, progress);
    return this.offer(rec, uploaded);
  }

  /** Lets go of a claim (the record as it now is keeps its state). */
  release(rec: FileRecord): void {
    this.sending.delete(rec.id);
    this.ctx.tx(() => {
      const now = this.files.get(rec.id);
      if (now?.uploader?.pid === process.pid) this.files.put({ ...now, uploader: undefined });
    });
  }

  /** Why an upload cannot be claimed now, or null: it is being sent, here or by a live process. */
  private busy(rec: FileRecord): string | null {
    if (this.sending.has(rec.id)) return `${rec.name} is being sent already; its upload goes on`;
    const u = rec.uploader;
    if (!u || u.pid === process.pid || u.until <= Date.now() || !alive(u.pid)) return null;
    return `${rec.name} is being sent already, by another parley process (pid ${u.pid}); its upload goes on there`;
  }

  /** The record claimed for this process and written (in the caller's transaction). */
  private claimed(rec: FileRecord): FileRecord {
    const claimed = { ...rec, uploader: { pid: process.pid, until: Date.now() + CLAIM_MS } };
    this.files.put(claimed);
    this.sending.add(rec.id);
    return claimed;
  }

  /**
   * Withdraws a file I sent: the relay deletes it with its chunks (its recipients then find it
   * gone, "expired on the relay"). One the relay no longer has is withdrawn already.
   */
  async withdraw(id: string): Promise<void> {
    const rec = this.files.find(id);
    if (rec.direction !== "out")
      throw new ClientError("USAGE", `${rec.name} is a file you were offered, not one you sent`);
    try {
      const link = await this.connect(rec.relay);
      await link.deleteBlob(fromHex(rec.blobId), fromHex(rec.writeToken!));
    } catch (e) {
      if (!isUnknownBlob(e)) throw transferError(rec.relay, `withdrawing ${rec.name}`, e);
    }
    this.files.put({ ...rec, state: "expired", error: "withdrawn" });
  }

  /**
   * Writes the file's chunks the relay lacks; returns how many it wrote. Sets rec.sha256 and
   * expiresAt. The blob has one reader per read token (a group file: one per member, group-files.ts).
   */
  async upload(rec: FileRecord, progress?: Progress): Promise<number> {
    const blobId = fromHex(rec.blobId);
    const writeToken = fromHex(rec.writeToken!);
    const what = `uploading ${rec.name}`;
    let link: BlobLink;
    let written: number;
    try {
      link = await this.connect(rec.relay);
      const blob = {
        blobId,
        writeToken,
        chunkCount: rec.chunkCount,
        sealedSize: rec.size + rec.chunkCount * FILE_CHUNK_OVERHEAD,
        readTokens: rec.readTokens!.map(fromHex),
      };
      // A createBlob repeated with the same fields is a retry (§14.2): nothing changes on the relay.
      await link.createBlob(blob);
      const info = await link.blobStatus(blobId, writeToken);
      written = info.written;
      rec.expiresAt = info.expiresAt;
    } catch (e) {
      throw transferError(rec.relay, what, e);
    }
    let stored = written;
    let renewed = Date.now();
    const work = await fileWork();
    const job = work.job();
    try {
      // Resumed later (by a sync, say): the file must still be the one whose chunks the relay has.
      const st = await stat(rec.path!).catch((e: NodeJS.ErrnoException) => {
        throw new ClientError(
          "USAGE",
          `cannot read ${rec.path}: ${e.code === "ENOENT" ? "no such file" : e.code}; send it again`,
        );
      });
      if (st.size !== rec.size || (rec.mtimeMs !== undefined && st.mtimeMs !== rec.mtimeMs))
        throw changed(rec);
      // The file's hash covers every chunk, those the relay has too: the worker hashes those first.
      await work.call({
        op: "upload",
        job,
        path: rec.path!,
        fileKey: fromHex(rec.fileKey),
        size: rec.size,
        chunkCount: rec.chunkCount,
        hashed: written,
      });
      const count = rec.chunkCount;
      // A few chunks asked for ahead, so that the next is sealed while this one goes out.
      const asked = new Map<number, Promise<Uint8Array>>();
      let askedTo = written;
      const ask = (i: number) => {
        const p = work.call({ op: "seal", job, index: i }).then((r) => r.sealed!);
        p.catch(() => {}); // awaited when its turn comes
        asked.set(i, p);
      };
      await putChunks({
        link,
        blobId,
        writeToken,
        from: written,
        count,
        seal: (i) => {
          // Asked again after a refusal: what was asked ahead is dropped (and was hashed already).
          if (!asked.has(i)) {
            asked.clear();
            askedTo = i;
          }
          for (; askedTo < Math.min(count, i + SEAL_AHEAD); askedTo++) ask(askedTo);
          const sealed = asked.get(i)!;
          asked.delete(i);
          return sealed;
        },
        stored: (next) => {
          stored = next;
          progress?.(Math.min(rec.size, next * FILE_CHUNK_BYTES), rec.size);
          const now = Date.now();
          if (now - renewed >= RENEW_MS) {
            renewed = now;
            rec.uploader = { pid: process.pid, until: now + CLAIM_MS };
            this.files.put({ ...rec, next });
          } else if (next % SAVE_EVERY === 0) this.files.put({ ...rec, next });
        },
      });
      rec.sha256 = (await work.call({ op: "finish", job })).sha256!;
    } catch (caught) {
      this.files.put({ ...rec, next: stored });
      const e = caught instanceof FileJobError ? jobError(rec, caught) : caught;
      if (e instanceof ClientError) {
        this.files.put({ ...rec, state: "failed", error: e.message });
        throw e;
      }
      if (isUnknownBlob(e)) {
        // The relay dropped the half-made blob (it expired): start the upload again from scratch.
        this.files.put({ ...rec, state: "failed", error: "expired on the relay before the upload finished" });
        throw new ClientError(
          "RELAY_REFUSED",
          `uploading ${rec.name}: the relay no longer has the unfinished upload (it expired); send the file again`,
        );
      }
      throw transferError(rec.relay, what, e);
    } finally {
      await work.call({ op: "end", job }).catch(() => {});
    }
    progress?.(rec.size, rec.size);
    return stored - written;
  }

  /** Sends the manifest of an uploaded file, with the outbox and receipts of a text. */
  private async offer(rec: FileRecord, uploadedChunks: number): Promise<FileSent> {
    const queued = this.ctx.tx(() => {
      const contact = this.contacts.get(rec.conversation);
      if (!contact) throw new ClientError("UNKNOWN_CONTACT", "the contact this file was for is gone");
      if (contact.keyChanged) throw keyChangedError(contact.name);
      const now = Date.now();
      const mid = fromHex(rec.id);
      const file = {
        name: rec.name,
        mediaType: rec.mediaType,
        size: rec.size,
        sha256: fromHex(rec.sha256!),
        chunkCount: rec.chunkCount,
        relay: rec.relay,
        blobId: fromHex(rec.blobId),
        readToken: fromHex(rec.readTokens![0]!),
        fileKey: fromHex(rec.fileKey),
        expiresAt: rec.expiresAt!,
      };
      const wire = encryptTo(contact, { type: "file", id: mid, sentAt: now, file });
      const msg: MessageRecord = {
        id: rec.id,
        direction: "out",
        text: "",
        sentAt: now,
        receivedAt: now,
        status: "queued",
        file: rec.id,
      };
      const seq = this.messages.add(rec.conversation, msg)!;
      this.outbox.enqueue(rec.conversation, "message", contact.outbox, wire, seq);
      contact.lastActivity = now;
      this.contacts.put(rec.conversation, contact);
      this.files.put({ ...rec, state: "sent", next: rec.chunkCount });
      return { seq, name: contact.name };
    });
    const { unreachable, refused } = await this.delivery.flush({ force: true });
    const msg = this.messages.bySeq(rec.conversation, queued.seq);
    const status = msg?.status ?? "queued";
    if (status === "queued" && unreachable.length > 0) {
      throw new ClientError(
        "UNREACHABLE",
        `${rec.name} is on the relay, but relay ${unreachable.join(", ")} is unreachable: its offer to ${queued.name} waits in the outbox`,
      );
    }
    if (status === "queued" && refused.length > 0) {
      throw new ClientError(
        "RELAY_REFUSED",
        `${refused.join("; ")}; the offer of ${rec.name} waits in the outbox and is retried by the next send or sync`,
      );
    }
    return {
      contact: queued.name,
      id: rec.id,
      name: rec.name,
      size: rec.size,
      status,
      expiresAt: rec.expiresAt!,
      uploadedChunks,
    };
  }
}

/** Is process `pid` running (on this machine, where the store is)? */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it runs, as another user.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The file's reading failed: it changed under the upload, or cannot be read. */
function jobError(rec: FileRecord, e: FileJobError): ClientError {
  if (e.kind === "changed") return changed(rec);
  return new ClientError("USAGE", `cannot read ${rec.path}: ${e.message}; send it again`);
}

const changed = (rec: FileRecord) =>
  new ClientError("USAGE", `${rec.path} changed while it was being sent; send it again`);
