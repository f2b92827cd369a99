// What a decrypted payload does to a conversation: a text is added to the history (and a
// delivered receipt queued), an intro names the contact and may move my outbox to the inbox and
// deposit token it names, a receipt moves my messages' statuses forward (in our conversation or in
// a group), a group item goes to the groups (group-receive.ts), and a file's manifest to the
// files (files.ts).
import { fingerprint, type Payload, toHex } from "@parley/protocol";
import { decodeIntro, isControlText } from "../intro.js";
import type { ContactRecord, MessageRecord } from "../store/records.js";
import { cleanName } from "../text.js";
import { type Contacts, identityOf } from "./contacts.js";
import type { DepositTokens } from "./deposit-tokens.js";
import { changed, type InternalEvent } from "./events.js";
import type { Files } from "./files.js";
import type { GroupHistory } from "./group-history.js";
import type { GroupReceive } from "./group-receive.js";
import type { Messages } from "./messages.js";
import type { Outbox } from "./outbox.js";
import type { Receipts } from "./receipts.js";

export class Payloads {
  constructor(
    private readonly contacts: Pick<Contacts, "uniqueName">,
    private readonly messages: Messages,
    private readonly receipts: Pick<Receipts, "queue">,
    private readonly outbox: Pick<Outbox, "retarget">,
    private readonly tokens: Pick<DepositTokens, "due">,
    /** Group items and receipts for group messages (bound once the groups are built). */
    private readonly groups: {
      receive: GroupReceive["receive"];
      acknowledge: GroupHistory["acknowledge"];
    },
    private readonly files: Pick<Files, "receive">,
  ) {}

  /**
   * Applies a decrypted payload to a contact (mutated; the caller saves it), inside the caller's
   * transaction. `current`: it came in the contact's current conversation (an earlier one's
   * messages are shown but not acknowledged).
   */
  apply(id: string, contact: ContactRecord, payload: Payload, current = true): InternalEvent[] {
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
          this.tokens.due = true;
        }
        const name = intro ? cleanName(intro.name) : "";
        if (name && contact.nameSource !== "user" && name !== contact.name) {
          const previousName = contact.name;
          contact.name = this.contacts.uniqueName(name, id, fingerprint(identityOf(contact)));
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
      if (this.messages.add(id, rec) === null) return []; // shown once, whatever the relay repeats
      contact.unread += 1;
      contact.lastActivity = now;
      if (sendReceipts) this.receipts.queue(id, "delivered", rec.id);
      const events: InternalEvent[] = [];
      // A member I know through a group writes to me directly: now a contact of mine.
      if (contact.groupScoped) {
        delete contact.groupScoped;
        events.push(changed(id, "added"));
      }
      events.push({ type: "message", ...this.messages.view(contact, rec) });
      return events;
    }
    if (payload.type === "group") return this.groups.receive(id, contact, payload);
    if (payload.type === "file") return this.files.receive(id, contact, payload, sendReceipts);
    const events: InternalEvent[] = [];
    const status = payload.type;
    for (const raw of payload.ids) {
      const hit = this.messages.acknowledge(id, toHex(raw), status);
      if (!hit) {
        // Not a message of ours with this contact: perhaps mine in a group they are in.
        const ev = this.groups.acknowledge(contact, toHex(raw), status);
        if (ev) events.push(ev);
        continue;
      }
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
    this.outbox.retarget(id, old, { address, token });
  }
}
