// Panels drawn over the chat: the key bindings, an invitation, a safety number, a notice.
import { Box, Text } from "ink";
import { BINDINGS, COMMANDS } from "./keys.js";
import { colour } from "./theme.js";

export type OverlayState =
  | { readonly kind: "help" }
  | { readonly kind: "invite"; readonly code: string; readonly qr: string; readonly expiresAt: number }
  | {
      readonly kind: "verify";
      readonly contact: string;
      readonly safetyNumber: string;
      readonly qr: string;
      readonly verified: boolean;
      readonly keyChanged: boolean;
    };

function fits(qr: string, height: number, width: number): boolean {
  const lines = qr.split("\n");
  return lines.length + 8 <= height && Math.max(...lines.map((l) => [...l].length)) <= width - 2;
}

export function Overlay({
  state,
  width,
  height,
}: {
  readonly state: OverlayState;
  readonly width: number;
  readonly height: number;
}) {
  return (
    <Box
      flexDirection="column"
      borderStyle="round"
      paddingX={1}
      width={width}
      height={height}
      overflow="hidden"
    >
      {state.kind === "help" ? (
        <Box flexDirection="row">
          <Box flexDirection="column" width={Math.floor(width / 2) - 1}>
            <Text bold>Keys</Text>
            {BINDINGS.map((b) => (
              <Text key={b.action} wrap="truncate-end">
                {b.keys.padEnd(width >= 100 ? 19 : 12)} {b.description}
              </Text>
            ))}
          </Box>
          <Box flexDirection="column">
            <Text bold>Commands</Text>
            {COMMANDS.map(([c, d]) => (
              <Text key={c} wrap="truncate-end">
                {c.padEnd(14)} {d}
              </Text>
            ))}
          </Box>
        </Box>
      ) : state.kind === "invite" ? (
        <>
          <Text bold>
            Invitation (one person, one time; valid until {new Date(state.expiresAt).toLocaleString()})
          </Text>
          <Text wrap="wrap">{state.code}</Text>
          {fits(state.qr, height, width) ? (
            <Text>{state.qr}</Text>
          ) : (
            <Text color={colour("gray")}>(make the terminal larger to show the QR code)</Text>
          )}
        </>
      ) : (
        <>
          <Text bold>Safety number with {state.contact}</Text>
          <Text>{state.safetyNumber}</Text>
          <Text color={colour("gray")}>
            Compare it with {state.contact} in person or on a call (or scan the QR code).
          </Text>
          {state.keyChanged ? (
            <Text color={colour("red")}>Their identity key CHANGED: confirm only if the numbers match.</Text>
          ) : null}
          {fits(state.qr, height, width) ? <Text>{state.qr}</Text> : null}
          <Text bold>
            {state.verified ? "Verified. Esc closes." : "y: the numbers match, mark verified · Esc: not now"}
          </Text>
        </>
      )}
      <Text color={colour("gray")}>Esc closes</Text>
    </Box>
  );
}
