// Membership changes (PROTOCOL.md §13.1, §13.2, §13.4): mine (create, add, remove, leave, rename,
// promote), each an entry signed on my current head and sent to every member, with the whole log
// to a member just added; and everyone's, as their entries arrive. Either way the group's state is
// computed again, my name for the group follows its name, what waited for members who are gone is
// forgotten, and an entry of mine that lost a fork is issued again on the new head while it is
// still valid there.
import { randomBytes } from "@noble/hashes/utils.js";
import {
  fromHex,
  type GroupEntry,
  type GroupOp,
  type GroupState,
  MAX_GROUP_MEMBERS,
  signGroupEntry,
  toHex,
} from "@parley/protocol";
import { ClientError } from "../errors.js";
import type { GroupNote, GroupRecord } from "../store/records.js";
import { cleanName, nameProblem, nameSkeleton } from "../text.js";
import { type Contacts, identityOf, keyChangedError } from "./contacts.js";
import { type Context, warn } from "./context.js";
import type { Delivery } from "./delivery.js";
import type { InternalEvent, Publisher } from "./events.js";
import { changeEvents, identities } from "./group-events.js";
import type { GroupIntroductions } from "./group-introductions.js";
import { memberKeyOf, type Peers } from "./group-peers.js";
import { type GroupSend, wholeLog } from "./group-send.js";
import { type Found, type Groups, MAX_GROUP_ENTRIES } from "./groups.js";
import type { Messages } from "./messages.js";
import type { ClientEvent } from "./types.js";

/** The fields that are set (a sealed record keeps no `undefined`). */
const dropUndefined = <T extends object>(o: T): Partial<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

const notAllowed = (text: string) => new ClientError("NOT_ALLOWED", text);

/** Why a group name typed by the user is refused, or null. */
export function groupNameProblem(name: string): string | null {
  return (
    nameProblem(name) ?? (Buffer.byteLength(name) > 255 ? "a group name is at most 255 bytes of UTF-8" : null)
  );
}

export class GroupChanges {
  constructor(
    private readonly ctx: Context,
    private readonly groups: Groups,
    private readonly contacts: Pick<Contacts, "find" | "lookAlike">,
    private readonly send: Pick<GroupSend, "entries">,
    private readonly delivery: Pick<Delivery, "flush">,
    private readonly publisher: Publisher,
    private readonly introductions: Pick<GroupIntroductions, "owe">,
    private readonly messages: Pick<Messages, "add">,
  ) {}

  // ------------------------------------------------------- entries (inside a transaction)

  /**
   * Adds entries that arrived to the log of group `groupId` (hex; a record is made for a group I
   * do not hold yet, listed once I am a member) and settles it; returns the events.
   */
  absorb(peers: Peers, groupId: string, entries: GroupEntry[]): InternalEvent[] {
    const row = this.groups.byGroupId(groupId);
    const g: GroupRecord = row?.value ?? {
      groupId,
      name: "",
      groupName: "",
      entries: [],
      mySeq: 0,
      seqs: {},
      unread: 0,
      createdAt: Date.now(),
      lastActivity: Date.now(),
    };
    const before = row ? this.groups.state(g) : null;
    const held = new Set(g.entries);
    const fresh = entries.map((e) => this.groups.known(e)).filter((hex) => !held.has(hex));
    if (fresh.length === 0) return [];
    if (g.entries.length + fresh.length > MAX_GROUP_ENTRIES) {
      warn(
        this.ctx,
        `dropped changes to ${g.name || "a group"}: it holds ${MAX_GROUP_ENTRIES} entries, the most kept`,
      );
      return [];
    }
    g.entries.push(...fresh);
    const key = this.groups.put(row?.key ?? null, g);
    return this.settle(peers, key, g, before);
  }

  /** After entries were added to `g`: see the module comment. Writes `g`; returns the events. */
  private settle(peers: Peers, key: string, g: GroupRecord, before: GroupState | null): InternalEvent[] {
    let after = this.groups.state(g);
    if (!after) {
      this.groups.put(key, g);
      return [];
    }
    after = this.reissue(peers, key, g, after);
    const me = this.groups.me;
    let previousName: string | undefined;
    if ((after.members.has(me) || g.name !== "") && (g.name === "" || after.name !== g.groupName)) {
      if (g.name !== "") previousName = g.name;
      g.name = this.groups.uniqueName(cleanName(after.name) || "group", key);
      g.groupName = after.name;
    }
    const members = after.members;
    g.held = (g.held ?? []).filter((h) => members.has(h.member));
    g.unsynced = (g.unsynced ?? []).filter((m) => members.has(m));
    if (!members.has(me)) g.held = [];
    this.introductions.owe(peers, g, after);
    this.groups.put(key, g);
    const ids = identities(before, after);
    const name = (k: string) => {
      if (k === me) return this.ctx.name;
      const id = ids.get(k);
      return id ? peers.name(id) : `member-${k.slice(0, 8)}`;
    };
    const view = this.groups.view(g, after, peers);
    const events = changeEvents(
      before,
      after,
      me,
      name,
      view,
      previousName === g.name ? undefined : previousName,
    );
    // Each change is also a line of the conversation, as it read when it happened.
    const now = Date.now();
    for (const e of events) {
      const { event, member, by, previousName: was, op, reason, active, members } = e;
      const note: GroupNote = { event, active, members };
      Object.assign(note, dropUndefined({ member, by, previousName: was, op, reason }));
      const id = toHex(randomBytes(16));
      this.messages.add(key, {
        id,
        direction: "in",
        text: "",
        sentAt: now,
        receivedAt: now,
        status: "read",
        note,
      });
    }
    return events;
  }

