// Receiving: deliveries queue up as relays push them and are stored in slices, each in one
// transaction (one fsync), between which the event loop runs; each is routed by its mailbox to a
// contact's conversation (current, earlier, or first-contact) or to an invitation, decrypted and
// applied; events are published and the delivery acknowledged only once it is stored. Forged
// deliveries are counted and reported together; replays are dropped silently and counted.
import {
  type DeliverFrame,
  decodePayload,
  fromHex,
  ParleyError,
  type Payload,
  Session,
  toHex,
} from "@parley/protocol";
import type { RelayConnection } from "../relay-connection.js";
import type { ContactRecord } from "../store/records.js";
import type { Contacts } from "./contacts.js";
import { type Context, warn } from "./context.js";
import type { DepositTokens } from "./deposit-tokens.js";
import { DroppedReport } from "./dropped.js";
import type { InternalEvent, Publisher } from "./events.js";
import {
  digestOf,
  type FailureBudget,
  type FirstContact,
  isAccept,
  rememberAccept,
  secondAccept,
  settleFirstContact,
} from "./first-contact.js";
import type { Invitations } from "./invitations.js";
import type { Live } from "./live.js";
import { inboxSlot, type Mailboxes } from "./mailboxes.js";
import type { Payloads } from "./payloads.js";

/** Most deliveries stored per transaction. */
const RECEIVE_BATCH = 64;
/**
 * A batch of deliveries ends once it has taken this long, or once messages that failed to
 * authenticate (forged or corrupt: anyone who knows a mailbox address can deposit them) have taken
 * FAILED_BUDGET_MS of it; the rest waits until the event loop has run (a keypress, a frame), so
 * receiving never holds the thread for much longer than one slice.
 */
const SLICE_MS = 8;
const FAILED_BUDGET_MS = 4;
/** Longest pause after a slice that met forgeries. */
const MAX_PAUSE_MS = 20;

export class Inbox {
  /** The current drain; settled once everything delivered so far is stored. */
  processing: Promise<void> = Promise.resolve();
  /** When the last delivery arrived or was stored (sync waits for a quiet spell). */
  lastDelivery = 0;
  /** Deliveries dropped as replays of what was already processed (status().replaysDropped). */
  replaysDropped = 0;
  /** Time spent in the current receive slice on messages that failed to authenticate. */
  private failedMs = 0;
  /** A first-contact mailbox became due for deletion while receiving. */
  private firstContactDue = false;
  /** Deliveries waiting to be stored, oldest first. */
  private readonly inbound: { conn: RelayConnection; frame: DeliverFrame }[] = [];
  private readonly dropped: DroppedReport;
  /** The current slice's accounting, for an Accept that fails to authenticate. */
  private readonly budget: FailureBudget = {
    failed: (ms) => {
      this.failedMs += ms;
    },
    dropped: (name, code) => this.dropped.count(name, code),
  };

  constructor(
    private readonly ctx: Context,
    private readonly contacts: Pick<Contacts, "get" | "put">,
    private readonly invitations: Pick<Invitations, "get">,
    private readonly firstContact: Pick<FirstContact, "receiveAccept" | "deleteDue">,
    private readonly payloads: Pick<Payloads, "apply">,
    private readonly mailboxes: Pick<Mailboxes, "owner" | "invalidate">,
    private readonly live: Pick<Live, "on">,
    private readonly publisher: Publisher,
    private readonly tokens: Pick<DepositTokens, "due" | "lockDue">,
    /** Group introductions owed after what was received (group-introductions.ts). */
    private readonly introductions: { readonly due: boolean; run(): Promise<void> },
  ) {
    this.dropped = new DroppedReport(ctx);
  }

  /** A relay delivered a message to one of my mailboxes (RelayPool). */
  onDeliver(conn: RelayConnection, frame: DeliverFrame): void {
    this.lastDelivery = Date.now();
    this.inbound.push({ conn, frame });
    if (this.inbound.length > 1) return; // a drain is already queued
    // One batch at a time, in arrival order; a failure (a throwing listener) never stops the queue.
    this.processing = this.processing
      .then(() => this.drain())
      .catch((e: unknown) => {
        warn(this.ctx, `while receiving: ${(e as Error).message}`);
      });
  }

