// Sending to a group (PROTOCOL.md §13.3, §13.4): every item is encrypted once per member over the
// pairwise session with that member and queued in the outbox, in the transaction that made it. A
// text (or a file's manifest, §14.3, each member's with its own read token) goes directly where I
// have a session, else as a forward item to the member who introduced us, else it waits
// (GroupRecord.held) until one of the two is up; entries for a member I cannot
// reach wait too (GroupRecord.unsynced), and then the whole log goes. Each copy's deposit and each
// member's receipts make the message's "delivered to N of M"; the receipts I owe for messages
// that reached me only forwarded go once my own session with their author is up.
import {
  fromHex,
  type GroupBody,
  type GroupEntry,
  type GroupPayload,
  type GroupState,
  groupTextSignedBytes,
  MAX_GROUP_TEXT_BYTES,
  newMessageId,
  toHex,
} from "@parley/protocol";
import { ClientError } from "../errors.js";
import { routes } from "../groups/routing.js";
import type { GroupRecord, MessageRecord, MessageStatus } from "../store/records.js";
import type { Context } from "./context.js";
import type { Delivery, GroupCopies } from "./delivery.js";
import type { InternalEvent } from "./events.js";
import { type Files, groupManifest } from "./files.js";
import { type Peers, short } from "./group-peers.js";
import { groupStatusEvent, outgoingFailure } from "./group-views.js";
import type { Groups } from "./groups.js";
import type { Messages } from "./messages.js";
import type { Outbox } from "./outbox.js";
import type { Receipts } from "./receipts.js";
import { textProblem } from "./sending.js";

/** A group payload: `body`, in group `groupId` (hex), with a message id and time. */
export function groupItem(
  groupId: string,
  body: GroupBody,
  id = newMessageId(),
  sentAt = Date.now(),
): GroupPayload {
  return { type: "group", id, sentAt, groupId: fromHex(groupId), body };
}

/** Why `text` cannot be sent to a group, or null. */
export function groupTextProblem(text: string): string | null {
  const problem = textProblem(text);
  if (problem) return problem;
  if (Buffer.byteLength(text, "utf8") > MAX_GROUP_TEXT_BYTES)
    return `a group message is at most ${MAX_GROUP_TEXT_BYTES} bytes of UTF-8`;
  return null;
}

/** The whole log of a group, in chain order (then what is not on the chain): what a new member gets. */
export function wholeLog(groups: Pick<Groups, "log">, g: GroupRecord, state: GroupState): GroupEntry[] {
  const onChain = new Set(state.applied.map((e) => toHex(e.hash)));
  return [
    ...state.applied,
    ...groups
      .log(g)
      .all()
      .filter((e) => !onChain.has(toHex(e.hash))),
  ];
}

export const notMember = (group: string) =>
  new ClientError("NOT_ALLOWED", `you are no longer a member of ${group}: nothing can be sent to it`);

export interface GroupSentStatus {
  contact: string;
  group: string;
  id: string;
  status: MessageStatus;
  failure: string | null;
  recipients: number;
  delivered: number;
  read: number;
}

export class GroupSend implements Pick<GroupCopies, "release" | "stored"> {
  constructor(
    private readonly ctx: Context,
    private readonly groups: Groups,
    private readonly messages: Pick<Messages, "add" | "bySeq" | "byId" | "update">,
    private readonly outbox: Pick<Outbox, "enqueue">,
    private readonly delivery: Pick<Delivery, "flush">,
    private readonly receipts: Pick<Receipts, "queue">,
    private readonly files: Pick<Files, "get">,
  ) {}

  // --------------------------------------------------------- items (inside a transaction)

  /**
   * Queues `payload` for the member `via` over my session with it, as the copy for `member` (the
   * same, unless it is a forward), and `row` the text it carries, if any. False without a session.
   */
  item(peers: Peers, key: string, via: string, payload: GroupPayload, row?: number, member = via): boolean {
    const enc = peers.encrypt(via, payload);
    if (!enc) return false;
    this.outbox.enqueue(enc.peer.id, "group", enc.peer.contact.outbox, enc.wire, row, {
      conversation: key,
      member,
    });
    return true;
  }

  /** Sends entries to members; a member I have no session with gets the whole log once I do. */
  entries(peers: Peers, key: string, g: GroupRecord, members: Iterable<string>, entries: GroupEntry[]): void {
    for (const member of members) {
      if (member === this.groups.me) continue;
      if (!peers.has(member)) {
        if (!g.unsynced?.includes(member)) g.unsynced = [...(g.unsynced ?? []), member];
        continue;
      }
      for (const e of entries)
        this.item(peers, key, member, groupItem(g.groupId, { kind: "entry", entry: e.bytes }));
    }
  }

