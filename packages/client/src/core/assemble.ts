// Builds the client core from its modules: each is given the context, the store table it owns
// and the narrow part of the others it uses. Construction follows the dependencies; the relay
// pool and live mode report upward (a delivery, a connection up or down) through callbacks bound
// to modules made after them.
import type { Tables } from "../store.js";
import { Contacts, contactView } from "./contacts.js";
import type { Context } from "./context.js";
import { Delivery } from "./delivery.js";
import { DepositTokens } from "./deposit-tokens.js";
import { Publisher } from "./events.js";
import { FileDownload } from "./file-download.js";
import { FileUpload } from "./file-upload.js";
import { Files } from "./files.js";
import { FirstContact } from "./first-contact.js";
import { GroupChanges } from "./group-changes.js";
import { GroupExpiry } from "./group-expiry.js";
import { GroupFiles } from "./group-files.js";
import { GroupHistory } from "./group-history.js";
import { GroupIntroductions } from "./group-introductions.js";
import { GroupReceive } from "./group-receive.js";
import { GroupRekey } from "./group-rekey.js";
import { GroupSend } from "./group-send.js";
import { Groups } from "./groups.js";
import { Inbox } from "./inbox.js";
import { Invitations } from "./invitations.js";
import { Live } from "./live.js";
import { Mailboxes } from "./mailboxes.js";
import { Maintenance } from "./maintenance.js";
import { Messages } from "./messages.js";
import { Outbox } from "./outbox.js";
import { Payloads } from "./payloads.js";
import { Receipts } from "./receipts.js";
import { RelayPool } from "./relays.js";
import { Sending } from "./sending.js";

export interface Core {
  readonly publisher: Publisher;
  readonly contacts: Contacts;
  readonly messages: Messages;
  readonly receipts: Receipts;
  readonly outbox: Outbox;
  readonly delivery: Delivery;
  readonly sending: Sending;
  readonly pool: RelayPool;
  readonly live: Live;
  readonly mailboxes: Mailboxes;
  readonly invitations: Invitations;
  readonly firstContact: FirstContact;
  readonly inbox: Inbox;
  readonly maintenance: Maintenance;
  readonly tokens: DepositTokens;
  readonly groups: Groups;
  readonly groupSend: GroupSend;
  readonly groupChanges: GroupChanges;
  readonly groupHistory: GroupHistory;
  readonly introductions: GroupIntroductions;
  readonly files: Files;
  readonly fileUpload: FileUpload;
  readonly fileDownload: FileDownload;
  readonly groupFiles: GroupFiles;
  readonly groupRekey: GroupRekey;
}

