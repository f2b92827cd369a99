// The client core, with no UI: identities, invitations, the encrypted store, the outbox and
// receipts. The scripting CLI and the terminal UI both drive it. Every change to a session, the
// history and the outbox happens in one store transaction, before anything leaves the machine.
import { EventEmitter } from "node:events";
import { sha256 } from "@noble/hashes/sha2.js";
import { randomBytes } from "@noble/hashes/utils.js";
import {
  acceptInvitation,
  checkInvitationKeys,
  createInvitation,
  type DeliverFrame,
  decodeInvitation,
  decodePayload,
  decodePublicIdentity,
  encodePayload,
  encodePublicIdentity,
  fingerprint,
  fromHex,
  HandshakeError,
  Identity,
  InvitationBook,
  InvitationError,
  invitationId,
  MailboxKey,
  newMessageId,
  ParleyError,
  type Payload,
  PendingInvitation,
  relayUrlProblem,
  Session,
  safetyNumber,
  samePublicIdentity,
  toHex,
  verifySafetyNumber,
} from "@parley/protocol";
import { ClientError } from "./errors.js";
import { decodeIntro, encodeIntro, isControlText } from "./intro.js";
import { ensureLocalRelay, isLocalRelayUrl, localRelayPid } from "./local-relay.js";
import type { Paths } from "./paths.js";
import {
  isLoopbackRelay,
  networkProblem,
  probeRelay,
  RelayConnection,
  RelayRequestError,
  RelayUnreachableError,
  transparencyUrl,
} from "./relay-connection.js";
import type { Settings } from "./settings.js";
import {
  type ContactRecord,
  type DeliveryFailure,
  type MessageRecord,
  type MessageStatus,
  type OutboxRecord,
  Store,
} from "./store.js";
import { cleanName, humanDuration, MAX_NAME_LENGTH, nameProblem, nameSkeleton } from "./text.js";

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

/** An event as produced inside a transaction; a contact's is completed from the store once committed. */
type InternalEvent =
  | Exclude<ClientEvent, { type: "contact" }>
  | {
      readonly type: "contact-ref";
      readonly id: string;
      readonly event: ContactChange;
      readonly previousName?: string;
      readonly invitationAccepted?: boolean;
    };

const changed = (id: string, event: ContactChange, previousName?: string): InternalEvent =>
  previousName === undefined
    ? { type: "contact-ref", id, event }
    : { type: "contact-ref", id, event, previousName };

/** A contact added or renewed by someone accepting one of my invitations. */
const byInvitation = (id: string, event: "added" | "renewed"): InternalEvent => ({
  type: "contact-ref",
  id,
  event,
  invitationAccepted: true,
});

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

/** A relay's connection in live mode, kept up by retry(). */
interface Link {
  state: RelayLinkState;
  nextRetryAt: number | null;
  lastError: string | null;
  /** Since when it is not connected (ms), or null. */
  offlineSince: number | null;
  /** Full attempts in a row that failed although the relay's port took a TCP connection. */
  failures: number;
  /** No full attempt before this (ms): the back-off after such failures. */
  notBefore: number;
  /** Failed restarts of the personal relay in a row, and the earliest next one (ms). */
  revivals: number;
  reviveNotBefore: number;
  timer: NodeJS.Timeout | null;
  /** retry() is running. */
  busy: boolean;
}

interface Live {
  readonly timers: Set<NodeJS.Timeout>;
  readonly links: Map<string, Link>;
  /** The environment that locates the personal relay (its port and data directory). */
  readonly env: NodeJS.ProcessEnv;
  stopped: boolean;
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

/** Order of outgoing statuses: a status only ever moves forward (expired can still become delivered). */
const RANK: Record<MessageStatus, number> = {
  queued: 0,
  stored: 1,
  expired: 2,
  delivered: 3,
  read: 4,
  received: 0,
  failed: 5,
};

/** Retry delays of the outbox in a long-running process: 1 s doubling to 5 min, with jitter. */
export function backoffMs(attempts: number): number {
  const base = Math.min(300_000, 1000 * 2 ** Math.min(attempts, 9));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

/** ±20 % */
const jittered = (ms: number) => Math.round(ms * (0.8 + Math.random() * 0.4));

/**
 * A relay that is down is probed (one TCP connection, opened and closed) every 0.64–0.96 s, so a
 * relay that comes back is noticed within a second; the WebSocket and its hello follow only once
 * its port answers. First probe after a connection drops: at once, nearly.
 */
const PROBE_MS = 800;
const FIRST_RETRY_MS = 150;

/**
 * The back-off of full attempts that fail although the relay's port takes TCP connections (a
 * proxy answering for a relay that is down, a relay refusing the hello): 1 s doubling to 1 s on
 * this machine, to 15 s for a relay elsewhere; a relay refused for its policy (retention) is asked
 * again after a minute.
 */
function attemptBackoffMs(url: string, failures: number): number {
  const cap = isLoopbackRelay(url) ? 1000 : 15_000;
  return jittered(Math.min(cap, 1000 * 2 ** Math.max(0, failures - 1)));
}
const REFUSED_RETRY_MS = 60_000;
/** Personal relay restarts that fail are tried again after 2 s doubling to a minute. */
const reviveBackoffMs = (failures: number) => Math.min(60_000, 2000 * 2 ** Math.max(0, failures - 1));
/** A personal relay whose process runs but whose port stays closed this long is started again. */
const REVIVE_GRACE_MS = 15_000;

/**
 * A stored message with no receipt is called expired once the relay's retention and one sweep
 * interval (both from its transparency statement) have passed, plus this margin for clocks.
 */
const EXPIRY_SLACK_MS = 5_000;
/** Sweep interval assumed for a relay whose statement does not give one. */
const DEFAULT_SWEEP_SECONDS = 60;
const MAX_RECEIPT_IDS = 256;
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
/** In live mode, undecryptable deliveries are reported at most this often. */
const DROPPED_REPORT_MS = 1000;
/** A transparency statement is a few kilobytes; anything far larger is not one. */
const MAX_STATEMENT_CHARS = 1 << 20;
/** Earlier conversations of one contact whose mailboxes are still read. */
const MAX_PREVIOUS = 3;
/** inboxSlot of the first-contact mailbox: read with the current session (ContactRecord.firstContact). */
const FIRST_CONTACT = -2;
/** The first-contact mailbox stays open at least this long after the invitation is accepted. */
const FIRST_CONTACT_MIN_MS = 60 * 60 * 1000;
/** Longest a sync runs beyond its --wait, however busy its mailboxes are. */
const SYNC_CAP_MS = 120_000;

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));

export interface FlushReport {
  /** Relays that could not be reached: their entries stay in the outbox. */
  readonly unreachable: string[];
  /** Why a reachable relay refused entries (they stay in the outbox, or fail when too large). */
  readonly refused: string[];
}

export class Client extends EventEmitter<ClientEvents> {
  private readonly connections = new Map<string, Promise<RelayConnection>>();
  private flushing: Promise<FlushReport> | null = null;
  private processing: Promise<void> = Promise.resolve();
  private lastDelivery = 0;
  /** Deliveries dropped as replays of what was already processed (status().replaysDropped). */
  private replaysDropped = 0;
  /** Time spent in the current receive slice on messages that failed to authenticate. */
  private failedMs = 0;
  /** A first-contact mailbox became due for deletion while receiving. */
  private firstContactDue = false;
  /** A contact's intro made one of my mailboxes' deposit tokens due at the relay (lockInboxes). */
  private locksDue = false;
  /** Undecryptable deliveries of the current receive slice, by contact name and reason. */
  private dropped = new Map<string, Map<string, number>>();
  private droppedTimer: NodeJS.Timeout | null = null;
  private lastDroppedReport = 0;
  private live: Live | null = null;
  private readonly liveRelays = new Set<string>();
  /** Deliveries waiting to be stored, oldest first. */
  private readonly inbound: { conn: RelayConnection; frame: DeliverFrame }[] = [];
  /** Cache of indexInboxes(), dropped whenever a mailbox changes hands. */
  private inboxes: Map<string, { kind: "contact" | "invitation"; id: string }> | null = null;
  /** Events published so far (sync waits for the first one). */
  private eventCount = 0;

  private constructor(
    readonly store: Store,
    readonly identity: Identity,
    readonly name: string,
    readonly settings: Settings,
  ) {
    super();
  }

  /** Creates an identity and its encrypted store in an empty home. */
  static init(paths: Paths, passphrase: string, name: string, settings: Settings, logN?: number): Client {
    const problem = nameProblem(name);
    if (problem) throw new ClientError("USAGE", `--name: ${problem}`);
    const identity = Identity.generate();
    const store = Store.create(paths.home, paths.database, passphrase, logN, (s) =>
      s.putIdentity({ name, secret: toHex(identity.serialize()), createdAt: Date.now() }),
    );
    return new Client(store, identity, name, settings);
  }

  /** Unlocks an existing home. WRONG_PASSPHRASE or NOT_INITIALIZED change nothing. */
  static open(paths: Paths, passphrase: string, settings: Settings): Client {
    const store = Store.open(paths.database, passphrase);
    const rec = store.getIdentity();
    if (!rec) {
      store.close();
      throw new ClientError("NOT_INITIALIZED", "no Parley identity here: run `parley init`");
    }
    return new Client(store, Identity.deserialize(fromHex(rec.secret)), rec.name, settings);
  }

  get fingerprint(): string {
    return this.identity.fingerprint;
  }

  close(): void {
    this.endLive();
    this.disconnect();
    this.identity.wipe();
    this.store.close();
    addresses.clear();
  }

  // -------------------------------------------------------------------------------- contacts

  contacts(): ContactView[] {
    return this.store
      .contacts()
      .map((r) => this.view(r.key, r.value))
      .sort((a, b) => b.lastActivity - a.lastActivity || a.contact.localeCompare(b.contact));
  }

  private view(id: string, c: ContactRecord): ContactView {
    return {
      contact: c.name,
      fingerprint: fingerprint(decodePublicIdentity(fromHex(c.identity))),
      verified: c.verified,
      keyChanged: c.keyChanged,
      relay: c.outbox.relay,
      unread: c.unread,
      lastActivity: c.lastActivity,
      outbox: this.store.outboxSize(id),
    };
  }

  private messageView(contact: ContactRecord, m: MessageRecord): MessageView {
    return {
      contact: contact.name,
      id: m.id,
      direction: m.direction,
      text: m.text,
      sentAt: m.sentAt,
      receivedAt: m.receivedAt,
      status: m.status,
      failure: this.failureOf(contact, m),
    };
  }

  private statusEvent(contact: ContactRecord, m: MessageRecord): Extract<ClientEvent, { type: "status" }> {
    return {
      type: "status",
      contact: contact.name,
      id: m.id,
      status: m.status,
      failure: this.failureOf(contact, m),
    };
  }

