// Sending texts: each is checked, then encrypted, written to the history and queued in the outbox
// in the same transaction as the ratchet step; the outbox is then delivered, and the caller told
// each message's status, or why they wait.
import { newMessageId, toHex } from "@parley/protocol";
import { ClientError } from "../errors.js";
import { isControlText } from "../intro.js";
import type { MessageRecord, MessageStatus } from "../store/records.js";
import { type Contacts, encryptTo, keyChangedError } from "./contacts.js";
import type { Context } from "./context.js";
import type { Delivery } from "./delivery.js";
import type { Messages } from "./messages.js";
import type { Outbox } from "./outbox.js";

/** The largest text a payload holds, in bytes of UTF-8. */
const MAX_TEXT_BYTES = 32737;

/** Why `text` cannot be sent, or null. */
export function textProblem(text: string): string | null {
  if (text.length === 0) return "refusing to send an empty message";
  if (isControlText(text)) return "a message must not start with a NUL character";
  if (Buffer.byteLength(text, "utf8") > MAX_TEXT_BYTES)
    return `a message is at most ${MAX_TEXT_BYTES} bytes of UTF-8`;
  return null;
}

export interface SentStatus {
  contact: string;
  id: string;
  status: MessageStatus;
  failure: string | null;
}

export class Sending {
  constructor(
    private readonly ctx: Context,
    private readonly contacts: Pick<Contacts, "findListed" | "get" | "put">,
    private readonly messages: Messages,
    private readonly outbox: Pick<Outbox, "enqueue">,
    private readonly delivery: Pick<Delivery, "flush">,
  ) {}

  /** See Client.send(). */
  async send(name: string, texts: string[]): Promise<SentStatus[]> {
    for (const t of texts) {
      const problem = textProblem(t);
      if (problem) throw new ClientError("USAGE", problem);
    }
    const queued = this.ctx.tx(() => {
      const { id, contact } = this.contacts.findListed(name);
      if (contact.keyChanged) throw keyChangedError(contact.name);
      const now = Date.now();
      const out: { seq: number; id: string }[] = [];
      for (const text of texts) {
        const mid = newMessageId();
        const wire = encryptTo(contact, { type: "text", id: mid, sentAt: now, text });
        const rec: MessageRecord = {
          id: toHex(mid),
          direction: "out",
          text,
          sentAt: now,
          receivedAt: now,
          status: "queued",
        };
        const seq = this.messages.add(id, rec)!;
        this.outbox.enqueue(id, "message", contact.outbox, wire, seq);
        out.push({ seq, id: rec.id });
      }
      contact.lastActivity = now;
      this.contacts.put(id, contact);
      return { contactId: id, name: contact.name, out };
    });
    const { unreachable, refused } = await this.delivery.flush({ force: true });
    const contact = this.contacts.get(queued.contactId);
    const statuses = queued.out.map((m) => {
      const rec = this.messages.bySeq(queued.contactId, m.seq);
      return {
        contact: contact?.name ?? queued.name,
        id: m.id,
        status: rec?.status ?? ("queued" as MessageStatus),
        failure: rec && contact ? this.messages.failureOf(contact, rec) : null,
      };
    });
    const waiting = statuses.filter((s) => s.status === "queued").length;
    if (waiting > 0 && unreachable.length > 0) {
      throw new ClientError(
        "UNREACHABLE",
        `relay ${unreachable.join(", ")} is unreachable: ${waiting} message(s) wait in the outbox`,
      );
    }
    if (waiting > 0 && refused.length > 0) {
      throw new ClientError(
        "RELAY_REFUSED",
        `${refused.join("; ")}; the message waits in the outbox and is retried by the next send or sync`,
      );
    }
    const failed = statuses.find((s) => s.status === "failed");
    if (failed) {
      throw new ClientError("RELAY_REFUSED", `not delivered: ${failed.failure}; the message was not sent`);
    }
    return statuses;
  }
}
