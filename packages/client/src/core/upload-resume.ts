// Continuing uploads that stopped part-way (PROTOCOL.md §14.4): a `parley send-file` killed, a
// relay that went away, a terminal UI closed in the middle of a /file. A sync continues every such
// upload that no other process is sending, and so does live mode: when it starts, when a relay
// comes back, and now and then. Each goes on from the relay's count (blobStatus) and ends with
// its offer, as `send-file` does; its progress is an "upload" event.
import { FILE_CHUNK_BYTES } from "@parley/protocol";
import { ClientError } from "../errors.js";
import type { FileRecord } from "../store/records.js";
import type { Contacts } from "./contacts.js";
import { type Context, warn } from "./context.js";
import type { FileUpload } from "./file-upload.js";
import type { Files } from "./files.js";
import type { GroupFiles } from "./group-files.js";
import type { Groups } from "./groups.js";
import type { FlushReport, UploadProgress } from "./types.js";

/** Live mode looks for uploads to continue at most this often, besides a start and a relay's return. */
const RECHECK_MS = 30_000;

export class UploadResume {
  /** The pass under way, and whether another was asked for meanwhile. */
  private running: Promise<FlushReport> | null = null;
  private again = false;
  private notBefore = 0;
  /** Refusals live mode has shown since the last pass without any: each is said once. */
  private readonly said = new Set<string>();

  constructor(
    private readonly ctx: Context,
    private readonly files: Pick<Files, "uploading" | "get">,
    private readonly contacts: Pick<Contacts, "get">,
    private readonly upload: Pick<FileUpload, "claim" | "finish" | "release">,
    private readonly groups: Pick<Groups, "get">,
    private readonly groupFiles: Pick<GroupFiles, "resume">,
  ) {}

  /**
   * Continues every pending upload that no other process is sending, one after another; resolves
   * with the relays that could not be reached and the refusals. A pass already under way is
   * joined, not doubled.
   */
  resume(): Promise<FlushReport> {
    this.running ??= this.pass().finally(() => {
      this.running = null;
      this.notBefore = Date.now() + RECHECK_MS;
    });
    return this.running;
  }

  /**
   * Live mode: a pass in the background, `now` (live mode starts, a relay is back) or when one is
   * due. A refusal is a warning; an unreachable relay is its link's to report, and its return
   * starts another pass.
   */
  poke(now: boolean): void {
    if (this.running) {
      if (now) this.again = true;
      return;
    }
    if (!now && Date.now() < this.notBefore) return;
    this.again = false;
    void this.resume()
      .then(({ refused }) => {
        // A relay that keeps refusing (its storage full) is tried every RECHECK_MS, said once.
        if (refused.length === 0) this.said.clear();
        for (const r of refused) if (!this.said.has(r)) warn(this.ctx, r);
        for (const r of refused) this.said.add(r);
        if (this.again) this.poke(true);
      })
      .catch((e: unknown) => warn(this.ctx, `continuing uploads: ${(e as Error).message}`));
  }

  /** Resolves once no pass is under way (for a client that stops). */
  async settled(): Promise<void> {
    this.again = false;
    while (this.running) await this.running.catch(() => {});
  }

  private async pass(): Promise<FlushReport> {
    const unreachable = new Set<string>();
    const refused: string[] = [];
    for (const pending of this.files.uploading()) {
      const to = this.destination(pending);
      if (!to) continue;
      const rec = this.upload.claim(pending.id);
      if (!rec) continue;
      const report = (state: UploadProgress["state"], done: number, error?: string) =>
        this.ctx.emitter.emit("upload", {
          id: rec.id,
          contact: to.name,
          name: rec.name,
          done,
          total: rec.size,
          state,
          ...(error === undefined ? {} : { error }),
        });
      let done = Math.min(rec.size, (rec.next ?? 0) * FILE_CHUNK_BYTES);
      try {
        report("uploading", done);
        await to.finish(rec, (d) => {
          done = d;
          report("uploading", d);
        });
        report("sent", rec.size);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        const sent = this.sent(rec);
        report(sent ? "sent" : "stopped", sent ? rec.size : done, message);
        if (e instanceof ClientError && e.code === "UNREACHABLE") unreachable.add(rec.relay);
        else if (e instanceof ClientError && e.code === "RELAY_REFUSED") refused.push(message);
        else warn(this.ctx, message);
      } finally {
        this.upload.release(rec);
      }
    }
    return { unreachable: [...unreachable], refused };
  }

  /**
   * Where a pending upload goes, by name, and how it is finished: a contact's (held while the
   * contact's key changed, as its outbox is, until verified), or a group's (one with `readers`;
   * GroupFiles checks its members' keys as it offers). Null: not now, or its conversation is gone.
   */
  private destination(rec: FileRecord): {
    name: string;
    finish: (rec: FileRecord, progress: (done: number) => void) => Promise<unknown>;
  } | null {
    if (rec.readers) {
      const group = this.groups.get(rec.conversation);
      return group ? { name: group.name, finish: (r, p) => this.groupFiles.resume(r, p) } : null;
    }
    const contact = this.contacts.get(rec.conversation);
    if (!contact || contact.keyChanged) return null;
    return { name: contact.name, finish: (r, p) => this.upload.finish(r, p) };
  }

  /** Is the file on the relay, its offer made (perhaps waiting in the outbox)? */
  private sent(rec: FileRecord): boolean {
    return this.files.get(rec.id)?.state === "sent";
  }
}