  /** Why an outgoing message is not delivered, in words (MessageView.failure). */
  private failureOf(contact: ContactRecord, m: MessageRecord): string | null {
    if (m.direction !== "out") return null;
    switch (m.status) {
      case "expired": {
        const retention = this.store.relay(contact.outbox.relay)?.retentionSeconds;
        return `${contact.name} did not fetch it before the relay dropped it${retention ? ` (it keeps messages ${humanDuration(retention)})` : ""}`;
      }
      case "queued":
        if (contact.keyChanged) {
          return `held until you compare safety numbers with ${contact.name} and confirm the new key`;
        }
        return m.failure ? failureWords(contact.name, m.failure) : null;
      case "failed":
        return failureWords(contact.name, m.failure ?? { code: "refused" });
      default:
        return null;
    }
  }

  /** Finds a contact by its exact name, else by a unique case-insensitive match. */
  findContact(name: string): { id: string; contact: ContactRecord } {
    const all = this.store.contacts();
    const exact = all.find((r) => r.value.name === name);
    const folded = all.filter((r) => r.value.name.toLowerCase() === name.toLowerCase());
    const hit = exact ?? (folded.length === 1 ? folded[0] : undefined);
    if (!hit)
      throw new ClientError(
        "UNKNOWN_CONTACT",
        `no contact named ${JSON.stringify(name)} (see \`parley contacts\`)`,
      );
    return { id: hit.key, contact: hit.value };
  }

  /**
   * A name that looks like no other contact's (nameSkeleton): the name itself, else with the
   * first characters of the contact's fingerprint, "Name (ab12)", when one is given, else (or if
   * that looks taken too) "name 2", "name 3", …
   */
  private uniqueName(wanted: string, except?: string, fp?: string): string {
    const taken = new Set(
      this.store
        .contacts()
        .filter((r) => r.key !== except)
        .map((r) => nameSkeleton(r.value.name)),
    );
    if (!taken.has(nameSkeleton(wanted))) return wanted;
    if (fp) {
      const candidate = `${[...wanted].slice(0, MAX_NAME_LENGTH - 7).join("")} (${fp.replace(/ /g, "").slice(0, 4)})`;
      if (!taken.has(nameSkeleton(candidate))) return candidate;
    }
    for (let i = 2; ; i++) {
      const candidate = `${[...wanted].slice(0, 60).join("")} ${i}`;
      if (!taken.has(nameSkeleton(candidate))) return candidate;
    }
  }

  /** Another contact whose name looks the same as `name` (nameSkeleton), if there is one. */
  private lookAlike(name: string, except?: string): ContactRecord | undefined {
    const skeleton = nameSkeleton(name);
    return this.store.contacts().find((r) => r.key !== except && nameSkeleton(r.value.name) === skeleton)
      ?.value;
  }

  /** The conversation, oldest first. Shown messages are marked read and read receipts queued. */
  history(name: string, limit = 50): MessageView[] {
    return this.store.tx(() => {
      const { id, contact } = this.findContact(name);
      const rows = this.store.history(id, limit);
      let shown = 0;
      for (const row of rows) {
        if (row.value.direction === "in" && row.value.status === "received") {
          this.store.putMessage(id, row.seq, { ...row.value, status: "read" });
          this.store.addReceipt(id, { kind: "read", id: row.value.id });
          shown++;
        }
      }
      if (shown > 0) this.store.putContact(id, { ...contact, unread: Math.max(0, contact.unread - shown) });
      return rows.map((r) => this.messageView(contact, r.value));
    });
  }

  /**
   * A window of the conversation, oldest first, without marking anything read: up to `limit`
   * messages older than `before` (the newest when undefined), or from the seq `from` on. Only the
   * window is decrypted and it is found by seq, so a conversation of any length pages in constant
   * time.
   */
  conversation(
    name: string,
    at: { readonly before?: number } | { readonly from: number },
    limit: number,
  ): ConversationEntry[] {
    const { id, contact } = this.findContact(name);
    const rows =
      "from" in at
        ? this.store.messagesFrom(id, at.from, limit)
        : this.store.messagesBefore(id, at.before, limit);
    return rows.map((r) => ({ seq: r.seq, message: this.messageView(contact, r.value) }));
  }

  /** Marks every shown message of a conversation read (queuing read receipts) and clears its unread count. */
  markRead(name: string): void {
    this.store.tx(() => {
      const { id, contact } = this.findContact(name);
      if (contact.unread === 0) return;
      for (const row of this.store.history(id, contact.unread)) {
        if (row.value.direction === "in" && row.value.status === "received") {
          this.store.putMessage(id, row.seq, { ...row.value, status: "read" });
          this.store.addReceipt(id, { kind: "read", id: row.value.id });
        }
      }
      this.store.putContact(id, { ...contact, unread: 0 });
    });
  }

  /** Renames a contact locally. */
  rename(name: string, newName: string): string {
    const problem = nameProblem(newName);
    if (problem) throw new ClientError("USAGE", `new name: ${problem}`);
    return this.store.tx(() => {
      const { id, contact } = this.findContact(name);
      const other = this.lookAlike(newName, id);
      if (other?.name.toLowerCase() === newName.toLowerCase())
        throw new ClientError("USAGE", `another contact is already called ${JSON.stringify(newName)}`);
      if (other)
        throw new ClientError(
          "USAGE",
          `${JSON.stringify(newName)} looks the same as another contact's name, ${JSON.stringify(other.name)}`,
        );
      this.store.putContact(id, { ...contact, name: newName, nameSource: "user" });
      return newName;
    });
  }

  /** Deletes a conversation's local history (the contact stays). */
  deleteHistory(name: string): void {
    this.store.tx(() => {
      const { id, contact } = this.findContact(name);
      this.store.deleteHistory(id);
      this.store.putContact(id, { ...contact, unread: 0, awaiting: [] });
    });
  }

  /** Deletes a contact, its history and its outbox; its mailboxes are deleted on the relay (best effort). */
  async deleteContact(name: string): Promise<void> {
    const keys = this.store.tx(() => {
      const { id, contact } = this.findContact(name);
      this.store.deleteContactData(id);
      return [contact.inbox, ...(contact.previous ?? []).map((p) => p.inbox)];
    });
    this.inboxes = null;
    for (const { relay, key } of keys) {
      try {
        const conn = await this.connect(relay);
        await conn.deleteMailbox(MailboxKey.deserialize(fromHex(key)));
      } catch {
        // unreachable: the relay drops what waits there at its retention anyway
      }
    }
  }

  /**
   * What a status bar shows: the outbox size and, per relay in use, its state (in live mode:
   * connecting, or offline with the time of the next attempt and why) and its retention.
   */
  status(): {
    outbox: number;
    /** Deliveries this process dropped silently as replays of messages already processed. */
    replaysDropped: number;
    relays: (RelayState & { connected: boolean; retentionSeconds: number | null })[];
  } {
    const urls = this.relaysInUse();
    return {
      outbox: this.store.outboxSize(),
      replaysDropped: this.replaysDropped,
      relays: [...urls].sort().map((url) => ({
        ...this.relayState(url),
        connected: this.liveRelays.has(url),
        retentionSeconds: this.store.relay(url)?.retentionSeconds ?? null,
      })),
    };
  }

  safety(name: string): {
    contact: string;
    safetyNumber: string;
    compact: string;
    verified: boolean;
    keyChanged: boolean;
  } {
    const { contact } = this.findContact(name);
    const sn = safetyNumber(this.identity.publicIdentity, decodePublicIdentity(fromHex(contact.identity)));
    return {
      contact: contact.name,
      safetyNumber: sn.display,
      compact: sn.compact,
      verified: contact.verified,
      keyChanged: contact.keyChanged,
    };
  }

  /**
   * Marks a contact verified; a key-change block is lifted and held messages may leave. With
   * `expected` (the 60 digits or the compact form the other person read out or showed as a QR
   * code), nothing is marked unless it matches the safety number of the key held now.
   */
  confirm(name: string, expected?: string): void {
    this.store.tx(() => {
      const { id, contact } = this.findContact(name);
      if (expected !== undefined) this.checkSafety(contact, expected);
      this.store.putContact(id, { ...contact, verified: true, keyChanged: false });
    });
  }

  /** Compares a safety number the user has against this contact's, in constant time. */
  matchesSafety(name: string, candidate: string): boolean {
    const { contact } = this.findContact(name);
    return verifySafetyNumber(this.safetyOf(contact), candidate);
  }

  private safetyOf(contact: ContactRecord) {
    return safetyNumber(this.identity.publicIdentity, decodePublicIdentity(fromHex(contact.identity)));
  }

  private checkSafety(contact: ContactRecord, candidate: string): void {
    if (!verifySafetyNumber(this.safetyOf(contact), candidate)) {
      throw new ClientError(
        "SAFETY_MISMATCH",
        `the safety number you have does not match ${contact.name}'s key: do not trust this contact until you find out why`,
      );
    }
  }

  // ----------------------------------------------------------------------------- relays

  private relayFor(flag: string | undefined): string {
    const url = flag ?? this.settings.relay;
    if (!url) {
      throw new ClientError(
        "USAGE",
        "no relay configured: pass --relay URL (or set one with `parley init --relay URL`)",
      );
    }
    const problem = relayUrlProblem(url);
    if (problem) throw new ClientError("USAGE", `relay URL ${JSON.stringify(url)}: ${problem}`);
    return url;
  }

  /**
   * Reads a relay's transparency statement before its first use and refuses one that keeps
   * undelivered messages longer than the user's maximum.
   */
  private async vet(url: string): Promise<void> {
    const known = this.store.relay(url);
    if (known && known.retentionSeconds <= this.settings.maxRetentionSeconds) return;
    let statement: unknown;
    try {
      const res = await fetch(transparencyUrl(url), {
        signal: AbortSignal.timeout(5000),
        redirect: "error",
        headers: { accept: "application/json" },
      });
      if (!res.ok)
        throw new ClientError("RELAY_REFUSED", `relay ${url}: /transparency answered HTTP ${res.status}`);
      const body = await res.text();
      if (body.length > MAX_STATEMENT_CHARS) {
        throw new ClientError(
          "RELAY_REFUSED",
          `relay ${url}: its transparency statement is implausibly large`,
        );
      }
      statement = JSON.parse(body);
    } catch (e) {
      if (e instanceof ClientError) throw e;
      if (e instanceof SyntaxError) {
        throw new ClientError("RELAY_REFUSED", `relay ${url}: its transparency statement is not JSON`);
      }
      throw new ClientError("UNREACHABLE", `cannot reach relay ${url} to read its transparency statement`, {
        cause: e,
      });
    }
    const seconds = (statement as { retention?: { seconds?: unknown } })?.retention?.seconds;
    if (typeof seconds !== "number" || !Number.isSafeInteger(seconds) || seconds <= 0) {
      throw new ClientError(
        "RELAY_REFUSED",
        `relay ${url}: its transparency statement gives no retention time`,
      );
    }
    this.checkRetention(url, seconds);
    const sweep = (statement as { retention?: { sweepIntervalSeconds?: unknown } }).retention
      ?.sweepIntervalSeconds;
    const sweepSeconds =
      typeof sweep === "number" && Number.isSafeInteger(sweep) && sweep > 0 && sweep <= 86400
        ? sweep
        : DEFAULT_SWEEP_SECONDS;
    this.store.tx(() =>
      this.store.putRelay({ url, retentionSeconds: seconds, sweepSeconds, checkedAt: Date.now() }),
    );
  }