  /** Issues again, on the head, each entry of mine that lost a fork, if still valid there. */
  private reissue(peers: Peers, key: string, g: GroupRecord, state: GroupState): GroupState {
    const me = this.groups.me;
    if (!state.members.has(me)) return state;
    const done = new Set(g.reissued ?? []);
    let current = state;
    for (const loser of state.forks.flatMap((f) => f.losers)) {
      const hash = toHex(loser.hash);
      if (toHex(loser.author.signingKey) !== me || done.has(hash)) continue;
      done.add(hash);
      const again = this.sign(g, current, loser.op);
      const trial = this.groups.log(g);
      trial.add(again);
      const next = trial.state()!;
      if (next.head !== toHex(again.hash)) continue; // no longer valid: dropped
      g.entries.push(this.groups.known(again));
      // The members before and after get the entry; one it adds gets the whole log (what it has
      // from my first add lacks the entry that won).
      const joined = [...next.members.keys()].filter((k) => !current.members.has(k));
      this.send.entries(peers, key, g, current.members.keys(), [again]);
      this.send.entries(peers, key, g, joined, wholeLog(this.groups, g, next));
      current = next;
    }
    if (done.size > 0) g.reissued = [...done];
    return current;
  }

  private sign(g: GroupRecord, state: GroupState, op: GroupOp): GroupEntry {
    return signGroupEntry(this.ctx.identity, {
      groupId: fromHex(g.groupId),
      parent: fromHex(state.head),
      createdAt: Date.now(),
      op,
    });
  }

  // ------------------------------------------------------------------------- my changes

  /** Creates a group with contacts; see Client.createGroup(). */
  async create(name: string, memberNames: readonly string[]): Promise<ClientEvent[]> {
    const problem = groupNameProblem(name);
    if (problem) throw new ClientError("USAGE", `group name: ${problem}`);
    if (memberNames.length === 0) throw new ClientError("USAGE", "--members: name at least one contact");
    return this.run(() => {
      this.checkName(name);
      const keys = new Map<string, { identity: ReturnType<typeof identityOf> }>();
      for (const n of memberNames) {
        const { contact } = this.contact(n);
        keys.set(memberKeyOf(contact), { identity: identityOf(contact) });
      }
      if (keys.size > MAX_GROUP_MEMBERS - 1)
        throw new ClientError("USAGE", `a group has at most ${MAX_GROUP_MEMBERS} members, you included`);
      const now = Date.now();
      const entry = signGroupEntry(this.ctx.identity, {
        groupId: randomBytes(16),
        createdAt: now,
        op: {
          op: "create",
          name,
          members: [...keys.values()].map((m) => ({ identity: m.identity, admin: false })),
        },
      });
      const g: GroupRecord = {
        groupId: toHex(entry.groupId),
        name,
        groupName: name,
        entries: [this.groups.known(entry)],
        mySeq: 0,
        seqs: {},
        unread: 0,
        createdAt: now,
        lastActivity: now,
      };
      const peers = this.groups.peers();
      const key = this.groups.put(null, g);
      this.send.entries(peers, key, g, keys.keys(), [entry]);
      const events = this.settle(peers, key, g, null);
      peers.save();
      return events;
    });
  }

  /** Adds a contact to a group (an admin's change). */
  add(group: string, contactName: string): Promise<ClientEvent[]> {
    return this.change(group, "add members to", (found) => {
      const { contact } = this.contact(contactName);
      const key = memberKeyOf(contact);
      if (found.state!.members.has(key))
        throw new ClientError("USAGE", `${contact.name} is already a member of ${found.group.name}`);
      if (found.state!.members.size >= MAX_GROUP_MEMBERS)
        throw new ClientError(
          "USAGE",
          `${found.group.name} has ${MAX_GROUP_MEMBERS} members, the most a group may have`,
        );
      return { op: "add", member: identityOf(contact) };
    });
  }

  /** Removes a member from a group (an admin's change); it receives nothing more of the group. */
  remove(group: string, memberName: string): Promise<ClientEvent[]> {
    return this.change(group, "remove members from", (found) => {
      const m = this.groups.member(found, memberName);
      if (m.key === this.groups.me)
        throw new ClientError(
          "USAGE",
          `to leave ${found.group.name}, run \`parley group leave ${found.group.name}\``,
        );
      return { op: "remove", member: fromHex(m.key) };
    });
  }

