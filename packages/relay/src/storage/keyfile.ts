// Per-message keys, for crypto-shredding: a flat file of 32-byte slots, each overwritten in place.
//
// A stored ciphertext is sealed under a key of its own (sealed.ts), and that key is kept here and
// nowhere else on disk. Deleting a message overwrites its slot with zeros and fsyncs the file, so
// every copy of the sealed bytes that SQLite may leave behind (in its WAL, in free pages, in the
// unused space of a live page) is unreadable from then on. A database cannot promise that of its
// own deleted rows; a fixed slot in a plain file, rewritten at the same offset, can (on a file
// system that overwrites in place: see the README for copy-on-write file systems and SSDs).
//
// Layout: a 32-byte header (MAGIC), then slot i at offset 32 + 32·i. A slot of zeros is free.
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, readSync, writeSync } from "node:fs";
import { openPrivateFile } from "./datadir.js";

export const KEY_LENGTH = 32;
const HEADER = 32;
const MAGIC = Buffer.alloc(HEADER);
MAGIC.write("parley-relay message keys v1\n", "ascii");
const ZERO = Buffer.alloc(KEY_LENGTH);

/** The slots of a key file: which hold a key, and the free ones, lowest first. */
export class KeyFile {
  private readonly fd: number;
  /** Slots the file holds (its size is HEADER + capacity · KEY_LENGTH). */
  private capacity = 0;
  /** 1 for a slot handed out (holding a key, or about to), by slot number. */
  private occupied = new Uint8Array(1024);
  /** Free slots below `capacity` (a min-heap; entries at or above `capacity` are stale). */
  private readonly heap: number[] = [];
  /** Slots holding a key now. */
  used = 0;
  /** Keys written since the last `sync()`, by slot: written to the file then, runs of slots at once. */
  private readonly staged = new Map<number, Buffer>();

  constructor(readonly path: string) {
    this.fd = openPrivateFile(path);
    const size = fstatSync(this.fd).size;
    if (size === 0) {
      writeSync(this.fd, MAGIC, 0, HEADER, 0);
      fdatasyncSync(this.fd);
      return;
    }
    const header = Buffer.alloc(HEADER);
    readSync(this.fd, header, 0, HEADER, 0);
    if (size < HEADER || !header.equals(MAGIC) || (size - HEADER) % KEY_LENGTH !== 0) {
      closeSync(this.fd);
      throw new Error(`${path} is not a parley-relay key file (or is damaged)`);
    }
    this.capacity = (size - HEADER) / KEY_LENGTH;
  }

  /** Bytes the file takes. */
  get bytes(): number {
    return HEADER + this.capacity * KEY_LENGTH;
  }

  /**
   * Reads every slot at start. A slot that holds a key no message refers to (`referenced`) is left
   * from a crash between a commit and the erasure of its keys: it is erased now. Returns the
   * referenced slots that hold no key (their messages can never be read).
   */
  load(referenced: Iterable<number>): { erased: number; missing: number[] } {
    const wanted = new Set(referenced);
    const all = Buffer.alloc(this.capacity * KEY_LENGTH);
    if (all.length > 0) readSync(this.fd, all, 0, all.length, HEADER);
    this.occupied = new Uint8Array(Math.max(1024, this.capacity));
    this.heap.length = 0;
    this.used = 0;
    let erased = 0;
    const missing: number[] = [];
    for (let slot = 0; slot < this.capacity; slot++) {
      const key = all.subarray(slot * KEY_LENGTH, (slot + 1) * KEY_LENGTH);
      const holds = !key.equals(ZERO);
      if (wanted.has(slot)) {
        if (holds) {
          this.occupied[slot] = 1;
          this.used++;
        } else {
          missing.push(slot);
        }
        wanted.delete(slot);
        continue;
      }
      if (holds) {
        writeSync(this.fd, ZERO, 0, KEY_LENGTH, HEADER + slot * KEY_LENGTH);
        erased++;
      }
      this.heap.push(slot);
    }
    all.fill(0);
    missing.push(...wanted); // beyond the end of the file
    if (erased > 0) fdatasyncSync(this.fd);
    heapify(this.heap);
    return { erased, missing };
  }