  private checkRetention(url: string, seconds: number): void {
    if (seconds > this.settings.maxRetentionSeconds) {
      throw new ClientError(
        "RELAY_REFUSED",
        `relay ${url} keeps undelivered messages for ${humanDuration(seconds)}, longer than your maximum of ${humanDuration(this.settings.maxRetentionSeconds)} (see --max-retention)`,
      );
    }
  }

  /** The open connection to a relay (vetted first), shared by everything this process does. */
  connect(url: string): Promise<RelayConnection> {
    const existing = this.connections.get(url);
    if (existing) return existing;
    const opening = (async () => {
      await this.vet(url);
      let conn: RelayConnection;
      try {
        conn = await RelayConnection.open(url);
      } catch (e) {
        throw new ClientError("UNREACHABLE", (e as Error).message, { cause: e });
      }
      try {
        this.checkRetention(url, conn.welcome.retentionSeconds);
      } catch (e) {
        conn.close();
        throw e;
      }
      // The welcome gives the retention in force now; expiry reports follow it.
      const known = this.store.relay(url);
      if (known && known.retentionSeconds !== conn.welcome.retentionSeconds) {
        this.store.tx(() =>
          this.store.putRelay({ ...known, retentionSeconds: conn.welcome.retentionSeconds }),
        );
      }
      conn.on("deliver", (frame) => this.onDeliver(conn, frame));
      conn.on("close", (reason) => {
        if (this.connections.get(url) === opening) this.connections.delete(url);
        this.liveRelays.delete(url);
        if (this.live && !this.live.stopped) this.linkDown(url, reason, FIRST_RETRY_MS);
        else this.emit("relay", { url, state: "offline", nextRetryAt: null, lastError: reason });
      });
      this.liveRelays.add(url);
      if (this.live && !this.live.stopped) this.linkUp(url);
      else this.emit("relay", { url, state: "connected", nextRetryAt: null, lastError: null });
      return conn;
    })();
    this.connections.set(url, opening);
    opening.catch(() => {
      if (this.connections.get(url) === opening) this.connections.delete(url);
    });
    return opening;
  }

  /** How long after a relay stored a message it is surely gone from there. */
  private expiryDelayMs(url: string): number {
    const r = this.store.relay(url);
    const retention = r?.retentionSeconds ?? this.settings.maxRetentionSeconds;
    return (retention + (r?.sweepSeconds ?? DEFAULT_SWEEP_SECONDS)) * 1000 + EXPIRY_SLACK_MS;
  }

  // ------------------------------------------------------------------------- invitations

