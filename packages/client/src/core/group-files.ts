// Sending a file to a group (PROTOCOL.md §14.3 "Groups"): the file is uploaded once, as one blob
// with a read token for each other member (file-upload.ts moves the bytes), on the relay most of
// those members' mailboxes are on; then each member gets its own manifest, signed once by me with
// the read token left out, as a group message (group-send.ts: directly, forwarded through the
// member who introduced us, or held until one of the two is up), with a text's receipts ("delivered
// to N of M"). Members removed, or gone, before the offer get nothing.
import { randomBytes } from "node:crypto";
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { fileChunkCount, fromHex, groupFileSignedBytes, newMessageId, toHex } from "@parley/protocol";
import { ClientError } from "../errors.js";
import type { FileRecord, MessageRecord } from "../store/records.js";
import type { Context } from "./context.js";
import { mediaTypeOf, sentFileName } from "./file-names.js";
import type { FileSent, FileUpload } from "./file-upload.js";
import { type Files, groupManifest } from "./files.js";
import { type Peers, short } from "./group-peers.js";
import { checkKeys, type GroupSend, type GroupSentStatus, notMember } from "./group-send.js";
import type { Groups } from "./groups.js";
import type { Messages } from "./messages.js";
import type { Progress } from "./types.js";

/** A file sent to a group: as to a contact (`contact` is then my name), with the group's counts. */
export interface GroupFileSent extends FileSent {
  readonly group: string;
  /** Members it is for, and how many said delivered / read. */
  readonly recipients: number;
  readonly delivered: number;
  readonly read: number;
  /** Why it has not reached every member yet, in words, or null. */
  readonly failure: string | null;
}

/**
 * The relay to hold a group file: the one most of `relays` (each member's, where I write to it)
 * are on; at a tie my own (`mine`) if it is one of them, else the first in byte order. Null when
 * no member is reached (no relay named).
 */
export function groupBlobRelay(relays: readonly string[], mine: string | undefined): string | null {
  const counts = new Map<string, number>();
  for (const r of relays) counts.set(r, (counts.get(r) ?? 0) + 1);
  const most = Math.max(0, ...counts.values());
  const best = [...counts].filter(([, n]) => n === most).map(([r]) => r);
  if (best.length === 0) return null;
  if (mine !== undefined && best.includes(mine)) return mine;
  // URLs are printable ASCII (§4.3): string order is byte order.
  return best.sort()[0]!;
}

export class GroupFiles {
  constructor(
    private readonly ctx: Context,
    private readonly groups: Groups,
    private readonly files: Pick<Files, "put" | "uploading">,
    private readonly uploads: Pick<FileUpload, "upload">,
    private readonly send: Pick<GroupSend, "text" | "deliver">,
    private readonly messages: Pick<Messages, "add">,
  ) {}

  /**
   * Sends a file to group `name` (see Client.sendFile). An interrupted upload of the same file to
   * the same group resumes where the relay stopped, for the members it was for then.
   */
  async sendFile(name: string, path: string, progress?: Progress): Promise<GroupFileSent> {
    const abs = resolve(path);
    const st = await stat(abs).catch((e: NodeJS.ErrnoException) => {
      throw new ClientError("USAGE", `cannot read ${path}: ${e.code === "ENOENT" ? "no such file" : e.code}`);
    });
    if (!st.isFile()) throw new ClientError("USAGE", `${path} is not a regular file`);
    fileChunkCount(st.size);
    const rec = this.ctx.tx(() => {
      const { key, group: g, state } = this.groups.find(name);
      const me = this.groups.me;
      if (!state?.members.has(me)) throw notMember(g.name);
      const peers = this.groups.peers();
      checkKeys(peers, state, me, g.name);
      const earlier = this.files
        .uploading()
        .find(
          (f) => f.conversation === key && f.path === abs && f.size === st.size && f.mtimeMs === st.mtimeMs,
        );
      if (earlier) return earlier;
      const others = [...state.members.keys()].filter((k) => k !== me);
      if (others.length === 0)
        throw new ClientError("USAGE", `${g.name} has no other member to send ${path} to`);
      const fresh: FileRecord = {
        id: toHex(newMessageId()),
        direction: "out",
        conversation: key,
        name: sentFileName(abs),
        mediaType: mediaTypeOf(abs),
        size: st.size,
        chunkCount: fileChunkCount(st.size),
        relay: this.relayFor(peers, others, g.name),
        blobId: toHex(randomBytes(32)),
        fileKey: toHex(randomBytes(32)),
        writeToken: toHex(randomBytes(32)),
        // One read token per member (at most 49: within a blob's 64 readers, PROTOCOL.md §14.2).
        readTokens: others.map(() => toHex(randomBytes(32))),
        readers: others,
        path: abs,
        mtimeMs: st.mtimeMs,
        next: 0,
        state: "uploading",
        createdAt: Date.now(),
      };
      this.files.put(fresh);
      return fresh;
    });
    return this.resume(rec, progress);
  }

