// The relay's storage, behind one small asynchronous interface so that an in-process backend
// (SQLite, memory) and a networked one (Redis) fit the same server.
import { createHash, timingSafeEqual } from "node:crypto";

/** Bytes of the ciphertext digest remembered with a client message id (see `depositDigest`). */
export const DIGEST_LENGTH = 16;

/**
 * What is remembered of a deposit's ciphertext with its client message id, to tell a retry from
 * a reuse of the id: the first 16 bytes of its SHA-256.
 */
export function depositDigest(ciphertext: Uint8Array): Buffer {
  return createHash("sha256").update(ciphertext).digest().subarray(0, DIGEST_LENGTH);
}

/**
 * Whether a deposit may enter a mailbox whose owner set the deposit-token hash `required` (null:
 * none set, so any deposit may). `presented` is the hash of the token the deposit carried (null:
 * a plain deposit). Compared in constant time.
 */
export function tokenAdmits(required: Uint8Array | null, presented: Uint8Array | null): boolean {
  if (required === null) return true;
  return presented !== null && presented.length === required.length && timingSafeEqual(presented, required);
}

/** One stored message. Exactly what the transparency statement says is kept. */
export interface StoredMessage {
  /** Relay-assigned random id (16 bytes), used to ack. */
  readonly id: Uint8Array;
  /** Arrival order within this storage: increases with every stored message. */
  readonly seq: number;
  readonly address: Uint8Array;
  readonly ciphertext: Uint8Array;
  /** Arrival time, ms since the epoch. */
  readonly receivedAt: number;
  /** Deletion time, ms since the epoch: receivedAt + retention. */
  readonly expiresAt: number;
}

export interface DepositRequest {
  readonly address: Uint8Array;
  /**
   * Sender-chosen id, scoped to the mailbox: a retry with the same id and the same ciphertext
   * (while the first is remembered) is stored once; the same id with another ciphertext is refused.
   */
  readonly clientMessageId: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly receivedAt: number;
  readonly expiresAt: number;
  /** Relay-assigned id for a new message. */
  readonly id: Uint8Array;
  /** depositTokenHash of the token the deposit carried (a tokenDeposit frame); absent or null: none. */
  readonly tokenHash?: Uint8Array | null;
}

export interface MailboxLimits {
  readonly maxMessages: number;
  readonly maxBytes: number;
}

/**
 * The relay-wide bounds of a storage (`--max-storage`, `--max-mailboxes`), as resolved at start.
 * Memory and Redis count what they hold as ciphertext bytes plus ACCOUNTED_MESSAGE_BYTES per
 * message and ACCOUNTED_MAILBOX_BYTES per mailbox; SQLite counts the files of its data directory.
 */
export interface StorageCapacity {
  readonly maxBytes: number;
  readonly maxMailboxes: number;
}

/** What a stored message costs beyond its ciphertext, in the count of memory and Redis. */
export const ACCOUNTED_MESSAGE_BYTES = 256;
/** What a mailbox costs, in the count of memory and Redis. */
export const ACCOUNTED_MAILBOX_BYTES = 256;

/** Mailboxes allowed when `--max-mailboxes` is not set: at most an eighth of the storage, at 512 bytes each. */
export function defaultMaxMailboxes(maxBytes: number): number {
  return Math.max(100, Math.floor(maxBytes / 8 / 512));
}

export type DepositResult =
  | { readonly status: "stored"; readonly message: StoredMessage }
  /** The relay's storage is at its cap (or its disk nearly full): nothing new is taken for now. */
  | { readonly status: "full" }
  /** A retry: this client message id, with this ciphertext, is remembered in this mailbox. */
  | { readonly status: "duplicate" }
  /** This client message id is remembered in this mailbox with another ciphertext. */
  | { readonly status: "id-reused" }
  | { readonly status: "quota" }
  /** The mailbox takes deposits with its deposit token only, and this one had none or another. */
  | { readonly status: "token" }
  | { readonly status: "unknown-mailbox" };

export type CreateResult = "created" | "exists" | "conflict" | "full";

