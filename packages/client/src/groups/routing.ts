// How a group item reaches each member (PROTOCOL.md §13.4): over my own session with the member,
// or, until that session is up, forwarded by the admin who introduced us. Pure: the caller says
// which members it has a session with.
import type { GroupState } from "@parley/protocol";

export type Route =
  /** Over my session with the member. */
  | { readonly to: string; readonly via: null }
  /** As a forward item to `via`, which passes it on to `to`. */
  | { readonly to: string; readonly via: string }
  /** Neither: no session, and none with the introducer either (or I am the introducer). */
  | { readonly to: string; readonly via: undefined };

/**
 * The introducer of two members: the admin who added the one of them who joined later (for two
 * members of the create, the creator). Null if either is not a member.
 */
export function introducer(state: GroupState, a: string, b: string): string | null {
  const ma = state.members.get(a);
  const mb = state.members.get(b);
  if (!ma || !mb) return null;
  return (ma.joined > mb.joined ? ma : mb).addedBy;
}

/** Where each other member's copy of a group item goes. Members are signing keys in hex. */
export function routes(state: GroupState, me: string, hasSession: (member: string) => boolean): Route[] {
  const out: Route[] = [];
  for (const member of state.members.keys()) {
    if (member === me) continue;
    if (hasSession(member)) {
      out.push({ to: member, via: null });
      continue;
    }
    const via = introducer(state, me, member);
    if (via !== null && via !== me && via !== member && hasSession(via)) out.push({ to: member, via });
    else out.push({ to: member, via: undefined });
  }
  return out;
}
