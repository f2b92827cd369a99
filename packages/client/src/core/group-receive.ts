// Receiving group items (PROTOCOL.md §13.3, §13.4): judge() (groups/incoming.ts) decides what an
// item that arrived over a contact's session means; this module acts on it inside the receiving
// transaction. A message is stored in the group's conversation with its author and place in the
// author's sequence (a repeat is dropped) and a delivered receipt goes to its author (once I have a
// session with it: GroupRecord.owedReceipts); a file's manifest (PROTOCOL.md §14.3) is a message
// too, with a record to fetch the file by (files.ts); an entry joins the group's log (group-changes.ts);
// an item for another member is passed on, unchanged, over my session with it. Items from someone who is no longer a member are dropped; an item that
// may make sense once more entries arrive (for a group I do not hold yet, from someone the log has
// not named yet), or to pass on to a member I have no session with yet, is kept in the group_items
// table, which this module owns, and judged again then (release(): once a session came up).
import {
  decodePayload,
  encodePayload,
  fromHex,
  type GroupPayload,
  type GroupState,
  toHex,
} from "@parley/protocol";
import { judge, type Verdict } from "../groups/incoming.js";
import { emptySeqs, noteSeq } from "../groups/sequence.js";
import type { WaitingItemsTable } from "../store/groups.js";
import type { ContactRecord, GroupRecord, MessageRecord, Row } from "../store/records.js";
import { type Context, warn } from "./context.js";
import type { InternalEvent } from "./events.js";
import type { Files } from "./files.js";
import type { GroupChanges } from "./group-changes.js";
import type { GroupHistory } from "./group-history.js";
import { memberKeyOf, type Peers } from "./group-peers.js";
import type { GroupSend } from "./group-send.js";
import type { Groups } from "./groups.js";
import type { Messages } from "./messages.js";
import type { Receipts } from "./receipts.js";

/** What an introduction asks (group-introductions.ts): accept `code`, from `from`, in group `key`. */
export interface IntroductionSink {
  introduced(key: string, from: string, code: string): void;
}

/** Receipts a group keeps owing to authors I have no session with yet: the newest so many. */
export const MAX_OWED_RECEIPTS = 1024;

export class GroupReceive {
  /** The members I had a session with when release() last judged the waiting items. */
  private reached: string | null = null;

  constructor(
    private readonly ctx: Context,
    private readonly waiting: WaitingItemsTable,
    private readonly groups: Groups,
    private readonly changes: Pick<GroupChanges, "absorb">,
    private readonly send: Pick<GroupSend, "item">,
    private readonly history: Pick<GroupHistory, "namer" | "view">,
    private readonly messages: Pick<Messages, "add">,
    private readonly receipts: Pick<Receipts, "queue">,
    private readonly introductions: IntroductionSink,
    private readonly files: Pick<Files, "has" | "offered">,
  ) {}

  /**
   * A group item arrived over the session with contact `id` (`contact` is held by the caller,
   * who saves it). Inside the receiving transaction; returns what the user should see.
   */
  receive(id: string, contact: ContactRecord, p: GroupPayload): InternalEvent[] {
    const peers = this.groups.peers({ id, contact });
    const events = this.act(peers, memberKeyOf(contact), contact.name, p);
    peers.save();
    return events;
  }

  /** Judges an item that came from `from` (whose contact is called `fromName`) and acts on it. */
  private act(peers: Peers, from: string, fromName: string, p: GroupPayload): InternalEvent[] {
    const groupId = toHex(p.groupId);
    const row = this.groups.byGroupId(groupId);
    const state = row ? this.groups.state(row.value) : null;
    const verdict = judge(p, { state, me: this.groups.me, from, hasSession: (k) => peers.has(k) });
    switch (verdict.kind) {
      case "drop":
        // Someone removed who does not know it yet is expected; a bad signature or entry is not.
        if (/signature|malformed/.test(verdict.reason))
          warn(this.ctx, `dropped a group item from ${fromName}: ${verdict.reason}`);
        return [];
      case "wait":
        this.waiting.add(groupId, { from, payload: toHex(encodePayload(p)), receivedAt: Date.now() });
        return [];
      case "entry":
        return [...this.changes.absorb(peers, groupId, [verdict.entry]), ...this.retry(peers, groupId)];
      case "message":
        return this.message(peers, row!, p, verdict);
      case "pass-on":
        this.send.item(peers, row!.key, verdict.to, p);
        return [];
      case "introduction":
        this.introductions.introduced(row!.key, verdict.from, verdict.code);
        return [];
    }
  }

