// The conversation: only the rows that fit are rendered (the window comes from the store), so a
// conversation of any length draws and scrolls in constant time.
import { Box, Text } from "ink";
import type { Row } from "./format.js";
import { colour } from "./theme.js";

export function Conversation(props: {
  readonly rows: readonly Row[];
  readonly height: number;
  readonly title: string;
  readonly scrolled: boolean;
}) {
  const visible = props.rows.slice(0, Math.max(0, props.height - 1));
  return (
    <Box flexDirection="column" flexGrow={1} height={props.height} paddingLeft={1} overflow="hidden">
      <Text bold wrap="truncate-end">
        {props.title}
        {props.scrolled ? <Text color={colour("yellow")}> (scrolled back: PageDown, End)</Text> : null}
      </Text>
      {visible.map((r) =>
        r.kind === "day" ? (
          <Text key={r.key} color={colour("gray")}>
            {r.text}
          </Text>
        ) : r.kind === "head" ? (
          <Text key={r.key} bold color={r.mine ? colour("green") : colour("cyan")} wrap="truncate-end">
            {r.text}
          </Text>
        ) : (
          <Text key={r.key} wrap="truncate-end">
            {r.text}
          </Text>
        ),
      )}
    </Box>
  );
}
