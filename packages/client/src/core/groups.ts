// Groups: the records of the groups this identity holds, each with its membership log and the
// state every member computes from it (PROTOCOL.md §13.2), found by name or by group id, named so
// that no conversation (contact or group) looks like another, and shown as views. Owns the groups
// table. Sending (group-send.ts), receiving (group-receive.ts), membership changes
// (group-changes.ts) and a group's history (group-history.ts) work through this module.
import {
  decodeGroupEntry,
  fingerprint,
  fromHex,
  type GroupEntry,
  GroupLog,
  type GroupState,
  toHex,
} from "@parley/protocol";
import { ClientError } from "../errors.js";
import type { GroupsTable } from "../store/groups.js";
import type { GroupRecord, Row } from "../store/records.js";
import { nameSkeleton } from "../text.js";
import { type Contacts, uniqueName } from "./contacts.js";
import type { Context } from "./context.js";
import { Peers } from "./group-peers.js";
import type { GroupView, MemberView } from "./types.js";

/** Entries one group may hold: a log longer than this is someone flooding it. */
export const MAX_GROUP_ENTRIES = 4096;

/** A group found by name or id: its row key, record and state (null while no create is held). */
export interface Found {
  readonly key: string;
  readonly group: GroupRecord;
  readonly state: GroupState | null;
}

export class Groups {
  /** Entries decoded (and their signatures checked) once, by their hex. */
  private readonly decoded = new Map<string, GroupEntry>();
  /** My signing key (hex): how groups name me. */
  readonly me: string;

  constructor(
    private readonly ctx: Context,
    private readonly table: GroupsTable,
    private readonly contacts: Pick<Contacts, "all" | "put">,
  ) {
    this.me = toHex(ctx.identity.publicIdentity.signingKey);
  }

  all(): Row<GroupRecord>[] {
    return this.table.all();
  }

  get(key: string): GroupRecord | null {
    return this.table.get(key);
  }

  /** Writes a group (a new one when `key` is null); returns its key. */
  put(key: string | null, value: GroupRecord): string {
    return this.table.put(key, value);
  }

  /** Peers over the contacts as they are now (see group-peers.ts). */
  peers(held?: ConstructorParameters<typeof Peers>[1]): Peers {
    return new Peers(this.contacts, held);
  }

  // ------------------------------------------------------------------------------ the log

  /** One stored entry, decoded (and checked) the first time it is needed. */
  entry(hex: string): GroupEntry {
    let e = this.decoded.get(hex);
    if (!e) {
      e = decodeGroupEntry(fromHex(hex));
      if (this.decoded.size >= 8 * MAX_GROUP_ENTRIES) this.decoded.clear();
      this.decoded.set(hex, e);
    }
    return e;
  }

  /** Remembers an entry already decoded (one that just arrived or was just signed). */
  known(e: GroupEntry): string {
    const hex = toHex(e.bytes);
    this.decoded.set(hex, e);
    return hex;
  }

  log(g: GroupRecord): GroupLog {
    const log = new GroupLog(fromHex(g.groupId));
    for (const hex of g.entries) log.add(this.entry(hex));
    return log;
  }

  state(g: GroupRecord): GroupState | null {
    return this.log(g).state();
  }

  /**
   * Every member (signing key hex) I share a group with, in groups I am a member of: whose
   * sessions a group needs (a group-scoped one with anyone else is forgotten: Maintenance).
   */
  coMembers(): Set<string> {
    const out = new Set<string>();
    for (const r of this.table.all()) {
      const s = this.state(r.value);
      if (!s?.members.has(this.me)) continue;
      for (const k of s.members.keys()) if (k !== this.me) out.add(k);
    }
    return out;
  }

  // ----------------------------------------------------------------------------- finding

  /** The group with this id (hex), if I hold it. */
  byGroupId(groupId: string): Row<GroupRecord> | undefined {
    return this.table.all().find((r) => r.value.groupId === groupId);
  }

  /** A group by my name for it: the exact name, else a unique case-insensitive match; else null. */
  lookup(name: string): Found | null {
    const named = this.table.all().filter((r) => r.value.name !== "");
    const exact = named.find((r) => r.value.name === name);
    const folded = named.filter((r) => r.value.name.toLowerCase() === name.toLowerCase());
    const hit = exact ?? (folded.length === 1 ? folded[0] : undefined);
    return hit ? { key: hit.key, group: hit.value, state: this.state(hit.value) } : null;
  }

