// Space held back on the data directory's file system, so that the relay can always delete: a file
// of random bytes (random, so that a compressing file system cannot shrink it) that the storage
// gives back when the file system is nearly full, and takes again once there is room.
//
// Deleting in SQLite writes first (WAL frames, then the checkpoint), so a full disk would stop
// acks, the expiry sweep and the final checkpoint of a shutdown, and a relay restarted on it could
// not even open its database. Another process may fill the disk, or the disk may be smaller than
// the relay was told: the reserve is what is left to work with then. (On a copy-on-write file
// system the freed blocks may not be enough to rewrite in place; the headroom checks still refuse
// new data before that.)
import { randomFillSync } from "node:crypto";
import { closeSync, fdatasyncSync, ftruncateSync, statSync, unlinkSync, writeSync } from "node:fs";
import { freeBytes, openPrivateFile } from "./datadir.js";

const CHUNK = 1024 * 1024;

export class Reserve {
  constructor(
    readonly path: string,
    /** Bytes the reserve holds when taken. */
    readonly bytes: number,
  ) {}

  /** Whether the reserve file is there, whole. */
  get held(): boolean {
    return this.size() === this.bytes;
  }

  /** Bytes the reserve file takes now. */
  size(): number {
    try {
      return statSync(this.path).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw e;
    }
  }

  /**
   * Writes the reserve file if it is not whole and the file system has `margin` bytes free beyond
   * it; true if it is whole afterwards. With `partial`, takes what there is (beyond the margin),
   * up to the whole. A write that fails (the disk filled meanwhile) gives back what it wrote.
   */
  take(dir: string, margin: number, partial = false): boolean {
    const have = this.size();
    if (have === this.bytes) return true;
    const room = freeBytes(dir) - margin;
    if (room < this.bytes - have && !partial) return false;
    const until = Math.min(this.bytes, have + Math.max(0, room));
    if (until <= have) return false;
    const fd = openPrivateFile(this.path);
    try {
      // One random chunk, written over and over: as incompressible, and cheap to make.
      const chunk = randomFillSync(Buffer.alloc(CHUNK));
      for (let at = have; at < until; at += CHUNK) writeSync(fd, chunk, 0, Math.min(CHUNK, until - at), at);
      fdatasyncSync(fd);
      return until === this.bytes;
    } catch {
      ftruncateSync(fd, have);
      return false;
    } finally {
      closeSync(fd);
    }
  }

  /** Gives the space back to the file system; true if there was any to give. */
  release(): boolean {
    const had = this.size() > 0;
    try {
      unlinkSync(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    return had;
  }
}
