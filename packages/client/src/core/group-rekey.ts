// A contact's new identity key confirmed (parley verify --confirm) while its old key is a member
// of my groups: the group names members by key, so the old key has no session any more and the
// new one is not a member. In a group I am an admin of, the old key is removed and the new one
// added (it gets the whole log, PROTOCOL.md §13.4); in one I am not, only an admin can, so the
// user is told whom to ask.
import { fingerprint, fromHex, MAX_GROUP_MEMBERS, toHex } from "@parley/protocol";
import { type Contacts, identityOf } from "./contacts.js";
import { type Context, warn } from "./context.js";
import type { InternalEvent, Publisher } from "./events.js";
import type { GroupChanges } from "./group-changes.js";
import type { Groups } from "./groups.js";
import type { ClientEvent } from "./types.js";

export class GroupRekey {
  constructor(
    private readonly ctx: Context,
    private readonly groups: Groups,
    private readonly contacts: Pick<Contacts, "confirm" | "find">,
    private readonly changes: Pick<GroupChanges, "apply" | "admins">,
    private readonly publisher: Publisher,
  ) {}

  /** Confirms a contact's key (Contacts.confirm), then replaces its old key in my groups. */
  confirm(name: string, expected?: string): ClientEvent[] {
    const events = this.ctx.tx(() => {
      this.contacts.confirm(name, expected);
      return this.confirmed(name);
    });
    return events.map((e) => this.publisher.emit(e)).filter((e): e is ClientEvent => e !== null);
  }

  /** See the module comment; the events. Inside a transaction. */
  private confirmed(name: string): InternalEvent[] {
    const { contact } = this.contacts.find(name);
    const old = contact.previousFingerprint;
    if (old === undefined || contact.keyChanged) return [];
    const fresh = identityOf(contact);
    const freshKey = toHex(fresh.signingKey);
    const me = this.groups.me;
    const out: InternalEvent[] = [];
    for (const { key } of this.groups.all()) {
      const g = this.groups.get(key)!;
      const state = this.groups.state(g);
      const mine = state?.members.get(me);
      if (!state || !mine) continue;
      const stale = [...state.members].find(
        ([k, m]) => k !== me && k !== freshKey && fingerprint(m.identity) === old,
      );
      if (!stale) continue;
      if (!mine.admin) {
        warn(
          this.ctx,
          `${contact.name}'s old key is still a member of ${g.name}, with no session any more; only an admin can replace it: ask ${this.changes.admins(state)}`,
        );
        continue;
      }
      out.push(...this.changes.apply({ key, group: g, state }, { op: "remove", member: fromHex(stale[0]) }));
      const now = this.groups.get(key)!;
      const after = this.groups.state(now)!;
      if (after.members.has(freshKey) || after.members.size >= MAX_GROUP_MEMBERS) continue;
      out.push(...this.changes.apply({ key, group: now, state: after }, { op: "add", member: fresh }));
    }
    return out;
  }
}
