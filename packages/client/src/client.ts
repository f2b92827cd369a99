// The client core, with no UI: identities, invitations, the encrypted store, the outbox and
// receipts. The scripting CLI and the terminal UI both drive it. Every change to a session, the
// history and the outbox happens in one store transaction, before anything leaves the machine.
//
// Client is the facade: it opens the store and the identity, and hands each call to the module of
// core/ whose job it is (core/assemble.ts wires them): contacts, messages, receipts, the outbox
// and its delivery, invitations and first contact, receiving, the relay pool and live mode, and
// maintenance. The modules share a small context (transactions, identity, settings, this emitter)
// and each owns its own store tables.
import { EventEmitter } from "node:events";
import { fromHex, Identity, toHex } from "@parley/protocol";
import { assemble, type Core } from "./core/assemble.js";
import { contactView } from "./core/contacts.js";
import type { Context } from "./core/context.js";
import { changed } from "./core/events.js";
import type { FileFetched } from "./core/file-download.js";
import type { FileSent } from "./core/file-upload.js";
import type { GroupFileSent } from "./core/group-files.js";
import type { GroupSentStatus } from "./core/group-send.js";
import { clearAddresses } from "./core/mailboxes.js";
import type {
  ClientEvent,
  ClientEvents,
  ContactView,
  ConversationEntry,
  FileView,
  FlushReport,
  GroupView,
  LiveOptions,
  MemberView,
  MessageView,
  Progress,
  RelayState,
  SafetyView,
} from "./core/types.js";
import { ClientError } from "./errors.js";
import type { Paths } from "./paths.js";
import type { RelayConnection } from "./relay-connection.js";
import type { Settings } from "./settings.js";
import { type ContactRecord, type MessageStatus, Store } from "./store.js";
import { nameProblem } from "./text.js";

export { backoffMs } from "./core/deposits.js";
export type { FileFetched } from "./core/file-download.js";
export { sanitizeFileName } from "./core/file-names.js";
export type { FileSent } from "./core/file-upload.js";
export type { GroupFileSent } from "./core/group-files.js";
export type { GroupSentStatus } from "./core/group-send.js";
export type {
  ClientEvent,
  ClientEvents,
  ContactChange,
  ContactView,
  ConversationEntry,
  FileState,
  FileView,
  FlushReport,
  GroupChange,
  GroupNote,
  GroupView,
  LiveOptions,
  MemberView,
  MessageFile,
  MessageView,
  Progress,
  RelayLinkState,
  RelayState,
  SafetyView,
} from "./core/types.js";

/** Longest a sync runs beyond its --wait, however busy its mailboxes are. */
const SYNC_CAP_MS = 120_000;

export class Client extends EventEmitter<ClientEvents> {
  private readonly core: Core;

  private constructor(
    readonly store: Store,
    readonly identity: Identity,
    readonly name: string,
    readonly settings: Settings,
  ) {
    super();
    const nameNow = () => this.name;
    const ctx: Context = {
      tx: (fn) => store.tx(fn),
      identity,
      // Read when used: the name announced is the client's as it is then.
      get name() {
        return nameNow();
      },
      settings,
      emitter: this,
    };
    this.core = assemble(ctx, store.tables);
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
    this.core.live.end();
    this.core.pool.disconnect();
    this.identity.wipe();
    this.store.close();
    clearAddresses();
  }

  // -------------------------------------------------------------------------------- contacts

  /** My contacts (not the sessions set up only for a group). */
  contacts(): ContactView[] {
    const { contacts, outbox } = this.core;
    return contacts
      .all()
      .filter((r) => !r.value.groupScoped)
      .map((r) => contactView(r.value, outbox.size(r.key)))
      .sort((a, b) => b.lastActivity - a.lastActivity || a.contact.localeCompare(b.contact));
  }

  /** Finds a contact by its exact name, else by a unique case-insensitive match. */
  findContact(name: string): { id: string; contact: ContactRecord } {
    return this.core.contacts.find(name);
  }