  /**
   * Queues my message (history row `row`, record `m`: a text, or a file's manifest) for `members`:
   * directly, or as a forward item through the member who introduced us; those I cannot reach yet
   * are held. A file goes only to the members it has a read token for. Rewrites `m`.
   */
  text(
    peers: Peers,
    key: string,
    g: GroupRecord,
    state: GroupState,
    row: number,
    m: MessageRecord,
    members: readonly string[],
  ): void {
    const f = m.group!;
    const payload = (body: GroupBody) => groupItem(g.groupId, body, fromHex(m.id), m.sentAt);
    const common = { seq: f.seq, signature: fromHex(f.signature) };
    const file = m.file === undefined ? null : this.files.get(m.file);
    /** The item for `to` sent directly, and as passed on by another member; null: nothing for `to`. */
    const bodies = (to: string): [GroupBody, GroupBody] | null => {
      const forward = { author: fromHex(f.author), to: fromHex(to) };
      if (m.file === undefined)
        return [
          { kind: "text", ...common, text: m.text },
          { kind: "forward", ...forward, ...common, text: m.text },
        ];
      const manifest = file && groupManifest(file, to);
      if (!manifest) return null;
      return [
        { kind: "file", ...common, file: manifest },
        { kind: "forward-file", ...forward, ...common, file: manifest },
      ];
    };
    for (const r of routes(state, this.groups.me, (k) => peers.has(k))) {
      if (!members.includes(r.to)) continue;
      const items = bodies(r.to);
      if (!items) continue;
      let queued = false;
      if (r.via === null) queued = this.item(peers, key, r.to, payload(items[0]), row);
      else if (r.via !== undefined) queued = this.item(peers, key, r.via, payload(items[1]), row, r.to);
      if (queued) f.queued = [...new Set([...(f.queued ?? []), short(r.to)])];
      else if (!g.held?.some((h) => h.member === r.to && h.row === row))
        g.held = [...(g.held ?? []), { member: r.to, row }];
    }
    this.messages.update(key, row, m);
  }

  // ------------------------------------------------------------------ GroupCopies (Delivery)

  /** Queues what waited for a member I can now reach (a session came up): see GroupCopies. */
  release(): void {
    this.ctx.tx(() => {
      let peers: Peers | null = null;
      for (const r of this.groups.all()) {
        const g = r.value;
        if (!g.held?.length && !g.unsynced?.length && !g.owedReceipts?.length) continue;
        const state = this.groups.state(g);
        if (!state) continue;
        peers ??= this.groups.peers();
        const reach = peers;
        const unsynced = (g.unsynced ?? []).filter((m) => state.members.has(m));
        const ready = unsynced.filter((m) => reach.has(m));
        g.unsynced = unsynced.filter((m) => !reach.has(m));
        if (ready.length > 0) this.entries(reach, r.key, g, ready, wholeLog(this.groups, g, state));
        g.owedReceipts = this.owedReceipts(reach, r.key, g, state);
        const held = (g.held ?? []).filter((h) => state.members.has(h.member));
        g.held = [];
        for (const h of held) {
          const m = this.messages.bySeq(r.key, h.row);
          if (m?.group && state.members.has(this.groups.me))
            this.text(reach, r.key, g, state, h.row, m, [h.member]);
        }
        this.groups.put(r.key, g);
      }
      peers?.save();
    });
  }

  /**
   * Queues the receipts owed for messages that reached me only forwarded, to each author I now
   * have a session with: read if I have read it, else delivered. Returns those still owed.
   */
  private owedReceipts(peers: Peers, key: string, g: GroupRecord, state: GroupState): string[] {
    const still: string[] = [];
    for (const id of g.owedReceipts ?? []) {
      const m = this.messages.byId(key, id)?.value;
      const author = m?.group?.author;
      if (!m || author === undefined || !state.members.has(author)) continue;
      const peer = peers.get(author);
      if (!peer) still.push(id);
      else this.receipts.queue(peer.id, m.status === "read" ? "read" : "delivered", id);
    }
    return still;
  }