  /**
   * Uploads what the relay lacks of a file of mine to a group (a record of Files.uploading() with
   * `readers`), then offers it: how sendFile finishes, and how an interrupted one is taken up again.
   */
  async resume(rec: FileRecord, progress?: Progress): Promise<GroupFileSent> {
    const uploaded = await this.uploads.upload(rec, progress);
    return this.offer(rec, uploaded);
  }

  /** Where the blob goes: the relay most members' mailboxes are on (groupBlobRelay), else mine. */
  private relayFor(peers: Peers, members: readonly string[], group: string): string {
    const relays = members.flatMap((k) => peers.get(k)?.contact.outbox.relay ?? []);
    const relay = groupBlobRelay(relays, this.ctx.settings.relay) ?? this.ctx.settings.relay;
    if (relay === undefined)
      throw new ClientError(
        "USAGE",
        `you reach no member of ${group} yet, and no relay is configured to hold the file (parley init --relay URL)`,
      );
    return relay;
  }

  /**
   * Offers an uploaded file to the members it is for that are still members: my next group
   * message, one manifest each, signed once; then delivers them like texts.
   */
  private async offer(rec: FileRecord, uploadedChunks: number): Promise<GroupFileSent> {
    const queued = this.ctx.tx(() => {
      const key = rec.conversation;
      const g = this.groups.get(key);
      if (!g) throw new ClientError("UNKNOWN_CONTACT", `the group ${rec.name} was for is gone`);
      const state = this.groups.state(g);
      const me = this.groups.me;
      if (!state?.members.has(me)) throw notMember(g.name);
      const peers = this.groups.peers();
      checkKeys(peers, state, me, g.name);
      const members = (rec.readers ?? []).filter((k) => state.members.has(k));
      const now = Date.now();
      g.mySeq += 1;
      // Every copy carries the same signature: it covers the manifest with the read token zeroed.
      const manifest = groupManifest(rec, rec.readers![0]!)!;
      const signed = { groupId: fromHex(g.groupId), id: fromHex(rec.id), sentAt: now, seq: g.mySeq };
      const m: MessageRecord = {
        id: rec.id,
        direction: "out",
        text: "",
        sentAt: now,
        receivedAt: now,
        status: members.length === 0 ? "stored" : "queued",
        file: rec.id,
        group: {
          author: me,
          seq: g.mySeq,
          signature: toHex(this.ctx.identity.sign(groupFileSignedBytes({ ...signed, file: manifest }))),
          to: members.map(short),
          queued: [],
          stored: [],
          delivered: [],
          read: [],
        },
      };
      const row = this.messages.add(key, m)!;
      this.files.put({ ...rec, state: "sent", next: rec.chunkCount });
      this.send.text(peers, key, g, state, row, m, members);
      g.lastActivity = now;
      this.groups.put(key, g);
      peers.save();
      return { key, row };
    });
    const [s] = await this.send.deliver(
      queued.key,
      [queued.row],
      (_, group) => `the offer of ${rec.name} to ${group} waits in the outbox`,
    );
    const status: GroupSentStatus = s!;
    return {
      contact: status.contact,
      group: status.group,
      id: rec.id,
      name: rec.name,
      size: rec.size,
      status: status.status,
      failure: status.failure,
      recipients: status.recipients,
      delivered: status.delivered,
      read: status.read,
      expiresAt: rec.expiresAt!,
      uploadedChunks,
    };
  }
}
