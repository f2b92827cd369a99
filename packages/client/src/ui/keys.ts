// Every key binding of the terminal UI, in one table. The chat screen reads it; the `?` overlay
// prints it. A binding names keys as KeystrokeParser reports them (keystrokes.ts).
import type { Keystroke } from "./keystrokes.js";

export type Action =
  // the conversation and the screen
  | "send"
  | "newline"
  | "nextContact"
  | "previousContact"
  | "scrollUp"
  | "scrollDown"
  | "scrollTop"
  | "scrollBottom"
  | "help"
  | "close"
  | "quit"
  | "confirm"
  // the input line (readline's keys)
  | "historyBack"
  | "historyForward"
  | "left"
  | "right"
  | "wordLeft"
  | "wordRight"
  | "lineStart"
  | "lineEnd"
  | "deleteBack"
  | "deleteForward"
  | "killLineStart"
  | "killLineEnd"
  | "killWordBack"
  | "killWordBackAlnum"
  | "killWordForward"
  | "yank";

export interface Binding {
  readonly action: Action;
  readonly keys: string;
  readonly description: string;
  /** Shown in the help overlay's first column (the rest under "Editing"). */
  readonly group: "chat" | "editing";
  readonly matches: (k: Keystroke) => boolean;
}

const plain = (k: Keystroke) => !k.ctrl && !k.meta;
const is = (k: Keystroke, name: Keystroke["name"]) => k.name === name;
const ctrl = (k: Keystroke, letter: string) => k.ctrl && !k.meta && k.name === "char" && k.text === letter;
const alt = (k: Keystroke, letter: string) => k.meta && !k.ctrl && k.name === "char" && k.text === letter;

