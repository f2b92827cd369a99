// The contact list: name, unread count, verified or key-changed mark, last activity.
import { Box, Text } from "ink";
import type { ContactView } from "../client.js";
import { clock, day } from "./format.js";
import { colour } from "./theme.js";

export function ContactList(props: {
  readonly contacts: readonly ContactView[];
  readonly selected: string | null;
  readonly width: number;
  readonly height: number;
}) {
  const { contacts, selected, width, height } = props;
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
      <Text bold>Contacts</Text>
      {contacts.length === 0 ? <Text color={colour("gray")}>none yet: /invite</Text> : null}
      {contacts.slice(0, Math.max(0, height - 1)).map((c) => {
        const mark = c.keyChanged ? "!" : c.verified ? "✓" : " ";
        // The UI's one date format, short: the time today, else the ISO date.
        const when = c.lastActivity
          ? day(c.lastActivity) === today
            ? clock(c.lastActivity)
            : day(c.lastActivity)
          : "";
        const unread = c.unread > 0 ? ` (${c.unread})` : "";
        const room = Math.max(1, width - 3 - unread.length - when.length - 2);
        const name = [...c.contact].slice(0, room).join("");
        return (
          <Text
            key={c.contact}
            inverse={c.contact === selected}
            bold={c.unread > 0}
            color={c.keyChanged ? colour("red") : undefined}
            wrap="truncate-end"
          >
            {mark} {name}
            {unread} {when}
          </Text>
        );
      })}
    </Box>
  );
}