  /**
   * Judges again the items kept for every group I hold once a session came up since the last
   * time (an item to pass on waits for my session with its member); returns the events.
   */
  release(): InternalEvent[] {
    return this.ctx.tx(() => {
      if (this.waiting.size() === 0) return [];
      const peers = this.groups.peers();
      const reach = peers.members().sort().join();
      if (reach === this.reached) return [];
      this.reached = reach;
      const out = this.groups.all().flatMap((r) => this.retry(peers, r.value.groupId));
      peers.save();
      return out;
    });
  }

  /** Judges again the items kept for a group whose log just grew; acts on those it now decides. */
  private retry(peers: Peers, groupId: string): InternalEvent[] {
    const out: InternalEvent[] = [];
    for (const item of this.waiting.of(groupId)) {
      const p = decodePayload(fromHex(item.value.payload)) as GroupPayload;
      const row = this.groups.byGroupId(groupId);
      const state = row ? this.groups.state(row.value) : null;
      const v = judge(p, {
        state,
        me: this.groups.me,
        from: item.value.from,
        hasSession: (k) => peers.has(k),
      });
      if (v.kind === "wait") continue;
      this.waiting.remove(item.seq);
      out.push(...this.act(peers, item.value.from, "a member", p));
    }
    return out;
  }

  private message(
    peers: Peers,
    row: Row<GroupRecord>,
    p: GroupPayload,
    v: Extract<Verdict, { kind: "message" }>,
  ): InternalEvent[] {
    const g = row.value;
    if (v.author === this.groups.me) return []; // my own, passed back: never shown twice
    const id = toHex(p.id);
    // A file's id names one record: a file item reusing the id of a file I hold is not let to
    // replace it (nor is its seq taken).
    if (v.file && this.files.has(id)) return [];
    const seqs = g.seqs[v.author] ?? emptySeqs();
    if (!noteSeq(seqs, v.seq)) return []; // a repeat (or the author's second message under one seq)
    const body = p.body as Extract<GroupPayload["body"], { signature: Uint8Array }>;
    const now = Date.now();
    const m: MessageRecord = {
      id,
      direction: "in",
      text: v.text,
      sentAt: p.sentAt,
      receivedAt: now,
      status: "received",
      ...(v.file ? { file: id } : {}),
      group: {
        author: v.author,
        seq: v.seq,
        signature: toHex(body.signature),
        ...(v.forwarded ? { forwarded: true } : {}),
      },
    };
    if (this.messages.add(row.key, m) === null) return [];
    if (v.file) this.files.offered(row.key, id, v.file, v.author);
    if (!g.seqs[v.author] && joinedBefore(this.groups.state(g), v.author, this.groups.me))
      g.floors = { ...g.floors, [v.author]: v.seq - 1 };
    g.seqs[v.author] = seqs;
    g.unread += 1;
    g.lastActivity = now;
    // Receipts stay pairwise (§13.3): without a session with the author, they wait for one.
    const author = peers.get(v.author);
    if (author) this.receipts.queue(author.id, "delivered", m.id);
    else g.owedReceipts = [...(g.owedReceipts ?? []), m.id].slice(-MAX_OWED_RECEIPTS);
    this.groups.put(row.key, g);
    const name = this.history.namer(this.groups.state(g), peers);
    return [{ type: "message", ...this.history.view(g, name, m) }];
  }
}

/**
 * Whether `author` was a member before I was added (by an add, not in the create): what it wrote
 * before then never reaches me.
 */
function joinedBefore(state: GroupState | null, author: string, me: string): boolean {
  const a = state?.members.get(author);
  const mine = state?.members.get(me);
  const create = state?.applied[0];
  if (!a || !mine || create?.op.op !== "create") return false;
  const founding =
    toHex(create.author.signingKey) === me ||
    create.op.members.some((m) => toHex(m.identity.signingKey) === me);
  return !founding && a.joined < mine.joined;
}
