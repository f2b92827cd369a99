// The records the store keeps, one interface per table. Each is sealed as JSON (vault.ts), so a
// field may only be added as optional, never renamed or given a new meaning: stores written by
// earlier versions must open unchanged.
import type { SeqRecord } from "../groups/sequence.js";

export type MessageStatus = "queued" | "stored" | "delivered" | "read" | "expired" | "failed" | "received";

/**
 * Why a relay did not take an outgoing message (on a "queued" one: still retried; on a "failed"
 * one: given up). Words are made when it is shown, with the contact's name as it is then.
 * - too-large: over the relay's ciphertext limit (`detail`: that limit in bytes);
 * - mailbox-gone: the relay has no mailbox at the address (UNKNOWN_MAILBOX);
 * - mailbox-full: the mailbox is at its quota (QUOTA);
 * - refused: another refusal (`detail`: the relay's error code);
 * - relay-policy: this client will not use the relay (`detail`: why, e.g. its retention).
 */
export interface DeliveryFailure {
  code: "too-large" | "mailbox-gone" | "mailbox-full" | "refused" | "relay-policy";
  detail?: string;
}

export interface IdentityRecord {
  name: string;
  /** hex of Identity.serialize() */
  secret: string;
  createdAt: number;
}

export interface ContactRecord {
  name: string;
  /** "user": chosen locally; "peer": announced by the contact; "auto": a placeholder. */
  nameSource: "user" | "peer" | "auto";
  /** hex of the 64-byte public identity */
  identity: string;
  /** hex of Session.serialize() */
  session: string;
  verified: boolean;
  /** The identity key differs from the one this contact had: nothing is sent until confirmed. */
  keyChanged: boolean;
  previousFingerprint?: string;
  /**
   * My mailbox for this contact: where they write. `token` (hex): its deposit token, sent in my
   * intro; `lock`: "due" once their intro showed they deposit with tokens (it carried one of
   * theirs), "set" once the relay took it (and then the mailbox takes nothing without it), "refused"
   * if the relay does not take deposit tokens.
   */
  inbox: { relay: string; key: string; token?: string; lock?: "due" | "set" | "refused" };
  /**
   * Their mailbox: where I write; `token` (hex): its deposit token, from their intro, without which
   * the relay refuses my deposits there once they have set it.
   */
  outbox: { relay: string; address: string; token?: string };
  /**
   * The invitation's mailbox, which I (the inviter) still read with the current session until
   * the contact writes to `inbox`, announced in my intro, with nothing of theirs missing before
   * it; then, or at `until` (ms), it is deleted on the relay. Anyone who saw the invitation code
   * knows its address.
   */
  firstContact?: { relay: string; key: string; until: number; moved?: boolean };
  createdAt: number;
  lastActivity: number;
  unread: number;
  /**
   * Earlier conversations (replaced by a renewed session or a key change): their mailboxes are
   * still read, with their own sessions, until `until` (ms), when the relay has surely dropped
   * anything sent to them.
   */
  previous?: { inbox: { relay: string; key: string }; session: string; until: number }[];
  /**
   * Digests (hex, first 16 bytes of SHA-256 of the wire bytes) of the Accept-wrapped messages from
   * this contact already processed, newest last, at most 64: one delivered again is a replay,
   * dropped silently, not a second acceptance. Absent in stores made before it.
   */
  accepts?: string[];
  /**
   * The current session has delivered nothing yet: its first message may be the contact's intro,
   * which then names them. An intro later in a session renames no one.
   */
  introExpected?: boolean;
  /** Sent messages stored on a relay and not yet acknowledged by a receipt: message seq and deadline (ms). */
  awaiting: { seq: number; deadline: number }[];
  /**
   * Deposits to this mailbox address of theirs have been refused (no such mailbox, or an
   * unexpected error) since `since` (ms), with no deposit taken there after. Once the relay's
   * retention has passed too, the entries for it are given up. Absent in stores made before it.
   */
  refused?: { address: string; since: number };
  /**
   * A session set up for a group (an introduction, PROTOCOL.md §13.4), not a conversation of its
   * own: not listed among contacts until the user makes it one. Absent for an ordinary contact.
   */
  groupScoped?: true;
}

