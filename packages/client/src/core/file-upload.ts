// Sending a file to a contact (PROTOCOL.md §14): the file is read 64 KiB at a time (never whole),
// hashed as it goes, each chunk sealed (FileCipher) and written in order to a blob on the
// contact's relay; then the manifest goes out as a ratchet message, with a text's outbox and
// receipts. The upload's record (blob id, tokens, path) is kept from the start, so an interrupted
// upload resumes at the chunk the relay says it has (blobStatus), after a restart of either side.
import { createHash, randomBytes } from "node:crypto";
import { type FileHandle, open, stat } from "node:fs/promises";
import { resolve } from "node:path";
import {
  FILE_CHUNK_BYTES,
  FILE_CHUNK_OVERHEAD,
  FileCipher,
  fileChunkCount,
  fileChunkSize,
  fromHex,
  newMessageId,
  toHex,
} from "@parley/protocol";
import { ClientError } from "../errors.js";
import { RelayRequestError } from "../relay-connection.js";
import type { FileRecord, MessageRecord, MessageStatus } from "../store/records.js";
import { type BlobLink, isUnknownBlob, transferError } from "./blobs.js";
import { type Contacts, encryptTo, keyChangedError } from "./contacts.js";
import type { Context } from "./context.js";
import type { Delivery } from "./delivery.js";
import { mediaTypeOf, sentFileName } from "./file-names.js";
import type { Files } from "./files.js";
import type { Messages } from "./messages.js";
import type { Outbox } from "./outbox.js";
import type { Progress } from "./types.js";

/** Chunks between two notes of the upload's progress in the store (the relay's count is what counts). */
const SAVE_EVERY = 64;

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
    private readonly files: Pick<Files, "put" | "uploading" | "find">,
    private readonly contacts: Pick<Contacts, "findListed" | "get" | "put">,
    private readonly messages: Pick<Messages, "add" | "bySeq">,
    private readonly outbox: Pick<Outbox, "enqueue">,
    private readonly delivery: Pick<Delivery, "flush">,
    private readonly connect: (relay: string) => Promise<BlobLink>,
  ) {}

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
      if (earlier) return earlier;
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
      this.files.put(fresh);
      return fresh;
    });
    const uploaded = await this.upload(rec, progress);
    return this.offer(rec, uploaded);
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
    const cipher = new FileCipher(fromHex(rec.fileKey));
    const hash = createHash("sha256");
    const buf = Buffer.alloc(FILE_CHUNK_BYTES);
    let handle: FileHandle | undefined;
    let sent = 0;
    try {
      handle = await open(rec.path!, "r");
      for (let i = 0; i < rec.chunkCount; i++) {
        const length = fileChunkSize(rec.size, i);
        const chunk = buf.subarray(0, length);
        const { bytesRead } = await handle.read(chunk, 0, length, i * FILE_CHUNK_BYTES);
        if (bytesRead !== length) throw changed(rec);
        hash.update(chunk);
        if (i < written) continue;
        const sealed = cipher.seal(i, i === rec.chunkCount - 1, chunk);
        await putPaced(link, blobId, writeToken, i, sealed);
        sent++;
        progress?.(Math.min(rec.size, (i + 1) * FILE_CHUNK_BYTES), rec.size);
        if ((i + 1) % SAVE_EVERY === 0) this.files.put({ ...rec, next: i + 1 });
      }
      if ((await handle.stat()).size !== rec.size) throw changed(rec);
    } catch (e) {
      this.files.put({ ...rec, next: written + sent });
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
      cipher.wipe();
      await handle?.close();
    }
    progress?.(rec.size, rec.size);
    rec.sha256 = hash.digest("hex");
    return sent;
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

/** First wait after the relay says the upload is going faster than its upload rate; it doubles up to the most. */
const PACE_FIRST_MS = 50;
const PACE_MOST_MS = 2000;

/**
 * Writes a chunk, waiting and trying again while the relay answers RATE_LIMITED: a relay paces
 * each connection's uploads (§14.2, its `limits.uploadBytesPerSecondPerConnection`) and stores
 * nothing it refused, so the same chunk is simply sent again.
 */
async function putPaced(
  link: BlobLink,
  blobId: Uint8Array,
  writeToken: Uint8Array,
  index: number,
  sealed: Uint8Array,
): Promise<void> {
  for (let wait = PACE_FIRST_MS; ; wait = Math.min(wait * 2, PACE_MOST_MS)) {
    try {
      await link.putChunk(blobId, writeToken, index, sealed);
      return;
    } catch (e) {
      if (!(e instanceof RelayRequestError && e.code === "RATE_LIMITED")) throw e;
    }
    await new Promise((r) => setTimeout(r, wait));
  }
}

const changed = (rec: FileRecord) =>
  new ClientError("USAGE", `${rec.path} changed while it was being sent; send it again`);
