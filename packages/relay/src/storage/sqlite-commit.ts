// Group commit for the SQLite storage (sqlite.ts). better-sqlite3 is synchronous, so every write
// goes through one queue that is flushed as a single transaction a millisecond after its first
// write: writes that arrive meanwhile, or while a commit (and its fsync) runs, share the next commit.
// A write's promise resolves only after its transaction committed and the keys it freed are erased.
import type Database from "better-sqlite3";
import type { Logger } from "../log.js";
import type { KeyFile } from "./keyfile.js";
import { StorageUnavailableError } from "./types.js";

/** How long the first write of a batch waits for company, and the most writes a batch carries. */
const GROUP_COMMIT_MS = 1;
const GROUP_COMMIT_MAX = 512;

/** What one transaction did to the key file (slots it filled, slots it emptied), and what it may take. */
export interface Batch {
  readonly newSlots: number[];
  readonly freedSlots: number[];
  /** The file system is short of space: nothing new is taken. */
  readonly refuseNew: boolean;
  /** Bytes of the database's pages in use, read at the first new row, plus what the batch added. */
  inUse: number | null;
}

type Op = {
  run: (b: Batch) => unknown;
  /** Bytes it adds (a deposit's ciphertext), so that a batch stays within the WAL's allowance. */
  bytes: number;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
};

/** A write failed for want of space on the file system. */
export function diskFull(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return code === "SQLITE_FULL" || code === "ENOSPC" || code === "EDQUOT";
}

/** What the queue needs of the storage around a transaction. */
export interface CommitHooks {
  /** A new batch: whether it may take new data (the file system's free space, the reserve). */
  openBatch(): Batch;
  /**
   * A transaction failed for want of space: the reserve is given back if it was held. True if it
   * was (the batch is tried once more).
   */
  giveBackReserve(): boolean;
  /** A transaction failed: nothing of it was committed, and what was counted in memory is read again. */
  rolledBack(): void;
  /** A transaction committed and the keys it freed are erased: before any of its writes is answered. */
  committed(): void;
}

export interface GroupCommitOptions {
  readonly db: Database.Database;
  readonly keys: KeyFile;
  readonly hooks: CommitHooks;
  /** The WAL's allowance (sqliteAllowance): a transaction carries at most half of it in new data. */
  readonly walAllowance: number;
  readonly log: Logger | undefined;
}

export class GroupCommit {
  /** Transactions committed, and operations they carried (group-commit effectiveness). */
  commits = 0;
  committedOps = 0;
  /** Why the last transaction failed for want of space; null once one commits again. */
  writeError: string | null = null;
  private queue: Op[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  /** A flush of a full batch is scheduled (setImmediate). */
  private flushing = false;
  private closed = false;
  /** The most writes one transaction carries. */
  private readonly batchOps: number;
  /** Bytes of new data in one transaction: half the WAL's allowance, so that the WAL stays within it. */
  private readonly batchBytes: number;

  constructor(private readonly o: GroupCommitOptions) {
    this.batchOps = Math.min(GROUP_COMMIT_MAX, Math.max(32, Math.floor(o.walAllowance / 16384)));
    this.batchBytes = o.walAllowance / 2;
  }

  /** Writes waiting for their transaction. */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Queues a write. The queue commits as one transaction (one fsync) a moment after its first
   * write (GROUP_COMMIT_MS), or at once when a full batch (batchOps writes, or batchBytes) is waiting.
   */
  write<T>(run: (b: Batch) => T, bytes = 0): Promise<T> {
    if (this.closed) return Promise.reject(new Error("storage is closed"));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, bytes, resolve: resolve as (v: unknown) => void, reject });
      this.queuedBytes += bytes;
      if (this.queue.length >= this.batchOps || this.queuedBytes >= this.batchBytes) this.flushSoon();
      else if (this.timer === undefined && !this.flushing) {
        this.timer = setTimeout(() => this.flush(), GROUP_COMMIT_MS);
      }
    });
  }

  /** Commits everything still queued, then takes no more writes. */
  close(): void {
    while (this.queue.length > 0) this.flush();
    this.closed = true;
  }

  /** A full batch is waiting: commit it on the next turn of the event loop. */
  private flushSoon(): void {
    if (this.flushing) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      this.flush();
    });
  }

  /** Commits the oldest batch of writes (at most batchOps, about batchBytes); the rest follows. */
  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    let take = 0;
    let bytes = 0;
    while (
      take < this.queue.length &&
      take < this.batchOps &&
      (take === 0 || bytes + this.queue[take]!.bytes <= this.batchBytes)
    ) {
      bytes += this.queue[take]!.bytes;
      take++;
    }
    const ops = this.queue.splice(0, take);
    this.queuedBytes -= bytes;
    if (this.queue.length > 0) this.flushSoon();
    if (ops.length > 0) this.commit(ops);
  }

  /**
   * Runs the writes in one transaction. The new keys are on disk before the rows that need them
   * are committed; the keys of what it deleted are erased after the commit, before anyone hears
   * that a delete succeeded (an ack is answered): one fsync of the key file for the whole batch.
   */
  private commit(ops: Op[]): void {
    const { db, keys, hooks } = this.o;
    let batch: Batch;
    let results: unknown[];
    for (let attempt = 1; ; attempt++) {
      batch = hooks.openBatch();
      try {
        const b = batch;
        results = db.transaction(() => {
          const out = ops.map((op) => op.run(b));
          if (b.newSlots.length > 0) keys.sync();
          return out;
        })();
        this.writeError = null;
        break;
      } catch (e) {
        // Nothing was committed: the keys written for it are erased again.
        this.forgetKeys(batch.newSlots);
        hooks.rolledBack();
        if (diskFull(e)) {
          this.writeError = `storage cannot write: ${(e as Error).message}`;
          // The disk filled under us: give the reserve back and try once more.
          if (attempt === 1 && hooks.giveBackReserve()) continue;
          const unavailable = new StorageUnavailableError("the data directory's file system is full");
          for (const op of ops) op.reject(unavailable);
          return;
        }
        for (const op of ops) op.reject(e);
        return;
      }
    }
    this.commits++;
    this.committedOps += ops.length;
    try {
      keys.erase(batch.freedSlots);
    } catch (e) {
      // Committed, but the keys are still there (the next start erases them): say so.
      for (const op of ops) op.reject(e);
      return;
    }
    hooks.committed();
    for (const [i, op] of ops.entries()) op.resolve(results[i]);
  }

  /** Erases keys, after a failure: what fails here is left to the next start. */
  private forgetKeys(slots: number[]): void {
    try {
      this.o.keys.erase(slots);
    } catch (e) {
      this.o.log?.error(
        { err: (e as Error).message },
        "keys could not be erased; the next start erases them",
      );
    }
  }
}