  /**
   * Stores everything delivered so far in one transaction (one fsync for the batch), then
   * publishes the events and acknowledges each delivery: nothing is acked before it is stored.
   */
  private async drain(): Promise<void> {
    while (this.inbound.length > 0) {
      let batch: { conn: RelayConnection; frame: DeliverFrame }[] = [];
      let results: (InternalEvent[] | null)[];
      const start = performance.now();
      this.failedMs = 0;
      try {
        results = this.ctx.tx(() => {
          const out: (InternalEvent[] | null)[] = [];
          for (const item of this.inbound.slice(0, RECEIVE_BATCH)) {
            const spent = performance.now() - start;
            if (out.length > 0 && (spent >= SLICE_MS || this.failedMs >= FAILED_BUDGET_MS)) break;
            try {
              out.push(this.receive(item.frame));
            } catch (e) {
              // This delivery's savepoint was rolled back; the others stand. Not acked: it comes again.
              warn(this.ctx, `could not store a received message: ${(e as Error).message}`);
              out.push(null);
            }
          }
          return out;
        });
        batch = this.inbound.splice(0, results.length);
      } catch (e) {
        // The store failed (locked, disk full): nothing is acked, so the relay delivers it all again.
        batch = this.inbound.splice(0, RECEIVE_BATCH);
        warn(this.ctx, `could not store received messages: ${(e as Error).message}`);
        continue;
      }
      batch.forEach(({ conn, frame }, i) => {
        const events = results[i];
        if (events === null || events === undefined) return;
        this.lastDelivery = Date.now();
        for (const ev of events) this.publisher.emit(ev);
        // Already gone (acked by another process, or expired), or the connection broke: a
        // redelivery is refused by the ratchet as a duplicate and acknowledged then.
        conn.ack(frame.address, frame.messageId).catch(() => {});
      });
      this.dropped.report(this.live.on);
      if (this.firstContactDue) {
        this.firstContactDue = false;
        void this.firstContact.deleteDue().catch(() => {});
      }
      if (this.tokens.due) void this.tokens.lockDue().catch(() => {});
      if (this.introductions.due)
        void this.introductions
          .run()
          .catch((e: unknown) => warn(this.ctx, `group introductions: ${(e as Error).message}`));
      // Let the event loop run (input, rendering, sockets) before the next slice. A slice that met
      // forgeries is followed by a pause as long as itself: a flood gets at most half the thread,
      // and a keypress the several turns it needs to reach the screen.
      if (this.inbound.length > 0) {
        const pause = this.failedMs > 0 ? Math.min(performance.now() - start, MAX_PAUSE_MS) : 0;
        await new Promise<void>((resolve) =>
          pause > 0 ? setTimeout(resolve, pause) : setImmediate(resolve),
        );
      }
    }
  }

  /** Handles one delivered envelope in one transaction; returns what the user should see. */
  private receive(frame: DeliverFrame): InternalEvent[] | null {
    const address = toHex(frame.address);
    return this.ctx.tx(() => {
      // The index is a cache: another process may have changed who owns a mailbox. Trust it only
      // when the record it names still has this mailbox; otherwise rebuild it once.
      for (let attempt = 0; attempt < 2; attempt++) {
        const owner = this.mailboxes.owner(address, attempt === 1);
        if (owner?.kind === "contact") {
          const contact = this.contacts.get(owner.id);
          const slot = contact ? inboxSlot(contact, address) : null;
          if (contact && slot !== null) return this.receiveFromContact(owner.id, contact, frame, slot);
        } else if (owner?.kind === "invitation" && this.invitations.get(owner.id)) {
          this.mailboxes.invalidate();
          return this.firstContact.receiveAccept(owner.id, frame, this.budget);
        }
      }
      // Not (or no longer) mine: leave it on the relay rather than acknowledge what was not read.
      this.mailboxes.invalidate();
      return null;
    });
  }

  /** `slot` -1 is the current conversation, 0… an earlier one (ContactRecord.previous). */
  private receiveFromContact(
    id: string,
    contact: ContactRecord,
    frame: DeliverFrame,
    slot: number,
  ): InternalEvent[] {
    const earlier = slot >= 0 ? contact.previous![slot]! : null;
    const session = Session.deserialize(fromHex(earlier ? earlier.session : contact.session));
    let plaintext: Uint8Array;
    const acceptDigest = isAccept(frame.ciphertext) ? digestOf(frame.ciphertext) : null;
    const started = performance.now();
    try {
      plaintext = session.decrypt(frame.ciphertext);
    } catch (e) {
      this.failedMs += performance.now() - started;
      session.wipe();
      if (e instanceof ParleyError) {
        // A duplicate (already stored before a crash or by another process, or replayed by the
        // relay), or an Accept-wrapped message already processed, is dropped silently and counted;
        // anything else is a forgery or corruption, which the relay could have sent. Either way
        // nothing changes.
        if (e.code === "DUPLICATE" || (acceptDigest && contact.accepts?.includes(acceptDigest))) {
          this.replaysDropped++;
        } else {
          const warning = secondAccept(contact.name, frame.ciphertext, e.code);
          if (warning) warn(this.ctx, warning);
          else this.dropped.count(contact.name, e.code);
        }
        return [];
      }
      throw e;
    }
    if (earlier) earlier.session = toHex(session.serialize());
    else contact.session = toHex(session.serialize());
    if (!earlier && contact.firstContact) {
      if (settleFirstContact(contact.firstContact, slot === -1, session.skippedCount, Date.now())) {
        this.firstContactDue = true;
      }
    }
    session.wipe();
    if (acceptDigest) rememberAccept(contact, acceptDigest);
    let payload: Payload;
    try {
      payload = decodePayload(plaintext);
    } catch (e) {
      this.contacts.put(id, contact);
      warn(this.ctx, `dropped a malformed message from ${contact.name} (${(e as ParleyError).code ?? "?"})`);
      return [];
    }
    // An earlier conversation's messages are shown, but not acknowledged to the new one.
    const events = this.payloads.apply(id, contact, payload, earlier === null);
    this.contacts.put(id, contact);
    return events;
  }
}