export function assemble(ctx: Context, tables: Tables): Core {
  // Names are unique across contacts and groups.
  const contacts = new Contacts(ctx, tables.contacts, () => groups.names());
  const groups: Groups = new Groups(ctx, tables.groups, contacts);
  const outbox = new Outbox(tables.outbox);
  // A session set up for a group is not a contact: nothing about it is published as one.
  const publisher = new Publisher(ctx, (id) => {
    const c = contacts.get(id);
    return c && !c.groupScoped ? contactView(c, outbox.size(id)) : null;
  });
  const pool: RelayPool = new RelayPool(ctx, tables.relays, {
    deliver: (conn, frame) => inbox.onDeliver(conn, frame),
    up: (url) => live.up(url),
    down: (url, reason) => live.down(url, reason),
    lockedToken: (key): string | undefined => tokens.lockedToken(key),
  });
  const tokens: DepositTokens = new DepositTokens(ctx, contacts, pool);
  const receipts = new Receipts(ctx, tables.receipts, contacts);
  const messages = new Messages(
    ctx,
    tables.messages,
    contacts,
    receipts,
    (url) => pool.retentionSeconds(url),
    (id) => files.summary(id),
  );
  const files: Files = new Files(ctx, tables.files, contacts, messages, receipts, {
    keyOf: (name) => groups.lookup(name)?.key ?? null,
    party: (key, author) => groupHistory.party(key, author),
  });
  const mailboxes = new Mailboxes({
    contacts: () => contacts.all(),
    invitations: () => invitations.all(),
    defaultRelay: () => ctx.settings.relay,
  });
  const live: Live = new Live(ctx, pool, {
    mailboxes: () => mailboxes.byRelay(),
    relaysInUse: () => mailboxes.relaysInUse(),
    flush: (options) => delivery.flush(options),
    flushing: () => delivery.busy,
    maintain: () => {
      delivery.checkExpired();
      void maintenance.prune().catch(() => {});
    },
    listened: () => {
      inbox.lastDelivery = Date.now();
    },
  });
  const delivery: Delivery = new Delivery(ctx, outbox, contacts, messages, receipts, pool, live, publisher, {
    release: () => {
      groupSend.release();
      for (const e of groupReceive.release()) publisher.emit(e);
    },
    stored: (conversation, row, member) => groupSend.stored(conversation, row, member),
    expire: (now) => groupExpiry.expire(now),
  });
  const sending = new Sending(ctx, contacts, messages, outbox, delivery);
  const fileUpload = new FileUpload(ctx, files, contacts, messages, outbox, delivery, (url) =>
    pool.connect(url),
  );
  const fileDownload = new FileDownload(ctx, files, (url) => pool.connect(url));
  const invitations: Invitations = new Invitations(
    ctx,
    tables.invitations,
    contacts,
    outbox,
    pool,
    delivery,
    live,
    publisher,
  );
  const groupSend: GroupSend = new GroupSend(ctx, groups, messages, outbox, delivery, receipts, files);
  const groupFiles = new GroupFiles(ctx, groups, files, fileUpload, groupSend, messages);
  const introductions = new GroupIntroductions(ctx, groups, invitations, groupSend);
  const groupChanges = new GroupChanges(
    ctx,
    groups,
    contacts,
    groupSend,
    delivery,
    publisher,
    introductions,
    messages,
  );
  const groupRekey = new GroupRekey(ctx, groups, contacts, groupChanges, publisher);
  const groupHistory: GroupHistory = new GroupHistory(ctx, groups, messages, receipts, (id) =>
    files.summary(id),
  );
  const groupExpiry = new GroupExpiry(ctx, groups, tables.groupItems, messages);
  const groupReceive = new GroupReceive(
    ctx,
    tables.groupItems,
    groups,
    groupChanges,
    groupSend,
    groupHistory,
    messages,
    receipts,
    introductions,
    files,
  );
  const payloads = new Payloads(
    contacts,
    messages,
    receipts,
    outbox,
    tokens,
    {
      receive: (id, contact, payload) => groupReceive.receive(id, contact, payload),
      acknowledge: (contact, id, status) => groupHistory.acknowledge(contact, id, status),
    },
    files,
  );
  const firstContact = new FirstContact(ctx, invitations, contacts, payloads, outbox, pool, mailboxes);
  const inbox: Inbox = new Inbox(
    ctx,
    contacts,
    invitations,
    firstContact,
    payloads,
    mailboxes,
    live,
    publisher,
    tokens,
    introductions,
  );
  const maintenance: Maintenance = new Maintenance(
    ctx,
    contacts,
    messages,
    outbox,
    receipts,
    invitations,
    firstContact,
    mailboxes,
    pool,
    tokens,
    files,
    groups,
  );
  return {
    publisher,
    contacts,
    messages,
    receipts,
    outbox,
    delivery,
    sending,
    pool,
    live,
    mailboxes,
    invitations,
    firstContact,
    inbox,
    maintenance,
    tokens,
    groups,
    groupSend,
    groupChanges,
    groupHistory,
    introductions,
    files,
    fileUpload,
    fileDownload,
    groupFiles,
    groupRekey,
  };
}
