// The client core, with no UI: identities, invitations, the encrypted store, the outbox and
// receipts. The scripting CLI and the terminal UI both drive it. Every change to a session, the
// history and the outbox happens in one store transaction, before anything leaves the machine.
import { EventEmitter } from "node:events";
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
  /** Cache of indexInboxes(), dropped whenever a mailbox changes hands. */
  private inboxes: Map<string, { kind: "contact" | "invitation"; id: string }> | null = null;
  private readonly events: ClientEvent[] = [];

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
    if (this.live) {
      this.live.stopped = true;
      for (const t of this.live.timers) clearTimeout(t);
      this.live = null;
    }
    this.disconnect();
    this.identity.wipe();
    this.store.close();
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
      for (const row of rows) {
        if (row.value.direction === "in" && row.value.status === "received") {
          this.store.putMessage(id, row.seq, { ...row.value, status: "read" });
          this.store.addReceipt(id, { kind: "read", id: row.value.id });
        }
      }
      if (contact.unread !== 0) this.store.putContact(id, { ...contact, unread: 0 });
      return rows.map((r) => messageView(contact.name, r.value));
    });
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

  /** Marks a contact verified; a key-change block is lifted and held messages may leave. */
  confirm(name: string): void {
    this.store.tx(() => {
      const { id, contact } = this.findContact(name);
      this.store.putContact(id, { ...contact, verified: true, keyChanged: false });
    });
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
      const res = await fetch(transparencyUrl(url), { signal: AbortSignal.timeout(5000) });
      if (!res.ok)
        throw new ClientError("RELAY_REFUSED", `relay ${url}: /transparency answered HTTP ${res.status}`);
      statement = await res.json();
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

  private retentionOf(url: string): number {
    return this.store.relay(url)?.retentionSeconds ?? this.settings.maxRetentionSeconds;
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
    // Vet the inviter's relay now when it is reachable; the deposit will vet it anyway.
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
      const target = byName ?? byIdentity;
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
          lastActivity: now,
          awaiting: [],
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
    const { unreachable } = await this.flush({ force: true });
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
    if (this.flushing) return this.flushing.then(() => this.flush(options));
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
    const held = new Set(
      this.store
        .contacts()
        .filter((r) => r.value.keyChanged)
        .map((r) => r.key),
    );
    const now = Date.now();
    for (const entry of this.store.outbox()) {
      const e = entry.value;
      const dest = `${e.relay} ${e.address}`;
      if (held.has(entry.contact) || blocked.has(dest)) continue;
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
    for (const r of refused) this.emit("warning", r);
    return { unreachable: [...unreachable], refused };
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
    for (const r of this.store.contacts()) add(r.value.inbox.relay, r.value.inbox.key);
    for (const r of this.store.invitations()) add(r.value.relay, r.value.mailboxKey);
    return boxes;
  }

  /** Connects to every relay holding one of my mailboxes and subscribes; returns unreachable relays. */
  async listen(): Promise<string[]> {
    const unreachable: string[] = [];
    await Promise.all(
      [...this.mailboxes()].map(async ([relay, keys]) => {
        if (!(await this.listenOn(relay, keys))) unreachable.push(relay);
      }),
    );
    this.lastDelivery = Date.now();
    return unreachable;
  }

  /** Subscribes to my mailboxes on one relay; false when the relay cannot be reached. */
  private async listenOn(relay: string, keys: MailboxKey[]): Promise<boolean> {
    try {
      const conn = await this.connect(relay);
      for (const key of keys) {
        try {
          await this.subscribe(conn, key);
        } catch (e) {
          if (e instanceof RelayRequestError) {
            this.emit("warning", `relay ${relay}: cannot subscribe to a mailbox (${e.code})`);
          } else throw e;
        }
      }
      return true;
    } catch (e) {
      if (e instanceof ClientError && e.code === "RELAY_REFUSED") {
        this.emit("warning", e.message);
        return true;
      }
      if (e instanceof ClientError || e instanceof RelayUnreachableError) return false;
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
    for (const relay of await this.listen()) this.reconnectLater(relay);
    const tick = setInterval(() => {
      void this.flush().catch((e: unknown) => this.emit("warning", `outbox: ${(e as Error).message}`));
    }, 1000);
    const expiry = setInterval(() => this.checkExpired(), 60_000);
    live.timers.add(tick);
    live.timers.add(expiry);
  }

  /** Leaves live mode and closes every relay connection. */
  async stop(): Promise<void> {
    const live = this.live;
    if (!live) return;
    live.stopped = true;
    for (const t of live.timers) clearTimeout(t);
    this.live = null;
    await this.processing;
    this.disconnect();
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
        if (await this.listenOn(relay, keys)) {
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
    this.processing = this.processing.then(async () => {
      let events: InternalEvent[] | null;
      try {
        events = this.receive(frame);
      } catch (e) {
        // The store failed (locked, disk full): do not ack, so the relay delivers it again.
        this.emit("warning", `could not store a received message: ${(e as Error).message}`);
        return;
      }
      if (events === null) return;
      for (const ev of events) this.emitEvent(ev);
      try {
        await conn.ack(frame.address, frame.messageId);
      } catch {
        // Already gone (acked by another process, or expired), or the connection broke: a
        // redelivery is refused by the ratchet as a duplicate and acknowledged then.
      }
      this.lastDelivery = Date.now();
    });
  }

  /** Handles one delivered envelope in one transaction; returns what the user should see. */
  private receive(frame: DeliverFrame): InternalEvent[] | null {
    const address = toHex(frame.address);
    return this.store.tx(() => {
      let owner = this.inboxes?.get(address);
      if (!owner) {
        this.inboxes = this.indexInboxes();
        owner = this.inboxes.get(address);
      }
      if (owner?.kind === "contact") {
        const contact = this.store.contact(owner.id);
        if (contact) return this.receiveFromContact(owner.id, contact, frame);
      } else if (owner?.kind === "invitation" && this.store.invitation(owner.id)) {
        this.inboxes = null;
        return this.receiveAccept(owner.id, frame);
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
      index.set(MailboxKey.deserialize(fromHex(r.value.inbox.key)).addressHex, {
        kind: "contact",
        id: r.key,
      });
    }
    for (const r of this.store.invitations()) {
      index.set(MailboxKey.deserialize(fromHex(r.value.mailboxKey)).addressHex, {
        kind: "invitation",
        id: r.key,
      });
    }
    return index;
  }

  private receiveFromContact(id: string, contact: ContactRecord, frame: DeliverFrame): InternalEvent[] {
    const session = Session.deserialize(fromHex(contact.session));
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
    contact.session = toHex(session.serialize());
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
    const events = this.apply(id, contact, payload);
    this.store.putContact(id, contact);
    return events;
  }

  /** Applies a decrypted payload to a contact (mutated; the caller saves it). */
  private apply(id: string, contact: ContactRecord, payload: Payload): InternalEvent[] {
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
      this.store.addReceipt(id, { kind: "delivered", id: rec.id });
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
      contact = { ...existing.value, ...base, awaiting: [] };
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

  /** Forgets invitations that expired so long ago that no Accept for them can still be waiting. */
  async pruneInvitations(now = Date.now()): Promise<void> {
    for (const r of this.store.invitations()) {
      if (r.value.expiresAt * 1000 + this.retentionOf(r.value.relay) * 1000 > now) continue;
      try {
        const conn = await this.connect(r.value.relay);
        await conn.deleteMailbox(MailboxKey.deserialize(fromHex(r.value.mailboxKey)));
      } catch {
        // The relay forgets an unused mailbox's messages at retention anyway; try again next time.
        continue;
      }
      this.store.tx(() => this.store.removeInvitation(r.key));
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
    this.events.push(ev);
    this.emit("event", ev);
    return ev;
  }

  /**
   * One synchronisation: deliver the outbox, receive everything pending on every relay, send
   * receipts. Ends once deliveries have been quiet for `quietMs`; with `waitMs`, waits that long
   * for a first event when none is pending. Returns the relays that could not be reached.
   */
  async sync(options: { waitMs?: number; quietMs?: number } = {}): Promise<{ unreachable: string[] }> {
    const quiet = options.quietMs ?? 400;
    const start = Date.now();
    const before = this.events.length;
    const unreachable = new Set((await this.flush({ force: true })).unreachable);
    for (const r of await this.listen()) unreachable.add(r);
    const deadline = start + (options.waitMs ?? 0);
    for (;;) {
      await this.processing;
      const now = Date.now();
      const settled = now - this.lastDelivery >= quiet;
      const gotSomething = this.events.length > before;
      if (settled && (gotSomething || now >= deadline)) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await this.processing;
    for (const r of (await this.flush({ force: true })).unreachable) unreachable.add(r);
    this.checkExpired();
    await this.pruneInvitations();
    // Outside live mode a sync is a visit: once done, nothing more is received (or acknowledged).
    if (!this.live) this.disconnect();
    return { unreachable: [...unreachable] };
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