  async invite(options: { relay?: string; ttlSeconds?: number } = {}): Promise<{
    code: string;
    expiresAt: number;
    relay: string;
  }> {
    const relay = this.relayFor(options.relay);
    const ttl = options.ttlSeconds ?? 7 * 86400;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 90 * 86400) {
      throw new ClientError("USAGE", "--ttl: an invitation lives between 1 second and 90 days");
    }
    const conn = await this.connect(relay);
    const key = MailboxKey.generate();
    // The contact's own inbox, made now so that accepting needs no relay round trip: my intro
    // names it, and the first-contact mailbox can then be deleted.
    const inbox = MailboxKey.generate();
    await this.request(relay, () => conn.createMailbox(key));
    await this.request(relay, () => conn.createMailbox(inbox));
    // Its deposit token goes in my intro; the relay gets it once the contact shows it uses tokens.
    const inboxToken = randomBytes(32);
    const { code, pending } = createInvitation(this.identity, {
      relayUrl: relay,
      mailbox: key.address,
      ttlSeconds: ttl,
    });
    this.store.tx(() =>
      this.store.addInvitation({
        pending: toHex(pending.serialize()),
        mailboxKey: toHex(key.serialize()),
        inboxKey: toHex(inbox.serialize()),
        inboxToken: toHex(inboxToken),
        relay,
        expiresAt: pending.expiresAt,
      }),
    );
    if (this.live) {
      await this.subscribe(conn, key).catch(() => {});
      await this.subscribe(conn, inbox).catch(() => {});
    }
    return { code, expiresAt: pending.expiresAt * 1000, relay };
  }

  /**
   * Adds the inviter as a contact and deposits the handshake in its mailbox. With `name` of an
   * existing contact whose key differs, this is a key change: the contact is blocked (and the
   * handshake held) until confirmed. Throws UNREACHABLE once everything is saved but the
   * handshake could not be deposited yet.
   */
  async accept(code: string, options: { name?: string; relay?: string } = {}): Promise<ClientEvent> {
    if (options.name !== undefined) {
      const problem = nameProblem(options.name);
      if (problem) throw new ClientError("USAGE", `--name: ${problem}`);
    }
    let inv: ReturnType<typeof decodeInvitation>;
    try {
      inv = decodeInvitation(code);
    } catch (e) {
      if (e instanceof InvitationError) {
        if (e.code === "EXPIRED")
          throw new ClientError("EXPIRED_INVITATION", `invitation expired: ${e.message}`);
        throw new ClientError("BAD_INVITATION", `bad invitation code (${e.code}): ${e.message}`);
      }
      throw e;
    }
    // A code can decode and verify and still carry a key no handshake can use: refuse it before
    // any relay hears of it.
    try {
      checkInvitationKeys(inv);
    } catch (e) {
      if (e instanceof HandshakeError)
        throw new ClientError("BAD_INVITATION", `invalid invitation: ${e.message}`);
      throw e;
    }
    if (samePublicIdentity(inv.identity, this.identity.publicIdentity)) {
      throw new ClientError(
        "BAD_INVITATION",
        "this is your own invitation: give it to the person you invite",
      );
    }
    const invId = toHex(invitationId(inv.prekey));
    if (this.store.invitationUsed(invId)) {
      throw new ClientError(
        "BAD_INVITATION",
        "this invitation was already accepted; a code opens one conversation",
      );
    }
    if (options.name !== undefined) {
      // A name given to a new contact must not look like another contact's (the same name, in
      // any case, means that contact: the invitation renews it).
      const all = this.store.contacts();
      const wanted = options.name.toLowerCase();
      if (!all.some((r) => r.value.name.toLowerCase() === wanted)) {
        const same = all.find((r) =>
          samePublicIdentity(decodePublicIdentity(fromHex(r.value.identity)), inv.identity),
        );
        const other = this.lookAlike(options.name, same?.key);
        if (other)
          throw new ClientError(
            "USAGE",
            `--name: ${JSON.stringify(options.name)} looks the same as another contact's name, ${JSON.stringify(other.name)}`,
          );
      }
    }
    const relay = this.relayFor(options.relay);
    // The inviter's relay will hold what I send: refuse it now if its retention is too long. If it
    // is unreachable, the handshake waits in the outbox and is vetted before it is deposited.
    try {
      await this.vet(inv.relayUrl);
    } catch (e) {
      if (!(e instanceof ClientError && e.code === "UNREACHABLE")) throw e;
    }
    const conn = await this.connect(relay);
    const key = MailboxKey.generate();
    await this.request(relay, () => conn.createMailbox(key));
    // Its deposit token goes in my intro; the relay gets it once the inviter shows it uses tokens.
    const token = randomBytes(32);

    const pending = this.store.tx((): InternalEvent => {
      if (!this.store.useInvitation(invId)) {
        throw new ClientError(
          "BAD_INVITATION",
          "this invitation was already accepted; a code opens one conversation",
        );
      }
      const all = this.store.contacts();
      const byName = options.name
        ? all.find((r) => r.value.name.toLowerCase() === options.name!.toLowerCase())
        : undefined;
      const byIdentity = all.find((r) =>
        samePublicIdentity(decodePublicIdentity(fromHex(r.value.identity)), inv.identity),
      );
      // A name the user gives wins; an identity already known is the same person under another name.
      const target = byName ?? byIdentity;
      if (target && options.name && target === byIdentity && !byName) {
        target.value.name = options.name;
        target.value.nameSource = "user";
      }
      const intro = this.introPayload({ token });
      const { session, message } = acceptInvitation(this.identity, inv, {
        mailbox: key.address,
        relayUrl: relay,
        plaintext: encodePayload(intro),
      });
      const now = Date.now();
      const theirFp = fingerprint(inv.identity);
      let contactId: string;
      let ev: InternalEvent;
      if (target) {
        const old = target.value;
        const sameKey = samePublicIdentity(decodePublicIdentity(fromHex(old.identity)), inv.identity);
        const keyChanged = !sameKey || old.keyChanged;
        const updated: ContactRecord = {
          ...old,
          identity: toHex(encodePublicIdentity(inv.identity)),
          session: toHex(session.serialize()),
          verified: sameKey ? old.verified : false,
          keyChanged,
          previousFingerprint: sameKey
            ? old.previousFingerprint
            : fingerprint(decodePublicIdentity(fromHex(old.identity))),
          inbox: { relay, key: toHex(key.serialize()), token: toHex(token) },
          outbox: { relay: inv.relayUrl, address: toHex(inv.mailbox) },
          firstContact: undefined,
          previous: this.retire(old, now),
          lastActivity: now,
          introExpected: true,
        };
        contactId = this.store.putContact(target.key, updated);
        ev = changed(contactId, sameKey ? "renewed" : "key-changed");
      } else {
        const name = options.name ?? this.uniqueName(`contact-${theirFp.replace(/ /g, "").slice(0, 8)}`);
        contactId = this.store.putContact(null, {
          name,
          nameSource: options.name ? "user" : "auto",
          identity: toHex(encodePublicIdentity(inv.identity)),
          session: toHex(session.serialize()),
          verified: false,
          keyChanged: false,
          inbox: { relay, key: toHex(key.serialize()), token: toHex(token) },
          outbox: { relay: inv.relayUrl, address: toHex(inv.mailbox) },
          createdAt: now,
          lastActivity: now,
          unread: 0,
          awaiting: [],
          introExpected: true,
        });
        ev = changed(contactId, "added");
      }
      session.wipe();
      this.store.enqueue(
        contactId,
        this.outboxEntry("accept", { relay: inv.relayUrl, address: toHex(inv.mailbox) }, message),
      );
      return ev;
    });
    const event = this.emitEvent(pending)!;
    if (this.live) await this.subscribe(conn, key).catch(() => {});
    const { unreachable, refused } = await this.flush({ force: true });
    if (refused.length > 0 && event.type === "contact" && event.event !== "key-changed") {
      throw new ClientError(
        "RELAY_REFUSED",
        `contact ${event.contact} added, but ${refused.join("; ")}; the handshake waits in the outbox`,
      );
    }
    if (unreachable.length > 0 && event.type === "contact" && event.event !== "key-changed") {
      throw new ClientError(
        "UNREACHABLE",
        `contact ${event.contact} added, but relay ${unreachable.join(", ")} is unreachable: the handshake waits in the outbox`,
      );
    }
    return event;
  }

  private introPayload(to: { inbox?: Uint8Array; token?: Uint8Array | undefined } = {}): Payload {
    const text = encodeIntro({
      name: this.name,
      ...(to.inbox ? { inbox: to.inbox } : {}),
      ...(to.token ? { token: to.token } : {}),
    });
    return { type: "text", id: newMessageId(), sentAt: Date.now(), text };
  }

  /**
   * Gives the relay the deposit tokens of my mailboxes whose contact showed it deposits with tokens
   * (PROTOCOL.md §7.4 item 5): from then on the relay refuses deposits there without the token. A
   * relay that does not know the frame (BAD_FRAME) leaves the mailbox open, which the user is told;
   * an unreachable one is asked again at the next prune.
   */
  private async lockInboxes(): Promise<void> {
    const due = this.store.contacts().filter((r) => r.value.inbox.lock === "due" && r.value.inbox.token);
    for (const { key: id, value } of due) {
      const { relay, key, token } = value.inbox;
      let outcome: "set" | "refused";
      try {
        const conn = await this.connect(relay);
        await conn.setDepositToken(MailboxKey.deserialize(fromHex(key)), fromHex(token!));
        outcome = "set";
      } catch (e) {
        if (!(e instanceof RelayRequestError && e.code === "BAD_FRAME")) continue;
        outcome = "refused";
        this.emit(
          "warning",
          `relay ${relay} does not take deposit tokens: anyone who learns the address of your mailbox for ${value.name} can fill it`,
        );
      }
      this.store.tx(() => {
        const contact = this.store.contact(id);
        if (contact?.inbox.key !== key || contact.inbox.lock !== "due") return;
        contact.inbox = { ...contact.inbox, lock: outcome };
        this.store.putContact(id, contact);
      });
    }
  }

  private outboxEntry(
    kind: OutboxRecord["kind"],
    to: { relay: string; address: string; token?: string },
    ciphertext: Uint8Array,
    messageSeq?: number,
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
      createdAt: now,
      attempts: 0,
      nextAttemptAt: now,
    };
  }

  /**
   * Keeps a contact's current conversation readable after a new one replaces it: messages already
   * on their way to its mailbox still decrypt until the relay would have dropped them.
   */
  private retire(old: ContactRecord, now: number): NonNullable<ContactRecord["previous"]> {
    const kept = (old.previous ?? []).filter((p) => p.until > now);
    const until = now + this.expiryDelayMs(old.inbox.relay);
    // A first-contact mailbox still open belongs to the conversation being replaced.
    const first = old.firstContact;
    if (first) kept.push({ inbox: { relay: first.relay, key: first.key }, session: old.session, until });
    kept.push({ inbox: old.inbox, session: old.session, until });
    return kept.slice(-MAX_PREVIOUS);
  }

  /** Encrypts one payload to a contact, advancing the session in `contact` (the caller saves it). */
  private encryptTo(contact: ContactRecord, payload: Payload): Uint8Array {
    const session = Session.deserialize(fromHex(contact.session));
    try {
      const wire = session.encrypt(encodePayload(payload));
      contact.session = toHex(session.serialize());
      return wire;
    } finally {
      session.wipe();
    }
  }

  // ------------------------------------------------------------------------------- sending

  /**
   * Queues texts to a contact (history and outbox in the same transaction as the ratchet step),
   * then tries to deliver the outbox. Resolves with each message's status; throws UNREACHABLE
   * when they stay queued.
   */
  async send(
    name: string,
    texts: string[],
  ): Promise<{ contact: string; id: string; status: MessageStatus; failure: string | null }[]> {
    for (const t of texts) {
      if (t.length === 0) throw new ClientError("USAGE", "refusing to send an empty message");
      if (isControlText(t)) throw new ClientError("USAGE", "a message must not start with a NUL character");
      if (Buffer.byteLength(t, "utf8") > 32737)
        throw new ClientError("USAGE", "a message is at most 32737 bytes of UTF-8");
    }
    const queued = this.store.tx(() => {
      const { id, contact } = this.findContact(name);
      if (contact.keyChanged) throw keyChangedError(contact.name);
      const now = Date.now();
      const out: { seq: number; id: string }[] = [];
      for (const text of texts) {
        const mid = newMessageId();
        const wire = this.encryptTo(contact, { type: "text", id: mid, sentAt: now, text });
        const rec: MessageRecord = {
          id: toHex(mid),
          direction: "out",
          text,
          sentAt: now,
          receivedAt: now,
          status: "queued",
        };
        const seq = this.store.addMessage(id, rec)!;
        this.store.enqueue(id, this.outboxEntry("message", contact.outbox, wire, seq));
        out.push({ seq, id: rec.id });
      }
      contact.lastActivity = now;
      this.store.putContact(id, contact);
      return { contactId: id, name: contact.name, out };
    });
    const { unreachable, refused } = await this.flush({ force: true });
    const contact = this.store.contact(queued.contactId);
    const statuses = queued.out.map((m) => {
      const rec = this.store.messageBySeq(queued.contactId, m.seq);
      return {
        contact: contact?.name ?? queued.name,
        id: m.id,
        status: rec?.status ?? ("queued" as MessageStatus),
        failure: rec && contact ? this.failureOf(contact, rec) : null,
      };
    });
    if (statuses.some((s) => s.status === "queued") && unreachable.length > 0) {
      throw new ClientError(
        "UNREACHABLE",
        `relay ${unreachable.join(", ")} is unreachable: ${statuses.filter((s) => s.status === "queued").length} message(s) wait in the outbox`,
      );
    }
    if (statuses.some((s) => s.status === "queued") && refused.length > 0) {
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

  /** Does a relay request, turning transport failures and relay errors into ClientErrors. */
  private async request<T>(relay: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof RelayUnreachableError) throw new ClientError("UNREACHABLE", e.message, { cause: e });
      if (e instanceof RelayRequestError) {
        throw new ClientError("RELAY_REFUSED", `relay ${relay} refused: ${e.code} (${e.message})`, {
          cause: e,
        });
      }
      throw e;
    }
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
    this.sealReceipts();
    const unreachable = new Set<string>();
    const refused: string[] = [];
    /** Destinations skipped for the rest of this round, with the refusal that stopped them (if any). */
    const blocked = new Map<string, DeliveryFailure | null>();
    const now = Date.now();
    for (const seq of this.store.outboxSeqs()) {
      // Read the entry and its contact just before depositing: another process may have sent
      // it meanwhile, or marked the contact's key changed (which holds everything for it).
      const entry = this.heldOrCurrent(seq);
      if (!entry) continue;
      const e = entry.value;
      const dest = `${e.relay} ${e.address}`;
      const stoppedBy = blocked.get(dest);
      if (stoppedBy !== undefined) {
        // Behind a refused entry: the same reason holds it.
        if (stoppedBy) this.noteFailure(entry, stoppedBy);
        continue;
      }
      // In live mode a relay that is down is left to its link, which flushes once it is back.
      const down = this.live !== null && this.live.links.get(e.relay)?.state === "offline";
      if (unreachable.has(e.relay) || (!force && (e.nextAttemptAt > now || down))) {
        blocked.set(dest, null);
        continue;
      }
      let limit: number | null = null;
      try {
        const conn = await this.connect(e.relay);
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
          if (this.live && !this.live.stopped && !this.liveRelays.has(e.relay)) {
            this.watchRelay(e.relay, outcome.reason);
          }
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
        continue;
      }
      this.delivered(entry.seq, entry.contact, e);
    }
    return { unreachable: [...unreachable], refused };
  }

  /**
   * Records a failed deposit: a permanent refusal gives the entry up; a refusal of the mailbox
   * (or an unexpected one) does too once it has lasted past the relay's retention; anything else
   * waits for the back-off.
   */
  private refusedEntry(
    entry: { seq: number; contact: string; value: OutboxRecord },
    outcome: DepositOutcome,
    message: string,
  ): void {
    const effects = this.store.tx((): Effects => {
      const out: Effects = { events: [], warnings: [] };
      const current = this.store.outboxEntry(entry.seq);
      if (!current) return out;
      const e = current.value;
      if (outcome.kind === "permanent") {
        this.failEntry(entry.seq, entry.contact, e, outcome.failure, out);
        return out;
      }
      const now = Date.now();
      let nextAttemptAt = now + backoffMs(e.attempts);
      if (outcome.kind === "lasting") {
        const contact = this.store.contact(entry.contact);
        if (contact) {
          const since = contact.refused?.address === e.address ? contact.refused.since : now;
          if (contact.refused?.address !== e.address) {
            this.store.putContact(entry.contact, { ...contact, refused: { address: e.address, since } });
          }
          const deadline = since + this.expiryDelayMs(e.relay);
          if (now >= deadline) {
            this.failDestination(entry.contact, e.relay, e.address, outcome.failure, out);
            return out;
          }
          nextAttemptAt = Math.min(nextAttemptAt, deadline);
        }
      }
      const updated: OutboxRecord = { ...e, attempts: e.attempts + 1, nextAttemptAt, lastError: message };
      this.store.putOutbox(entry.seq, entry.contact, updated);
      if (outcome.kind === "waiting" || outcome.kind === "lasting") {
        this.recordFailure({ ...entry, value: updated }, outcome.failure, out);
      }
      return out;
    });
    this.publish(effects);
  }

  /** Records why an entry waits, outside any transaction (an entry behind a refused one). */
  private noteFailure(
    entry: { seq: number; contact: string; value: OutboxRecord },
    failure: DeliveryFailure,
  ): void {
    this.publish(
      this.store.tx((): Effects => {
        const out: Effects = { events: [], warnings: [] };
        const current = this.store.outboxEntry(entry.seq);
        if (current) this.recordFailure({ ...entry, value: current.value }, failure, out);
        return out;
      }),
    );
  }

  /**
   * Records on an entry's message why it waits (an event when that changes); an entry with no
   * message (an acceptance, an introduction) is reported once as a warning. In a transaction.
   */
  private recordFailure(
    entry: { seq: number; contact: string; value: OutboxRecord },
    failure: DeliveryFailure,
    out: Effects,
  ): void {
    const e = entry.value;
    const contact = this.store.contact(entry.contact);
    if (!contact) return;
    if (e.messageSeq === undefined) {
      if (e.failure === failure.code) return;
      this.store.putOutbox(entry.seq, entry.contact, { ...e, failure: failure.code });
      if (e.kind !== "receipt") {
        out.warnings.push(
          `${KIND_WORDS[e.kind]} to ${contact.name} waits: ${failureWords(contact.name, failure)}`,
        );
      }
      return;
    }
    const m = this.store.messageBySeq(entry.contact, e.messageSeq);
    if (m?.status !== "queued" || sameFailure(m.failure, failure)) return;
    const updated: MessageRecord = { ...m, failure };
    this.store.putMessage(entry.contact, e.messageSeq, updated);
    out.events.push(this.statusEvent(contact, updated));
  }

  /** Publishes what a committed transaction produced. */
  private publish(effects: Effects): void {
    for (const ev of effects.events) this.emitEvent(ev);
    for (const w of effects.warnings) this.emit("warning", w);
  }

  /** An outbox entry as it is now, or null when it is gone or its contact's key changed. */
  private heldOrCurrent(seq: number): { seq: number; contact: string; value: OutboxRecord } | null {
    const current = this.store.outboxEntry(seq);
    if (!current) return null;
    const contact = this.store.contact(current.contact);
    if (contact?.keyChanged) return null;
    return { seq, ...current };
  }

  /** The relay stored an outbox entry: forget it, and mark its message stored. */
  private delivered(seq: number, contactId: string, e: OutboxRecord): void {
    const ev = this.store.tx((): InternalEvent | null => {
      this.store.removeOutbox(seq);
      const contact = this.store.contact(contactId);
      if (!contact) return null;
      // The mailbox takes deposits again: whatever was refused there is forgotten.
      if (contact.refused?.address === e.address) delete contact.refused;
      const m = e.messageSeq === undefined ? null : this.store.messageBySeq(contactId, e.messageSeq);
      if (m?.status !== "queued" || e.messageSeq === undefined) {
        this.store.putContact(contactId, contact);
        return null;
      }
      const { failure: _cleared, ...rest } = m;
      const stored: MessageRecord = { ...rest, status: "stored" };
      this.store.putMessage(contactId, e.messageSeq, stored);
      contact.awaiting.push({
        seq: e.messageSeq,
        deadline: Date.now() + this.expiryDelayMs(e.relay),
      });
      this.store.putContact(contactId, contact);
      return this.statusEvent(contact, stored);
    });
    if (ev) this.emitEvent(ev);
  }

  /** Gives up every entry of a contact to one mailbox (inside a transaction). */
  private failDestination(
    contactId: string,
    relay: string,
    address: string,
    failure: DeliveryFailure,
    out: Effects,
  ): void {
    for (const seq of this.store.outboxSeqs()) {
      const entry = this.store.outboxEntry(seq);
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
    this.store.removeOutbox(seq);
    const contact = this.store.contact(contactId);
    const name = contact?.name ?? "a deleted contact";
    if (e.messageSeq !== undefined) {
      const m = contact ? this.store.messageBySeq(contactId, e.messageSeq) : null;
      if (contact && m && m.status === "queued") {
        const failed: MessageRecord = { ...m, status: "failed", failure };
        this.store.putMessage(contactId, e.messageSeq, failed);
        out.events.push(this.statusEvent(contact, failed));
      }
      return;
    }
    if (e.kind === "receipt") return; // a receipt that cannot go is not worth a warning
    out.warnings.push(
      `${KIND_WORDS[e.kind]} to ${name} was given up: ${failureWords(name, failure)}${
        e.kind === "accept" ? "; ask them for a new invitation" : ""
      }`,
    );
  }

  /** Encrypts the receipts waiting in the store, at most 256 ids per receipt, into the outbox. */
  private sealReceipts(): void {
    this.store.tx(() => {
      const pending = this.store.receipts();
      if (pending.length === 0) return;
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
      for (const [contactId, g] of groups) {
        const contact = this.store.contact(contactId);
        if (contact) {
          for (const kind of ["delivered", "read"] as const) {
            for (let i = 0; i < g[kind].length; i += MAX_RECEIPT_IDS) {
              const ids = g[kind].slice(i, i + MAX_RECEIPT_IDS).map((h) => fromHex(h));
              const wire = this.encryptTo(contact, {
                type: kind,
                id: newMessageId(),
                sentAt: Date.now(),
                ids,
              });
              this.store.enqueue(contactId, this.outboxEntry("receipt", contact.outbox, wire));
            }
          }
          this.store.putContact(contactId, contact);
        }
        for (const seq of g.seqs) this.store.removeReceipt(seq);
      }
    });
  }

  // ----------------------------------------------------------------------------- receiving

  /** My mailboxes, grouped by relay. */
  private mailboxes(): Map<string, MailboxKey[]> {
    const boxes = new Map<string, MailboxKey[]>();
    const add = (relay: string, key: string) => {
      const list = boxes.get(relay) ?? [];
      list.push(MailboxKey.deserialize(fromHex(key)));
      boxes.set(relay, list);
    };
    for (const r of this.store.contacts()) {
      // The first-contact mailbox before the inbox that replaces it: what waits there is older.
      const first = r.value.firstContact;
      if (first) add(first.relay, first.key);
      add(r.value.inbox.relay, r.value.inbox.key);
      for (const p of r.value.previous ?? []) add(p.inbox.relay, p.inbox.key);
    }
    for (const r of this.store.invitations()) {
      add(r.value.relay, r.value.mailboxKey);
      if (r.value.inboxKey) add(r.value.relay, r.value.inboxKey);
    }
    return boxes;
  }

  /**
   * Connects to every relay holding one of my mailboxes and subscribes to them; in live mode, to
   * every other relay in use too (a contact's, the default one), so that each has a state.
   */
  async listen(): Promise<FlushReport> {
    const unreachable: string[] = [];
    const refused: string[] = [];
    const boxes = this.mailboxes();
    if (this.live) for (const url of this.relaysInUse()) if (!boxes.has(url)) boxes.set(url, []);
    await Promise.all(
      [...boxes].map(async ([relay, keys]) => {
        const result = await this.listenOn(relay, keys);
        if (result === "ok") return;
        if ("unreachable" in result) {
          unreachable.push(relay);
          if (this.live && !this.live.stopped) this.watchRelay(relay, result.unreachable);
        } else refused.push(result.refused);
      }),
    );
    this.lastDelivery = Date.now();
    return { unreachable, refused };
  }

  /** Subscribes to my mailboxes on one relay; says why not in words. */
  private async listenOn(
    relay: string,
    keys: MailboxKey[],
  ): Promise<"ok" | { unreachable: string } | { refused: string }> {
    try {
      const conn = await this.connect(relay);
      for (const key of keys) {
        try {
          await this.subscribe(conn, key);
        } catch (e) {
          if (!(e instanceof RelayRequestError)) throw e;
          return { refused: `relay ${relay} refused a subscription: ${e.code} (${e.message})` };
        }
      }
      return "ok";
    } catch (e) {
      if (e instanceof ClientError && e.code === "RELAY_REFUSED") return { refused: e.message };
      if (e instanceof ClientError || e instanceof RelayUnreachableError) {
        return { unreachable: unreachableReason(e) };
      }
      throw e;
    }
  }

  // ----------------------------------------------------------------------------- live mode

  /**
   * Stays online until `stop()`: subscribes to every mailbox, keeps every relay in use connected
   * (a relay that is down is probed about every second and reconnected once it answers; the
   * personal relay is restarted if its process died), retries the outbox as entries fall due,
   * and marks expired messages. Events arrive as they happen; each relay's state as a "relay"
   * event and in status(). This is what the terminal UI runs.
   */
  async start(options: LiveOptions = {}): Promise<void> {
    if (this.live) return;
    const live: Live = {
      timers: new Set(),
      links: new Map(),
      env: options.env ?? process.env,
      stopped: false,
    };
    this.live = live;
    for (const url of this.relaysInUse()) {
      if (!this.liveRelays.has(url)) this.setLink(url, { state: "connecting", nextRetryAt: null });
    }
    await this.flush({ force: true });
    const listened = await this.listen();
    for (const r of listened.refused) this.emit("warning", r);
    const tick = setInterval(() => {
      if (this.flushing) return;
      void this.flush().catch((e: unknown) => this.emit("warning", `outbox: ${(e as Error).message}`));
    }, 1000);
    const expiry = setInterval(() => {
      this.checkExpired();
      void this.prune().catch(() => {});
    }, 60_000);
    live.timers.add(tick);
    live.timers.add(expiry);
  }

  /** Leaves live mode and closes every relay connection. */
  async stop(): Promise<void> {
    if (!this.endLive()) return;
    await this.processing;
    this.disconnect();
  }

  /** Ends live mode's timers and reconnections; false when it was not on. */
  private endLive(): boolean {
    const live = this.live;
    if (!live) return false;
    live.stopped = true;
    for (const t of live.timers) clearTimeout(t);
    for (const link of live.links.values()) if (link.timer) clearTimeout(link.timer);
    this.live = null;
    return true;
  }

  private disconnect(): void {
    for (const c of this.connections.values()) void c.then((conn) => conn.close()).catch(() => {});
    this.connections.clear();
    this.liveRelays.clear();
  }

  /** Relays this process is connected to right now (for a status bar). */
  connectedRelays(): string[] {
    return [...this.liveRelays];
  }

  /** Every relay this identity uses: its mailboxes', its contacts' and the default one. */
  private relaysInUse(): Set<string> {
    const urls = new Set<string>();
    for (const r of this.store.contacts()) {
      urls.add(r.value.inbox.relay);
      urls.add(r.value.outbox.relay);
    }
    for (const r of this.store.invitations()) urls.add(r.value.relay);
    if (this.settings.relay) urls.add(this.settings.relay);
    return urls;
  }

  /** One relay's state as this process sees it now. */
  relayState(url: string): RelayState {
    if (this.liveRelays.has(url)) return { url, state: "connected", nextRetryAt: null, lastError: null };
    const link = this.live?.links.get(url);
    if (!link) return { url, state: "offline", nextRetryAt: null, lastError: null };
    return { url, state: link.state, nextRetryAt: link.nextRetryAt, lastError: link.lastError };
  }

  private setLink(url: string, patch: Partial<Omit<Link, "timer" | "busy">>): Link | null {
    const live = this.live;
    if (!live || live.stopped) return null;
    let link = live.links.get(url);
    const before = link
      ? { state: link.state, nextRetryAt: link.nextRetryAt, lastError: link.lastError }
      : null;
    if (!link) {
      link = {
        state: "offline",
        nextRetryAt: null,
        lastError: null,
        offlineSince: Date.now(),
        failures: 0,
        notBefore: 0,
        revivals: 0,
        reviveNotBefore: 0,
        timer: null,
        busy: false,
      };
      live.links.set(url, link);
    }
    Object.assign(link, patch);
    if (
      !before ||
      before.state !== link.state ||
      before.nextRetryAt !== link.nextRetryAt ||
      before.lastError !== link.lastError
    ) {
      this.emit("relay", this.relayState(url));
    }
    return link;
  }

  private linkUp(url: string): void {
    const link = this.setLink(url, {
      state: "connected",
      nextRetryAt: null,
      lastError: null,
      offlineSince: null,
      failures: 0,
      notBefore: 0,
      revivals: 0,
      reviveNotBefore: 0,
    });
    if (link?.timer) {
      clearTimeout(link.timer);
      link.timer = null;
    }
  }

  /** The relay is not connected: say why and try again after `delayMs`. */
  private linkDown(url: string, why: string, delayMs: number): void {
    const current = this.live?.links.get(url);
    const link = this.setLink(url, {
      state: "offline",
      lastError: why,
      offlineSince: current?.offlineSince ?? Date.now(),
    });
    if (link) this.scheduleRetry(url, link, delayMs);
  }

  /** Starts watching a relay found unreachable, unless that is already under way. */
  private watchRelay(url: string, why: string): void {
    const link = this.live?.links.get(url);
    if (link?.busy) return;
    if (link?.timer) {
      this.setLink(url, { lastError: why });
      return;
    }
    this.linkDown(url, why, jittered(PROBE_MS));
  }

  private scheduleRetry(url: string, link: Link, delayMs: number): void {
    const live = this.live;
    if (!live || live.stopped) return;
    if (link.timer) clearTimeout(link.timer);
    const at = Date.now() + delayMs;
    this.setLink(url, { nextRetryAt: at });
    link.timer = setTimeout(() => {
      link.timer = null;
      link.busy = true;
      void this.retry(url)
        .catch((e: unknown) => {
          this.emit("warning", `relay ${url}: ${(e as Error).message}`);
          this.linkDown(url, (e as Error).message, jittered(PROBE_MS));
        })
        .finally(() => {
          link.busy = false;
        });
    }, delayMs);
  }

  /**
   * One reconnection attempt: a TCP probe first (a relay that is down costs one refused
   * connection); the personal relay is restarted if its process is gone; once the port answers,
   * the WebSocket, its hello, the subscriptions and a flush of the outbox.
   */
  private async retry(url: string): Promise<void> {
    const live = this.live;
    const link = live?.links.get(url);
    if (!live || live.stopped || !link) return;
    if (this.liveRelays.has(url)) return this.linkUp(url);
    let problem = await probeRelay(url);
    if (live.stopped) return;
    if (problem !== null && this.isPersonalRelay(url, live.env))
      problem = await this.revive(url, link, problem);
    if (live.stopped) return;
    if (problem !== null) return this.linkDown(url, problem, jittered(PROBE_MS));
    const now = Date.now();
    if (now < link.notBefore) return this.linkDown(url, link.lastError ?? "waiting", link.notBefore - now);
    this.setLink(url, { state: "connecting", nextRetryAt: null });
    const result = await this.listenOn(url, this.mailboxes().get(url) ?? []);
    if (live.stopped) return;
    if (result !== "ok" && !this.liveRelays.has(url)) {
      // Its port answered, yet no connection: back off (a proxy in front of a relay that is down,
      // a relay refusing us) rather than try again every second.
      link.failures += 1;
      const refusal = "refused" in result ? result.refused : null;
      const delay = refusal !== null ? REFUSED_RETRY_MS : attemptBackoffMs(url, link.failures);
      link.notBefore = Date.now() + delay;
      const why = "refused" in result ? result.refused : result.unreachable;
      if (refusal !== null && link.lastError !== why) this.emit("warning", why);
      return this.linkDown(url, why, delay);
    }
    if (result !== "ok" && "refused" in result) this.emit("warning", result.refused);
    this.linkUp(url);
    void this.flush({ force: true }).catch((e: unknown) =>
      this.emit("warning", `outbox: ${(e as Error).message}`),
    );
  }

  /** Is `url` the personal relay this client starts (settings.localRelay)? */
  private isPersonalRelay(url: string, env: NodeJS.ProcessEnv): boolean {
    return this.settings.localRelay === true && url === this.settings.relay && isLocalRelayUrl(url, env);
  }

  /**
   * Restarts the personal relay when its process is gone (or runs, but has not opened its port
   * for longer than a start takes). Returns null once it answers, else why not.
   */
  private async revive(url: string, link: Link, problem: string): Promise<string | null> {
    const live = this.live!;
    const now = Date.now();
    if (now < link.reviveNotBefore) return problem;
    const stuck = link.offlineSince !== null && now - link.offlineSince > REVIVE_GRACE_MS;
    if (localRelayPid(live.env) !== null && !stuck) return problem;
    this.setLink(url, {
      state: "connecting",
      nextRetryAt: null,
      lastError: "your personal relay stopped; restarting it",
    });
    try {
      const { started } = await ensureLocalRelay(live.env);
      link.revivals = 0;
      if (started) this.emit("warning", "your personal relay had stopped; it was restarted");
      return null;
    } catch (e) {
      link.revivals += 1;
      link.reviveNotBefore = Date.now() + reviveBackoffMs(link.revivals);
      return `your personal relay stopped and could not be restarted: ${(e as Error).message}`;
    }
  }

  /**
   * Subscribes to one of my mailboxes. A relay that lost it (wiped, or a memory relay restarted)
   * gets it back: the address derives from the key, so re-creating it restores the same mailbox.
   */
  private async subscribe(conn: RelayConnection, key: MailboxKey): Promise<void> {
    try {
      await conn.subscribe(key);
    } catch (e) {
      if (!(e instanceof RelayRequestError && e.code === "UNKNOWN_MAILBOX")) throw e;
      await conn.createMailbox(key);
      // A mailbox that had a deposit token gets it again: re-created, it would take anyone's.
      const hex = toHex(key.serialize());
      const locked = this.store
        .contacts()
        .find((r) => r.value.inbox.key === hex && r.value.inbox.lock === "set");
      if (locked) await conn.setDepositToken(key, fromHex(locked.value.inbox.token!));
      await conn.subscribe(key);
      this.emit("warning", `relay ${conn.url} had lost one of your mailboxes; it was re-created`);
    }
  }

  private onDeliver(conn: RelayConnection, frame: DeliverFrame): void {
    this.lastDelivery = Date.now();
    this.inbound.push({ conn, frame });
    if (this.inbound.length > 1) return; // a drain is already queued
    // One batch at a time, in arrival order; a failure (a throwing listener) never stops the queue.
    this.processing = this.processing
      .then(() => this.drain())
      .catch((e: unknown) => {
        this.emit("warning", `while receiving: ${(e as Error).message}`);
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
        results = this.store.tx(() => {
          const out: (InternalEvent[] | null)[] = [];
          for (const item of this.inbound.slice(0, RECEIVE_BATCH)) {
            const spent = performance.now() - start;
            if (out.length > 0 && (spent >= SLICE_MS || this.failedMs >= FAILED_BUDGET_MS)) break;
            try {
              out.push(this.receive(item.frame));
            } catch (e) {
              // This delivery's savepoint was rolled back; the others stand. Not acked: it comes again.
              this.emit("warning", `could not store a received message: ${(e as Error).message}`);
              out.push(null);
            }
          }
          return out;
        });
        batch = this.inbound.splice(0, results.length);
      } catch (e) {
        // The store failed (locked, disk full): nothing is acked, so the relay delivers it all again.
        batch = this.inbound.splice(0, RECEIVE_BATCH);
        this.emit("warning", `could not store received messages: ${(e as Error).message}`);
        continue;
      }
      batch.forEach(({ conn, frame }, i) => {
        const events = results[i];
        if (events === null || events === undefined) return;
        this.lastDelivery = Date.now();
        for (const ev of events) this.emitEvent(ev);
        // Already gone (acked by another process, or expired), or the connection broke: a
        // redelivery is refused by the ratchet as a duplicate and acknowledged then.
        conn.ack(frame.address, frame.messageId).catch(() => {});
      });
      this.reportDropped();
      if (this.firstContactDue) {
        this.firstContactDue = false;
        void this.deleteFirstContacts().catch(() => {});
      }
      if (this.locksDue) {
        this.locksDue = false;
        void this.lockInboxes().catch(() => {});
      }
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
    return this.store.tx(() => {
      // The index is a cache: another process may have changed who owns a mailbox. Trust it only
      // when the record it names still has this mailbox; otherwise rebuild it once.
      for (let attempt = 0; attempt < 2; attempt++) {
        if (attempt === 1 || !this.inboxes) this.inboxes = this.indexInboxes();
        const owner = this.inboxes.get(address);
        if (owner?.kind === "contact") {
          const contact = this.store.contact(owner.id);
          const slot = contact ? inboxSlot(contact, address) : null;
          if (contact && slot !== null) return this.receiveFromContact(owner.id, contact, frame, slot);
        } else if (owner?.kind === "invitation" && this.store.invitation(owner.id)) {
          this.inboxes = null;
          return this.receiveAccept(owner.id, frame);
        }
      }
      // Not (or no longer) mine: leave it on the relay rather than acknowledge what was not read.
      this.inboxes = null;
      return null;
    });
  }

  /** Which contact or invitation each of my mailbox addresses (hex) belongs to. */
  private indexInboxes(): Map<string, { kind: "contact" | "invitation"; id: string }> {
    const index = new Map<string, { kind: "contact" | "invitation"; id: string }>();
    for (const r of this.store.contacts()) {
      const first = r.value.firstContact ? [r.value.firstContact] : [];
      for (const inbox of [r.value.inbox, ...(r.value.previous ?? []).map((p) => p.inbox), ...first]) {
        index.set(addressOf(inbox.key), { kind: "contact", id: r.key });
      }
    }
    for (const r of this.store.invitations()) {
      index.set(addressOf(r.value.mailboxKey), { kind: "invitation", id: r.key });
    }
    return index;
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
          if (warning) this.emit("warning", warning);
          else this.countDropped(contact.name, e.code);
        }
        return [];
      }
      throw e;
    }
    if (earlier) earlier.session = toHex(session.serialize());
    else contact.session = toHex(session.serialize());
    if (!earlier && contact.firstContact) this.settleFirstContact(contact, slot === -1, session.skippedCount);
    session.wipe();
    if (acceptDigest) rememberAccept(contact, acceptDigest);
    let payload: Payload;
    try {
      payload = decodePayload(plaintext);
    } catch (e) {
      this.store.putContact(id, contact);
      this.emit(
        "warning",
        `dropped a malformed message from ${contact.name} (${(e as ParleyError).code ?? "?"})`,
      );
      return [];
    }
    // An earlier conversation's messages are shown, but not acknowledged to the new one.
    const events = this.apply(id, contact, payload, earlier === null);
    this.store.putContact(id, contact);
    return events;
  }

  /**
   * A flood of forgeries is one warning per contact and slice, not one per forgery; in live mode
   * (a UI drawing each warning) at most one a second, with the counts of that second.
   */
  private reportDropped(): void {
    if (this.dropped.size === 0 || this.droppedTimer) return;
    const flush = () => {
      this.droppedTimer = null;
      this.lastDroppedReport = Date.now();
      for (const [name, codes] of this.dropped) this.emit("warning", droppedWarning(name, codes));
      this.dropped.clear();
    };
    const wait = this.live ? this.lastDroppedReport + DROPPED_REPORT_MS - Date.now() : 0;
    if (wait <= 0) {
      flush();
      return;
    }
    this.droppedTimer = setTimeout(flush, wait);
    this.droppedTimer.unref();
  }

  private countDropped(name: string, code: string): void {
    const codes = this.dropped.get(name) ?? new Map<string, number>();
    codes.set(code, (codes.get(code) ?? 0) + 1);
    this.dropped.set(name, codes);
  }

  /**
   * The contact wrote to the inbox my intro named (`viaInbox`): once nothing they sent before is
   * missing (no skipped keys), the first-contact mailbox is due for deletion. Messages are
   * encrypted in the order they are sent, so a message still on its way to the first-contact
   * mailbox leaves a skipped key behind.
   */
  private settleFirstContact(contact: ContactRecord, viaInbox: boolean, skipped: number): void {
    const first = contact.firstContact!;
    if (viaInbox) first.moved = true;
    if (!first.moved || skipped > 0) return;
    const now = Date.now();
    if (first.until > now) first.until = now;
    this.firstContactDue = true;
  }

  /**
   * Deletes on the relay the first-contact mailboxes that are due, and forgets them once the
   * relay confirms (an unreachable relay is tried again at the next prune).
   */
  private async deleteFirstContacts(now = Date.now()): Promise<void> {
    const due = this.store
      .contacts()
      .filter((r) => r.value.firstContact && r.value.firstContact.until <= now)
      .map((r) => ({ id: r.key, ...r.value.firstContact! }));
    for (const { id, relay, key } of due) {
      try {
        const conn = await this.connect(relay);
        await conn.deleteMailbox(MailboxKey.deserialize(fromHex(key)));
      } catch (e) {
        if (!(e instanceof RelayRequestError && e.code === "UNKNOWN_MAILBOX")) continue;
      }
      this.store.tx(() => {
        const contact = this.store.contact(id);
        if (contact?.firstContact?.key !== key) return;
        delete contact.firstContact;
        this.store.putContact(id, contact);
      });
      this.inboxes = null;
    }
  }

  /**
   * Applies a decrypted payload to a contact (mutated; the caller saves it). `current`: it came in
   * the contact's current conversation (an earlier one's messages are shown but not acknowledged).
   */
  private apply(id: string, contact: ContactRecord, payload: Payload, current = true): InternalEvent[] {
    const now = Date.now();
    const sendReceipts = current;
    // An intro names the contact only as the first message of a session.
    const first = current && contact.introExpected === true;
    if (current) delete contact.introExpected;
    if (payload.type === "text") {
      if (isControlText(payload.text)) {
        const intro = first ? decodeIntro(payload.text) : null;
        if (intro?.inbox || intro?.token) {
          const address = intro.inbox ? toHex(intro.inbox) : contact.outbox.address;
          this.moveOutbox(id, contact, address, intro.token && toHex(intro.token));
        }
        // Their intro carried a token: they deposit with tokens, so mine can be given to the relay.
        if (intro?.token && contact.inbox.token && contact.inbox.lock === undefined) {
          contact.inbox = { ...contact.inbox, lock: "due" };
          this.locksDue = true;
        }
        const name = intro ? cleanName(intro.name) : "";
        if (name && contact.nameSource !== "user" && name !== contact.name) {
          const previousName = contact.name;
          contact.name = this.uniqueName(
            name,
            id,
            fingerprint(decodePublicIdentity(fromHex(contact.identity))),
          );
          contact.nameSource = "peer";
          return [changed(id, "renamed", previousName)];
        }
        return [];
      }
      const rec: MessageRecord = {
        id: toHex(payload.id),
        direction: "in",
        text: payload.text,
        sentAt: payload.sentAt,
        receivedAt: now,
        status: "received",
      };
      if (this.store.addMessage(id, rec) === null) return []; // shown once, whatever the relay repeats
      contact.unread += 1;
      contact.lastActivity = now;
      if (sendReceipts) this.store.addReceipt(id, { kind: "delivered", id: rec.id });
      return [{ type: "message", ...this.messageView(contact, rec) }];
    }
    // Group traffic (PROTOCOL.md §13) is not handled by this client yet: ignored, like an unknown
    // control text.
    if (payload.type === "group") return [];
    const events: InternalEvent[] = [];
    const status: MessageStatus = payload.type;
    for (const raw of payload.ids) {
      const hit = this.store.messageById(id, toHex(raw));
      if (!hit) continue;
      if (hit.value.direction !== "out" || RANK[hit.value.status] >= RANK[status]) continue;
      const { failure: _gone, ...rest } = hit.value;
      this.store.putMessage(id, hit.seq, { ...rest, status });
      contact.awaiting = contact.awaiting.filter((a) => a.seq !== hit.seq);
      events.push({ type: "status", contact: contact.name, id: hit.value.id, status, failure: null });
    }
    return events;
  }

  /**
   * The contact's intro named a new inbox (on the same relay) or a deposit token: what I send from
   * now on goes there, with that token, and so does everything still waiting in the outbox for the
   * old address.
   */
  private moveOutbox(id: string, contact: ContactRecord, address: string, token: string | undefined): void {
    const old = contact.outbox.address;
    const { token: _old, ...rest } = contact.outbox;
    contact.outbox = { ...rest, address, ...(token ? { token } : {}) };
    for (const e of this.store.outbox()) {
      if (e.contact !== id || e.value.address !== old) continue;
      const { token: _was, ...entry } = e.value;
      this.store.putOutbox(e.seq, id, { ...entry, address, ...(token ? { token } : {}) });
    }
  }

  private receiveAccept(invitationKey: string, frame: DeliverFrame): InternalEvent[] {
    const inv = this.store.invitation(invitationKey)!;
    const book = new InvitationBook();
    book.add(PendingInvitation.deserialize(fromHex(inv.pending)));
    let accepted: ReturnType<InvitationBook["accept"]>;
    const started = performance.now();
    try {
      accepted = book.accept(this.identity, frame.ciphertext, { now: frame.receivedAt });
    } catch (e) {
      if (e instanceof ParleyError) {
        // Anyone who saw the code can deposit here: a forged handshake counts against the slice's
        // budget and is reported with the others, like a forged message.
        this.failedMs += performance.now() - started;
        this.countDropped("one of your invitations", e.code);
        return [];
      }
      throw e;
    }
    let payload: Payload | null = null;
    try {
      payload = decodePayload(accepted.plaintext);
    } catch {
      // The session still opens; a malformed first payload is just not shown.
    }
    const now = Date.now();
    const existing = this.store
      .contacts()
      .find((r) => samePublicIdentity(decodePublicIdentity(fromHex(r.value.identity)), accepted.identity));
    // The contact moves to the inbox made with the invitation once my intro reaches them; the
    // first-contact mailbox is read until then (invitations made before inboxKey keep it).
    const moving = inv.inboxKey !== undefined;
    const base = {
      identity: toHex(encodePublicIdentity(accepted.identity)),
      session: toHex(accepted.session.serialize()),
      inbox: {
        relay: inv.relay,
        key: inv.inboxKey ?? inv.mailboxKey,
        ...(inv.inboxKey && inv.inboxToken ? { token: inv.inboxToken } : {}),
      },
      outbox: { relay: accepted.relayUrl, address: toHex(accepted.mailbox) },
      firstContact: moving
        ? {
            relay: inv.relay,
            key: inv.mailboxKey,
            until: Math.max(inv.expiresAt * 1000, now + FIRST_CONTACT_MIN_MS),
          }
        : undefined,
      lastActivity: now,
    };
    accepted.session.wipe();
    let id: string;
    let contact: ContactRecord;
    const events: InternalEvent[] = [];
    if (existing) {
      contact = { ...existing.value, ...base, previous: this.retire(existing.value, now) };
      id = existing.key;
      events.push(byInvitation(id, "renewed"));
    } else {
      const fp = fingerprint(accepted.identity);
      contact = {
        ...base,
        name: this.uniqueName(`contact-${fp.replace(/ /g, "").slice(0, 8)}`),
        nameSource: "auto",
        verified: false,
        keyChanged: false,
        createdAt: now,
        unread: 0,
        awaiting: [],
      };
      id = this.store.putContact(null, contact);
    }
    this.store.removeInvitation(invitationKey);
    rememberAccept(contact, digestOf(frame.ciphertext));
    // The Accept's payload is the accepter's first message: its intro names the contact.
    contact.introExpected = true;
    if (payload) {
      const applied = this.apply(id, contact, payload);
      if (!existing) {
        events.push(byInvitation(id, "added"));
      }
      events.push(
        ...applied.filter((e) => !(e.type === "contact-ref" && e.event === "renamed" && !existing)),
      );
    } else if (!existing) {
      events.push(byInvitation(id, "added"));
    }
    delete contact.introExpected;
    if (!moving) delete contact.firstContact;
    // Tell the accepter who we are, and where to write from now on; this also ends its Accept
    // wrapping.
    const inbox = moving ? MailboxKey.deserialize(fromHex(inv.inboxKey!)).address : undefined;
    const token = moving && inv.inboxToken ? fromHex(inv.inboxToken) : undefined;
    const wire = this.encryptTo(contact, this.introPayload({ inbox, token }));
    this.store.putContact(id, contact);
    this.store.enqueue(id, this.outboxEntry("intro", contact.outbox, wire));
    return events;
  }

  /** Marks sent messages whose relay retention passed without a receipt as expired. */
  checkExpired(now = Date.now()): void {
    const events = this.store.tx(() => {
      const out: InternalEvent[] = [];
      for (const r of this.store.contacts()) {
        const due = r.value.awaiting.filter((a) => a.deadline <= now);
        if (due.length === 0) continue;
        for (const a of due) {
          const m = this.store.messageBySeq(r.key, a.seq);
          if (m && m.status === "stored") {
            const expired: MessageRecord = { ...m, status: "expired" };
            this.store.putMessage(r.key, a.seq, expired);
            out.push(this.statusEvent(r.value, expired));
          }
        }
        this.store.putContact(r.key, {
          ...r.value,
          awaiting: r.value.awaiting.filter((a) => a.deadline > now),
        });
      }
      return out;
    });
    for (const ev of events) this.emitEvent(ev);
  }

  /**
   * Forgets invitations that expired so long ago that no Accept for them can still be waiting,
   * and earlier conversations whose mailboxes can hold nothing more; their mailboxes are then
   * deleted on the relay (best effort: an abandoned mailbox holds nothing past the retention).
   */
  async prune(now = Date.now()): Promise<void> {
    const gone = this.store.tx(() => {
      const keys: { relay: string; key: string }[] = [];
      for (const r of this.store.invitations()) {
        if (r.value.expiresAt * 1000 + this.expiryDelayMs(r.value.relay) > now) continue;
        this.store.removeInvitation(r.key);
        keys.push({ relay: r.value.relay, key: r.value.mailboxKey });
        if (r.value.inboxKey) keys.push({ relay: r.value.relay, key: r.value.inboxKey });
      }
      for (const r of this.store.contacts()) {
        const previous = r.value.previous ?? [];
        const keep = previous.filter((p) => p.until > now);
        if (keep.length === previous.length) continue;
        for (const p of previous) if (p.until <= now) keys.push(p.inbox);
        this.store.putContact(r.key, { ...r.value, previous: keep });
      }
      return keys;
    });
    await this.deleteFirstContacts(now);
    await this.lockInboxes();
    if (gone.length > 0) this.inboxes = null;
    for (const { relay, key } of gone) {
      try {
        const conn = await this.connect(relay);
        await conn.deleteMailbox(MailboxKey.deserialize(fromHex(key)));
      } catch {
        // unreachable or already gone: nothing is waiting there any more either way
      }
    }
  }

  /** Publishes an event once its transaction committed; a contact's carries the contact as it is now. */
  private emitEvent(internal: InternalEvent): ClientEvent | null {
    let ev: ClientEvent;
    if (internal.type === "contact-ref") {
      const contact = this.store.contact(internal.id);
      if (!contact) return null;
      ev = {
        type: "contact",
        event: internal.event,
        ...(internal.previousName === undefined ? {} : { previousName: internal.previousName }),
        ...(internal.invitationAccepted ? { invitationAccepted: true } : {}),
        ...this.view(internal.id, contact),
      };
    } else {
      ev = internal;
    }
    this.eventCount += 1;
    this.emit("event", ev);
    return ev;
  }

  /**
   * One synchronisation: deliver the outbox, receive everything pending on every relay, send
   * receipts. Ends once deliveries have been quiet for `quietMs`; with `waitMs`, waits that long
   * for a first event when none is pending. Returns the relays that could not be reached.
   */
  async sync(options: { waitMs?: number; quietMs?: number } = {}): Promise<FlushReport> {
    const quiet = options.quietMs ?? 400;
    const start = Date.now();
    const before = this.eventCount;
    const first = await this.flush({ force: true });
    const listened = await this.listen();
    const unreachable = new Set([...first.unreachable, ...listened.unreachable]);
    const refused = new Set([...first.refused, ...listened.refused]);
    const deadline = start + (options.waitMs ?? 0);
    // However busy the mailboxes (a contact sending non-stop, a relay replaying), a sync ends.
    const cap = deadline + SYNC_CAP_MS;
    for (;;) {
      await this.processing;
      const now = Date.now();
      const settled = now - this.lastDelivery >= quiet;
      const gotSomething = this.eventCount > before;
      if ((settled && (gotSomething || now >= deadline)) || now >= cap) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await this.processing;
    const last = await this.flush({ force: true });
    for (const r of last.unreachable) unreachable.add(r);
    for (const r of last.refused) refused.add(r);
    this.checkExpired();
    await this.prune();
    // Outside live mode a sync is a visit: once done, nothing more is received (or acknowledged).
    if (!this.live) this.disconnect();
    return { unreachable: [...unreachable], refused: [...refused] };
  }
}

