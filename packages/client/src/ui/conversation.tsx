// The conversation: only the rows that fit are rendered (the window comes from the store), so a
// conversation of any length draws and scrolls in constant time.
import { Box, Text } from "ink";
import type { Row } from "./format.js";
import { authorColour, colour } from "./theme.js";

export function Conversation(props: {
  readonly rows: readonly Row[];
  readonly height: number;
  readonly title: string;
  readonly scrolled: boolean;
  /** Messages that arrived below while scrolled back. */
  readonly newBelow?: number;
}) {
  const visible = props.rows.slice(0, Math.max(0, props.height - 1));
  const below = props.newBelow ?? 0;
  const marker = below > 0 ? `${below >= 1000 ? "999+" : below} new below · End` : "PageDown, End";
  return (
    <Box flexDirection="column" flexGrow={1} height={props.height} paddingLeft={1} overflow="hidden">
      <Text bold wrap="truncate-end">
        {props.title}
        {props.scrolled ? <Text color={colour("yellow")}> (scrolled back: {marker})</Text> : null}
      </Text>
      {visible.map((r) =>
        r.kind === "day" || r.kind === "note" || r.kind === "gap" ? (
          <Text key={r.key} color={colour("gray")} italic={r.kind !== "day"} wrap="truncate-end">
            {r.text}
          </Text>
        ) : r.kind === "head" ? (
          <Text
            key={r.key}
            bold
            color={
              r.mine ? colour("green") : r.author !== undefined ? authorColour(r.author) : colour("cyan")
            }
            wrap="truncate-end"
          >
            {r.text}
          </Text>
        ) : (
          <Text
            key={r.key}
            wrap="truncate-end"
            color={r.status === "failed" || r.status === "expired" ? colour("red") : undefined}
          >
            {r.text}
          </Text>
        ),
      )}
    </Box>
  );
}
