// The relay's storage, behind one small asynchronous interface so that an in-process backend
// (SQLite, memory) and a networked one (Redis) fit the same server.

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
  /** Sender-chosen id; a retry with the same id (while the first is remembered) is stored once. */
  readonly clientMessageId: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly receivedAt: number;
  readonly expiresAt: number;
  /** Relay-assigned id for a new message. */
  readonly id: Uint8Array;
}

export interface MailboxLimits {
  readonly maxMessages: number;
  readonly maxBytes: number;
}

export type DepositResult =
  | { readonly status: "stored"; readonly message: StoredMessage }
  | { readonly status: "duplicate" }
  | { readonly status: "quota" }
  | { readonly status: "unknown-mailbox" };

export interface StorageStats {
  readonly mailboxes: number;
  readonly messages: number;
  readonly bytes: number;
}

/**
 * Every promise resolves only once the change is durable for that backend (for SQLite: committed
 * and fsynced). Implementations must be safe for concurrent calls.
 */
export interface Storage {
  readonly kind: string;
  /** "created", "exists" (same owner: idempotent) or "conflict" (another owner). */
  createMailbox(address: Uint8Array, ownerKey: Uint8Array): Promise<"created" | "exists" | "conflict">;
  mailboxOwner(address: Uint8Array): Promise<Uint8Array | null>;
  /** Deletes the mailbox and every message in it. False if there was none. */
  deleteMailbox(address: Uint8Array): Promise<boolean>;
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
  stats(): Promise<StorageStats>;
  close(): Promise<void>;
}
