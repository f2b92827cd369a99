// The outbox: envelopes waiting for a relay, queued in the same transaction as the ratchet step
// (and the history row) that made them, each with a random client message id so that a retry is
// stored once. Owns the outbox table; Delivery takes entries out of it.
import { newMessageId, toHex } from "@parley/protocol";
import type { OutboxTable } from "../store/outbox.js";
import type { OutboxRecord } from "../store/records.js";

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

/** Where an entry goes: a relay, a mailbox address (hex) and its deposit token (hex), if any. */
export interface Destination {
  readonly relay: string;
  readonly address: string;
  readonly token?: string;
}

/** A new outbox entry, due at once; `group`: a group item's group and member (OutboxRecord.group). */
export function outboxEntry(
  kind: OutboxRecord["kind"],
  to: Destination,
  ciphertext: Uint8Array,
  messageSeq?: number,
  group?: OutboxRecord["group"],
): OutboxRecord {
  const now = Date.now();
  return {
    kind,
    relay: to.relay,
    address: to.address,
    ...(to.token ? { token: to.token } : {}),
    clientMessageId: toHex(newMessageId()),
    ciphertext: b64(ciphertext),
    ...(messageSeq === undefined ? {} : { messageSeq }),
    ...(group ? { group } : {}),
    createdAt: now,
    attempts: 0,
    nextAttemptAt: now,
  };
}

/** Every method runs inside the caller's transaction. */
export class Outbox {
  constructor(private readonly table: OutboxTable) {}

  /**
   * Queues `ciphertext` for a contact's mailbox; `messageSeq`: the history row it delivers (in the
   * group's conversation when `group` is given).
   */
  enqueue(
    contactId: string,
    kind: OutboxRecord["kind"],
    to: Destination,
    ciphertext: Uint8Array,
    messageSeq?: number,
    group?: OutboxRecord["group"],
  ): number {
    return this.table.add(contactId, outboxEntry(kind, to, ciphertext, messageSeq, group));
  }

  /** Entry numbers, oldest first (nothing decrypted). */
  seqs(): number[] {
    return this.table.seqs();
  }

  /** Each entry's number and contact, oldest first (nothing decrypted). */
  queue(): { seq: number; contact: string }[] {
    return this.table.queue();
  }

  get(seq: number): { contact: string; value: OutboxRecord } | null {
    return this.table.get(seq);
  }

  /** How many entries wait, for one contact or in all. */
  size(contactId?: string): number {
    return this.table.size(contactId);
  }

  put(seq: number, contactId: string, value: OutboxRecord): void {
    this.table.put(seq, contactId, value);
  }

  remove(seq: number): void {
    this.table.remove(seq);
  }

  removeAll(contactId: string): void {
    this.table.removeAll(contactId);
  }

  /** Every entry of a contact still going to `address` goes to `to.address` with `to.token` instead. */
  retarget(contactId: string, address: string, to: { address: string; token?: string | undefined }): void {
    for (const e of this.table.all()) {
      if (e.contact !== contactId || e.value.address !== address) continue;
      const { token: _was, ...entry } = e.value;
      this.table.put(e.seq, contactId, {
        ...entry,
        address: to.address,
        ...(to.token ? { token: to.token } : {}),
      });
    }
  }
}