  /**
   * The conversation (with a contact, or a group: each author's messages in sequence order),
   * oldest first. Shown messages are marked read and read receipts queued.
   */
  history(name: string, limit = 50): MessageView[] {
    if (this.core.groups.lookup(name)) return this.core.groupHistory.history(name, limit);
    return this.core.messages.history(name, limit);
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
    if (this.core.groups.lookup(name)) return this.core.groupHistory.conversation(name, at, limit);
    return this.core.messages.conversation(name, at, limit);
  }

  /** Marks every shown message of a conversation read (queuing read receipts) and clears its unread count. */
  markRead(name: string): void {
    if (this.core.groups.lookup(name)) this.core.groupHistory.markRead(name);
    else this.core.messages.markRead(name);
  }

  /** Renames a contact locally. */
  rename(name: string, newName: string): string {
    return this.core.contacts.rename(name, newName);
  }

  /** Deletes a conversation's local history (the contact stays). */
  deleteHistory(name: string): void {
    this.core.messages.deleteHistory(name);
  }

  /** Deletes a contact, its history and its outbox; its mailboxes are deleted on the relay (best effort). */
  deleteContact(name: string): Promise<void> {
    return this.core.maintenance.deleteContact(name);
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
    const { mailboxes, outbox, inbox, live, pool } = this.core;
    return {
      outbox: outbox.size(),
      replaysDropped: inbox.replaysDropped,
      relays: [...mailboxes.relaysInUse()].sort().map((url) => ({
        ...live.relayState(url),
        connected: pool.isOpen(url),
        retentionSeconds: pool.retentionSeconds(url) ?? null,
      })),
    };
  }

  safety(name: string): SafetyView {
    return this.core.contacts.safety(name);
  }

  /**
   * Marks a contact verified; a key-change block is lifted and held messages may leave. With
   * `expected` (the 60 digits or the compact form the other person read out or showed as a QR
   * code), nothing is marked unless it matches the safety number of the key held now. In a group
   * I am an admin of, a member with the contact's old key is replaced by the new key (the changes
   * go with the next flush); returns those changes' events.
   */
  confirm(name: string, expected?: string): ClientEvent[] {
    return this.core.groupRekey.confirm(name, expected);
  }

  /** Compares a safety number the user has against this contact's, in constant time. */
  matchesSafety(name: string, candidate: string): boolean {
    return this.core.contacts.matchesSafety(name, candidate);
  }

  // -------------------------------------------------------------------------------- groups

  /** The groups I am or was a member of, most recently active first. */
  groups(): GroupView[] {
    return this.core.groups.list();
  }

  /** A group's members, in the order they joined, with whether I have a session with each. */
  groupMembers(name: string): MemberView[] {
    return this.core.groups.members(name);
  }

  /**
   * Creates a group of my contacts (`members`, by name), named `name` for everyone: the create
   * entry goes to each over our session. Resolves with the "created" event once it is delivered.
   */
  createGroup(name: string, members: readonly string[]): Promise<ClientEvent[]> {
    return this.core.groupChanges.create(name, members);
  }

  /** Adds a contact to a group (admins only); it gets the whole membership log. */
  addToGroup(group: string, contact: string): Promise<ClientEvent[]> {
    return this.core.groupChanges.add(group, contact);
  }

  /** Removes a member (admins only): nothing of the group is sent to it any more. */
  removeFromGroup(group: string, member: string): Promise<ClientEvent[]> {
    return this.core.groupChanges.remove(group, member);
  }

  /** Leaves a group: its history stays here; nothing more is sent or received. */
  leaveGroup(group: string): Promise<ClientEvent[]> {
    return this.core.groupChanges.leave(group);
  }

  /** Renames a group for every member (admins only). */
  renameGroup(group: string, newName: string): Promise<ClientEvent[]> {
    return this.core.groupChanges.rename(group, newName);
  }