/** A blob as `createBlob` declares it (PROTOCOL.md §14.2): only hashes of its tokens. */
export interface BlobSpec {
  readonly id: Uint8Array;
  readonly writeTokenHash: Uint8Array;
  readonly chunkCount: number;
  /** The total of its sealed chunks: all of it counts against the caps from creation. */
  readonly sealedSize: number;
  readonly readTokenHashes: readonly Uint8Array[];
  /** Creation time + retention, ms since the epoch: deleted then, complete or not. */
  readonly expiresAt: number;
}

/** A stored blob, as the relay checks requests against it. */
export interface BlobState {
  readonly writeTokenHash: Uint8Array;
  readonly chunkCount: number;
  readonly sealedSize: number;
  /** Chunks stored, from index 0. */
  readonly written: number;
  readonly expiresAt: number;
  /** Every read-token hash, in the order of the createBlob, and whether its download completed. */
  readonly readers: readonly { readonly hash: Uint8Array; readonly done: boolean }[];
}

/**
 * "created"; "exists" (a retry: the same declaration); "conflict" (the id is taken with another
 * declaration); "blob-full" (the blob storage cap, --max-blob-storage, cannot hold it); "full"
 * (the storage cap cannot, or the storage takes nothing new now).
 */
export type CreateBlobResult = "created" | "exists" | "conflict" | "blob-full" | "full";

/**
 * "stored" (the next chunk); "retry" (an index below `written`: nothing changes); "ahead" (an index
 * above `written`, which is `next`); "unknown" (no such blob, or it expired).
 */
export type PutChunkResult =
  | { readonly status: "stored" | "retry" | "unknown" }
  | { readonly status: "ahead"; readonly next: number };

/** "done" (this reader retired); "deleted" (it was the last: the blob is gone); "auth"; "unknown". */
export type BlobDoneResult = "done" | "deleted" | "auth" | "unknown";

/** What a blob costs beyond its sealed bytes, in the count of memory and Redis. */
export const ACCOUNTED_BLOB_BYTES = 512;