  /** Makes a member an admin (an admin's change). */
  promote(group: string, memberName: string): Promise<ClientEvent[]> {
    return this.change(group, "make admins in", (found) => {
      const m = this.groups.member(found, memberName);
      if (found.state!.members.get(m.key)!.admin)
        throw new ClientError("USAGE", `${m.name} is already an admin of ${found.group.name}`);
      return { op: "promote", member: fromHex(m.key) };
    });
  }

  /** Renames a group for every member (an admin's change). */
  async rename(group: string, newName: string): Promise<ClientEvent[]> {
    const problem = groupNameProblem(newName);
    if (problem) throw new ClientError("USAGE", `new name: ${problem}`);
    return this.change(group, "rename", (found) => {
      this.checkName(newName, found.key);
      return { op: "rename", name: newName };
    });
  }

  /** Leaves a group: the history stays, nothing more is sent or received. */
  leave(group: string): Promise<ClientEvent[]> {
    return this.change(group, null, () => ({ op: "leave" }));
  }

  /**
   * One change of mine: checked (I am a member; an admin unless `adminTo` is null), signed on my
   * head, sent to every member (the whole log to one just added), then delivered.
   */
  private change(
    group: string,
    adminTo: string | null,
    op: (found: Found) => GroupOp,
  ): Promise<ClientEvent[]> {
    return this.run(() => {
      const found = this.groups.find(group);
      const { group: g, state } = found;
      const mine = state?.members.get(this.groups.me);
      if (!state || !mine) throw notAllowed(`you are no longer a member of ${g.name}`);
      if (adminTo !== null && !mine.admin)
        throw notAllowed(`only an admin may ${adminTo} ${g.name}; ask ${this.admins(state)}`);
      return this.apply(found, op(found));
    });
  }

  /** The admins of a group, named for "ask …". */
  admins(state: GroupState): string {
    const peers = this.groups.peers();
    return [...state.members.values()]
      .filter((m) => m.admin)
      .map((m) => peers.name(m.identity))
      .join(" or ");
  }

  /**
   * Signs `op` on the head of a group I am a member of (`found`, with its state), sends it to
   * every member (the whole log to one it adds) and settles the group; the events. Inside a
   * transaction.
   */
  apply(found: Found, op: GroupOp): InternalEvent[] {
    const { key, group: g } = found;
    const state = found.state!;
    const entry = this.sign(g, state, op);
    g.entries.push(this.groups.known(entry));
    const after = this.groups.state(g)!;
    if (after.head !== toHex(entry.hash))
      throw new ClientError("INTERNAL", `the change to ${g.name} did not apply`);
    const peers = this.groups.peers();
    this.send.entries(peers, key, g, state.members.keys(), [entry]);
    if (entry.op.op === "add")
      this.send.entries(peers, key, g, [toHex(entry.op.member.signingKey)], wholeLog(this.groups, g, after));
    g.lastActivity = Date.now();
    const events = this.settle(peers, key, g, state);
    peers.save();
    return events;
  }

  /** Runs a change in one transaction, publishes its events, then delivers the outbox. */
  private async run(change: () => InternalEvent[]): Promise<ClientEvent[]> {
    const events = this.ctx.tx(change);
    const published = events.map((e) => this.publisher.emit(e)).filter((e): e is ClientEvent => e !== null);
    const { unreachable, refused } = await this.delivery.flush({ force: true });
    if (unreachable.length > 0)
      throw new ClientError(
        "UNREACHABLE",
        `the change is made here, but relay ${unreachable.join(", ")} is unreachable: it waits in the outbox`,
      );
    if (refused.length > 0)
      throw new ClientError(
        "RELAY_REFUSED",
        `the change is made here, but ${refused.join("; ")}; it waits in the outbox`,
      );
    return published;
  }

  /** A contact to make a member of: an ordinary contact whose key is not in doubt. */
  private contact(name: string): ReturnType<Contacts["find"]> {
    const found = this.contacts.find(name);
    if (found.contact.groupScoped)
      throw new ClientError(
        "UNKNOWN_CONTACT",
        `${found.contact.name} is not one of your contacts (see \`parley contacts\`)`,
      );
    if (found.contact.keyChanged) throw keyChangedError(found.contact.name);
    return found;
  }

  /** Refuses a group name that looks like another conversation's (but group `except`'s own). */
  private checkName(name: string, except?: string): void {
    const contact = this.contacts.lookAlike(name);
    const clash =
      contact?.kind === "contact"
        ? `a contact's, ${JSON.stringify(contact.name)}`
        : this.groups
            .names(except)
            .filter((n) => nameSkeleton(n) === nameSkeleton(name))
            .map((n) => `another group's, ${JSON.stringify(n)}`)[0];
    if (clash) throw new ClientError("USAGE", `${JSON.stringify(name)} looks the same as ${clash}`);
  }
}
