// The status bar: each relay's connection, the outbox, the retention in force, local-only mode.
import { Box, Text } from "ink";
import { humanDuration } from "../text.js";
import { colour } from "./theme.js";

export interface StatusInfo {
  readonly outbox: number;
  readonly relays: readonly { url: string; connected: boolean; retentionSeconds: number | null }[];
  readonly localOnly: boolean;
}

export function StatusBar({ info, width }: { readonly info: StatusInfo; readonly width: number }) {
  const relays = info.relays.map((r) => {
    const host = r.url.replace(/^wss?:\/\//, "");
    const keep = r.retentionSeconds === null ? "" : ` keeps ${humanDuration(r.retentionSeconds)}`;
    return `${r.connected ? "●" : "○"} ${host}${keep}`;
  });
  const parts = [
    ...(info.localOnly ? ["local-only"] : []),
    relays.join("  ") || "no relay",
    `outbox ${info.outbox}`,
    "? keys",
  ];
  return (
    <Box width={width}>
      <Text inverse wrap="truncate-end">
        {` ${parts.join(" | ")}`.padEnd(width)}
      </Text>
    </Box>
  );
}

export const offlineMark = (connected: boolean) => (connected ? colour("green") : colour("red"));
