// Fetching an offered file (PROTOCOL.md §14.3, §14.4): chunk by chunk into a temporary file beside
// the destination (resuming from the chunks already there), each opened with the file key in the
// file worker (file-work.ts), the size and SHA-256 checked, and only then given its final name,
// never replacing a file; then the relay is told the download is complete (blobDone). A chunk
// that fails to open, a wrong hash or a blob the relay no longer has leaves nothing behind.
import { closeSync, fstatSync, openSync, statSync, truncateSync, unlinkSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { FILE_CHUNK_BYTES, fromHex, relayUrlProblem } from "@parley/protocol";
import { ClientError } from "../errors.js";
import { RelayRequestError } from "../relay-connection.js";
import type { FileRecord } from "../store/records.js";
import { type BlobLink, isUnknownBlob, transferError } from "./blobs.js";
import { type Context, warn } from "./context.js";
import { linkUnique, sanitizeFileName } from "./file-names.js";
import { FileJobError, fileWork } from "./file-work.js";
import type { Files } from "./files.js";
import type { Progress } from "./types.js";

export interface FileFetched {
  readonly id: string;
  /** Where it was saved. */
  readonly path: string;
  readonly size: number;
  /** Chunks this run downloaded (fewer when it resumed an earlier download). */
  readonly downloadedChunks: number;
}

/** Chunk requests in flight during a download: a few chunks of memory, whatever the file's size. */
export const READ_AHEAD = 8;
/** Chunks given to the file worker to open and not yet written. */
export const OPEN_AHEAD = 4;

/** The temporary name of a download in `dir`: hidden, and fixed per file, so a rerun finds it. */
export const partialName = (dir: string, id: string) => join(dir, `.parley-${id}.part`);

export class FileDownload {
  constructor(
    private readonly ctx: Context,
    private readonly files: Pick<Files, "find" | "put">,
    private readonly connect: (relay: string) => Promise<BlobLink>,
  ) {}

  /**
   * See Client.fetchFile(). `out`: a directory to save into (under the file's sanitised name), or
   * a file path (used as given, with a suffix if it exists); the current directory by default.
   */
  async fetch(id: string, out?: string, progress?: Progress): Promise<FileFetched> {
    const rec = this.files.find(id);
    if (rec.direction !== "in")
      throw new ClientError("USAGE", `${rec.name} is a file you sent, not one to fetch`);
    if (rec.state === "fetched")
      throw new ClientError("USAGE", `${rec.name} was already fetched, to ${rec.savedAs}`);
    if (rec.state === "expired") throw expired(rec);
    // The relay is the sender's claim too: one that breaks the §4.3 rules is not connected to.
    const bad = relayUrlProblem(rec.relay);
    if (bad) throw this.fail(rec, null, `the offer names a relay that is not valid (${bad})`);
    const { dir, name } = destination(out, rec.name);
    const part = partialName(dir, rec.id);
    const what = `fetching ${rec.name}`;
    const blobId = fromHex(rec.blobId);
    const token = fromHex(rec.readToken!);
    const done = resumePartial(part, rec);
    const work = await fileWork();
    const job = work.job();
    let fetched = 0;
    try {
      const link = await this.connect(rec.relay);
      // The worker hashes the chunks already there, then opens, writes and hashes each new one.
      await work.call({
        op: "download",
        job,
        path: part,
        fileKey: fromHex(rec.fileKey),
        size: rec.size,
        chunkCount: rec.chunkCount,
        done,
      });
      // A few requests ahead, so the relay's round trips overlap; replies are matched by request id.
      const ahead = new Map<number, Promise<Uint8Array>>();
      const ask = (i: number) => {
        if (i >= rec.chunkCount || ahead.has(i)) return;
        const p = link.getChunk(blobId, token, i);
        p.catch(() => {}); // awaited in order below; a failure ahead is reported when its turn comes
        ahead.set(i, p);
      };
      // Chunks being opened by the worker while the next ones arrive, answered in order.
      const opening: Promise<void>[] = [];
      for (let i = done; i < rec.chunkCount; i++) {
        for (let k = i; k < i + READ_AHEAD; k++) ask(k);
        const sealed = await ahead.get(i)!;
        ahead.delete(i);
        const opened = work.call({ op: "open", job, index: i, sealed }).then(() => {
          fetched++;
          progress?.(Math.min(rec.size, (i + 1) * FILE_CHUNK_BYTES), rec.size);
        });
        opened.catch(() => {}); // awaited in order
        opening.push(opened);
        if (opening.length >= OPEN_AHEAD) await opening.shift();
      }
      while (opening.length > 0) await opening.shift();
      const { size, sha256 } = await work.call({ op: "finish", job });
      await work.call({ op: "end", job });
      if (size !== rec.size) throw this.fail(rec, part, `it is ${size} bytes, not the ${rec.size} announced`);
      if (sha256 !== rec.sha256)
        throw this.fail(rec, part, "its SHA-256 does not match the one the sender announced");
      const path = linkUnique(part, dir, name);
      unlinkSync(part);
      this.files.put({ ...rec, state: "fetched", savedAs: path, error: undefined });
      try {
        await link.blobDone(blobId, token);
      } catch {
        // The file is saved and checked; the relay deletes the blob at its retention anyway.
        warn(
          this.ctx,
          `could not tell relay ${rec.relay} that ${rec.name} was fetched; it deletes it when it expires`,
        );
      }
      return { id: rec.id, path, size: rec.size, downloadedChunks: fetched };
    } catch (caught) {
      await work.call({ op: "end", job }).catch(() => {});
      if (caught instanceof FileJobError) throw this.jobFailed(rec, part, caught);
      const e = caught;
      if (isUnknownBlob(e)) {
        removeQuietly(part);
        this.files.put({ ...rec, state: "expired", error: "expired on the relay" });
        throw expired(rec);
      }
      // A refusal (not a lost connection, which keeps the partial file to resume from): the relay
      // will not give this file, e.g. a stored chunk it finds damaged (INTERNAL). Nothing is kept.
      if (e instanceof RelayRequestError && e.code !== "RATE_LIMITED") {
        throw this.fail(rec, part, `relay ${rec.relay} refused to give it: ${e.code} (${e.message})`);
      }
      throw transferError(rec.relay, what, e);
    }
  }

  /** A chunk that did not open or has the wrong size, or the partial file that cannot be written. */
  private jobFailed(rec: FileRecord, part: string, e: FileJobError): ClientError {
    if (e.kind === "auth") {
      const chunk = /chunk (\d+)/.exec(e.message)?.[1];
      return this.fail(
        rec,
        part,
        `chunk ${chunk} of ${rec.chunkCount} failed its authentication check: the file was altered on the relay or on the way`,
      );
    }
    if (e.kind === "size") return this.fail(rec, part, e.message);
    return new ClientError("USAGE", `cannot write ${part}: ${e.message}`);
  }

  /** Records a failed download, removes its partial file, and says why. */
  private fail(rec: FileRecord, part: string | null, why: string): ClientError {
    if (part !== null) removeQuietly(part);
    this.files.put({ ...rec, state: "failed", error: why });
    return new ClientError("FILE_FAILED", `${rec.name}: ${why}; nothing was saved`);
  }
}

const expired = (rec: FileRecord) =>
  new ClientError(
    "FILE_FAILED",
    `${rec.name}: expired on the relay (it keeps files until ${new Date(rec.expiresAt ?? 0).toISOString()}, or until fetched); ask the sender to send it again`,
  );

/** The directory and name to save under (§14.4: a received name is sanitised; `out` is the user's). */
function destination(out: string | undefined, offered: string): { dir: string; name: string } {
  if (out === undefined) return { dir: process.cwd(), name: sanitizeFileName(offered) };
  const abs = resolve(out);
  let isDir = false;
  try {
    isDir = statSync(abs).isDirectory();
  } catch {
    // not there: a file path to create
  }
  if (isDir || out.endsWith("/")) return { dir: abs, name: sanitizeFileName(offered) };
  return { dir: dirname(abs), name: basename(abs) };
}

/**
 * Opens (creating it) the partial file of a download and counts the whole chunks already in it
 * (the worker hashes them again); anything after them is cut off.
 */
function resumePartial(part: string, rec: FileRecord): number {
  let fd: number;
  try {
    fd = openSync(part, "a+", 0o600);
  } catch (e) {
    throw new ClientError("USAGE", `cannot write ${part}: ${(e as NodeJS.ErrnoException).code}`);
  }
  try {
    const have = fstatSync(fd).size;
    // Only full chunks before the last are kept: the last is always fetched again.
    const done = Math.min(Math.floor(have / FILE_CHUNK_BYTES), rec.chunkCount - 1);
    truncateSync(part, done * FILE_CHUNK_BYTES);
    return done;
  } finally {
    closeSync(fd);
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
