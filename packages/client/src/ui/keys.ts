// Every key binding of the terminal UI, in one table. The input layer (use-keys.ts) reads it; the
// `?` overlay prints it. A binding names a key the way Ink's useInput reports it.
import type { Key } from "ink";

export type Action =
  | "send"
  | "newline"
  | "historyBack"
  | "historyForward"
  | "nextContact"
  | "previousContact"
  | "scrollUp"
  | "scrollDown"
  | "scrollTop"
  | "scrollBottom"
  | "help"
  | "close"
  | "quit"
  | "confirm";

export interface Binding {
  readonly action: Action;
  readonly keys: string;
  readonly description: string;
  readonly matches: (input: string, key: Key) => boolean;
}

export const BINDINGS: readonly Binding[] = [
  {
    action: "send",
    keys: "Enter",
    description: "send the message, or run a /command",
    matches: (_, k) => k.return && !k.meta,
  },
  {
    action: "newline",
    keys: "Alt+Enter",
    description: "new line in the message",
    matches: (_, k) => k.return && k.meta,
  },
  {
    action: "historyBack",
    keys: "Up",
    description: "previous line you typed",
    matches: (_, k) => k.upArrow && !k.meta,
  },
  {
    action: "historyForward",
    keys: "Down",
    description: "next line you typed",
    matches: (_, k) => k.downArrow && !k.meta,
  },
  {
    action: "nextContact",
    keys: "Tab / Ctrl+N",
    description: "next contact",
    matches: (i, k) => (k.tab && !k.shift) || (k.ctrl && i === "n"),
  },
  {
    action: "previousContact",
    keys: "Shift+Tab / Ctrl+P",
    description: "previous contact",
    matches: (i, k) => (k.tab && k.shift) || (k.ctrl && i === "p"),
  },
  {
    action: "scrollUp",
    keys: "PageUp",
    description: "scroll the conversation back",
    matches: (_, k) => k.pageUp,
  },
  {
    action: "scrollDown",
    keys: "PageDown",
    description: "scroll the conversation forward",
    matches: (_, k) => k.pageDown,
  },
  {
    action: "scrollTop",
    keys: "Home",
    description: "the first message of the conversation",
    matches: (_, k) => k.home,
  },
  {
    action: "scrollBottom",
    keys: "End",
    description: "the newest message (and follow new ones)",
    matches: (_, k) => k.end,
  },
  { action: "help", keys: "?", description: "this list (on an empty input line)", matches: (i) => i === "?" },
  { action: "close", keys: "Esc", description: "close an overlay", matches: (_, k) => k.escape },
  {
    action: "confirm",
    keys: "y",
    description: "confirm a safety number (in /verify)",
    matches: (i) => i === "y",
  },
  { action: "quit", keys: "Ctrl+C", description: "quit", matches: (i, k) => k.ctrl && i === "c" },
];

export function actionFor(input: string, key: Key): Action | null {
  return BINDINGS.find((b) => b.matches(input, key))?.action ?? null;
}

export const COMMANDS: readonly [string, string][] = [
  ["/invite", "a one-time invitation code and its QR code"],
  ["/accept CODE", "add the person whose code this is"],
  ["/verify", "the safety number (and QR) of this contact; y confirms"],
  ["/rename NAME", "rename this contact (names are local)"],
  ["/delete", "delete this contact; /delete history deletes only the messages"],
  ["/relay [URL]", "show or set your default relay"],
  ["/help", "commands and keys"],
  ["/quit", "quit"],
];
