// Delivery: takes due entries out of the outbox and deposits them, in order per destination;
// records what each failed deposit means (deposits.ts) on the entry and its message; marks sent
// messages stored, and expired once their relay surely dropped them without a receipt.
import { fromHex } from "@parley/protocol";
import { RelayRequestError } from "../relay-connection.js";
import type { DeliveryFailure, OutboxRecord } from "../store/records.js";
import type { Contacts } from "./contacts.js";
import type { Context } from "./context.js";
import { backoffMs, type DepositOutcome, depositOutcome, failureWords, KIND_WORDS } from "./deposits.js";
import type { Effects, InternalEvent, Publisher } from "./events.js";
import type { Live } from "./live.js";
import type { Messages } from "./messages.js";
import type { Outbox } from "./outbox.js";
import type { Receipts } from "./receipts.js";
import type { RelayPool } from "./relays.js";
import type { FlushReport } from "./types.js";

const unb64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));

/** What a flush asks of the groups (group-send.ts), bound once they are built. */
export interface GroupCopies {
  /** Before each flush: queues what waited for a session with a member that is now up. */
  release(): void;
  /**
   * A relay stored the copy of a group message (the row `messageSeq` of the group's conversation)
   * for `member`: the message's status event if that moved it. Inside a transaction.
   */
  stored(conversation: string, messageSeq: number, member: string): InternalEvent | null;
  /** Gives up what waited in groups longer than a relay keeps a message: the status events. In a transaction. */
  expire(now: number): InternalEvent[];
}

interface Entry {
  seq: number;
  contact: string;
  value: OutboxRecord;
}

/** How many contacts' outboxes are deposited at once (each keeps its own order). */
const PARALLEL_CONTACTS = 16;

export class Delivery {
  private flushing: Promise<FlushReport> | null = null;

  constructor(
    private readonly ctx: Context,
    private readonly outbox: Outbox,
    private readonly contacts: Pick<Contacts, "all" | "get" | "put">,
    private readonly messages: Messages,
    private readonly receipts: Pick<Receipts, "seal">,
    private readonly pool: Pick<RelayPool, "connect" | "expiryDelayMs">,
    private readonly links: Pick<Live, "isDown" | "unreachable">,
    private readonly publisher: Publisher,
    private readonly groups: GroupCopies,
  ) {}

  /** A flush is under way. */
  get busy(): boolean {
    return this.flushing !== null;
  }

  /**
   * Deposits every due outbox entry, in order per destination; entries of a contact whose key
   * changed are held. `force` ignores the retry back-off (a command the user just ran). Returns
   * the relays that could not be reached.
   */
  flush(options: { force?: boolean } = {}): Promise<FlushReport> {
    if (this.flushing) {
      return this.flushing.then(
        () => this.flush(options),
        () => this.flush(options),
      );
    }
    const run = this.flushOnce(options.force ?? false).finally(() => {
      this.flushing = null;
    });
    this.flushing = run;
    return run;
  }

