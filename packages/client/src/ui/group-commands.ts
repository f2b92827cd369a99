// The chat screen's group commands: /group new, /add, /kick, /admin, /leave, /members, and what
// /rename and /delete mean in a group. Each failure ends as a notice: the chat screen never
// throws on what the person typed.
import type { Client, ClientEvent } from "../client.js";
import { ClientError } from "../errors.js";
import type { ConversationItem } from "./conversation-list.js";
import type { OverlayState } from "./overlay.js";

export interface GroupCommandContext {
  readonly client: Client;
  /** The conversation on screen. */
  readonly current: ConversationItem | null;
  select(name: string): void;
  notice(text: string, error: boolean): void;
  overlay(o: OverlayState): void;
  refresh(): void;
}

/**
 * Splits a command's arguments at spaces; "double quotes" keep a name with spaces in one piece.
 * Null when a quote is not closed.
 */
export function splitArgs(text: string): string[] | null {
  if ((text.match(/"/g)?.length ?? 0) % 2 !== 0) return null;
  const out: string[] = [];
  for (const m of text.matchAll(/"([^"]*)"|(\S+)/g)) out.push(m[1] ?? m[2]!);
  return out;
}

/** A change that reached this client but not the relay is made, and waits: a notice, not an error. */
async function change(
  ctx: GroupCommandContext,
  run: () => Promise<ClientEvent[]>,
  done: string,
): Promise<void> {
  try {
    await run();
    ctx.notice(done, false);
  } catch (e) {
    const waits = e instanceof ClientError && (e.code === "UNREACHABLE" || e.code === "RELAY_REFUSED");
    ctx.notice(e instanceof Error ? e.message : String(e), !waits);
  } finally {
    ctx.refresh();
  }
}

/** The group on screen, or a notice saying a group must be selected (null). */
function groupOnScreen(ctx: GroupCommandContext, command: string): string | null {
  if (ctx.current?.group) return ctx.current.name;
  ctx.notice(`${command} works in a group: select one, or make one with /group new NAME MEMBER...`, true);
  return null;
}

export const GROUP_USAGE = {
  group: "usage: /group new NAME MEMBER... (names with spaces in double quotes)",
  add: "usage: /add CONTACT... (adds your contacts to this group)",
  kick: "usage: /kick MEMBER (removes a member of this group)",
  admin: "usage: /admin MEMBER (makes a member of this group an admin)",
} as const;

/**
 * Runs `command` if it is a group command (true), else does nothing (false). `text` is what
 * followed the command.
 */
export async function runGroupCommand(
  ctx: GroupCommandContext,
  command: string,
  text: string,
): Promise<boolean> {
  const { client } = ctx;
  const args = splitArgs(text);
  if (args === null) {
    if (!["/group", "/add", "/kick", "/admin"].includes(command)) return false;
    ctx.notice('a double quote (") is not closed', true);
    return true;
  }
  switch (command) {
    case "/group": {
      const [sub, name, ...members] = args;
      if (sub !== "new" || name === undefined || members.length === 0) {
        ctx.notice(GROUP_USAGE.group, true);
        return true;
      }
      ctx.notice(`creating ${name}…`, false);
      // The group exists here as soon as the change is signed: show it while it goes out.
      const created = client.createGroup(name, members);
      await change(ctx, () => created, `created ${name} with ${members.join(", ")}`);
      if (client.groups().some((g) => g.group === name)) ctx.select(name);
      return true;
    }
    case "/add": {
      const group = groupOnScreen(ctx, command);
      if (group === null) return true;
      if (args.length === 0) {
        ctx.notice(GROUP_USAGE.add, true);
        return true;
      }
      for (const contact of args)
        await change(ctx, () => client.addToGroup(group, contact), `added ${contact} to ${group}`);
      return true;
    }
    case "/kick":
    case "/admin": {
      const group = groupOnScreen(ctx, command);
      if (group === null) return true;
      const member = args.join(" ");
      if (args.length === 0) {
        ctx.notice(GROUP_USAGE[command === "/kick" ? "kick" : "admin"], true);
        return true;
      }
      if (command === "/kick")
        await change(ctx, () => client.removeFromGroup(group, member), `removed ${member} from ${group}`);
      else
        await change(
          ctx,
          () => client.promoteInGroup(group, member),
          `${member} is now an admin of ${group}`,
        );
      return true;
    }
    case "/leave": {
      const group = groupOnScreen(ctx, command);
      if (group === null) return true;
      await change(ctx, () => client.leaveGroup(group), `you left ${group}; its messages stay here`);
      return true;
    }
    case "/members": {
      const group = groupOnScreen(ctx, command);
      if (group === null) return true;
      ctx.overlay({ kind: "members", group, members: client.groupMembers(group) });
      return true;
    }
    case "/rename": {
      if (!ctx.current?.group) return false;
      const name = text.trim();
      if (name === "") {
        ctx.notice("usage: /rename NAME (renames this group for every member; admins only)", true);
        return true;
      }
      const group = ctx.current.name;
      await change(ctx, () => client.renameGroup(group, name), `renamed ${group} to ${name} for everyone`);
      const renamed = client.groups().find((g) => g.id === ctx.current?.group?.id);
      if (renamed) ctx.select(renamed.group);
      return true;
    }
    case "/delete": {
      if (!ctx.current?.group) return false;
      ctx.notice(`a group is not deleted: /leave leaves ${ctx.current.name} (its messages stay here)`, true);
      return true;
    }
    default:
      return false;
  }
}
