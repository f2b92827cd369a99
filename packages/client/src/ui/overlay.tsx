// Panels drawn over the chat: the key bindings and commands, an invitation, a safety number, a
// group's members.
import { Box, Text } from "ink";
import type { ReactNode } from "react";
import type { MemberView } from "../client.js";
import { when } from "./format.js";
import { type Action, BINDINGS, COMMANDS } from "./keys.js";
import { colour } from "./theme.js";

export type OverlayState =
  | { readonly kind: "help"; readonly scroll: number }
  | { readonly kind: "invite"; readonly code: string; readonly qr: string; readonly expiresAt: number }
  | {
      readonly kind: "verify";
      readonly contact: string;
      readonly safetyNumber: string;
      readonly qr: string;
      readonly verified: boolean;
      readonly keyChanged: boolean;
    }
  | { readonly kind: "members"; readonly group: string; readonly members: readonly MemberView[] };

function fits(qr: string, height: number, width: number): boolean {
  const lines = qr.split("\n");
  return lines.length + 8 <= height && Math.max(...lines.map((l) => [...l].length)) <= width - 2;
}

/** The help's lines: each section's heading, then its entries as [keys, description]. */
function helpLines(): { heading?: string; keys?: string; text?: string }[] {
  const section = (heading: string, entries: readonly (readonly [string, string])[]) => [
    { heading },
    ...entries.map(([keys, text]) => ({ keys, text })),
  ];
  const of = (group: "chat" | "editing") =>
    BINDINGS.filter((b) => b.group === group).map((b) => [b.keys, b.description] as const);
  return [
    ...section("Keys", of("chat")),
    ...section("Editing", of("editing")),
    ...section("Commands", COMMANDS),
  ];
}

const HELP = helpLines();

/** The help's layout in a panel of `width` columns and `height` rows inside its border. */
export function helpLayout(width: number, height: number) {
  // Inside the border and padding; the last row says what scrolls, and Esc.
  const inner = width - 4;
  const rows = Math.max(1, height - 1);
  const columns = inner >= 76 ? 2 : 1;
  const perColumn = Math.ceil(HELP.length / columns);
  const maxScroll = Math.max(0, perColumn - rows);
  return { inner, rows, columns, perColumn, maxScroll, colWidth: Math.floor(inner / columns) };
}

/** The overlay after a scrolling key, or null when the key does not scroll it. */
export function overlayScroll(o: OverlayState, action: Action | null): OverlayState | null {
  if (o.kind !== "help") return null;
  const by =
    action === "historyBack"
      ? -1
      : action === "historyForward"
        ? 1
        : action === "scrollUp"
          ? -10
          : action === "scrollDown"
            ? 10
            : 0;
  if (by === 0) return null;
  // Clamped when drawn (the size is known there); kept within reason here.
  return { ...o, scroll: Math.max(0, Math.min(HELP.length, o.scroll + by)) };
}

function Help({ scroll, width, height }: { scroll: number; width: number; height: number }) {
  const l = helpLayout(width, height);
  const top = Math.min(scroll, l.maxScroll);
  const keyWidth = Math.min(20, Math.floor(l.colWidth * 0.45));
  const cols = Array.from({ length: l.columns }, (_, c) =>
    HELP.slice(c * l.perColumn, (c + 1) * l.perColumn).slice(top, top + l.rows),
  );
  const more = l.maxScroll > 0;
  return (
    <>
      <Box flexDirection="row">
        {cols.map((lines, c) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: the columns are positions
          <Box key={c} flexDirection="column" width={l.colWidth}>
            {lines.map((line, i) =>
              line.heading ? (
                // biome-ignore lint/suspicious/noArrayIndexKey: the lines of a column are positions
                <Text key={i} bold>
                  {line.heading}
                </Text>
              ) : (
                // biome-ignore lint/suspicious/noArrayIndexKey: the lines of a column are positions
                <Text key={i} wrap="truncate-end">
                  {(line.keys ?? "").padEnd(keyWidth)} {line.text}
                </Text>
              ),
            )}
          </Box>
        ))}
      </Box>
      <Text color={colour("gray")}>
        {more
          ? `Up/Down, PageUp/PageDown scroll (${top + 1}-${Math.min(top + l.rows, l.perColumn)} of ${l.perColumn}) · Esc closes`
          : "Esc closes"}
      </Text>
    </>
  );
}

/** One member's line: verification mark, name, and what else is true of it. */
export function memberLine(m: MemberView): { mark: string; text: string } {
  const mark = m.me ? " " : m.keyChanged ? "!" : m.verified ? "✓" : "?";
  const facts = [
    m.me ? "you" : null,
    m.admin ? "admin" : null,
    m.keyChanged ? "KEY CHANGED: /verify before anything is sent" : null,
    !m.me && !m.keyChanged && !m.verified ? "not verified" : null,
    !m.me && !m.contact ? "not a contact" : null,
    m.pendingSession ? "no session yet: messages pass through another member" : null,
  ].filter((f) => f !== null);
  return { mark, text: `${m.member}  ${m.fingerprint}${facts.length > 0 ? `  (${facts.join(", ")})` : ""}` };
}

function Members(props: { group: string; members: readonly MemberView[]; width: number; height: number }) {
  const { group, members, width, height } = props;
  // Inside the border: the heading, the legend and the last line take three rows.
  const room = Math.max(1, height - 2 - 3);
  const shown = members.slice(0, room);
  return (
    <Panel width={width} height={height}>
      <Text bold wrap="truncate-end">
        {group}: {members.length} member{members.length === 1 ? "" : "s"}
      </Text>
      {shown.map((m) => {
        const line = memberLine(m);
        return (
          <Text
            key={m.fingerprint}
            wrap="truncate-end"
            color={m.keyChanged ? colour("red") : m.verified || m.me ? undefined : colour("yellow")}
          >
            {line.mark} {line.text}
          </Text>
        );
      })}
      {members.length > shown.length ? (
        <Text color={colour("gray")}>
          … and {members.length - shown.length} more (`parley group members` lists all)
        </Text>
      ) : null}
      <Text color={colour("gray")} wrap="truncate-end">
        ✓ verified · ? not verified · ! key changed. /verify NAME compares safety numbers · Esc closes
      </Text>
    </Panel>
  );
}

/** A panel over the chat: a rounded border around its lines. */
function Panel({ width, height, children }: { width: number; height: number; children: ReactNode }) {
  return (
    <Box
      flexDirection="column"
      borderStyle="round"
      paddingX={1}
      width={width}
      height={height}
      overflow="hidden"
    >
      {children}
    </Box>
  );
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
  if (state.kind === "invite") {
    // No border here: the code is copied from the screen, and a frame would be copied with it.
    const qr = fits(state.qr, height, width + 2);
    return (
      <Box flexDirection="column" width={width} height={height} overflow="hidden">
        <Text bold>
          Invitation for one person, once; valid until {when(state.expiresAt)}. /copy copies it.
        </Text>
        <Text>{state.code}</Text>
        {qr ? (
          <Text>{state.qr}</Text>
        ) : (
          <Text color={colour("gray")}>
            (a larger terminal shows the QR code; `parley invite --qr` prints it)
          </Text>
        )}
        <Text color={colour("gray")}>Esc closes</Text>
      </Box>
    );
  }
  if (state.kind === "members")
    return <Members group={state.group} members={state.members} width={width} height={height} />;
  return (
    <Panel width={width} height={height}>
      {state.kind === "help" ? (
        <Help scroll={state.scroll} width={width} height={height - 2} />
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
    </Panel>
  );
}
