// The client core, with no UI: identities, invitations, the encrypted store, the outbox and
// receipts. The scripting CLI and the terminal UI both drive it. Every change to a session, the
// history and the outbox happens in one store transaction, before anything leaves the machine.
import { EventEmitter } from "node:events";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  acceptInvitation,
  createInvitation,
  type DeliverFrame,
  decodeInvitation,
  decodePayload,
  decodePublicIdentity,
  encodePayload,
  encodePublicIdentity,
  fingerprint,
  fromHex,
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
import type { Paths } from "./paths.js";
import {
  RelayConnection,
  RelayRequestError,
  RelayUnreachableError,
  transparencyUrl,
} from "./relay-connection.js";
import type { Settings } from "./settings.js";
import {
  type ContactRecord,
  type MessageRecord,
  type MessageStatus,
  type OutboxRecord,
  Store,
} from "./store.js";
import { cleanName, humanDuration, nameProblem } from "./text.js";

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
}

/** One message of a conversation window, with its place in the conversation. */
export interface ConversationEntry {
  readonly seq: number;
  readonly message: MessageView;
}

export type ClientEvent =
  | ({ readonly type: "message" } & MessageView)
  | { readonly type: "status"; readonly contact: string; readonly id: string; readonly status: MessageStatus }
  | ({
      readonly type: "contact";
      readonly event: ContactChange;
      readonly previousName?: string;
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
    };

const changed = (id: string, event: ContactChange, previousName?: string): InternalEvent =>
  previousName === undefined
    ? { type: "contact-ref", id, event }
    : { type: "contact-ref", id, event, previousName };

export interface RelayState {
  readonly url: string;
  readonly state: "connected" | "disconnected";
  /** When disconnected in live mode: the delay before the next attempt. */
  readonly retryInMs?: number;
}

interface Live {
  readonly timers: Set<NodeJS.Timeout>;
  /** Failed reconnection attempts per relay, for the back-off. */
  readonly attempts: Map<string, number>;
  stopped: boolean;
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

/**
 * A stored message with no receipt is called expired once the relay's retention and one sweep
 * interval (both from its transparency statement) have passed, plus this margin for clocks.
 */
const EXPIRY_SLACK_MS = 5_000;
/** Sweep interval assumed for a relay whose statement does not give one. */
const DEFAULT_SWEEP_SECONDS = 60;
const MAX_RECEIPT_IDS = 256;
/** Deliveries stored per transaction. */
const RECEIVE_BATCH = 64;
/** A transparency statement is a few kilobytes; anything far larger is not one. */
const MAX_STATEMENT_CHARS = 1 << 20;
/** Earlier conversations of one contact whose mailboxes are still read. */
const MAX_PREVIOUS = 3;
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

  /** A name no other contact has: the name itself, else "name 2", "name 3", … */
  private uniqueName(wanted: string, except?: string): string {
    const taken = new Set(
      this.store
        .contacts()
        .filter((r) => r.key !== except)
        .map((r) => r.value.name.toLowerCase()),
    );
    if (!taken.has(wanted.toLowerCase())) return wanted;
    for (let i = 2; ; i++) {
      const candidate = `${[...wanted].slice(0, 60).join("")} ${i}`;
      if (!taken.has(candidate.toLowerCase())) return candidate;
    }
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
      return rows.map((r) => messageView(contact.name, r.value));
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
    return rows.map((r) => ({ seq: r.seq, message: messageView(contact.name, r.value) }));
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
      const taken = this.store
        .contacts()
        .some((r) => r.key !== id && r.value.name.toLowerCase() === newName.toLowerCase());
      if (taken)
        throw new ClientError("USAGE", `another contact is already called ${JSON.stringify(newName)}`);
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

  /** What a status bar shows: the outbox size and, per relay in use, its retention. */
  status(): {
    outbox: number;
    relays: { url: string; connected: boolean; retentionSeconds: number | null }[];
  } {
    const urls = new Set<string>();
    for (const r of this.store.contacts()) {
      urls.add(r.value.inbox.relay);
      urls.add(r.value.outbox.relay);
    }
    for (const r of this.store.invitations()) urls.add(r.value.relay);
    if (this.settings.relay) urls.add(this.settings.relay);
    return {
      outbox: this.store.outboxSize(),
      relays: [...urls].sort().map((url) => ({
        url,
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
      conn.on("close", () => {
        if (this.connections.get(url) === opening) this.connections.delete(url);
        this.liveRelays.delete(url);
        if (this.live && !this.live.stopped) this.reconnectLater(url);
      });
      this.liveRelays.add(url);
      this.emit("relay", { url, state: "connected" });
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
    await this.request(relay, () => conn.createMailbox(key));
    const { code, pending } = createInvitation(this.identity, {
      relayUrl: relay,
      mailbox: key.address,
      ttlSeconds: ttl,
    });
    this.store.tx(() =>
      this.store.addInvitation({
        pending: toHex(pending.serialize()),
        mailboxKey: toHex(key.serialize()),
        relay,
        expiresAt: pending.expiresAt,
      }),
    );
    if (this.live) await this.subscribe(conn, key).catch(() => {});
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
      const intro = this.introPayload();
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
          inbox: { relay, key: toHex(key.serialize()) },
          outbox: { relay: inv.relayUrl, address: toHex(inv.mailbox) },
          previous: this.retire(old, now),
          lastActivity: now,
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
          inbox: { relay, key: toHex(key.serialize()) },
          outbox: { relay: inv.relayUrl, address: toHex(inv.mailbox) },
          createdAt: now,
          lastActivity: now,
          unread: 0,
          awaiting: [],
        });
        ev = changed(contactId, "added");
      }
      session.wipe();
      this.store.enqueue(contactId, this.outboxEntry("accept", inv.relayUrl, toHex(inv.mailbox), message));
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

  private introPayload(): Payload {
    return { type: "text", id: newMessageId(), sentAt: Date.now(), text: encodeIntro({ name: this.name }) };
  }

  private outboxEntry(
    kind: OutboxRecord["kind"],
    relay: string,
    address: string,
    ciphertext: Uint8Array,
    messageSeq?: number,
  ): OutboxRecord {
    const now = Date.now();
    return {
      kind,
      relay,
      address,
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
    kept.push({ inbox: old.inbox, session: old.session, until: now + this.expiryDelayMs(old.inbox.relay) });
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
  ): Promise<{ contact: string; id: string; status: MessageStatus }[]> {
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
        this.store.enqueue(
          id,
          this.outboxEntry("message", contact.outbox.relay, contact.outbox.address, wire, seq),
        );
        out.push({ seq, id: rec.id });
      }
      contact.lastActivity = now;
      this.store.putContact(id, contact);
      return { contactId: id, name: contact.name, out };
    });
    const { unreachable, refused } = await this.flush({ force: true });
    const statuses = queued.out.map((m) => ({
      contact: queued.name,
      id: m.id,
      status: this.store.messageBySeq(queued.contactId, m.seq)?.status ?? "queued",
    }));
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
    if (statuses.some((s) => s.status === "failed")) {
      throw new ClientError("RELAY_REFUSED", `${refused.join("; ")}; the message was not sent`);
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
    const blocked = new Set<string>();
    const now = Date.now();
    for (const seq of this.store.outboxSeqs()) {
      // Read the entry and its contact just before depositing: another process may have sent
      // it meanwhile, or marked the contact's key changed (which holds everything for it).
      const entry = this.heldOrCurrent(seq);
      if (!entry) continue;
      const e = entry.value;
      const dest = `${e.relay} ${e.address}`;
      if (blocked.has(dest)) continue;
      if (unreachable.has(e.relay) || (!force && e.nextAttemptAt > now)) {
        blocked.add(dest);
        continue;
      }
      try {
        const conn = await this.connect(e.relay);
        await conn.deposit(fromHex(e.address), fromHex(e.clientMessageId), unb64(e.ciphertext));
      } catch (err) {
        blocked.add(dest);
        // Only a ciphertext the relay will never take is given up; a missing mailbox comes back
        // when its owner's client next connects (it re-creates it), a full one empties.
        const permanent = err instanceof RelayRequestError && err.code === "TOO_LARGE";
        if (
          err instanceof RelayUnreachableError ||
          (err instanceof ClientError && err.code === "UNREACHABLE")
        ) {
          unreachable.add(e.relay);
        } else if (err instanceof ClientError && err.code === "RELAY_REFUSED") {
          refused.push(err.message);
        } else if (err instanceof RelayRequestError) {
          refused.push(`relay ${e.relay} refused a ${e.kind}: ${err.code} (${err.message})`);
        } else {
          throw err;
        }
        this.store.tx(() => {
          const current = this.store.outboxEntry(entry.seq);
          if (!current) return;
          if (permanent) {
            this.failEntry(entry.seq, entry.contact, current.value, (err as RelayRequestError).code);
          } else {
            this.store.putOutbox(entry.seq, entry.contact, {
              ...current.value,
              attempts: current.value.attempts + 1,
              nextAttemptAt: Date.now() + backoffMs(current.value.attempts),
              lastError: (err as Error).message,
            });
          }
        });
        continue;
      }
      this.delivered(entry.seq, entry.contact, e);
    }
    return { unreachable: [...unreachable], refused };
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
      if (e.messageSeq === undefined) return null;
      const contact = this.store.contact(contactId);
      const m = this.store.messageBySeq(contactId, e.messageSeq);
      if (!contact || !m || m.status !== "queued") return null;
      this.store.putMessage(contactId, e.messageSeq, { ...m, status: "stored" });
      contact.awaiting.push({
        seq: e.messageSeq,
        deadline: Date.now() + this.expiryDelayMs(e.relay),
      });
      this.store.putContact(contactId, contact);
      return { type: "status", contact: contact.name, id: m.id, status: "stored" };
    });
    if (ev) this.emitEvent(ev);
  }

  private failEntry(seq: number, contactId: string, e: OutboxRecord, why: string): void {
    this.store.removeOutbox(seq);
    const contact = this.store.contact(contactId);
    if (e.messageSeq !== undefined && contact) {
      const m = this.store.messageBySeq(contactId, e.messageSeq);
      if (m) {
        this.store.putMessage(contactId, e.messageSeq, { ...m, status: "failed" });
        this.emitEvent({ type: "status", contact: contact.name, id: m.id, status: "failed" });
      }
    }
    this.emit(
      "warning",
      `a ${e.kind} to ${contact?.name ?? "a deleted contact"} was refused by its relay (${why}) and dropped`,
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
              this.store.enqueue(
                contactId,
                this.outboxEntry("receipt", contact.outbox.relay, contact.outbox.address, wire),
              );
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
      add(r.value.inbox.relay, r.value.inbox.key);
      for (const p of r.value.previous ?? []) add(p.inbox.relay, p.inbox.key);
    }
    for (const r of this.store.invitations()) add(r.value.relay, r.value.mailboxKey);
    return boxes;
  }

  /** Connects to every relay holding one of my mailboxes and subscribes to them. */
  async listen(): Promise<FlushReport> {
    const unreachable: string[] = [];
    const refused: string[] = [];
    await Promise.all(
      [...this.mailboxes()].map(async ([relay, keys]) => {
        const result = await this.listenOn(relay, keys);
        if (result === "unreachable") unreachable.push(relay);
        else if (result !== "ok") refused.push(result.refused);
      }),
    );
    this.lastDelivery = Date.now();
    return { unreachable, refused };
  }

  /** Subscribes to my mailboxes on one relay. */
  private async listenOn(
    relay: string,
    keys: MailboxKey[],
  ): Promise<"ok" | "unreachable" | { refused: string }> {
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
      if (e instanceof ClientError || e instanceof RelayUnreachableError) return "unreachable";
      throw e;
    }
  }

  // ----------------------------------------------------------------------------- live mode

  /**
   * Stays online until `stop()`: subscribes to every mailbox, reconnects to a relay that drops
   * (backing off from 1 s to 5 min), retries the outbox as entries fall due, and marks expired
   * messages. Events arrive as they happen. This is what the terminal UI runs.
   */
  async start(): Promise<void> {
    if (this.live) return;
    const live: Live = { timers: new Set(), attempts: new Map(), stopped: false };
    this.live = live;
    await this.flush({ force: true });
    const listened = await this.listen();
    for (const r of listened.refused) this.emit("warning", r);
    for (const relay of listened.unreachable) this.reconnectLater(relay);
    const tick = setInterval(() => {
      if (this.flushing) return;
      void this.flush().then(
        (report) => {
          for (const r of report.refused) this.emit("warning", r);
        },
        (e: unknown) => this.emit("warning", `outbox: ${(e as Error).message}`),
      );
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

  private reconnectLater(relay: string): void {
    const live = this.live;
    if (!live || live.stopped) return;
    const attempts = (live.attempts.get(relay) ?? 0) + 1;
    live.attempts.set(relay, attempts);
    this.emit("relay", { url: relay, state: "disconnected", retryInMs: backoffMs(attempts - 1) });
    const timer = setTimeout(
      async () => {
        live.timers.delete(timer);
        if (live.stopped) return;
        const keys = this.mailboxes().get(relay) ?? [];
        const result = await this.listenOn(relay, keys);
        if (result !== "unreachable") {
          if (result !== "ok") this.emit("warning", result.refused);
          live.attempts.delete(relay);
          void this.flush({ force: true }).catch(() => {});
        } else {
          this.reconnectLater(relay);
        }
      },
      backoffMs(attempts - 1),
    );
    live.timers.add(timer);
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
      const batch = this.inbound.splice(0, RECEIVE_BATCH);
      let results: (InternalEvent[] | null)[];
      try {
        results = this.store.tx(() =>
          batch.map(({ frame }) => {
            try {
              return this.receive(frame);
            } catch (e) {
              // This delivery's savepoint was rolled back; the others stand. Not acked: it comes again.
              this.emit("warning", `could not store a received message: ${(e as Error).message}`);
              return null;
            }
          }),
        );
      } catch (e) {
        // The store failed (locked, disk full): nothing is acked, so the relay delivers it all again.
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
      for (const inbox of [r.value.inbox, ...(r.value.previous ?? []).map((p) => p.inbox)]) {
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
    try {
      plaintext = session.decrypt(frame.ciphertext);
    } catch (e) {
      session.wipe();
      if (e instanceof ParleyError) {
        // A duplicate (already stored before a crash or by another process) is expected; anything
        // else is a forgery or corruption, which the relay could have sent. Either way nothing changes.
        if (e.code !== "DUPLICATE")
          this.emit("warning", undecryptable(contact.name, frame.ciphertext, e.code));
        return [];
      }
      throw e;
    }
    if (earlier) earlier.session = toHex(session.serialize());
    else contact.session = toHex(session.serialize());
    session.wipe();
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

  /** Applies a decrypted payload to a contact (mutated; the caller saves it). */
  private apply(id: string, contact: ContactRecord, payload: Payload, sendReceipts = true): InternalEvent[] {
    const now = Date.now();
    if (payload.type === "text") {
      if (isControlText(payload.text)) {
        const intro = decodeIntro(payload.text);
        const name = intro ? cleanName(intro.name) : "";
        if (name && contact.nameSource !== "user" && name !== contact.name) {
          const previousName = contact.name;
          contact.name = this.uniqueName(name, id);
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
      return [{ type: "message", ...messageView(contact.name, rec) }];
    }
    const events: InternalEvent[] = [];
    const status: MessageStatus = payload.type;
    for (const raw of payload.ids) {
      const hit = this.store.messageById(id, toHex(raw));
      if (!hit) continue;
      if (hit.value.direction !== "out" || RANK[hit.value.status] >= RANK[status]) continue;
      this.store.putMessage(id, hit.seq, { ...hit.value, status });
      contact.awaiting = contact.awaiting.filter((a) => a.seq !== hit.seq);
      events.push({ type: "status", contact: contact.name, id: hit.value.id, status });
    }
    return events;
  }

  private receiveAccept(invitationKey: string, frame: DeliverFrame): InternalEvent[] {
    const inv = this.store.invitation(invitationKey)!;
    const book = new InvitationBook();
    book.add(PendingInvitation.deserialize(fromHex(inv.pending)));
    let accepted: ReturnType<InvitationBook["accept"]>;
    try {
      accepted = book.accept(this.identity, frame.ciphertext, { now: frame.receivedAt });
    } catch (e) {
      if (e instanceof ParleyError) {
        this.emit("warning", `dropped an invalid handshake for one of your invitations (${e.code})`);
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
    const base = {
      identity: toHex(encodePublicIdentity(accepted.identity)),
      session: toHex(accepted.session.serialize()),
      inbox: { relay: inv.relay, key: inv.mailboxKey },
      outbox: { relay: accepted.relayUrl, address: toHex(accepted.mailbox) },
      lastActivity: now,
    };
    accepted.session.wipe();
    let id: string;
    let contact: ContactRecord;
    const events: InternalEvent[] = [];
    if (existing) {
      contact = { ...existing.value, ...base, previous: this.retire(existing.value, now) };
      id = existing.key;
      events.push(changed(id, "renewed"));
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
    if (payload) {
      const applied = this.apply(id, contact, payload);
      if (!existing) {
        events.push(changed(id, "added"));
      }
      events.push(
        ...applied.filter((e) => !(e.type === "contact-ref" && e.event === "renamed" && !existing)),
      );
    } else if (!existing) {
      events.push(changed(id, "added"));
    }
    // Tell the accepter who we are; this also ends its Accept wrapping.
    const wire = this.encryptTo(contact, this.introPayload());
    this.store.putContact(id, contact);
    this.store.enqueue(id, this.outboxEntry("intro", contact.outbox.relay, contact.outbox.address, wire));
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
            this.store.putMessage(r.key, a.seq, { ...m, status: "expired" });
            out.push({ type: "status", contact: r.value.name, id: m.id, status: "expired" });
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

function messageView(contact: string, m: MessageRecord): MessageView {
  return {
    contact,
    id: m.id,
    direction: m.direction,
    text: m.text,
    sentAt: m.sentAt,
    receivedAt: m.receivedAt,
    status: m.status,
  };
}

/** Why a delivery was dropped, in words: a second Accept for a used invitation is worth naming. */
function undecryptable(name: string, wire: Uint8Array, code: string): string {
  if (wire[0] === 0x01 && code === "AUTH") {
    return `refused a second acceptance of the one-time invitation that opened your conversation with ${name}: someone else used the same code`;
  }
  return `dropped an undecryptable message for ${name} (${code})`;
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
  const i = (contact.previous ?? []).findIndex((p) => addressOf(p.inbox.key) === address);
  return i >= 0 ? i : null;
}