function keyChangedError(name: string): ClientError {
  return new ClientError(
    "KEY_CHANGED",
    `${name}'s identity key changed: nothing is sent until you compare safety numbers (parley verify ${JSON.stringify(name)}) and confirm with --confirm`,
  );
}

/** Events and warnings a transaction produced, published once it committed. */
interface Effects {
  readonly events: InternalEvent[];
  readonly warnings: string[];
}

/** How a failed deposit is handled. */
type DepositOutcome =
  /** The relay could not be reached: its link retries; nothing is recorded on the message. */
  | { kind: "unreachable"; reason: string }
  /** Refused for now (rate limit, busy, storage trouble, shutting down): retried, not shown. */
  | { kind: "transient" }
  /** Refused for as long as the relay says so (a full mailbox, its policy): retried, shown. */
  | { kind: "waiting"; failure: DeliveryFailure }
  /** Refused in a way that may be final (no such mailbox, unexpected): given up after the retention. */
  | { kind: "lasting"; failure: DeliveryFailure }
  /** It will never be taken (too large): given up now. */
  | { kind: "permanent"; failure: DeliveryFailure };

function depositOutcome(err: unknown, limit: number | null): DepositOutcome {
  if (err instanceof RelayUnreachableError) return { kind: "unreachable", reason: err.reason };
  if (err instanceof ClientError && err.code === "UNREACHABLE") {
    return { kind: "unreachable", reason: unreachableReason(err) };
  }
  if (err instanceof ClientError && err.code === "RELAY_REFUSED") {
    return { kind: "waiting", failure: { code: "relay-policy", detail: err.message } };
  }
  if (!(err instanceof RelayRequestError)) throw err;
  switch (err.code) {
    case "TOO_LARGE":
      return {
        kind: "permanent",
        failure: { code: "too-large", ...(limit ? { detail: String(limit) } : {}) },
      };
    case "UNKNOWN_MAILBOX":
      return { kind: "lasting", failure: { code: "mailbox-gone" } };
    case "QUOTA":
      return { kind: "waiting", failure: { code: "mailbox-full" } };
    case "RATE_LIMITED":
    case "INTERNAL":
    case "SHUTTING_DOWN":
      return { kind: "transient" };
    default:
      return { kind: "lasting", failure: { code: "refused", detail: err.code } };
  }
}

