import { toHex } from "@parley/protocol";
import {
  ACCOUNTED_BLOB_BYTES,
  ACCOUNTED_MAILBOX_BYTES,
  ACCOUNTED_MESSAGE_BYTES,
  type BlobDoneResult,
  type BlobSpec,
  type BlobState,
  type CreateBlobResult,
  type CreateResult,
  type DepositRequest,
  type DepositResult,
  defaultMaxMailboxes,
  depositDigest,
  type MailboxLimits,
  type PutChunkResult,
  type Storage,
  type StorageCapacity,
  type StorageStats,
  type StoredMessage,
  sameBlob,
  sameHash,
  tokenAdmits,
} from "./types.js";

interface Mailbox {
  owner: Uint8Array;
  /** depositTokenHash of the owner's deposit token, once set: then only deposits with it enter. */
  tokenHash: Uint8Array | null;
  /** Insertion order is arrival order. */
  messages: Map<string, StoredMessage>;
  bytes: number;
  /** Client message ids (hex) remembered until the message's expiry, for idempotent retries. */
  seen: Map<string, { expiresAt: number; digest: Buffer }>;
}

interface Blob {
  state: {
    writeTokenHash: Uint8Array;
    chunkCount: number;
    sealedSize: number;
    written: number;
    expiresAt: number;
    readers: { hash: Uint8Array; done: boolean }[];
  };
  chunks: Uint8Array[];
  bytes: number;
}

/** `--max-storage` for a memory storage when it is not set. */
export const MEMORY_DEFAULT_MAX_BYTES = 256 * 1024 * 1024;

export interface MemoryStorageOptions {
  /** Default MEMORY_DEFAULT_MAX_BYTES. */
  readonly maxBytes?: number;
  /** Default `defaultMaxMailboxes(maxBytes)`. */
  readonly maxMailboxes?: number;
}

/** In-memory storage, for tests and for relays that prefer to lose everything on restart. */
export class MemoryStorage implements Storage {
  readonly kind = "memory";
  readonly durability = "in this process's memory only: everything is lost when the relay stops";
  readonly capacity: StorageCapacity;
  private readonly boxes = new Map<string, Mailbox>();
  private seq = 0;
  /** Totals over every mailbox, kept as they change, so that stats() reads no mailbox. */
  private messages = 0;
  private bytes = 0;
  /** Bytes counted against the capacity: ciphertext, and a fixed cost per message and mailbox. */
  private accounted = 0;
  private readonly blobs = new Map<string, Blob>();
  /** Declared sealed sizes of every blob (what --max-blob-storage bounds), and chunk bytes stored. */
  private blobReserved = 0;
  private blobBytes = 0;

  constructor(options: MemoryStorageOptions = {}) {
    const maxBytes = options.maxBytes ?? MEMORY_DEFAULT_MAX_BYTES;
    this.capacity = { maxBytes, maxMailboxes: options.maxMailboxes ?? defaultMaxMailboxes(maxBytes) };
  }

  async createMailbox(address: Uint8Array, ownerKey: Uint8Array): Promise<CreateResult> {
    const key = toHex(address);
    const box = this.boxes.get(key);
    if (box) return toHex(box.owner) === toHex(ownerKey) ? "exists" : "conflict";
    if (
      this.boxes.size >= this.capacity.maxMailboxes ||
      this.accounted + ACCOUNTED_MAILBOX_BYTES > this.capacity.maxBytes
    ) {
      return "full";
    }
    this.accounted += ACCOUNTED_MAILBOX_BYTES;
    this.boxes.set(key, {
      owner: Uint8Array.from(ownerKey),
      tokenHash: null,
      messages: new Map(),
      bytes: 0,
      seen: new Map(),
    });
    return "created";
  }

  async mailboxOwner(address: Uint8Array): Promise<Uint8Array | null> {
    return this.boxes.get(toHex(address))?.owner ?? null;
  }