export const BINDINGS: readonly Binding[] = [
  {
    action: "send",
    keys: "Enter",
    description: "send, or run a /command",
    group: "chat",
    matches: (k) => is(k, "return") && !k.meta && !k.ctrl,
  },
  {
    action: "newline",
    keys: "Alt+Enter",
    description: "new line in the message",
    group: "chat",
    matches: (k) => is(k, "return") && k.meta,
  },
  {
    action: "nextContact",
    keys: "Tab, Ctrl+N",
    description: "next conversation",
    group: "chat",
    matches: (k) => (is(k, "tab") && !k.shift) || ctrl(k, "n"),
  },
  {
    action: "previousContact",
    keys: "Shift+Tab, Ctrl+P",
    description: "previous conversation",
    group: "chat",
    matches: (k) => (is(k, "tab") && k.shift) || ctrl(k, "p"),
  },
  {
    action: "scrollUp",
    keys: "PageUp",
    description: "scroll back",
    group: "chat",
    matches: (k) => is(k, "pageup"),
  },
  {
    action: "scrollDown",
    keys: "PageDown",
    description: "scroll forward",
    group: "chat",
    matches: (k) => is(k, "pagedown"),
  },
  {
    action: "scrollTop",
    keys: "Ctrl+Home",
    description: "first message (Home on an empty line)",
    group: "chat",
    matches: (k) => is(k, "home") && (k.ctrl || k.meta),
  },
  {
    action: "scrollBottom",
    keys: "Ctrl+End",
    description: "newest message (End on an empty line)",
    group: "chat",
    matches: (k) => is(k, "end") && (k.ctrl || k.meta),
  },
  {
    action: "help",
    keys: "?, F1",
    description: "this help (? on an empty line)",
    group: "chat",
    matches: (k) => (plain(k) && k.name === "char" && k.text === "?") || is(k, "f1"),
  },
  {
    action: "close",
    keys: "Esc",
    description: "close a panel, clear a notice",
    group: "chat",
    matches: (k) => is(k, "escape"),
  },
  {
    action: "confirm",
    keys: "y",
    description: "numbers match (in /verify)",
    group: "chat",
    matches: (k) => plain(k) && k.name === "char" && k.text === "y",
  },
  { action: "quit", keys: "Ctrl+C", description: "quit", group: "chat", matches: (k) => ctrl(k, "c") },
  {
    action: "historyBack",
    keys: "Up",
    description: "previous line sent",
    group: "editing",
    matches: (k) => is(k, "up") && plain(k),
  },
  {
    action: "historyForward",
    keys: "Down",
    description: "next line sent",
    group: "editing",
    matches: (k) => is(k, "down") && plain(k),
  },
  {
    action: "wordLeft",
    keys: "Alt+B, Ctrl+Left",
    description: "word left",
    group: "editing",
    matches: (k) => alt(k, "b") || (is(k, "left") && (k.ctrl || k.meta)),
  },
  {
    action: "wordRight",
    keys: "Alt+F, Ctrl+Right",
    description: "word right",
    group: "editing",
    matches: (k) => alt(k, "f") || (is(k, "right") && (k.ctrl || k.meta)),
  },
  {
    action: "left",
    keys: "Left, Ctrl+B",
    description: "character left",
    group: "editing",
    matches: (k) => (is(k, "left") && plain(k)) || ctrl(k, "b"),
  },
  {
    action: "right",
    keys: "Right, Ctrl+F",
    description: "character right",
    group: "editing",
    matches: (k) => (is(k, "right") && plain(k)) || ctrl(k, "f"),
  },
  {
    action: "lineStart",
    keys: "Home, Ctrl+A",
    description: "start of the line",
    group: "editing",
    matches: (k) => (is(k, "home") && plain(k)) || ctrl(k, "a"),
  },
  {
    action: "lineEnd",
    keys: "End, Ctrl+E",
    description: "end of the line",
    group: "editing",
    matches: (k) => (is(k, "end") && plain(k)) || ctrl(k, "e"),
  },
  {
    action: "killWordBackAlnum",
    keys: "Alt+Backspace",
    description: "delete the word before",
    group: "editing",
    matches: (k) => is(k, "backspace") && k.meta,
  },
  {
    action: "deleteBack",
    keys: "Backspace, Ctrl+H",
    description: "delete the character before",
    group: "editing",
    matches: (k) => is(k, "backspace") && !k.meta,
  },
  {
    action: "deleteForward",
    keys: "Delete, Ctrl+D",
    description: "delete the character under",
    group: "editing",
    matches: (k) => (is(k, "delete") && !k.meta) || ctrl(k, "d"),
  },
  {
    action: "killWordForward",
    keys: "Alt+D",
    description: "delete the word after",
    group: "editing",
    matches: (k) => alt(k, "d") || (is(k, "delete") && (k.meta || k.ctrl)),
  },
  {
    action: "killLineStart",
    keys: "Ctrl+U",
    description: "delete to the start",
    group: "editing",
    matches: (k) => ctrl(k, "u"),
  },
  {
    action: "killLineEnd",
    keys: "Ctrl+K",
    description: "delete to the end",
    group: "editing",
    matches: (k) => ctrl(k, "k"),
  },
  {
    action: "killWordBack",
    keys: "Ctrl+W",
    description: "delete back to a space",
    group: "editing",
    matches: (k) => ctrl(k, "w"),
  },
  {
    action: "yank",
    keys: "Ctrl+Y",
    description: "put back what was deleted",
    group: "editing",
    matches: (k) => ctrl(k, "y"),
  },
];

export function actionFor(k: Keystroke): Action | null {
  return BINDINGS.find((b) => b.matches(k))?.action ?? null;
}

/** A key that types its text into the input line. */
export const typed = (k: Keystroke): boolean => k.name === "char" && !k.ctrl && !k.meta && k.text !== "";

export const COMMANDS: readonly [string, string][] = [
  ["/invite", "a one-time invitation code (and QR)"],
  ["/copy", "copy the last invitation code"],
  ["/accept CODE [NAME]", "add the person whose code it is"],
  ["/verify [NAME]", "a contact's safety number; y confirms"],
  ["/rename NAME", "rename this contact (local) or group (for all)"],
  ["/delete", "delete this contact"],
  ["/delete history", "delete only the messages"],
  ["/file PATH", "send a file (Tab completes the path)"],
  ["/save [NAME]", "fetch the newest file offered here"],
  ["/view [NAME]", "show a saved picture (kitty, Ghostty, iTerm2, WezTerm)"],
  ["/group new NAME A B…", "a group with these contacts"],
  ["/add CONTACT…", "add contacts to this group"],
  ["/kick MEMBER", "remove a member from this group"],
  ["/admin MEMBER", "make a member an admin"],
  ["/members", "this group's members, verified or not"],
  ["/leave", "leave this group"],
  ["/relay [URL]", "show or set your default relay"],
  ["/help", "commands and keys"],
  ["/quit", "quit"],
];
