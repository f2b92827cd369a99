// The editing model of an input line, kept apart from Ink so it is easy to test: the text, a
// cursor, readline's moves and deletions (by grapheme cluster, so an emoji or an accented letter
// is one character), a kill buffer for Ctrl+Y, and the history of lines sent (Up and Down).
import { graphemes, graphemeWidth } from "./width.js";

export interface LineState {
  readonly text: string;
  /** Index into `text` (UTF-16), always between two grapheme clusters. */
  readonly cursor: number;
  readonly history: readonly string[];
  /** Position in history while walking it; history.length means the line being edited. */
  readonly index: number;
  readonly draft: string;
  /** What the last kill (Ctrl+U/K/W, Alt+D/Backspace) removed, for Ctrl+Y. */
  readonly killed: string;
}

export const emptyLine = (history: readonly string[] = [], killed = ""): LineState => ({
  text: "",
  cursor: 0,
  history,
  index: history.length,
  draft: "",
  killed,
});

/** Control characters a terminal may deliver with typed text (keeping LF, the message's newline). */
const DEL = "\\u007f";
const TYPED_CONTROLS = new RegExp(`[\\u0000-\\u0009\\u000b-\\u001f${DEL}]`, "g");

const edit = (s: LineState, text: string, cursor: number): LineState => ({ ...s, text, cursor });

/** Typed or pasted text at the cursor. A paste may hold newlines (CR, LF or CRLF): they stay. */
export function insert(s: LineState, input: string): LineState {
  const clean = input.replace(/\r\n?/g, "\n").replace(TYPED_CONTROLS, "");
  return edit(s, s.text.slice(0, s.cursor) + clean + s.text.slice(s.cursor), s.cursor + clean.length);
}

/** The grapheme boundary before `at` (0 at the start). */
function before(text: string, at: number): number {
  const head = graphemes(text.slice(0, at));
  return at - (head.at(-1)?.length ?? 0);
}

/** The grapheme boundary after `at` (text.length at the end). */
function after(text: string, at: number): number {
  const first = graphemes(text.slice(at))[0];
  return at + (first?.length ?? 0);
}

const lineStartAt = (text: string, at: number) => text.lastIndexOf("\n", at - 1) + 1;
const lineEndAt = (text: string, at: number) => {
  const i = text.indexOf("\n", at);
  return i === -1 ? text.length : i;
};

const isWord = (g: string) => /[\p{L}\p{N}_]/u.test(g);

/** Start of the word before the cursor; `word` says what a word is made of. */
function wordStart(text: string, at: number, word: (g: string) => boolean): number {
  let i = at;
  while (i > 0 && !word(text.slice(before(text, i), i))) i = before(text, i);
  while (i > 0 && word(text.slice(before(text, i), i))) i = before(text, i);
  return i;
}

/** End of the word after the cursor. */
function wordEnd(text: string, at: number, word: (g: string) => boolean): number {
  let i = at;
  while (i < text.length && !word(text.slice(i, after(text, i)))) i = after(text, i);
  while (i < text.length && word(text.slice(i, after(text, i)))) i = after(text, i);
  return i;
}

export const left = (s: LineState) => edit(s, s.text, before(s.text, s.cursor));
export const right = (s: LineState) => edit(s, s.text, after(s.text, s.cursor));
export const lineStart = (s: LineState) => edit(s, s.text, lineStartAt(s.text, s.cursor));
export const lineEnd = (s: LineState) => edit(s, s.text, lineEndAt(s.text, s.cursor));
export const wordLeft = (s: LineState) => edit(s, s.text, wordStart(s.text, s.cursor, isWord));
export const wordRight = (s: LineState) => edit(s, s.text, wordEnd(s.text, s.cursor, isWord));

/** Removes text between `from` and `to` (either order), keeping it for Ctrl+Y when `kill`. */
function cut(s: LineState, from: number, to: number, kill: boolean): LineState {
  const [a, b] = from <= to ? [from, to] : [to, from];
  if (a === b) return s;
  const next = edit(s, s.text.slice(0, a) + s.text.slice(b), a);
  return kill ? { ...next, killed: s.text.slice(a, b) } : next;
}

export const backspace = (s: LineState) => cut(s, before(s.text, s.cursor), s.cursor, false);
export const deleteForward = (s: LineState) => cut(s, s.cursor, after(s.text, s.cursor), false);
/** Ctrl+U: to the start of the line (the whole line before the cursor, as in bash). */
export const killLineStart = (s: LineState) => cut(s, lineStartAt(s.text, s.cursor), s.cursor, true);
/** Ctrl+K: to the end of the line. */
export const killLineEnd = (s: LineState) => cut(s, s.cursor, lineEndAt(s.text, s.cursor), true);
/** Ctrl+W: back to the previous whitespace (readline's unix-word-rubout). */
export const killWordBack = (s: LineState) =>
  cut(
    s,
    wordStart(s.text, s.cursor, (g) => !/\s/u.test(g)),
    s.cursor,
    true,
  );
