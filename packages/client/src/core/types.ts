// The types the client core shows the world: what the CLI and the terminal UI read (views of
// contacts and messages, events, relay states). client.ts re-exports them.
import type { FileState, GroupNote, MessageStatus } from "../store/records.js";

export type { FileState, GroupNote };

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
  /** A group message: my name for the group (and `contact` is its author's name: mine if outgoing). */
  readonly group?: string;
  /** A group message: its author's sequence number in the group. */
  readonly authorSeq?: number;
  /** An incoming group message another member passed on (its author had no session with me). */
  readonly forwarded?: boolean;
  /** An incoming group message: how many of its author's earlier messages have not arrived yet. */
  readonly missing?: number;
  /** An outgoing group message: how many members it was for, and how many said delivered / read. */
  readonly recipients?: number;
  readonly delivered?: number;
  readonly read?: number;
  /** A line of a group's conversation that is a membership change, not a message (text is empty). */
  readonly note?: Readonly<GroupNote>;
  /** A file message (text is empty): the file offered or sent, and where it stands. */
  readonly file?: MessageFile;
}

/** The file of a file message (PROTOCOL.md §14.3). `id` is what `parley fetch` takes. */
export interface MessageFile {
  readonly id: string;
  /** As the sender named it: a claim, made safe only when saved (show it with displayText). */
  readonly name: string;
  readonly size: number;
  readonly mediaType: string;
  readonly state: FileState;
}

/** A file sent or received (`parley files`). */
export interface FileView extends MessageFile {
  /** The contact it is with; in a group, its author's name (mine: my name). */
  readonly contact: string;
  /** A file in a group: my name for the group. */
  readonly group?: string;
  readonly direction: "in" | "out";
  readonly createdAt: number;
  /** When the relay deletes it, ms since the epoch (null while not known). */
  readonly expiresAt: number | null;
  /** Where a fetched file was saved. */
  readonly savedAs: string | null;
  /** The SHA-256 of its content as the sender announced it (hex; null for an upload not yet read). */
  readonly sha256: string | null;
  /** Why the last transfer failed, in words. */
  readonly error: string | null;
}

/** How far a transfer is: bytes of plaintext done out of the file's size. */
export type Progress = (done: number, total: number) => void;

/** A contact's safety number as `parley verify` and the UI's /verify show it (PROTOCOL.md §9). */
export interface SafetyView {
  readonly contact: string;
  /** 60 digits, in groups. */
  readonly safetyNumber: string;
  /** The form a QR code carries (PARLEYSN1-…). */
  readonly compact: string;
  readonly verified: boolean;
  readonly keyChanged: boolean;
}

/** A group as the CLI and the UI show it (PROTOCOL.md §13). */
export interface GroupView {
  /** My name for the group, unique among my conversations. */
  readonly group: string;
  /** The group's id (32 hex digits), the same for every member. */
  readonly id: string;
  readonly members: number;
  /** I am an admin (I may add, remove, rename, promote). */
  readonly admin: boolean;
  /** I am a member (false once I left or was removed: the history stays, nothing is sent). */
  readonly active: boolean;
  /** Members I have no session with yet: their messages are passed on by the member who introduced us. */
  readonly pending: number;
  readonly unread: number;
  readonly lastActivity: number;
  /** Changes that lost to a concurrent one (a fork), and changes refused as not allowed. */
  readonly forks: number;
  readonly rejected: number;
}

/** One member of a group (`parley group members`). */
export interface MemberView {
  readonly group: string;
  /** The member's name: its contact name, else one made from its fingerprint. */
  readonly member: string;
  readonly fingerprint: string;
  readonly verified: boolean;
  readonly keyChanged: boolean;
  readonly admin: boolean;
  /** This is me. */
  readonly me: boolean;
  /** Listed among my contacts (not only reached for this group). */
  readonly contact: boolean;
  /** I have no session with this member yet (its messages and mine go through another member). */
  readonly pendingSession: boolean;
}

/**
 * What changed in a group: I created or joined it; a member was added, removed, left or made an
 * admin; it was renamed; a change lost to a concurrent one (fork) or was refused (rejected).
 */
export type GroupChange = GroupNote["event"];

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
      /** A group message: as in MessageView (`contact` is then my name, its author's). */
      readonly group?: string;
      readonly recipients?: number;
      readonly delivered?: number;
      readonly read?: number;
    }
  | ({
      readonly type: "group";
      readonly event: GroupChange;
      /** The member the change is about (added, removed, left, promoted). */
      readonly member?: string;
      /** The member who made the change. */
      readonly by?: string;
      /** renamed: my name for the group before. */
      readonly previousName?: string;
      /** fork, rejected: the change that was not applied (create, add, remove, leave, rename, promote). */
      readonly op?: string;
      /** rejected: why, in words. */
      readonly reason?: string;
    } & GroupView)
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
