// The types the client core shows the world: what the CLI and the terminal UI read (views of
// contacts and messages, events, relay states). client.ts re-exports them.
import type { MessageStatus } from "../store/records.js";

export interface ContactView {
  readonly contact: string;
  readonly fingerprint: string;
  readonly verified: boolean;
  readonly keyChanged: boolean;
  readonly relay: string;
  readonly unread: number;
  readonly lastActivity: number;
  readonly outbox: number;
}

export interface MessageView {
  readonly contact: string;
  readonly id: string;
  readonly direction: "in" | "out";
  readonly text: string;
  readonly sentAt: number;
  readonly receivedAt: number;
  readonly status: MessageStatus;
  /**
   * Why an outgoing message is not delivered, in words ("Bob's mailbox no longer exists"), or null.
   * With status "failed" it never will be; with "queued" the client still retries (the obstacle is
   * a refusal, a full mailbox or a held key; being offline is not one: see status().relays); with
   * "expired" the relay dropped it unread. It clears once the message gets through. Always set by
   * the client; optional only so that views made by hand need not name it.
   */
  readonly failure?: string | null;
}

/** One message of a conversation window, with its place in the conversation. */
export interface ConversationEntry {
  readonly seq: number;
  readonly message: MessageView;
}

export type ClientEvent =
  | ({ readonly type: "message" } & MessageView)
  | {
      readonly type: "status";
      readonly contact: string;
      readonly id: string;
      readonly status: MessageStatus;
      /** As MessageView.failure: why it is not delivered, or null. */
      readonly failure: string | null;
    }
  | ({
      readonly type: "contact";
      readonly event: ContactChange;
      readonly previousName?: string;
      /**
       * True when this contact came from someone accepting an invitation this identity issued
       * ("added", or "renewed" for a known contact): the inviter's "Bob accepted your invitation".
       */
      readonly invitationAccepted?: boolean;
    } & ContactView);

export type ContactChange = "added" | "renamed" | "key-changed" | "renewed";

/** connected; connecting (an attempt is under way); offline (the next one is due at nextRetryAt). */
export type RelayLinkState = "connected" | "connecting" | "offline";

/** One relay as this process sees it (the "relay" event, and status().relays). */
export interface RelayState {
  readonly url: string;
  readonly state: RelayLinkState;
  /** When offline in live mode: when the next attempt is due (ms since the epoch); else null. */
  readonly nextRetryAt: number | null;
  /** Why the last attempt failed or the connection ended, in words; null while connected. */
  readonly lastError: string | null;
}

export interface LiveOptions {
  /** Locates the personal relay, which is restarted if it dies (default: process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

export interface ClientEvents {
  event: [ClientEvent];
  relay: [RelayState];
  /** Something the user should know that is not an event (a dropped message, a relay problem). */
  warning: [string];
}

export interface FlushReport {
  /** Relays that could not be reached: their entries stay in the outbox. */
  readonly unreachable: string[];
  /** Why a reachable relay refused entries (they stay in the outbox, or fail when too large). */
  readonly refused: string[];
}