/** Constant-time equality of two hashes. */
export function sameHash(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Whether two declarations of one blob id are the same (a createBlob retried). */
export function sameBlob(a: BlobState, b: BlobSpec): boolean {
  return (
    sameHash(a.writeTokenHash, b.writeTokenHash) &&
    a.chunkCount === b.chunkCount &&
    a.sealedSize === b.sealedSize &&
    a.readers.length === b.readTokenHashes.length &&
    a.readers.every((r, i) => sameHash(r.hash, b.readTokenHashes[i]!))
  );
}

export interface StorageStats {
  readonly mailboxes: number;
  readonly messages: number;
  readonly bytes: number;
  /** Blobs stored (complete or not, not yet expired or swept). */
  readonly blobs: number;
  /** Sealed chunk bytes stored in them. */
  readonly blobBytes: number;
  /** What the blobs reserve against the caps: the sum of their declared sealed sizes. */
  readonly blobReservedBytes: number;
  /**
   * What counts against `capacity.maxBytes` now (see StorageCapacity): for SQLite its files as
   * `fits` counts them, for memory and Redis the ciphertext plus the fixed costs. Absent: not known.
   */
  readonly countedBytes?: number;
}

/**
 * The storage cannot serve a request now (unreachable, restarting, refusing writes), but may again
 * later: the relay answers the request with an error and keeps running. Any other error is a bug.
 */
export class StorageUnavailableError extends Error {
  override readonly name = "StorageUnavailableError";
}

/** What a storage shared by several relays tells each of them (see `Storage.watch`). */
export interface StorageEvents {
  /** Another relay stored message `seq` in mailbox `address`. */
  deposited(address: Uint8Array, seq: number): void;
  /**
   * Notifications may have been missed (the storage connection was lost and is back), or the
   * arrival counter went back (the storage lost its last writes): every subscribed mailbox should
   * be read again from its start, forgetting every cursor.
   */
  resync(): void;
}

/** What a storage shared by several relays says about itself in the transparency statement. */
export interface StorageDisclosure {
  /** The `neverStored` line about deleted messages. */
  readonly deletion: string;
  /** How often the relays ask the storage to rewrite its append-only file; null: they do not. */
  readonly appendOnlyFileRewriteSeconds: number | null;
  /** Where the storage may keep copies of stored data after a deletion, one sentence each. */
  readonly copies: readonly string[];
}

/** The mailboxes and messages of a storage: see `Storage`. */
export interface MessageStorage {
  /**
   * "created", "exists" (same owner: idempotent), "conflict" (another owner), or "full" (as many
   * mailboxes as `capacity` allows, or the storage is full).
   */
  createMailbox(address: Uint8Array, ownerKey: Uint8Array): Promise<CreateResult>;
  mailboxOwner(address: Uint8Array): Promise<Uint8Array | null>;
  /**
   * Sets (or replaces) the hash of the mailbox's deposit token: from then on only deposits with
   * that token enter it. False if there is no such mailbox.
   */
  setDepositToken(address: Uint8Array, tokenHash: Uint8Array): Promise<boolean>;
  /** Deletes the mailbox and every message in it. False if there was none. */
  deleteMailbox(address: Uint8Array): Promise<boolean>;
  /** Checks, in this order: the mailbox exists, its deposit token (`tokenAdmits`), a retry, quotas. */
  deposit(request: DepositRequest, limits: MailboxLimits): Promise<DepositResult>;
  /**
   * Messages waiting in a mailbox that have not expired at `now`, oldest first, at most `limit`,
   * and only those after `afterSeq` (a cursor: the `seq` of the last message already examined).
   */
  pending(address: Uint8Array, now: number, limit: number, afterSeq?: number): Promise<StoredMessage[]>;
  /** Deletes one message; false if it was not there (already acked or expired). */
  ack(address: Uint8Array, id: Uint8Array): Promise<boolean>;
  /** Deletes every message (and remembered client id) that expired at or before `now`; returns messages deleted. */
  sweep(now: number): Promise<number>;
}

/** The blobs (file transfer) of a storage: see `Storage`. */
export interface BlobStorage {
  /**
   * Stores a new blob (PROTOCOL.md §14.2), reserving its whole `sealedSize` against the storage cap
   * and against `maxBlobBytes`, the cap of all blobs together (--max-blob-storage).
   */
  createBlob(spec: BlobSpec, maxBlobBytes: number): Promise<CreateBlobResult>;
  /** The blob, or null when there is none or it expired at `now`. */
  blob(id: Uint8Array, now: number): Promise<BlobState | null>;
  /** Stores chunk `index` if it is the next one (the caller checked its length). */
  putChunk(id: Uint8Array, index: number, sealedChunk: Uint8Array, now: number): Promise<PutChunkResult>;
  /** Chunk `index`, or null when it is not written, or the blob is gone or expired. */
  getChunk(id: Uint8Array, index: number, now: number): Promise<Uint8Array | null>;
  /** Retires a read token; deletes the blob, its chunks with it, when it was the last. */
  blobDone(id: Uint8Array, readTokenHash: Uint8Array, now: number): Promise<BlobDoneResult>;
  /** Deletes a blob and its chunks; false if there was none. */
  deleteBlob(id: Uint8Array): Promise<boolean>;
  /** Deletes every blob that expired at or before `now`; returns blobs deleted. */
  sweepBlobs(now: number): Promise<number>;
}

/**
 * Every promise resolves only once the change is durable for that backend (for SQLite: committed
 * and fsynced; for Redis: as its persistence settings make it, see `durability`). Implementations
 * must be safe for concurrent calls.
 */
export interface Storage extends MessageStorage, BlobStorage {
  readonly kind: string;
  /** One sentence: where messages are kept and what an acknowledged write survives. */
  readonly durability: string;
  /** The relay-wide bounds it enforces. */
  readonly capacity: StorageCapacity;
  stats(): Promise<StorageStats>;
  /**
   * Why the storage cannot write now, in one sentence (for /readyz): its disk is full, say, so that
   * it refuses new data and deletes only thanks to its reserve. Null: it can. Absent: always can.
   */
  writeProblem?(): string | null;
  /**
   * Whether requests can be served now (for /readyz). Absent: always, as for an in-process backend.
   * Resolves (never rejects) within the backend's timeout.
   */
  ready?(): Promise<boolean>;
  /**
   * Storage shared by several relays implements this: from then on `events` hears of every message
   * another relay stores, at once, so the relay pushes it to its own subscribers without polling.
   */
  watch?(events: StorageEvents): void;
  /** For the transparency statement, from the settings in force now. Absent: nothing to add. */
  disclosure?(): StorageDisclosure;
  close(): Promise<void>;
}