/** Alt+Backspace: back to the start of the word (letters and digits). */
export const killWordBackAlnum = (s: LineState) =>
  cut(s, wordStart(s.text, s.cursor, isWord), s.cursor, true);
/** Alt+D: to the end of the word. */
export const killWordForward = (s: LineState) => cut(s, s.cursor, wordEnd(s.text, s.cursor, isWord), true);
/** Ctrl+Y: puts back what was killed last. */
export const yank = (s: LineState) => insert(s, s.killed);

/** The line above the cursor in a multi-line message, at the same column; null on the first line. */
export function lineUp(s: LineState): LineState | null {
  const start = lineStartAt(s.text, s.cursor);
  if (start === 0) return null;
  const prevStart = lineStartAt(s.text, start - 1);
  return edit(s, s.text, columnAt(s.text, prevStart, start - 1, s.cursor - start));
}

/** The line below the cursor; null on the last line. */
export function lineDown(s: LineState): LineState | null {
  const end = lineEndAt(s.text, s.cursor);
  if (end === s.text.length) return null;
  const start = lineStartAt(s.text, s.cursor);
  return edit(s, s.text, columnAt(s.text, end + 1, lineEndAt(s.text, end + 1), s.cursor - start));
}

/** The boundary in [from, to] closest to `offset` code units from `from`. */
function columnAt(text: string, from: number, to: number, offset: number): number {
  let i = from;
  while (i < to && i - from < offset) i = after(text, i);
  return Math.min(i, to);
}

export function back(s: LineState): LineState {
  if (s.index === 0) return s;
  const draft = s.index === s.history.length ? s.text : s.draft;
  const text = s.history[s.index - 1]!;
  return { ...s, index: s.index - 1, text, cursor: text.length, draft };
}

export function forward(s: LineState): LineState {
  if (s.index >= s.history.length) return s;
  const index = s.index + 1;
  const text = index === s.history.length ? s.draft : s.history[index]!;
  return { ...s, index, text, cursor: text.length };
}

/** The line is sent: it joins the history (unless it repeats the last one) and the line empties. */
export function submit(s: LineState): { line: string; next: LineState } {
  const line = s.text;
  const history =
    line.trim() === "" || s.history.at(-1) === line ? s.history : [...s.history, line].slice(-500);
  return { line, next: emptyLine(history, s.killed) };
}

/** What the input line shows in `width` columns: the cursor's line, scrolled so the cursor shows. */
export interface LineView {
  /** "2/3 " when the message has several lines, else "". */
  readonly prefix: string;
  readonly before: string;
  /** The character under the cursor (" " at the end of the line). */
  readonly at: string;
  readonly after: string;
}

export function lineView(s: LineState, width: number, mask?: string): LineView {
  const start = lineStartAt(s.text, s.cursor);
  const end = lineEndAt(s.text, s.cursor);
  const lines = s.text.split("\n");
  const prefix = lines.length > 1 ? `${s.text.slice(0, start).split("\n").length}/${lines.length} ` : "";
  const show = (t: string) => (mask ? graphemes(t).map(() => mask) : graphemes(t));
  const head = show(s.text.slice(start, s.cursor));
  const rest = show(s.text.slice(s.cursor, end));
  const at = rest[0] ?? " ";
  const tailGs = rest.slice(1);
  const room = Math.max(4, width - prefix.length - graphemeWidth(at));
  return { prefix, at, ...fitAround(head, tailGs, room) };
}

/** As much of `head` (ending at the cursor) and `tail` as fits in `room` columns, cut with "…". */
function fitAround(head: string[], tail: string[], room: number): { before: string; after: string } {
  const w = (gs: string[]) => gs.reduce((n, g) => n + graphemeWidth(g), 0);
  // The text before the cursor gets the room the text after it leaves, up to two thirds.
  const headBudget = room - Math.min(w(tail), Math.floor(room / 3));
  let used = 0;
  let i = head.length;
  while (i > 0 && used + graphemeWidth(head[i - 1]!) <= headBudget) used += graphemeWidth(head[--i]!);
  let before = head.slice(i);
  if (i > 0) {
    while (used + 1 > headBudget && before.length > 0) used -= graphemeWidth(before.shift()!);
    before = ["…", ...before];
    used += 1;
  }
  let j = 0;
  let tailUsed = 0;
  while (j < tail.length && used + tailUsed + graphemeWidth(tail[j]!) <= room)
    tailUsed += graphemeWidth(tail[j++]!);
  let after = tail.slice(0, j);
  if (j < tail.length) {
    while (used + tailUsed + 1 > room && after.length > 0) tailUsed -= graphemeWidth(after.pop()!);
    after = [...after, "…"];
  }
  return { before: before.join(""), after: after.join("") };
}