  /** A relay stored one member's copy of my group message: see GroupCopies. */
  stored(conversation: string, row: number, member: string): InternalEvent | null {
    const m = this.messages.bySeq(conversation, row);
    const g = this.groups.get(conversation);
    if (!m?.group || m.direction !== "out" || !g) return null;
    const f = m.group;
    f.stored = [...new Set([...(f.stored ?? []), short(member)])];
    const before = m.status;
    if (m.status === "queued" && (f.queued ?? []).every((k) => f.stored!.includes(k))) {
      m.status = "stored";
      delete m.failure;
    }
    this.messages.update(conversation, row, m);
    return m.status === before ? null : groupStatusEvent(this.ctx.name, g, m);
  }

  // --------------------------------------------------------------------------- sending

  /** Sends texts to a group; see Client.send(). */
  async send(name: string, texts: string[]): Promise<GroupSentStatus[]> {
    for (const t of texts) {
      const problem = groupTextProblem(t);
      if (problem) throw new ClientError("USAGE", problem);
    }
    const queued = this.ctx.tx(() => {
      const { key, group: g, state } = this.groups.find(name);
      const me = this.groups.me;
      if (!state?.members.has(me)) throw notMember(g.name);
      const peers = this.groups.peers();
      checkKeys(peers, state, me, g.name);
      const others = [...state.members.keys()].filter((k) => k !== me);
      const now = Date.now();
      const rows: number[] = [];
      for (const text of texts) {
        g.mySeq += 1;
        const id = newMessageId();
        const signed = { groupId: fromHex(g.groupId), id, sentAt: now, seq: g.mySeq, text };
        const m: MessageRecord = {
          id: toHex(id),
          direction: "out",
          text,
          sentAt: now,
          receivedAt: now,
          status: others.length === 0 ? "stored" : "queued",
          group: {
            author: me,
            seq: g.mySeq,
            signature: toHex(this.ctx.identity.sign(groupTextSignedBytes(signed))),
            to: others.map(short),
            queued: [],
            stored: [],
            delivered: [],
            read: [],
          },
        };
        const row = this.messages.add(key, m)!;
        this.text(peers, key, g, state, row, m, others);
        rows.push(row);
      }
      g.lastActivity = now;
      this.groups.put(key, g);
      peers.save();
      return { key, rows };
    });
    return this.deliver(
      queued.key,
      queued.rows,
      (n, group) => `${n} message(s) to ${group} wait in the outbox`,
    );
  }

  /**
   * Delivers the outbox, then says how far my messages (rows of group `key`) got; throws
   * UNREACHABLE or RELAY_REFUSED when some of them still wait (`waits` says so in words).
   */
  async deliver(
    key: string,
    rows: number[],
    waits: (waiting: number, group: string) => string,
  ): Promise<GroupSentStatus[]> {
    const { unreachable, refused } = await this.delivery.flush({ force: true });
    const g = this.groups.get(key)!;
    const statuses = rows.map((row): GroupSentStatus => {
      const m = this.messages.bySeq(key, row)!;
      const ev = groupStatusEvent(this.ctx.name, g, m);
      return {
        contact: ev.contact,
        group: g.name,
        id: m.id,
        status: m.status,
        failure: outgoingFailure(m),
        recipients: ev.recipients ?? 0,
        delivered: ev.delivered ?? 0,
        read: ev.read ?? 0,
      };
    });
    const waiting = statuses.filter((s) => s.status === "queued").length;
    if (waiting > 0 && unreachable.length > 0) {
      throw new ClientError(
        "UNREACHABLE",
        `relay ${unreachable.join(", ")} is unreachable: ${waits(waiting, g.name)}`,
      );
    }
    if (waiting > 0 && refused.length > 0) {
      throw new ClientError(
        "RELAY_REFUSED",
        `${refused.join("; ")}; ${waits(waiting, g.name)}, retried by the next send or sync`,
      );
    }
    return statuses;
  }
}

/** Throws KEY_CHANGED when a member's key changed (and is not confirmed yet): see keyChangedIn. */
export function checkKeys(peers: Peers, state: GroupState, me: string, group: string): void {
  for (const [k, member] of state.members) {
    const changed = k === me ? undefined : peers.keyChanged(member.identity);
    if (changed) throw keyChangedIn(changed.contact.name, group);
  }
}

/** A member's key changed: nothing goes to the group until it is confirmed or the member removed. */
export function keyChangedIn(member: string, group: string): ClientError {
  return new ClientError(
    "KEY_CHANGED",
    `${member}'s identity key changed: nothing is sent to ${group} until you compare safety numbers (parley verify ${JSON.stringify(member)}) and confirm with --confirm, or remove ${member} from the group`,
  );
}
