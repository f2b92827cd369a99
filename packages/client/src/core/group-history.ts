// A group's conversation: read in windows, each author's messages in sequence order, marked read
// (read receipts go to each author over my session with it: receipts stay pairwise); and the
// receipts members send for my messages, counted per member ("delivered to 2 of 3").
import type { GroupState, PublicIdentity } from "@parley/protocol";
import type { ContactRecord, GroupRecord, MessageRecord } from "../store/records.js";
import type { Context } from "./context.js";
import type { InternalEvent } from "./events.js";
import { identities } from "./group-events.js";
import { memberKeyOf, type Peers, short } from "./group-peers.js";
import { groupMessageView, groupStatusEvent, inAuthorOrder, missingBefore } from "./group-views.js";
import type { Groups } from "./groups.js";
import { advances, type Messages, unreadRows } from "./messages.js";
import type { Receipts } from "./receipts.js";
import type { ConversationEntry, MessageFile, MessageView } from "./types.js";

export class GroupHistory {
  constructor(
    private readonly ctx: Context,
    private readonly groups: Groups,
    private readonly messages: Pick<Messages, "rows" | "update" | "byId">,
    private readonly receipts: Pick<Receipts, "queue">,
    /** The file of a file message, by its id. */
    private readonly fileOf: (id: string) => MessageFile | null = () => null,
  ) {}

  /** Names authors: mine is my name, a member's its contact's, else one from its fingerprint. */
  namer(state: GroupState | null, peers: Peers): (author: string) => string {
    const ids: Map<string, PublicIdentity> = identities(state);
    return (author) => {
      if (author === this.groups.me) return this.ctx.name;
      const id = ids.get(author);
      return id ? peers.name(id) : `member-${author.slice(0, 8)}`;
    };
  }

  /**
   * The group `key`'s name and how `author` (undefined: me) is named there, or null when `key` is
   * not a group's (how the files list names a group's files).
   */
  party(key: string, author: string | undefined): { group: string; contact: string } | null {
    const g = this.groups.get(key);
    if (!g) return null;
    const contact =
      author === undefined ? this.ctx.name : this.namer(this.groups.state(g), this.groups.peers())(author);
    return { group: g.name, contact };
  }

  /** A group message as shown, with the gap before it in its author's sequence. */
  view(g: GroupRecord, name: (author: string) => string, m: MessageRecord): MessageView {
    if (m.note) {
      const { id, direction, text, sentAt, receivedAt, status, note } = m;
      return { contact: "", group: g.name, id, direction, text, sentAt, receivedAt, status, note };
    }
    const file = m.file ? this.fileOf(m.file) : null;
    const v = { ...groupMessageView(g, m, name(m.group!.author)), ...(file ? { file } : {}) };
    if (m.direction === "out") return v;
    const author = m.group!.author;
    const missing = missingBefore(g.seqs[author], m.group!.seq, g.floors?.[author]);
    return missing > 0 ? { ...v, missing } : v;
  }

  /** The conversation, oldest first; shown messages are marked read and read receipts queued. */
  history(name: string, limit = 50): MessageView[] {
    return this.ctx.tx(() => {
      const { key, group: g, state } = this.groups.find(name);
      const peers = this.groups.peers();
      const rows = inAuthorOrder(this.messages.rows(key, {}, limit));
      let shown = 0;
      for (const row of rows) shown += this.read(key, row, peers) ? 1 : 0;
      if (shown > 0) this.groups.put(key, { ...g, unread: Math.max(0, g.unread - shown) });
      const named = this.namer(state, peers);
      return rows.map((r) => this.view(g, named, r.value));
    });
  }

  /** A window of the conversation, oldest first, without marking anything read. */
  conversation(
    name: string,
    at: { readonly before?: number } | { readonly from: number },
    limit: number,
  ): ConversationEntry[] {
    const { key, group: g, state } = this.groups.find(name);
    const named = this.namer(state, this.groups.peers());
    return inAuthorOrder(this.messages.rows(key, at, limit)).map((r) => ({
      seq: r.seq,
      message: this.view(g, named, r.value),
    }));
  }

  /** Marks every shown message of the group read (queuing read receipts) and clears its unread count. */
  markRead(name: string): void {
    this.ctx.tx(() => {
      const { key, group: g } = this.groups.find(name);
      if (g.unread === 0) return;
      const peers = this.groups.peers();
      const table = {
        before: (c: string, before: number | undefined, limit: number) =>
          this.messages.rows(c, { before }, limit),
      };
      for (const row of [...unreadRows(table, key, g.unread)]) this.read(key, row, peers);
      this.groups.put(key, { ...g, unread: 0 });
    });
  }

  /**
   * Marks one received message read, with a read receipt to its author if I have a session with
   * it (else the receipt owed for it goes as read once I have one: GroupSend.release).
   */
  private read(key: string, row: { seq: number; value: MessageRecord }, peers: Peers): boolean {
    const m = row.value;
    if (m.direction !== "in" || m.status !== "received" || !m.group) return false;
    this.messages.update(key, row.seq, { ...m, status: "read" });
    const author = peers.get(m.group.author);
    if (author) this.receipts.queue(author.id, "read", m.id);
    return true;
  }

  /**
   * A receipt from `contact` names `id` (hex), not a message of our own conversation: if it is my
   * message in a group, that member is counted as delivered (or read); the message's status moves
   * once every member it was for is. Its status event, or null. Inside a transaction.
   */
  acknowledge(contact: ContactRecord, id: string, status: "delivered" | "read"): InternalEvent | null {
    const member = short(memberKeyOf(contact));
    for (const r of this.groups.all()) {
      const hit = this.messages.byId(r.key, id);
      if (!hit) continue;
      const m = hit.value;
      const f = m.group;
      if (m.direction !== "out" || !f?.to?.includes(member)) return null;
      const delivered = new Set(f.delivered ?? []);
      const read = new Set(f.read ?? []);
      const before = delivered.size + read.size;
      delivered.add(member);
      if (status === "read") read.add(member);
      if (delivered.size + read.size === before) return null;
      f.delivered = [...delivered];
      f.read = [...read];
      const all = f.to.length;
      const reached = read.size >= all ? "read" : delivered.size >= all ? "delivered" : null;
      if (reached && advances(m.status, reached)) {
        m.status = reached;
        delete m.failure;
      }
      this.messages.update(r.key, hit.seq, m);
      return groupStatusEvent(this.ctx.name, r.value, m);
    }
    return null;
  }
}
