// What a change of a group's state means to the user: the entries newly applied (a member added,
// removed, gone, made an admin, the group renamed), my joining, and changes that lost a fork or
// were refused. Pure: made from the states before and after, with a function that names members.
import {
  type GroupEntry,
  type GroupState,
  type PublicIdentity,
  type RejectReason,
  toHex,
} from "@parley/protocol";
import type { InternalEvent } from "./events.js";
import type { GroupChange, GroupView } from "./types.js";

type GroupEvent = Extract<InternalEvent, { type: "group" }>;

export const REJECT_WORDS: Record<RejectReason, string> = {
  "not-member": "its author is not a member",
  "not-admin": "its author is not an admin",
  "is-member": "that person is already a member",
  "is-admin": "that member is already an admin",
  "not-a-member": "that person is not a member",
  full: "the group has 50 members, the most it may have",
  self: "an admin does not remove itself (it leaves)",
};

/** Every identity the entries of these states name (authors, the create's list, adds), by signing key. */
export function identities(...states: (GroupState | null)[]): Map<string, PublicIdentity> {
  const out = new Map<string, PublicIdentity>();
  const note = (id: PublicIdentity) => out.set(toHex(id.signingKey), id);
  for (const s of states) {
    if (!s) continue;
    const all = [...s.applied, ...s.forks.flatMap((f) => f.losers), ...s.rejected.map((r) => r.entry)];
    for (const e of all) {
      note(e.author);
      if (e.op.op === "create") for (const m of e.op.members) note(m.identity);
      if (e.op.op === "add") note(e.op.member);
    }
  }
  return out;
}

const hashOf = (e: GroupEntry) => toHex(e.hash);

/**
 * The events of a group whose state went from `before` to `after` (as `view` shows it now);
 * `name` names a member by signing key; `previousName` is my name for the group before, when a
 * rename changed it.
 */
export function changeEvents(
  before: GroupState | null,
  after: GroupState,
  me: string,
  name: (member: string) => string,
  view: GroupView,
  previousName?: string,
): GroupEvent[] {
  const wasIn = before?.members.has(me) ?? false;
  const isIn = after.members.has(me);
  const event = (e: GroupChange, fields: Partial<GroupEvent> = {}): GroupEvent => ({
    type: "group",
    event: e,
    ...fields,
    ...view,
  });
  if (!wasIn && isIn) {
    const root = after.applied[0]!;
    if (before === null && after.applied.length === 1 && toHex(root.author.signingKey) === me)
      return [event("created")];
    return [event("joined", { by: name(after.members.get(me)!.addedBy) })];
  }
  if (!wasIn && !isIn) return [];
  const out: GroupEvent[] = [];
  const old = before?.applied ?? [];
  let common = 0;
  while (
    common < old.length &&
    common < after.applied.length &&
    hashOf(old[common]!) === hashOf(after.applied[common]!)
  )
    common++;
  // Entries that had been applied and lost to a concurrent one that arrived since.
  for (const e of old.slice(common)) out.push(event("fork", lost(e, name)));
  for (const e of after.applied.slice(common)) {
    const by = name(toHex(e.author.signingKey));
    switch (e.op.op) {
      case "add":
        out.push(event("added", { member: name(toHex(e.op.member.signingKey)), by }));
        break;
      case "remove":
        out.push(event("removed", { member: name(toHex(e.op.member)), by }));
        break;
      case "leave":
        out.push(event("left", { member: by }));
        break;
      case "promote":
        out.push(event("promoted", { member: name(toHex(e.op.member)), by }));
        break;
      case "rename":
        out.push(event("renamed", { by, ...(previousName === undefined ? {} : { previousName }) }));
        break;
      case "create":
        break;
    }
  }
  const undone = new Set(old.slice(common).map(hashOf));
  const lostBefore = new Set(before?.forks.flatMap((f) => f.losers.map(hashOf)) ?? []);
  for (const e of after.forks.flatMap((f) => f.losers)) {
    if (!lostBefore.has(hashOf(e)) && !undone.has(hashOf(e))) out.push(event("fork", lost(e, name)));
  }
  const refusedBefore = new Set(before?.rejected.map((r) => hashOf(r.entry)) ?? []);
  for (const r of after.rejected) {
    if (refusedBefore.has(hashOf(r.entry))) continue;
    out.push(event("rejected", { ...lost(r.entry, name), reason: REJECT_WORDS[r.reason] }));
  }
  return out;
}

/** The fields naming a change that was not applied: its op, its author and the member it is about. */
function lost(e: GroupEntry, name: (member: string) => string): Partial<GroupEvent> {
  const op = e.op;
  const member =
    op.op === "add"
      ? name(toHex(op.member.signingKey))
      : op.op === "remove" || op.op === "promote"
        ? name(toHex(op.member))
        : undefined;
  return { op: op.op, by: name(toHex(e.author.signingKey)), ...(member === undefined ? {} : { member }) };
}