  private async flushOnce(force: boolean): Promise<FlushReport> {
    this.groups.release();
    this.receipts.seal((contactId, contact, wire) =>
      this.outbox.enqueue(contactId, "receipt", contact.outbox, wire),
    );
    const unreachable = new Set<string>();
    const refused: string[] = [];
    /** Destinations skipped for the rest of this round, with the refusal that stopped them (if any). */
    const blocked = new Map<string, DeliveryFailure | null>();
    const now = Date.now();
    // Each contact's entries go in order (an Accept before the messages that follow it, whatever
    // mailboxes they go to); contacts go side by side, so that a group message's copies share the
    // relay's commits instead of waiting in line.
    const chains = new Map<string, number[]>();
    for (const { seq, contact } of this.outbox.queue()) {
      const chain = chains.get(contact);
      if (chain) chain.push(seq);
      else chains.set(contact, [seq]);
    }
    const deposit = async (seq: number): Promise<void> => {
      // Read the entry and its contact just before depositing: another process may have sent
      // it meanwhile, or marked the contact's key changed (which holds everything for it).
      const entry = this.heldOrCurrent(seq);
      if (!entry) return;
      const e = entry.value;
      const dest = `${e.relay} ${e.address}`;
      const stoppedBy = blocked.get(dest);
      if (stoppedBy !== undefined) {
        // Behind a refused entry: the same reason holds it.
        if (stoppedBy) this.noteFailure(entry, stoppedBy);
        return;
      }
      if (unreachable.has(e.relay) || (!force && (e.nextAttemptAt > now || this.links.isDown(e.relay)))) {
        blocked.set(dest, null);
        return;
      }
      let limit: number | null = null;
      try {
        const conn = await this.pool.connect(e.relay);
        limit = conn.welcome.maxCiphertext;
        const ciphertext = unb64(e.ciphertext);
        if (ciphertext.length > limit) {
          throw new RelayRequestError("TOO_LARGE", `${ciphertext.length} bytes, above its ${limit}`);
        }
        const [address, clientMessageId] = [fromHex(e.address), fromHex(e.clientMessageId)];
        try {
          await conn.deposit(
            address,
            clientMessageId,
            ciphertext,
            e.token === undefined ? undefined : fromHex(e.token),
          );
        } catch (err) {
          // A relay that does not know tokenDeposit (BAD_FRAME) enforces no tokens: a plain deposit.
          if (!(e.token !== undefined && err instanceof RelayRequestError && err.code === "BAD_FRAME"))
            throw err;
          await conn.deposit(address, clientMessageId, ciphertext);
        }
      } catch (err) {
        const outcome = depositOutcome(err, limit);
        if (outcome.kind === "unreachable") {
          unreachable.add(e.relay);
          this.links.unreachable(e.relay, outcome.reason);
        } else {
          refused.push(
            err instanceof RelayRequestError
              ? `relay ${e.relay} refused a ${e.kind}: ${err.code} (${err.message})`
              : (err as Error).message,
          );
        }
        // Entries behind a refused one wait for the same reason (a given-up one's reason is its own).
        blocked.set(dest, outcome.kind === "waiting" || outcome.kind === "lasting" ? outcome.failure : null);
        this.refusedEntry(entry, outcome, (err as Error).message);
        return;
      }
      this.delivered(entry.seq, entry.contact, e);
    };
    const queue = [...chains.values()];
    const worker = async () => {
      for (let chain = queue.shift(); chain; chain = queue.shift()) {
        for (const seq of chain) await deposit(seq);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_CONTACTS, queue.length) }, worker));
    return { unreachable: [...unreachable], refused };
  }

  /** An outbox entry as it is now, or null when it is gone or its contact's key changed. */
  private heldOrCurrent(seq: number): Entry | null {
    const current = this.outbox.get(seq);
    if (!current) return null;
    const contact = this.contacts.get(current.contact);
    if (contact?.keyChanged) return null;
    return { seq, ...current };
  }

  /**
   * Records a failed deposit: a permanent refusal gives the entry up; a refusal of the mailbox
   * (or an unexpected one) does too once it has lasted past the relay's retention; anything else
   * waits for the back-off.
   */
  private refusedEntry(entry: Entry, outcome: DepositOutcome, message: string): void {
    const effects = this.ctx.tx((): Effects => {
      const out: Effects = { events: [], warnings: [] };
      const current = this.outbox.get(entry.seq);
      if (!current) return out;
      const e = current.value;
      if (outcome.kind === "permanent") {
        this.failEntry(entry.seq, entry.contact, e, outcome.failure, out);
        return out;
      }
      const now = Date.now();
      let nextAttemptAt = now + backoffMs(e.attempts);
      if (outcome.kind === "lasting") {
        const contact = this.contacts.get(entry.contact);
        if (contact) {
          const since = contact.refused?.address === e.address ? contact.refused.since : now;
          if (contact.refused?.address !== e.address) {
            this.contacts.put(entry.contact, { ...contact, refused: { address: e.address, since } });
          }
          const deadline = since + this.pool.expiryDelayMs(e.relay);
          if (now >= deadline) {
            this.failDestination(entry.contact, e.relay, e.address, outcome.failure, out);
            return out;
          }
          nextAttemptAt = Math.min(nextAttemptAt, deadline);
        }
      }
      const updated: OutboxRecord = { ...e, attempts: e.attempts + 1, nextAttemptAt, lastError: message };
      this.outbox.put(entry.seq, entry.contact, updated);
      if (outcome.kind === "waiting" || outcome.kind === "lasting") {
        this.recordFailure({ ...entry, value: updated }, outcome.failure, out);
      }
      return out;
    });
    this.publisher.publish(effects);
  }

  /** Records why an entry waits, outside any transaction (an entry behind a refused one). */
  private noteFailure(entry: Entry, failure: DeliveryFailure): void {
    this.publisher.publish(
      this.ctx.tx((): Effects => {
        const out: Effects = { events: [], warnings: [] };
        const current = this.outbox.get(entry.seq);
        if (current) this.recordFailure({ ...entry, value: current.value }, failure, out);
        return out;
      }),
    );
  }

  /**
   * Records on an entry's message why it waits (an event when that changes); an entry with no
   * message (an acceptance, an introduction) is reported once as a warning. In a transaction.
   */
  private recordFailure(entry: Entry, failure: DeliveryFailure, out: Effects): void {
    const e = entry.value;
    const contact = this.contacts.get(entry.contact);
    if (!contact) return;
    if (e.messageSeq === undefined || e.group) {
      if (e.failure === failure.code) return;
      this.outbox.put(entry.seq, entry.contact, { ...e, failure: failure.code });
      if (e.kind !== "receipt") {
        out.warnings.push(
          `${KIND_WORDS[e.kind]} to ${contact.name} waits: ${failureWords(contact.name, failure)}`,
        );
      }
      return;
    }
    const updated = this.messages.noteFailure(entry.contact, e.messageSeq, failure);
    if (updated) out.events.push(this.messages.statusEvent(contact, updated));
  }

  /** The relay stored an outbox entry: forget it, and mark its message stored. */
  private delivered(seq: number, contactId: string, e: OutboxRecord): void {
    const ev = this.ctx.tx((): InternalEvent | null => {
      this.outbox.remove(seq);
      const contact = this.contacts.get(contactId);
      if (!contact) return null;
      // The mailbox takes deposits again: whatever was refused there is forgotten.
      if (contact.refused?.address === e.address) delete contact.refused;
      if (e.group) {
        this.contacts.put(contactId, contact);
        return e.messageSeq === undefined
          ? null
          : this.groups.stored(e.group.conversation, e.messageSeq, e.group.member);
      }
      const stored = e.messageSeq === undefined ? null : this.messages.markStored(contactId, e.messageSeq);
      if (!stored || e.messageSeq === undefined) {
        this.contacts.put(contactId, contact);
        return null;
      }
      contact.awaiting.push({
        seq: e.messageSeq,
        deadline: Date.now() + this.pool.expiryDelayMs(e.relay),
      });
      this.contacts.put(contactId, contact);
      return this.messages.statusEvent(contact, stored);
    });
    if (ev) this.publisher.emit(ev);
  }

  /** Gives up every entry of a contact to one mailbox (inside a transaction). */
  private failDestination(
    contactId: string,
    relay: string,
    address: string,
    failure: DeliveryFailure,
    out: Effects,
  ): void {
    for (const seq of this.outbox.seqs()) {
      const entry = this.outbox.get(seq);
      if (!entry || entry.contact !== contactId) continue;
      if (entry.value.relay === relay && entry.value.address === address) {
        this.failEntry(seq, contactId, entry.value, failure, out);
      }
    }
  }

  /** Gives one entry up (inside a transaction): its message is marked failed, with why. */
  private failEntry(
    seq: number,
    contactId: string,
    e: OutboxRecord,
    failure: DeliveryFailure,
    out: Effects,
  ): void {
    this.outbox.remove(seq);
    const contact = this.contacts.get(contactId);
    const name = contact?.name ?? "a deleted contact";
    if (e.messageSeq !== undefined && !e.group) {
      const failed = contact ? this.messages.markFailed(contactId, e.messageSeq, failure) : null;
      if (contact && failed) out.events.push(this.messages.statusEvent(contact, failed));
      return;
    }
    if (e.kind === "receipt") return; // a receipt that cannot go is not worth a warning
    out.warnings.push(
      `${KIND_WORDS[e.kind]} to ${name} was given up: ${failureWords(name, failure)}${
        e.kind === "accept" ? "; ask them for a new invitation" : ""
      }`,
    );
  }

  /**
   * Marks sent messages whose relay retention passed without a receipt as expired, and gives up
   * what waited that long in groups (GroupCopies.expire).
   */
  checkExpired(now = Date.now()): void {
    const events = this.ctx.tx(() => {
      const out: InternalEvent[] = [];
      for (const r of this.contacts.all()) {
        const due = r.value.awaiting.filter((a) => a.deadline <= now);
        if (due.length === 0) continue;
        for (const a of due) {
          const expired = this.messages.markExpired(r.key, a.seq);
          if (expired) out.push(this.messages.statusEvent(r.value, expired));
        }
        this.contacts.put(r.key, {
          ...r.value,
          awaiting: r.value.awaiting.filter((a) => a.deadline > now),
        });
      }
      out.push(...this.groups.expire(now));
      return out;
    });
    for (const ev of events) this.publisher.emit(ev);
  }
}