  /**
   * Lists among my contacts a member I was introduced to for a group (its session was only the
   * group's until now); resolves with its "added" contact event.
   */
  makeContact(group: string, member: string): ClientEvent {
    const id = this.store.tx(() => this.core.groups.makeContact(group, member));
    return this.core.publisher.emit(changed(id, "added"))!;
  }

  /** Makes a member an admin (admins only). */
  promoteInGroup(group: string, member: string): Promise<ClientEvent[]> {
    return this.core.groupChanges.promote(group, member);
  }

  // ------------------------------------------------------------------------------- relays

  /** The open connection to a relay (vetted first), shared by everything this process does. */
  connect(url: string): Promise<RelayConnection> {
    return this.core.pool.connect(url);
  }

  /** Relays this process is connected to right now (for a status bar). */
  connectedRelays(): string[] {
    return this.core.pool.openRelays();
  }

  /** One relay's state as this process sees it now. */
  relayState(url: string): RelayState {
    return this.core.live.relayState(url);
  }

  // -------------------------------------------------------------------------- invitations

  invite(options: { relay?: string; ttlSeconds?: number } = {}): Promise<{
    code: string;
    expiresAt: number;
    relay: string;
  }> {
    return this.core.invitations.invite(options);
  }

  /**
   * Adds the inviter as a contact and deposits the handshake in its mailbox. With `name` of an
   * existing contact whose key differs, this is a key change: the contact is blocked (and the
   * handshake held) until confirmed. Throws UNREACHABLE once everything is saved but the
   * handshake could not be deposited yet.
   */
  async accept(code: string, options: { name?: string; relay?: string } = {}): Promise<ClientEvent> {
    // Never group-scoped here: the user's own accept always makes (or renews) a contact.
    return (await this.core.invitations.accept(code, options))!;
  }

  // ------------------------------------------------------------------------------- sending

  /**
   * Queues texts to a contact or a group (history and outbox in the same transaction as the
   * ratchet steps), then tries to deliver the outbox. Resolves with each message's status (for a
   * group, with how many members it is for and how many received it); throws UNREACHABLE when
   * they stay queued, KEY_CHANGED while a member's key is in doubt.
   */
  send(
    name: string,
    texts: string[],
  ): Promise<
    ({ contact: string; id: string; status: MessageStatus; failure: string | null } | GroupSentStatus)[]
  > {
    if (this.core.groups.lookup(name)) return this.core.groupSend.send(name, texts);
    return this.core.sending.send(name, texts);
  }

  /**
   * Sends a file to a contact or a group (PROTOCOL.md §14): its chunks, sealed, to a blob on the
   * contact's relay (the file is read a chunk at a time, never whole), then its manifest as a
   * message, with a text's outbox and receipts. To a group, one blob with a read token for each
   * other member, on the relay most of them are on, and one manifest each (GroupFileSent has the
   * group's counts). An interrupted upload of the same file to the same contact or group resumes
   * where the relay stopped. Throws UNREACHABLE when the relay cannot be reached (the upload
   * resumes on the next try) or when the manifest waits in the outbox.
   */
  sendFile(name: string, path: string, progress?: Progress): Promise<FileSent | GroupFileSent> {
    if (this.core.groups.lookup(name)) return this.core.groupFiles.sendFile(name, path, progress);
    return this.core.fileUpload.send(name, path, progress);
  }

  /** Withdraws a file I sent: the relay deletes it, and its recipients find it gone. */
  withdrawFile(id: string): Promise<void> {
    return this.core.fileUpload.withdraw(id);
  }

  /** Files sent and received, oldest first; with `name`, only those with that contact or in that group. */
  files(name?: string): FileView[] {
    return this.core.files.list(name);
  }

