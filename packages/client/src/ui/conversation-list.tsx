// The conversation list: contacts and groups together, most recently active first; each with its
// unread count, a mark (✓ verified, ! key changed, # a group) and its last activity.
import { Box, Text } from "ink";
import type { ContactView, GroupView } from "../client.js";
import { clock, day } from "./format.js";
import { colour } from "./theme.js";

/** One conversation: with a contact, or a group (names are unique across both). */
export interface ConversationItem {
  readonly name: string;
  readonly contact: ContactView | null;
  readonly group: GroupView | null;
  readonly unread: number;
  readonly lastActivity: number;
}

/** Contacts and groups as one list, most recently active first (then by name). */
export function conversationItems(
  contacts: readonly ContactView[],
  groups: readonly GroupView[],
): ConversationItem[] {
  const items: ConversationItem[] = [
    ...contacts.map((c) => ({
      name: c.contact,
      contact: c,
      group: null,
      unread: c.unread,
      lastActivity: c.lastActivity,
    })),
    ...groups.map((g) => ({
      name: g.group,
      contact: null,
      group: g,
      unread: g.unread,
      lastActivity: g.lastActivity,
    })),
  ];
  return items.sort((a, b) => b.lastActivity - a.lastActivity || a.name.localeCompare(b.name));
}

/** The mark before a name: a group's, or a contact's verification state. */
function markOf(item: ConversationItem): string {
  if (item.group) return "#";
  return item.contact?.keyChanged ? "!" : item.contact?.verified ? "✓" : " ";
}

export function ConversationList(props: {
  readonly items: readonly ConversationItem[];
  readonly selected: string | null;
  readonly width: number;
  readonly height: number;
}) {
  const { items, selected, width, height } = props;
  const today = day(Date.now());
  return (
    <Box
      flexDirection="column"
      width={width}
      height={height}
      borderStyle="single"
      borderRight
      borderTop={false}
      borderBottom={false}
      borderLeft={false}
      overflow="hidden"
    >
      <Text bold>Chats</Text>
      {items.length === 0 ? <Text color={colour("gray")}>none yet: /invite</Text> : null}
      {items.slice(0, Math.max(0, height - 1)).map((c) => {
        // The UI's one date format, short: the time today, else the ISO date.
        const when = c.lastActivity
          ? day(c.lastActivity) === today
            ? clock(c.lastActivity)
            : day(c.lastActivity)
          : "";
        const unread = c.unread > 0 ? ` (${c.unread})` : "";
        const room = Math.max(1, width - 3 - unread.length - when.length - 2);
        const name = [...c.name].slice(0, room).join("");
        // A group I left or was removed from stays, greyed: its history is still here.
        const gone = c.group !== null && !c.group.active;
        return (
          <Text
            key={c.name}
            inverse={c.name === selected}
            bold={c.unread > 0}
            color={c.contact?.keyChanged ? colour("red") : gone ? colour("gray") : undefined}
            wrap="truncate-end"
          >
            {markOf(c)} {name}
            {unread} {when}
          </Text>
        );
      })}
    </Box>
  );
}