  async setDepositToken(address: Uint8Array, tokenHash: Uint8Array): Promise<boolean> {
    const box = this.boxes.get(toHex(address));
    if (!box) return false;
    box.tokenHash = Uint8Array.from(tokenHash);
    return true;
  }

  async deleteMailbox(address: Uint8Array): Promise<boolean> {
    const box = this.boxes.get(toHex(address));
    if (!box) return false;
    for (const m of box.messages.values()) m.ciphertext.fill(0);
    this.messages -= box.messages.size;
    this.bytes -= box.bytes;
    this.accounted -= ACCOUNTED_MAILBOX_BYTES + box.bytes + box.messages.size * ACCOUNTED_MESSAGE_BYTES;
    return this.boxes.delete(toHex(address));
  }

  async deposit(r: DepositRequest, limits: MailboxLimits): Promise<DepositResult> {
    const box = this.boxes.get(toHex(r.address));
    if (!box) return { status: "unknown-mailbox" };
    if (!tokenAdmits(box.tokenHash, r.tokenHash ?? null)) return { status: "token" };
    const clientKey = toHex(r.clientMessageId);
    const digest = depositDigest(r.ciphertext);
    const seen = box.seen.get(clientKey);
    if (seen) return { status: seen.digest.equals(digest) ? "duplicate" : "id-reused" };
    if (box.messages.size + 1 > limits.maxMessages || box.bytes + r.ciphertext.length > limits.maxBytes) {
      return { status: "quota" };
    }
    const cost = r.ciphertext.length + ACCOUNTED_MESSAGE_BYTES;
    if (this.accounted + cost > this.capacity.maxBytes) return { status: "full" };
    this.accounted += cost;
    const message: StoredMessage = {
      id: Uint8Array.from(r.id),
      seq: ++this.seq,
      address: Uint8Array.from(r.address),
      ciphertext: Uint8Array.from(r.ciphertext),
      receivedAt: r.receivedAt,
      expiresAt: r.expiresAt,
    };
    box.messages.set(toHex(r.id), message);
    box.bytes += message.ciphertext.length;
    this.messages++;
    this.bytes += message.ciphertext.length;
    box.seen.set(clientKey, { expiresAt: r.expiresAt, digest });
    return { status: "stored", message };
  }

  async pending(address: Uint8Array, now: number, limit: number, afterSeq = 0): Promise<StoredMessage[]> {
    const box = this.boxes.get(toHex(address));
    if (!box) return [];
    const out: StoredMessage[] = [];
    for (const m of box.messages.values()) {
      if (out.length >= limit) break;
      if (m.seq > afterSeq && m.expiresAt > now) out.push(m);
    }
    return out;
  }

  async ack(address: Uint8Array, id: Uint8Array): Promise<boolean> {
    const box = this.boxes.get(toHex(address));
    const m = box?.messages.get(toHex(id));
    if (!box || !m) return false;
    box.messages.delete(toHex(id));
    box.bytes -= m.ciphertext.length;
    this.messages--;
    this.bytes -= m.ciphertext.length;
    this.accounted -= m.ciphertext.length + ACCOUNTED_MESSAGE_BYTES;
    m.ciphertext.fill(0);
    return true;
  }

  async sweep(now: number): Promise<number> {
    let n = 0;
    for (const box of this.boxes.values()) {
      for (const [key, m] of box.messages) {
        if (m.expiresAt > now) continue;
        box.messages.delete(key);
        box.bytes -= m.ciphertext.length;
        this.messages--;
        this.bytes -= m.ciphertext.length;
        this.accounted -= m.ciphertext.length + ACCOUNTED_MESSAGE_BYTES;
        m.ciphertext.fill(0);
        n++;
      }
      for (const [key, seen] of box.seen) if (seen.expiresAt <= now) box.seen.delete(key);
    }
    return n;
  }

