// Events as modules produce them inside a transaction, and their publication once it committed.
// A contact's event names the contact by id; it is completed from the store when published, so
// it shows the contact as it is after the transaction.
import type { Context } from "./context.js";
import type { ClientEvent, ContactChange, ContactView } from "./types.js";

/** An event as produced inside a transaction; a contact's is completed from the store once committed. */
export type InternalEvent =
  | Exclude<ClientEvent, { type: "contact" }>
  | {
      readonly type: "contact-ref";
      readonly id: string;
      readonly event: ContactChange;
      readonly previousName?: string;
      readonly invitationAccepted?: boolean;
    };

export const changed = (id: string, event: ContactChange, previousName?: string): InternalEvent =>
  previousName === undefined
    ? { type: "contact-ref", id, event }
    : { type: "contact-ref", id, event, previousName };

/** A contact added or renewed by someone accepting one of my invitations. */
export const byInvitation = (id: string, event: "added" | "renewed"): InternalEvent => ({
  type: "contact-ref",
  id,
  event,
  invitationAccepted: true,
});

/** Events and warnings a transaction produced, published once it committed. */
export interface Effects {
  readonly events: InternalEvent[];
  readonly warnings: string[];
}

export class Publisher {
  /** Events published so far (sync waits for the first one). */
  count = 0;

  constructor(
    private readonly ctx: Context,
    /** A contact as it is now, or null once it is gone. */
    private readonly contactView: (id: string) => ContactView | null,
  ) {}

  /** Publishes an event once its transaction committed; a contact's carries the contact as it is now. */
  emit(internal: InternalEvent): ClientEvent | null {
    let ev: ClientEvent;
    if (internal.type === "contact-ref") {
      const view = this.contactView(internal.id);
      if (!view) return null;
      ev = {
        type: "contact",
        event: internal.event,
        ...(internal.previousName === undefined ? {} : { previousName: internal.previousName }),
        ...(internal.invitationAccepted ? { invitationAccepted: true } : {}),
        ...view,
      };
    } else {
      ev = internal;
    }
    this.count += 1;
    this.ctx.emitter.emit("event", ev);
    return ev;
  }

  /** Publishes what a committed transaction produced. */
  publish(effects: Effects): void {
    for (const ev of effects.events) this.emit(ev);
    for (const w of effects.warnings) this.ctx.emitter.emit("warning", w);
  }
}
