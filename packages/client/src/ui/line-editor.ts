// The editing model of an input line, kept apart from Ink so it is easy to test: the text, the
// cursor at the end, and the history of lines sent (Up and Down walk it).

export interface LineState {
  readonly text: string;
  readonly history: readonly string[];
  /** Position in history while walking it; history.length means the line being edited. */
  readonly index: number;
  readonly draft: string;
}

export const emptyLine = (history: readonly string[] = []): LineState => ({
  text: "",
  history,
  index: history.length,
  draft: "",
});

/** Control characters a terminal may deliver with typed text (keeping LF, the message's newline). */
const DEL = "\\u007f";
const TYPED_CONTROLS = new RegExp(`[\\u0000-\\u0009\\u000b-\\u001f${DEL}]`, "g");

/** Typed or pasted text. A paste may hold newlines (CR, LF or CRLF): they stay in the message. */
export function insert(s: LineState, input: string): LineState {
  const clean = input.replace(/\r\n?/g, "\n").replace(TYPED_CONTROLS, "");
  return { ...s, text: s.text + clean };
}

export function backspace(s: LineState): LineState {
  return { ...s, text: [...s.text].slice(0, -1).join("") };
}

export function back(s: LineState): LineState {
  if (s.index === 0) return s;
  const draft = s.index === s.history.length ? s.text : s.draft;
  return { ...s, index: s.index - 1, text: s.history[s.index - 1]!, draft };
}

export function forward(s: LineState): LineState {
  if (s.index >= s.history.length) return s;
  const index = s.index + 1;
  return { ...s, index, text: index === s.history.length ? s.draft : s.history[index]! };
}

/** The line is sent: it joins the history (unless it repeats the last one) and the line empties. */
export function submit(s: LineState): { line: string; next: LineState } {
  const line = s.text;
  const history =
    line.trim() === "" || s.history.at(-1) === line ? s.history : [...s.history, line].slice(-500);
  return { line, next: emptyLine(history) };
}

/**
 * Splits what one read from the terminal delivered into text and Enter presses. A chunk that
 * ends in CR is text followed by Enter; CRs inside a chunk come from a paste and are newlines
 * of the message.
 */
export function splitInput(input: string): { text: string; enter: boolean } {
  const enter = /[\r\n]$/.test(input) && input.length > 0;
  return { text: enter ? input.replace(/(\r\n|\r|\n)$/, "") : input, enter };
}