/** Why a connection could not be made, in words, from what connect() threw. */
function unreachableReason(e: unknown): string {
  if (e instanceof RelayUnreachableError) return e.reason;
  const cause = (e as { cause?: unknown }).cause;
  if (cause instanceof RelayUnreachableError) return cause.reason;
  // fetch() (the transparency statement) wraps the socket's error in its own cause.
  const inner = (cause as { cause?: unknown } | undefined)?.cause;
  if (inner) return networkProblem(inner);
  if ((cause as Error | undefined)?.name === "TimeoutError") return "no answer in time";
  return cause ? networkProblem(cause) : (e as Error).message;
}

const KIND_WORDS: Record<OutboxRecord["kind"], string> = {
  message: "a message",
  receipt: "a receipt",
  accept: "your acceptance of their invitation",
  intro: "your introduction",
};

const sameFailure = (a: DeliveryFailure | undefined, b: DeliveryFailure) =>
  a !== undefined && a.code === b.code && a.detail === b.detail;

/** A delivery failure in words, with the contact's name as it is now. */
function failureWords(name: string, f: DeliveryFailure): string {
  switch (f.code) {
    case "too-large":
      return `too large for ${name}'s relay${f.detail ? ` (it takes at most ${f.detail} bytes)` : ""}`;
    case "mailbox-gone":
      return `${name}'s mailbox no longer exists`;
    case "mailbox-full":
      return `${name}'s mailbox on the relay is full`;
    case "refused":
      return `${name}'s relay refused it${f.detail ? ` (${f.detail})` : ""}`;
    case "relay-policy":
      return f.detail ?? `this client will not use ${name}'s relay`;
  }
}

