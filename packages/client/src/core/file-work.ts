// Where file transfers seal, open and hash (file-jobs.ts): in a worker thread, started on first
// use and shared by every transfer of the process, so that the pure-JavaScript crypto of a chunk
// runs on a second core beside the main thread sending and receiving the others. Where the worker
// cannot start, the same work is done in the caller's thread.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { FileJobs, type JobFailure, type JobReply, type JobRequest } from "./file-jobs.js";

/** A request that failed, with why (JobFailure) and in words. */
export class FileJobError extends Error {
  constructor(
    readonly kind: JobFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface FileWork {
  /** Where the work is done: a worker thread, or the caller's thread. */
  readonly thread: "worker" | "caller";
  /** A new job number for this process. */
  job(): number;
  /** Handles a request after those made before it; rejects with FileJobError. */
  call(request: JobRequest): Promise<JobReply>;
}

let jobs = 0;
const nextJob = () => ++jobs;

/** The work done in the caller's thread. */
export function inlineWork(): FileWork {
  const local = new FileJobs();
  return {
    thread: "caller",
    job: nextJob,
    call: async (request) => settle(local.handle(request).reply),
  };
}

function settle(reply: JobReply): JobReply {
  if (reply.error) throw new FileJobError(reply.error.kind, reply.error.message);
  return reply;
}

/**
 * Run from TypeScript source (tests, `npm run parley`), the worker loads its module through tsx,
 * as the main thread does, with the workspace packages' "source" condition (scripts/from-source.mjs).
 */
const FROM_SOURCE = `const { workerData } = require("node:worker_threads");
(async () => {
  (await import(workerData.tsx)).register();
  const addSource = 'export async function resolve(s, c, next) { return next(s, c.conditions.includes("source") ? c : { ...c, conditions: [...c.conditions, "source"] }); }';
  require("node:module").register("data:text/javascript," + encodeURIComponent(addSource));
  await import(workerData.entry);
})();`;

function startWorker(): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL("./file-worker.js", import.meta.url));
  const tsx = createRequire(import.meta.url)
    .resolve("tsx/esm/api")
    .replace(/\.cjs$/, ".mjs");
  const entry = new URL("./file-worker.ts", import.meta.url).href;
  return new Worker(FROM_SOURCE, { eval: true, workerData: { entry, tsx: pathToFileURL(tsx).href } });
}

class WorkerWork implements FileWork {
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (r: JobReply) => void; reject: (e: Error) => void }
  >();

  constructor(
    private readonly worker: Worker,
    private readonly gone: () => void,
  ) {
    worker.on("message", (m: { id: number; reply: JobReply }) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (this.waiting.size === 0) worker.unref();
      try {
        w.resolve(settle(m.reply));
      } catch (e) {
        w.reject(e as Error);
      }
    });
    const fail = (why: string) => {
      this.gone();
      for (const w of this.waiting.values()) w.reject(new FileJobError("io", `file worker: ${why}`));
      this.waiting.clear();
    };
    worker.on("error", (e) => fail(e.message));
    worker.on("exit", (code) => fail(`exited (${code})`));
    worker.unref();
  }

  readonly thread = "worker";
  job = nextJob;

  call(request: JobRequest): Promise<JobReply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      // Waiting for an answer keeps the process alive; an idle worker does not.
      this.worker.ref();
      this.worker.postMessage({ id, request });
    });
  }
}

let shared: Promise<FileWork> | null = null;

/** For benchmarks and tests: the file work of this process from now on (null: the usual). */
export function setFileWork(work: FileWork | null): void {
  shared = work === null ? null : Promise.resolve(work);
}

/** The process's file work: its worker thread once it answered, or the caller's thread. */
export function fileWork(): Promise<FileWork> {
  shared ??= new Promise<FileWork>((resolve) => {
    let worker: Worker;
    try {
      worker = startWorker();
    } catch {
      resolve(inlineWork());
      return;
    }
    const forget = () => {
      shared = null;
    };
    const fallback = () => {
      forget();
      resolve(inlineWork());
    };
    worker.once("error", fallback);
    worker.once("exit", fallback);
    worker.once("message", (m: { ready?: boolean }) => {
      if (!m.ready) return;
      worker.off("error", fallback);
      worker.off("exit", fallback);
      resolve(new WorkerWork(worker, forget));
    });
  });
  return shared;
}
