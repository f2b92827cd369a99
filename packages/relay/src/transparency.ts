// The transparency statement served at /transparency: generated from the live configuration, so
// it cannot drift from what the relay actually does. It contains nothing that identifies a user.
import { FRAME_VERSION } from "@parley/protocol";
import { blobStorageCap, type RelayConfig } from "./config.js";
import { formatDuration } from "./config-values.js";
import type { Storage } from "./storage/types.js";
import { RELAY_VERSION } from "./version.js";

export interface Counters {
  connections: number;
  /** Null while the storage is unavailable. */
  mailboxes: number | null;
  storedMessages: number | null;
  storedBytes: number | null;
  /** Files (blobs) stored now, and their sealed chunk bytes; null likewise. */
  blobs: number | null;
  blobBytes: number | null;
  deposits: number;
  deliveries: number;
  acks: number;
  expirations: number;
}

/** How deleted messages are removed, per storage kind (the last `neverStored` line). */
const DELETION: Record<string, string> = {
  memory: "messages after acknowledgement or expiry (held in memory only, and overwritten when deleted)",
  sqlite:
    "messages after acknowledgement or expiry, in readable form: each ciphertext is stored sealed under a key of its own, and that key is overwritten on disk before an ack is answered and when a sweep deletes an expired message, so that copies of the sealed bytes SQLite may keep cannot be read",
};

export function transparencyStatement(
  config: RelayConfig,
  storage: Pick<Storage, "kind" | "durability" | "disclosure" | "capacity">,
  counters: Counters,
): object {
  const kind = storage.kind;
  // A shared storage (Redis) describes itself from the settings it read: what it keeps after a
  // deletion depends on them, and on whether it accepts the relays' rewrite requests.
  const disclosure = storage.disclosure?.();
  return {
    service: "parley-relay",
    version: RELAY_VERSION,
    protocolVersion: FRAME_VERSION,
    generatedAt: new Date().toISOString(),
    summary:
      "This relay stores end-to-end encrypted messages it cannot read, only until their owner acknowledges them or their retention time ends, whichever comes first.",
    storedPerMessage: [
      {
        field: "mailbox address",
        why: "to know which mailbox a message waits in (32 bytes, derived from a per-mailbox key)",
      },
      { field: "ciphertext", why: "the end-to-end encrypted message; the relay has no key to read it" },
      { field: "size", why: "the ciphertext's length, padded by clients to a few fixed sizes" },
      { field: "arrival time", why: "to delete the message when its retention ends" },
      { field: "expiry time", why: "arrival time plus the retention time" },
      { field: "relay message id", why: "random, so the owner can acknowledge (and so delete) the message" },
      { field: "arrival order number", why: "a counter, so messages are delivered oldest first" },
      {
        field: "sender's message id",
        why: "random, chosen by the sender, kept with the mailbox address, the expiry time and a 16-byte digest of the ciphertext until the message's expiry (even after an ack), so a retried deposit is stored once and a reused id is refused",
      },
    ],
    storedPerMailbox: [
      { field: "mailbox address", why: "its name" },
      {
        field: "owner public key",
        why: "a per-mailbox key, not the owner's identity; checks that only the owner reads",
      },
      { field: "messages and bytes waiting", why: "to enforce the quota" },
      {
        field: "deposit-token hash",
        why: "if the owner set one: SHA-256 of a random token the owner gave the one contact who writes there, so that only deposits carrying it are taken; the token itself is not stored",
      },
    ],
    storedPerBlob: [
      {
        field: "blob id",
        why: "its name: 32 random bytes the uploader chose, unrelated to any mailbox",
      },
      {
        field: "sealed chunks",
        why: "the file, end-to-end encrypted in chunks of 64KiB; the relay has no key to read them",
      },
      {
        field: "chunk count, size and chunks written",
        why: "to take the chunks in order, resume an interrupted upload, and count the file against the quotas from its creation",
      },
      {
        field: "write-token hash",
        why: "SHA-256 of a random token only the uploader holds, who writes the chunks and may delete the file",
      },
      {
        field: "read-token hashes",
        why: "one per recipient (at most 64), and whether each has completed its download: the file is deleted when the last one has",
      },
      {
        field: "expiry time",
        why: "creation time plus the retention time: the file is deleted then, complete or not",
      },
    ],
    neverStored: [
      "message contents in readable form (clients encrypt end to end; the relay holds no keys)",
      "IP addresses (a connection's address is held in memory while it is open, to limit connections and ownership proofs per address)",
      "who deposited a message (deposits are anonymous)",
      "accounts, names, phone numbers, contact lists or identity keys",
      "deposit tokens (only their hash is kept)",
      "file names, types or contents in readable form, and blob write or read tokens (only their hashes are kept)",
      "which mailbox or contact a file is for",
      disclosure?.deletion ?? DELETION[kind] ?? "messages after acknowledgement or expiry",
    ],
    mailboxRetention: "a mailbox and its owner key are kept until the owner deletes the mailbox",
    neverLogged: [
      "IP addresses",
      "mailbox addresses",
      "message contents, sizes or ids",
      "blob ids, tokens or sizes",
    ],
    retention: {
      seconds: config.ttlSeconds,
      human: formatDuration(config.ttlSeconds),
      maximumOperatorSetting: formatDuration(config.maxTtlSeconds),
      deletedWhen:
        "acknowledged by the mailbox owner, or at expiry (by the next sweep, every sweepIntervalSeconds; never delivered after it), whichever comes first",
      sweepIntervalSeconds: config.sweepIntervalSeconds,
      ...(disclosure ? { appendOnlyFileRewriteSeconds: disclosure.appendOnlyFileRewriteSeconds } : {}),
    },
    limits: {
      maxMessageBytes: config.maxMessageBytes,
      mailboxMaxMessages: config.mailboxMaxMessages,
      mailboxMaxBytes: config.mailboxMaxBytes,
      maxStorageBytes: storage.capacity.maxBytes,
      maxMailboxes: storage.capacity.maxMailboxes,
      framesPerSecondPerConnection: config.rateLimit,
      maxConnections: config.maxConnections,
      maxConnectionsPerSource: config.maxConnectionsPerSource,
      proofsPerSecondPerConnection: config.proofRate,
      proofsPerSecondPerSource: config.proofRatePerSource,
      handshakeTimeoutSeconds: config.handshakeTimeoutSeconds,
      idleTimeoutSeconds: config.idleTimeoutSeconds,
      maxBlobBytes: config.maxBlobBytes,
      maxBlobStorageBytes: blobStorageCap(config, storage.capacity.maxBytes),
      uploadBytesPerSecondPerConnection: config.uploadBytesPerSecond,
    },
    storage: storage.durability,
    ...(disclosure ? { storageCopies: disclosure.copies } : {}),
    ...(kind === "redis"
      ? {
          sharedStorage:
            "one Redis server holds every message for all of this service's relay processes; it keeps exactly the fields above, and each deposit is announced to the other relay processes as its mailbox address and arrival order number only (with the random id of the relay process that stored it)",
        }
      : {}),
    transport: config.tlsCert
      ? "TLS (wss://)"
      : "plain WebSocket (ws://); use TLS or a TLS-terminating proxy in public",
    counters,
  };
}
