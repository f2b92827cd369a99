// `parley group SUBCOMMAND ...` and `parley groups` (README "Groups"): each subcommand's arguments
// are checked before the passphrase is asked for; then one change, or one listing.
import { usage, type Values } from "./args.js";
import type { Client, GroupView, MemberView } from "./client.js";
import { type Output, printEvent, time } from "./output.js";
import { displayText } from "./text.js";

/** Each subcommand and the words its arguments are called in its usage error. */
export const GROUP_SUBCOMMANDS: Record<string, string> = {
  create: "NAME --members CONTACT,CONTACT,...",
  add: "NAME CONTACT",
  remove: "NAME MEMBER",
  promote: "NAME MEMBER",
  rename: "NAME NEW-NAME",
  leave: "NAME",
  members: "NAME",
  contact: "NAME MEMBER",
};

/** Checks `group` arguments (before any passphrase); returns the member list of a create. */
export function checkGroupArgs(positionals: readonly string[], values: Values): string[] {
  const [sub, ...args] = positionals;
  if (sub === undefined) throw usage(`group: expected one of ${Object.keys(GROUP_SUBCOMMANDS).join(", ")}`);
  const form = GROUP_SUBCOMMANDS[sub];
  if (!Object.hasOwn(GROUP_SUBCOMMANDS, sub) || form === undefined)
    throw usage(`group: unknown subcommand ${JSON.stringify(sub)}`);
  const wanted = form.split(" --")[0]!.split(" ").length;
  if (args.length !== wanted) throw usage(`group ${sub}: expected ${form}`);
  const members = values.members as string | undefined;
  if (sub !== "create") {
    if (members !== undefined) throw usage(`group ${sub}: --members goes with group create only`);
    return [];
  }
  if (members === undefined) throw usage("group create: --members CONTACT,CONTACT,... is required");
  const names = members.split(",").map((m) => m.trim());
  if (names.some((n) => n === "")) throw usage(`--members: an empty name in ${JSON.stringify(members)}`);
  return names;
}

function groupLine(g: GroupView): string {
  const role = !g.active ? "left" : g.admin ? "admin" : "member";
  const pending = g.pending > 0 ? `\t${g.pending} without a session yet` : "";
  return `${displayText(g.group)}\t${g.members} members\t${role}\tunread ${g.unread}\tlast ${g.lastActivity ? time(g.lastActivity) : "-"}${pending}`;
}

function memberLine(m: MemberView): string {
  const trust = m.me ? "you" : m.keyChanged ? "KEY CHANGED" : m.verified ? "verified" : "unverified";
  const session = m.pendingSession
    ? "\tno session yet (reached through another member)"
    : m.me || m.contact
      ? ""
      : "\tnot a contact (a session for the group only)";
  return `${displayText(m.member)}\t${m.fingerprint}\t${trust}\t${m.admin ? "admin" : "member"}${session}`;
}

/** Lists the groups (`parley groups`). */
export function listGroups(client: Client, out: Output): number {
  for (const g of client.groups()) out.data({ type: "group", event: "listed", ...g }, groupLine(g));
  return 0;
}

/** Runs `parley group ...` (arguments already checked by checkGroupArgs). */
export async function runGroup(
  client: Client,
  positionals: readonly string[],
  members: string[],
  out: Output,
): Promise<number> {
  const [sub, name, arg] = positionals as [string, string, string | undefined];
  if (sub === "members") {
    for (const m of client.groupMembers(name)) out.data({ type: "member", ...m }, memberLine(m));
    return 0;
  }
  if (sub === "contact") {
    printEvent(out, client.makeContact(name, arg!));
    return 0;
  }
  // The change's own events are printed as they are published; others that the sync brings too.
  client.on("event", (ev) => printEvent(out, ev));
  switch (sub) {
    case "create":
      await client.createGroup(name, members);
      return 0;
    case "add":
      await client.addToGroup(name, arg!);
      return 0;
    case "remove":
      await client.removeFromGroup(name, arg!);
      return 0;
    case "promote":
      await client.promoteInGroup(name, arg!);
      return 0;
    case "rename":
      await client.renameGroup(name, arg!);
      return 0;
    case "leave":
      await client.leaveGroup(name);
      return 0;
  }
  throw usage(`group: unknown subcommand ${JSON.stringify(sub)}`);
}