  /** Hands out the lowest free slot (growing the file when there is none). */
  allocate(): number {
    let slot: number | undefined;
    while (this.heap.length > 0) {
      const s = heapPop(this.heap);
      if (s < this.capacity && this.occupied[s] === 0) {
        slot = s;
        break;
      }
    }
    if (slot === undefined) {
      slot = this.capacity;
      this.capacity++;
      this.grow(this.capacity);
    }
    this.occupied[slot] = 1;
    this.used++;
    return slot;
  }

  /** Puts a key into a slot this process allocated: in the file, and durable, at the next `sync()`. */
  write(slot: number, key: Uint8Array): void {
    if (key.length !== KEY_LENGTH)
      throw new RangeError(`key: expected ${KEY_LENGTH} bytes, got ${key.length}`);
    this.staged.get(slot)?.fill(0);
    this.staged.set(slot, Buffer.from(key));
  }

  /** The key in a slot, in a buffer of its own that the caller wipes after use. */
  read(slot: number): Buffer {
    const staged = this.staged.get(slot);
    if (staged) return Buffer.from(staged);
    const key = Buffer.alloc(KEY_LENGTH);
    if (
      slot >= this.capacity ||
      readSync(this.fd, key, 0, KEY_LENGTH, HEADER + slot * KEY_LENGTH) !== KEY_LENGTH
    ) {
      throw new Error(`key slot ${slot} is beyond the end of ${this.path}`);
    }
    return key;
  }

  /**
   * Overwrites the slots with zeros, makes that durable, and only then frees them for new keys.
   * Nothing is allocated on the disk: the slots are rewritten where they are.
   */
  erase(slots: readonly number[]): void {
    if (slots.length === 0) return;
    for (const slot of slots) {
      this.staged.get(slot)?.fill(0);
      this.staged.delete(slot);
    }
    for (const slot of slots) writeSync(this.fd, ZERO, 0, KEY_LENGTH, HEADER + slot * KEY_LENGTH);
    fdatasyncSync(this.fd);
    for (const slot of slots) {
      if (this.occupied[slot] === 0) continue;
      this.occupied[slot] = 0;
      this.used--;
      heapPush(this.heap, slot);
    }
  }

  /** Writes the keys put since the last call into the file (runs of slots at once) and fsyncs it. */
  sync(): void {
    const slots = [...this.staged.keys()].sort((a, b) => a - b);
    for (let i = 0; i < slots.length; ) {
      let j = i + 1;
      while (j < slots.length && slots[j] === slots[j - 1]! + 1) j++;
      const run = Buffer.concat(slots.slice(i, j).map((s) => this.staged.get(s)!));
      writeSync(this.fd, run, 0, run.length, HEADER + slots[i]! * KEY_LENGTH);
      run.fill(0);
      i = j;
    }
    for (const key of this.staged.values()) key.fill(0);
    this.staged.clear();
    fdatasyncSync(this.fd);
  }

  /** Gives the free slots at the end of the file back to the file system. */
  shrink(): void {
    let top = this.capacity;
    while (top > 0 && this.occupied[top - 1] === 0) top--;
    if (top === this.capacity) return;
    ftruncateSync(this.fd, HEADER + top * KEY_LENGTH);
    fdatasyncSync(this.fd);
    this.capacity = top;
  }

  close(): void {
    closeSync(this.fd);
  }

  private grow(capacity: number): void {
    if (capacity <= this.occupied.length) return;
    const next = new Uint8Array(Math.max(capacity, this.occupied.length * 2));
    next.set(this.occupied);
    this.occupied = next;
  }
}

// ---- a binary min-heap of slot numbers ------------------------------------------------------------

function heapPush(h: number[], v: number): void {
  h.push(v);
  let i = h.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (h[p]! <= v) break;
    h[i] = h[p]!;
    i = p;
  }
  h[i] = v;
}

function heapPop(h: number[]): number {
  const top = h[0]!;
  const last = h.pop()!;
  if (h.length > 0) siftDown(h, 0, last);
  return top;
}

function siftDown(h: number[], start: number, v: number): void {
  let i = start;
  for (;;) {
    let c = 2 * i + 1;
    if (c >= h.length) break;
    if (c + 1 < h.length && h[c + 1]! < h[c]!) c++;
    if (h[c]! >= v) break;
    h[i] = h[c]!;
    i = c;
  }
  h[i] = v;
}

function heapify(h: number[]): void {
  for (let i = (h.length >> 1) - 1; i >= 0; i--) siftDown(h, i, h[i]!);
}
