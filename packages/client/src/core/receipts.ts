// Receipts: "delivered" and "read" for messages received, queued in the store as they happen and
// encrypted into the outbox before each flush, grouped per contact. Owns the receipts table.
// (A receipt that arrives moves a message's status: Messages.acknowledge.)
import { fromHex, newMessageId } from "@parley/protocol";
import type { ReceiptRow, ReceiptsTable } from "../store/receipts.js";
import type { ContactRecord, PendingReceipt } from "../store/records.js";
import { type Contacts, encryptTo } from "./contacts.js";
import type { Context } from "./context.js";

/** Most message ids in one receipt. */
export const MAX_RECEIPT_IDS = 256;

/** One contact's pending receipts: what to send, and the rows they came from. */
export interface ReceiptGroup {
  readonly contact: string;
  /** Delivered receipts first, then read; each at most `max` ids, in the order they were queued. */
  readonly batches: { readonly kind: PendingReceipt["kind"]; readonly ids: string[] }[];
  readonly seqs: number[];
}

/** Groups pending receipts by contact (in order of each contact's first), into batches of `max` ids. */
export function groupReceipts(pending: readonly ReceiptRow[], max = MAX_RECEIPT_IDS): ReceiptGroup[] {
  const groups = new Map<string, { delivered: string[]; read: string[]; seqs: number[] }>();
  for (const r of pending) {
    let g = groups.get(r.contact);
    if (!g) {
      g = { delivered: [], read: [], seqs: [] };
      groups.set(r.contact, g);
    }
    g[r.value.kind].push(r.value.id);
    g.seqs.push(r.seq);
  }
  return [...groups].map(([contact, g]) => {
    const batches: ReceiptGroup["batches"] = [];
    for (const kind of ["delivered", "read"] as const) {
      for (let i = 0; i < g[kind].length; i += max) batches.push({ kind, ids: g[kind].slice(i, i + max) });
    }
    return { contact, batches, seqs: g.seqs };
  });
}

export class Receipts {
  constructor(
    private readonly ctx: Context,
    private readonly table: ReceiptsTable,
    private readonly contacts: Pick<Contacts, "get" | "put">,
  ) {}

  /** Queues a receipt for a received message (`id`, hex). Inside a transaction. */
  queue(contactId: string, kind: PendingReceipt["kind"], id: string): void {
    this.table.add(contactId, { kind, id });
  }

  removeAll(contactId: string): void {
    this.table.removeAll(contactId);
  }

  /**
   * Encrypts the receipts waiting in the store, at most 256 ids per receipt, and hands each to
   * `enqueue` (the outbox), in one transaction. Receipts of a contact that is gone are dropped.
   */
  seal(enqueue: (contactId: string, contact: ContactRecord, wire: Uint8Array) => void): void {
    this.ctx.tx(() => {
      const pending = this.table.all();
      if (pending.length === 0) return;
      for (const g of groupReceipts(pending)) {
        const contact = this.contacts.get(g.contact);
        if (contact) {
          for (const { kind, ids } of g.batches) {
            const wire = encryptTo(contact, {
              type: kind,
              id: newMessageId(),
              sentAt: Date.now(),
              ids: ids.map((h) => fromHex(h)),
            });
            enqueue(g.contact, contact, wire);
          }
          this.contacts.put(g.contact, contact);
        }
        for (const seq of g.seqs) this.table.remove(seq);
      }
    });
  }
}