  /**
   * Downloads, decrypts and checks a file offered to me, then saves it under a name that replaces
   * nothing (`out`: a directory, or a file path; the current directory by default). A download
   * interrupted resumes from its partial file; one that fails its check leaves nothing behind
   * (FILE_FAILED), as does a file the relay no longer has ("expired on the relay").
   */
  fetchFile(id: string, out?: string, progress?: Progress): Promise<FileFetched> {
    return this.core.fileDownload.fetch(id, out, progress);
  }

  /**
   * Deposits every due outbox entry, in order per destination; entries of a contact whose key
   * changed are held. `force` ignores the retry back-off (a command the user just ran). Returns
   * the relays that could not be reached.
   */
  flush(options: { force?: boolean } = {}): Promise<FlushReport> {
    return this.core.delivery.flush(options);
  }

  /** Marks sent messages whose relay retention passed without a receipt as expired. */
  checkExpired(now = Date.now()): void {
    this.core.delivery.checkExpired(now);
  }

  // ----------------------------------------------------------------------------- receiving

  /**
   * Connects to every relay holding one of my mailboxes and subscribes to them; in live mode, to
   * every other relay in use too (a contact's, the default one), so that each has a state.
   */
  listen(): Promise<FlushReport> {
    return this.core.live.listen();
  }

  /**
   * Stays online until `stop()`: subscribes to every mailbox, keeps every relay in use connected
   * (a relay that is down is probed about every second and reconnected once it answers; the
   * personal relay is restarted if its process died), retries the outbox as entries fall due,
   * and marks expired messages. Events arrive as they happen; each relay's state as a "relay"
   * event and in status(). This is what the terminal UI runs.
   */
  start(options: LiveOptions = {}): Promise<void> {
    return this.core.live.start(options);
  }

  /** Leaves live mode and closes every relay connection. */
  async stop(): Promise<void> {
    if (!this.core.live.end()) return;
    await this.core.inbox.processing;
    this.core.pool.disconnect();
  }

  /**
   * Forgets invitations that expired so long ago that no Accept for them can still be waiting,
   * and earlier conversations whose mailboxes can hold nothing more; their mailboxes are then
   * deleted on the relay (best effort: an abandoned mailbox holds nothing past the retention).
   */
  prune(now = Date.now()): Promise<void> {
    return this.core.maintenance.prune(now);
  }

  /**
   * One synchronisation: deliver the outbox, receive everything pending on every relay, send
   * receipts. Ends once deliveries have been quiet for `quietMs`; with `waitMs`, waits that long
   * for a first event when none is pending. Returns the relays that could not be reached.
   */
  async sync(options: { waitMs?: number; quietMs?: number } = {}): Promise<FlushReport> {
    const { inbox, publisher } = this.core;
    const quiet = options.quietMs ?? 400;
    const start = Date.now();
    const before = publisher.count;
    const first = await this.flush({ force: true });
    const listened = await this.listen();
    const unreachable = new Set([...first.unreachable, ...listened.unreachable]);
    const refused = new Set([...first.refused, ...listened.refused]);
    const deadline = start + (options.waitMs ?? 0);
    // However busy the mailboxes (a contact sending non-stop, a relay replaying), a sync ends.
    const cap = deadline + SYNC_CAP_MS;
    for (;;) {
      await inbox.processing;
      const now = Date.now();
      const settled = now - inbox.lastDelivery >= quiet;
      const gotSomething = publisher.count > before;
      if ((settled && (gotSomething || now >= deadline)) || now >= cap) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await inbox.processing;
    // Invitations owed to group members, and their codes to accept (they talk to relays).
    await this.core.introductions.run();
    const last = await this.flush({ force: true });
    for (const r of last.unreachable) unreachable.add(r);
    for (const r of last.refused) refused.add(r);
    this.checkExpired();
    await this.prune();
    // Outside live mode a sync is a visit: once done, nothing more is received (or acknowledged).
    if (!this.core.live.on) this.core.pool.disconnect();
    return { unreachable: [...unreachable], refused: [...refused] };
  }
}