  find(name: string): Found {
    const hit = this.lookup(name);
    if (!hit)
      throw new ClientError(
        "UNKNOWN_CONTACT",
        `no group named ${JSON.stringify(name)} (see \`parley groups\`)`,
      );
    return hit;
  }

  /** My names of every group I hold but `except` (for names unique across conversations). */
  names(except?: string): string[] {
    return this.table
      .all()
      .filter((r) => r.key !== except && r.value.name !== "")
      .map((r) => r.value.name);
  }

  /** A name for group `except` that looks like no contact's nor any other group's. */
  uniqueName(wanted: string, except?: string): string {
    const taken = new Set(
      [...this.contacts.all().map((r) => r.value.name), ...this.names(except)].map(nameSkeleton),
    );
    return uniqueName(wanted, taken);
  }

  // ------------------------------------------------------------------------------- views

  view(g: GroupRecord, state: GroupState | null, peers: Peers): GroupView {
    const mine = state?.members.get(this.me);
    let pending = 0;
    for (const k of state?.members.keys() ?? []) if (k !== this.me && !peers.has(k)) pending++;
    return {
      group: g.name,
      id: g.groupId,
      members: state?.members.size ?? 0,
      admin: mine?.admin ?? false,
      active: mine !== undefined,
      pending: mine ? pending : 0,
      unread: g.unread,
      lastActivity: g.lastActivity,
      forks: state?.forks.reduce((n, f) => n + f.losers.length, 0) ?? 0,
      rejected: state?.rejected.length ?? 0,
    };
  }

  /** Every group I am or was a member of, most recently active first. */
  list(): GroupView[] {
    const peers = this.peers();
    return this.table
      .all()
      .filter((r) => r.value.name !== "")
      .map((r) => this.view(r.value, this.state(r.value), peers))
      .sort((a, b) => b.lastActivity - a.lastActivity || a.group.localeCompare(b.group));
  }

  /** A group's members, in the order they joined. */
  members(name: string): MemberView[] {
    const { group, state } = this.find(name);
    const peers = this.peers();
    return [...(state?.members.values() ?? [])]
      .sort((a, b) => a.joined - b.joined)
      .map((m) => {
        const key = toHex(m.identity.signingKey);
        const me = key === this.me;
        const peer = peers.get(key);
        const changed = me ? undefined : peers.keyChanged(m.identity);
        return {
          group: group.name,
          member: me ? this.ctx.name : peers.name(m.identity),
          fingerprint: fingerprint(m.identity),
          verified: me || (peer?.contact.verified ?? false),
          keyChanged: changed !== undefined,
          admin: m.admin,
          me,
          contact: !me && peer !== undefined && !peer.contact.groupScoped,
          pendingSession: !me && peer === undefined,
        };
      });
  }

  /**
   * Makes a member I reach only for a group (a group-scoped session) one of my contacts; returns
   * its contact id. Inside the caller's transaction.
   */
  makeContact(group: string, memberName: string): string {
    const found = this.find(group);
    const m = this.member(found, memberName);
    const peer = this.peers().get(m.key);
    if (m.key === this.me) throw new ClientError("USAGE", "that is you");
    if (!peer)
      throw new ClientError(
        "USAGE",
        `you have no session with ${m.name} yet: it is made when you are introduced (see \`parley group members ${found.group.name}\`)`,
      );
    if (!peer.contact.groupScoped)
      throw new ClientError("USAGE", `${m.name} is already one of your contacts`);
    const { groupScoped: _scoped, ...contact } = peer.contact;
    this.contacts.put(peer.id, contact);
    return peer.id;
  }

  /** A member of a group by name (as members() names them), or by a unique case-insensitive match. */
  member(found: Found, name: string): { key: string; name: string } {
    const peers = this.peers();
    const all = [...(found.state?.members.values() ?? [])].map((m) => {
      const key = toHex(m.identity.signingKey);
      return { key, name: key === this.me ? this.ctx.name : peers.name(m.identity) };
    });
    const exact = all.filter((m) => m.name === name);
    const folded = all.filter((m) => m.name.toLowerCase() === name.toLowerCase());
    const hit = exact.length === 1 ? exact[0] : folded.length === 1 ? folded[0] : undefined;
    if (!hit)
      throw new ClientError(
        "UNKNOWN_CONTACT",
        `no member named ${JSON.stringify(name)} in ${found.group.name} (see \`parley group members ${found.group.name}\`)`,
      );
    return hit;
  }
}