export interface MessageRecord {
  /** hex, 16 bytes: the payload's message id */
  id: string;
  direction: "in" | "out";
  text: string;
  sentAt: number;
  /** When it reached this client (in), or was written (out). */
  receivedAt: number;
  status: MessageStatus;
  /** Outgoing: why the relay did not take it (absent when nothing is known against it). */
  failure?: DeliveryFailure;
  /** A group message's own fields (absent in a conversation with one contact). */
  group?: GroupMessageFields;
  /**
   * A line of a group's conversation that no member wrote: a membership change, as it read when it
   * was applied (direction "in", status "read", text empty; the words are made when it is shown).
   */
  note?: GroupNote;
  /** A file message (text empty): the file's id (hex, the manifest's message id); its record is in the files table. */
  file?: string;
}

/** A membership change as a line of the group's conversation (see ClientEvent "group"). */
export interface GroupNote {
  event: "created" | "joined" | "added" | "removed" | "left" | "renamed" | "promoted" | "fork" | "rejected";
  /** The member the change is about, and the member who made it, by the names they had then. */
  member?: string;
  by?: string;
  /** renamed: my name for the group before. */
  previousName?: string;
  /** fork, rejected: the change that was not applied, and why. */
  op?: string;
  reason?: string;
  /** Whether I was still a member after it, and how many members there were. */
  active: boolean;
  members: number;
}

/**
 * A group message (PROTOCOL.md §13.3). Members are named by signing key (hex); in the lists of an
 * outgoing message by its first 16 hex digits, which is enough to tell them apart and keeps the
 * record small.
 */
export interface GroupMessageFields {
  /** The author's signing key (hex): mine for an outgoing message. */
  author: string;
  /** The author's sequence number in this group, from 1. */
  seq: number;
  /** hex: the author's signature (groupTextSignedBytes), kept so it can be sent again or passed on. */
  signature: string;
  /** Incoming: another member passed it on (a forward item). */
  forwarded?: boolean;
  /** Outgoing: the members it was for when it was sent. */
  to?: string[];
  /** Outgoing: the members whose copy (direct, or forwarded through another member) was queued. */
  queued?: string[];
  /** Outgoing: the members whose copy a relay stored. */
  stored?: string[];
  /**
   * Outgoing: the members whose copy was held (no route to them) until it expired, never sent
   * (GroupExpiry).
   */
  unsent?: string[];
  /** Outgoing: the members whose receipt said delivered (or read), and read. */
  delivered?: string[];
  read?: string[];
}

/**
 * A group item kept until entries arrive that make sense of it (groups/incoming.ts "wait"): one
 * for a group I do not hold yet, or from someone its log has not named yet.
 */
export interface WaitingGroupItem {
  /** The signing key (hex) of the member whose session carried it. */
  from: string;
  /** hex of the payload (encodePayload). */
  payload: string;
  receivedAt: number;
}

/** A group this identity holds (PROTOCOL.md §13): its membership log and my side of it. */
export interface GroupRecord {
  /** hex, 16 bytes: the group's id, the same for every member. */
  groupId: string;
  /**
   * My name for the group: its name (`groupName`) made unique among my conversations; "" while
   * I hold entries of the group but am not (yet) a member.
   */
  name: string;
  /** The name the group's log gives it, which `name` was made from. */
  groupName: string;
  /** Every entry held (hex of its bytes), in the order received. */
  entries: string[];
  /** The seq of my last text in this group (0: none yet). */
  mySeq: number;
  /** Per author (signing key hex): which of their seqs have arrived. */
  seqs: Record<string, SeqRecord>;
  /**
   * Per author who was a member before I was added: the seq before their first message that
   * reached me; their messages up to it were sent before I joined, and are not shown as missing.
   */
  floors?: Record<string, number>;
  unread: number;
  createdAt: number;
  lastActivity: number;
  /** Hashes (hex) of my entries that lost a fork and were dealt with: issued again, or found invalid. */
  reissued?: string[];
  /** My texts (messages row seq) not yet sent to a member (signing key hex) I have no route to. */
  held?: { member: string; row: number }[];
  /** Members (signing key hex) owed every entry of the log once I have a session with them. */
  unsynced?: string[];
  /**
   * Introductions (PROTOCOL.md §13.4). `invites`: members who joined before me and with whom I
   * have no session, each owed a one-time invitation through the admin who added me (`expiresAt`,
   * ms, once it is sent: made again after it, if still no session). `accepts`: invitation codes
   * members sent me that way, to accept.
   */
  invites?: { member: string; expiresAt?: number }[];
  accepts?: { member: string; code: string }[];
  /**
   * Messages (id hex) that reached me only forwarded, from an author I had no session with: their
   * receipts (delivered, or read if I have read them since) go once that session is up.
   */
  owedReceipts?: string[];
}