  async createBlob(spec: BlobSpec, maxBlobBytes: number): Promise<CreateBlobResult> {
    const key = toHex(spec.id);
    const existing = this.blobs.get(key);
    if (existing) return sameBlob(existing.state, spec) ? "exists" : "conflict";
    if (this.blobReserved + spec.sealedSize > maxBlobBytes) return "blob-full";
    const cost = spec.sealedSize + ACCOUNTED_BLOB_BYTES;
    if (this.accounted + cost > this.capacity.maxBytes) return "full";
    this.accounted += cost;
    this.blobReserved += spec.sealedSize;
    this.blobs.set(key, {
      state: {
        writeTokenHash: Uint8Array.from(spec.writeTokenHash),
        chunkCount: spec.chunkCount,
        sealedSize: spec.sealedSize,
        written: 0,
        expiresAt: spec.expiresAt,
        readers: spec.readTokenHashes.map((h) => ({ hash: Uint8Array.from(h), done: false })),
      },
      chunks: [],
      bytes: 0,
    });
    return "created";
  }

  private live(id: Uint8Array, now: number): Blob | undefined {
    const blob = this.blobs.get(toHex(id));
    return blob && blob.state.expiresAt > now ? blob : undefined;
  }

  async blob(id: Uint8Array, now: number): Promise<BlobState | null> {
    const blob = this.live(id, now);
    return blob ? { ...blob.state, readers: blob.state.readers.map((r) => ({ ...r })) } : null;
  }

  async putChunk(id: Uint8Array, index: number, sealed: Uint8Array, now: number): Promise<PutChunkResult> {
    const blob = this.live(id, now);
    if (!blob) return { status: "unknown" };
    if (index < blob.state.written) return { status: "retry" };
    if (index > blob.state.written) return { status: "ahead", next: blob.state.written };
    blob.chunks.push(Uint8Array.from(sealed));
    blob.state.written++;
    blob.bytes += sealed.length;
    this.blobBytes += sealed.length;
    return { status: "stored" };
  }

  async getChunk(id: Uint8Array, index: number, now: number): Promise<Uint8Array | null> {
    return this.live(id, now)?.chunks[index] ?? null;
  }

  async blobDone(id: Uint8Array, readTokenHash: Uint8Array, now: number): Promise<BlobDoneResult> {
    const blob = this.live(id, now);
    if (!blob) return "unknown";
    const reader = blob.state.readers.find((r) => !r.done && sameHash(r.hash, readTokenHash));
    if (!reader) return "auth";
    reader.done = true;
    if (blob.state.readers.some((r) => !r.done)) return "done";
    this.dropBlob(toHex(id));
    return "deleted";
  }

  async deleteBlob(id: Uint8Array): Promise<boolean> {
    return this.dropBlob(toHex(id));
  }

  async sweepBlobs(now: number): Promise<number> {
    let n = 0;
    for (const [key, blob] of this.blobs) if (blob.state.expiresAt <= now && this.dropBlob(key)) n++;
    return n;
  }

  private dropBlob(key: string): boolean {
    const blob = this.blobs.get(key);
    if (!blob) return false;
    for (const c of blob.chunks) c.fill(0);
    this.blobs.delete(key);
    this.accounted -= blob.state.sealedSize + ACCOUNTED_BLOB_BYTES;
    this.blobReserved -= blob.state.sealedSize;
    this.blobBytes -= blob.bytes;
    return true;
  }

  async stats(): Promise<StorageStats> {
    return {
      mailboxes: this.boxes.size,
      messages: this.messages,
      bytes: this.bytes,
      blobs: this.blobs.size,
      blobBytes: this.blobBytes,
      blobReservedBytes: this.blobReserved,
      countedBytes: this.accounted,
    };
  }

  async close(): Promise<void> {
    for (const box of this.boxes.values()) for (const m of box.messages.values()) m.ciphertext.fill(0);
    this.boxes.clear();
    for (const key of [...this.blobs.keys()]) this.dropBlob(key);
    this.messages = 0;
    this.bytes = 0;
    this.accounted = 0;
  }
}
