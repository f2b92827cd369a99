// The file transfer's work on plaintext (PROTOCOL.md §14.1, §14.4), a chunk at a time: for an
// upload, reading the file, hashing it (SHA-256 of the whole plaintext, in order) and sealing each
// chunk; for a download, opening each chunk, writing it in place in the partial file and hashing
// it. It runs in a worker thread (file-worker.ts, started by file-work.ts), so that the sealing and
// hashing, pure JavaScript, go on beside the main thread's frames and store; or, where no worker
// can be had, in the caller's thread. Requests of a job are handled in the order they come.
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from "node:fs";
import { sha256 } from "@noble/hashes/sha2.js";
import { CryptoError, FILE_CHUNK_BYTES, FileCipher, fileChunkSize, toHex } from "@parley/protocol";

interface FileShape {
  /** The job's number, unique in its process. */
  readonly job: number;
  readonly path: string;
  readonly fileKey: Uint8Array;
  readonly size: number;
  readonly chunkCount: number;
}

export type JobRequest =
  /** An upload of the file at `path`: chunks 0 … `hashed` - 1 (the relay has them) are hashed first. */
  | ({ readonly op: "upload"; readonly hashed: number } & FileShape)
  /** Chunk `index` read and sealed (hashed too, the first time it is read). */
  | { readonly op: "seal"; readonly job: number; readonly index: number }
  /** A download into the partial file at `path`, which holds chunks 0 … `done` - 1 (hashed first). */
  | ({ readonly op: "download"; readonly done: number } & FileShape)
  /** Chunk `index` opened, written in place and hashed. */
  | { readonly op: "open"; readonly job: number; readonly index: number; readonly sealed: Uint8Array }
  /** The SHA-256 and the file's size now (a download's is made durable first). */
  | { readonly op: "finish"; readonly job: number }
  /** Closes the file and wipes the key, whatever happened. */
  | { readonly op: "end"; readonly job: number };

/** Why a request failed: the file changed or cannot be read, a chunk did not open or has the wrong size. */
export type JobFailure = "changed" | "io" | "auth" | "size";

export interface JobReply {
  readonly sealed?: Uint8Array;
  readonly sha256?: string;
  readonly size?: number;
  readonly error?: { readonly kind: JobFailure; readonly message: string };
}

interface Job {
  readonly fd: number;
  readonly cipher: FileCipher;
  readonly hash: ReturnType<typeof sha256.create>;
  readonly size: number;
  readonly chunkCount: number;
  readonly download: boolean;
  /** Chunks hashed so far, from 0. */
  hashed: number;
}

class JobError extends Error {
  constructor(
    readonly kind: JobFailure,
    message: string,
  ) {
    super(message);
  }
}

export class FileJobs {
  private readonly jobs = new Map<number, Job>();

  /** Handles a request; a failure is a reply with `error`, never a throw. `transfer`: buffers to move. */
  handle(r: JobRequest): { reply: JobReply; transfer: ArrayBuffer[] } {
    try {
      return this.run(r);
    } catch (e) {
      const error =
        e instanceof JobError
          ? { kind: e.kind, message: e.message }
          : { kind: "io" as const, message: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
      return { reply: { error }, transfer: [] };
    }
  }

  private run(r: JobRequest): { reply: JobReply; transfer: ArrayBuffer[] } {
    const none = { reply: {}, transfer: [] };
    switch (r.op) {
      case "upload":
      case "download": {
        const fd = openSync(r.path, r.op === "upload" ? "r" : "r+");
        const job: Job = {
          fd,
          cipher: new FileCipher(r.fileKey),
          hash: sha256.create(),
          size: r.size,
          chunkCount: r.chunkCount,
          download: r.op === "download",
          hashed: 0,
        };
        this.jobs.set(r.job, job);
        // The cipher holds the key it derived; this copy of the file key is not needed any more.
        r.fileKey.fill(0);
        const upTo = r.op === "upload" ? r.hashed : r.done;
        while (job.hashed < upTo) job.hash.update(this.read(job, job.hashed++));
        return none;
      }
      case "seal": {
        const job = this.job(r.job);
        const chunk = this.read(job, r.index);
        if (r.index === job.hashed) {
          job.hash.update(chunk);
          job.hashed++;
        }
        const sealed = job.cipher.seal(r.index, r.index === job.chunkCount - 1, chunk);
        return { reply: { sealed }, transfer: [sealed.buffer as ArrayBuffer] };
      }
      case "open": {
        const job = this.job(r.job);
        let chunk: Uint8Array;
        try {
          chunk = job.cipher.open(r.index, r.index === job.chunkCount - 1, r.sealed);
        } catch (e) {
          if (!(e instanceof CryptoError)) throw e;
          throw new JobError("auth", `chunk ${r.index + 1} did not open`);
        }
        if (chunk.length !== fileChunkSize(job.size, r.index))
          throw new JobError("size", `chunk ${r.index + 1} is not the size the sender announced`);
        writeAll(job.fd, chunk, r.index * FILE_CHUNK_BYTES);
        job.hash.update(chunk);
        job.hashed++;
        return none;
      }
      case "finish": {
        const job = this.job(r.job);
        if (job.download) fsyncSync(job.fd);
        const size = fstatSync(job.fd).size;
        if (!job.download && size !== job.size) throw new JobError("changed", "the file changed");
        return { reply: { sha256: toHex(job.hash.digest()), size }, transfer: [] };
      }
      case "end": {
        const job = this.jobs.get(r.job);
        if (!job) return none;
        this.jobs.delete(r.job);
        job.cipher.wipe();
        closeSync(job.fd);
        return none;
      }
    }
  }

  private job(id: number): Job {
    const job = this.jobs.get(id);
    if (!job) throw new JobError("io", `no file job ${id}`);
    return job;
  }

  /** Chunk `index` of the file, read whole (a chunk is as long as the size says, or the file changed). */
  private read(job: Job, index: number): Uint8Array {
    const length = fileChunkSize(job.size, index);
    const chunk = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = readSync(job.fd, chunk, got, length - got, index * FILE_CHUNK_BYTES + got);
      if (n === 0) throw new JobError("changed", "the file changed");
      got += n;
    }
    return chunk;
  }
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length; )
    done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}
