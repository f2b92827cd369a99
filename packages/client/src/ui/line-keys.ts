// The input line's keys: an editing action applied to a line, shared by the prompts and the chat.
import type { Action } from "./keys.js";
import {
  backspace,
  deleteForward,
  killLineEnd,
  killLineStart,
  killWordBack,
  killWordBackAlnum,
  killWordForward,
  type LineState,
  left,
  lineEnd,
  lineStart,
  right,
  wordLeft,
  wordRight,
  yank,
} from "./line-editor.js";

const EDITS: Partial<Record<Action, (s: LineState) => LineState>> = {
  left,
  right,
  wordLeft,
  wordRight,
  lineStart,
  lineEnd,
  deleteBack: backspace,
  deleteForward,
  killLineStart,
  killLineEnd,
  killWordBack,
  killWordBackAlnum,
  killWordForward,
  yank,
};

/** The line after `action`, or null when the action is not an edit. */
export function editLine(s: LineState, action: Action): LineState | null {
  const f = EDITS[action];
  return f ? f(s) : null;
}