export interface OutboxRecord {
  kind: "message" | "receipt" | "accept" | "intro" | "group";
  relay: string;
  address: string;
  /** hex: the deposit token of `address` (the contact's outbox token when queued or moved). */
  token?: string;
  clientMessageId: string;
  /** base64 of the envelope */
  ciphertext: string;
  /** The history row this entry delivers (outgoing texts). */
  messageSeq?: number;
  /**
   * A group item: the group's row key (whose conversation `messageSeq` is in, for a text) and the
   * member (signing key hex) the copy is for (for a forward, not the member it is deposited with).
   */
  group?: { conversation: string; member: string };
  createdAt: number;
  attempts: number;
  nextAttemptAt: number;
  lastError?: string;
  /** The refusal last recorded for this entry, so that a repeated one is not reported again. */
  failure?: DeliveryFailure["code"];
}

/**
 * Where a file stands: sending: "uploading" (chunks go to the relay), "sent" (stored there and
 * the manifest queued or sent); receiving: "offered" (the manifest arrived), "fetched" (saved and
 * checked), "failed" (a download that did not check out: `error` says why), "expired" (the relay
 * no longer has it).
 */
export type FileState = "uploading" | "sent" | "offered" | "fetched" | "failed" | "expired";

/** A file I sent or was offered (PROTOCOL.md §14). Bytes are hex. */
export interface FileRecord {
  /** The manifest's message id: the file's id. */
  id: string;
  direction: "in" | "out";
  /** The row key of the contact it is with, or of the group it was sent to. */
  conversation: string;
  /** out: the name announced; in: the name as the sender gave it (sanitised when saved). */
  name: string;
  mediaType: string;
  size: number;
  chunkCount: number;
  relay: string;
  blobId: string;
  fileKey: string;
  /** SHA-256 of the plaintext: for an upload, known once every chunk was read. */
  sha256?: string;
  /** When the relay deletes the blob (its blobInfo), once known. */
  expiresAt?: number;
  state: FileState;
  createdAt: number;
  /** Why the last transfer failed, in words. */
  error?: string;
  /** out: the file read, and its size and modification time then, to notice a change before a resume. */
  path?: string;
  mtimeMs?: number;
  writeToken?: string;
  /** out: one per recipient (a contact: one; a group: one per member in `readers`). */
  readTokens?: string[];
  /**
   * out, to a group: the members (signing key hex) it is for, the other members when it was sent;
   * `readTokens[i]` is `readers[i]`'s. Absent for a file to a contact.
   */
  readers?: string[];
  /** out: chunks the relay held at the last count (it says, on resume, how many it has). */
  next?: number;
  /** in: my read token. */
  readToken?: string;
  /** in, in a group: the member (signing key hex) who sent it. */
  author?: string;
  /** in: where it was saved. */
  savedAs?: string;
}

export interface InvitationRecord {
  /** hex of PendingInvitation.serialize() */
  pending: string;
  /** hex of MailboxKey.serialize(): the first-contact mailbox */
  mailboxKey: string;
  /**
   * hex of MailboxKey.serialize(): the contact's own inbox, created with the invitation and
   * announced in my intro once it is accepted, so the first-contact mailbox (whose address
   * anyone who saw the code knows) can be deleted. Absent in invitations made before it.
   */
  inboxKey?: string;
  /** hex: the inbox's deposit token, sent in my intro (absent when the relay does not take tokens). */
  inboxToken?: string;
  relay: string;
  expiresAt: number;
  /**
   * Made for a member of a group I have no session with (PROTOCOL.md §13.4): the session it opens
   * is group-scoped (ContactRecord.groupScoped). `groupId` hex, `member` its signing key hex.
   */
  group?: { groupId: string; member: string };
}

export interface RelayRecord {
  url: string;
  retentionSeconds: number;
  /** How often the relay deletes expired messages (its transparency statement). */
  sweepSeconds?: number;
  checkedAt: number;
}

export interface PendingReceipt {
  kind: "delivered" | "read";
  /** hex message id */
  id: string;
}

export interface Row<T> {
  readonly key: string;
  readonly value: T;
}