const isAccept = (wire: Uint8Array) => wire[0] === 0x01;

/** The digest an Accept-wrapped delivery is remembered by (ContactRecord.accepts). */
const digestOf = (wire: Uint8Array) => toHex(sha256(wire).subarray(0, 16));

/** Remembers an Accept-wrapped message as processed; the oldest are forgotten past the limit. */
function rememberAccept(contact: ContactRecord, digest: string): void {
  const accepts = (contact.accepts ?? []).filter((d) => d !== digest);
  accepts.push(digest);
  contact.accepts = accepts.slice(-MAX_REMEMBERED_ACCEPTS);
}
const MAX_REMEMBERED_ACCEPTS = 64;

/** A second Accept for a used invitation is worth naming on its own; null for anything else. */
function secondAccept(name: string, wire: Uint8Array, code: string): string | null {
  if (isAccept(wire) && code === "AUTH") {
    return `refused a second acceptance of the one-time invitation that opened your conversation with ${name}: someone else used the same code`;
  }
  return null;
}

/** One warning for a contact's undecryptable deliveries of one receive slice, counted by reason. */
function droppedWarning(name: string, codes: Map<string, number>): string {
  const total = [...codes.values()].reduce((a, b) => a + b, 0);
  const why =
    codes.size === 1 ? [...codes.keys()][0] : [...codes].map(([code, n]) => `${code} ${n}`).join(", ");
  return `dropped ${total} undecryptable ${total === 1 ? "message" : "messages"} for ${name} (${why})`;
}

/**
 * Mailbox addresses, by a digest of their key (never the key itself): deriving one is an Ed25519
 * public-key computation, which every delivery would otherwise repeat for each inbox it checks.
 */
const addresses = new Map<string, string>();
const ADDRESS_CACHE_LIMIT = 4096;

function addressOf(mailboxKey: string): string {
  const tag = toHex(sha256(new TextEncoder().encode(mailboxKey)));
  let address = addresses.get(tag);
  if (address === undefined) {
    const key = MailboxKey.deserialize(fromHex(mailboxKey));
    address = key.addressHex;
    key.wipe();
    if (addresses.size >= ADDRESS_CACHE_LIMIT) addresses.clear();
    addresses.set(tag, address);
  }
  return address;
}

/** Which of a contact's conversations reads the mailbox `address`: -1 the current, i an earlier, null none. */
function inboxSlot(contact: ContactRecord, address: string): number | null {
  if (addressOf(contact.inbox.key) === address) return -1;
  if (contact.firstContact && addressOf(contact.firstContact.key) === address) return FIRST_CONTACT;
  const i = (contact.previous ?? []).findIndex((p) => addressOf(p.inbox.key) === address);
  return i >= 0 ? i : null;
}
