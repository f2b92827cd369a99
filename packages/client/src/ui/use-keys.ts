// Keyboard input for the screens. Ink's useInput subscribes in a passive effect, which React runs
// after the frame is painted, so a key typed in that gap reaches the previous render's handler
// (with the state from before the last key) or a screen that has just been replaced: a second
// PageUp in quick succession did nothing, and the first keys typed as the chat appeared could
// vanish. Here one subscription (KeyRouter) lives as long as the app, and each screen's current
// handler is put in place during the commit (a layout effect), before any further key is read.
//
// Pastes arrive whole: the terminal is put in bracketed-paste mode (run.tsx), and what it sends
// between ESC[200~ and ESC[201~ reaches the handler as one piece of text with `paste` set, so a
// newline in it is part of the message, never Enter, and a pasted `?` or `y` is only text.
import { writeSync } from "node:fs";
import { type Key, useInput } from "ink";
import {
  createContext,
  createElement,
  type ReactNode,
  useCallback,
  useContext,
  useLayoutEffect,
  useRef,
  useState,
} from "react";

export type KeyHandler = (input: string, key: Key, paste: boolean) => void;
type InkHandler = (input: string, key: Key) => void;
type Register = (handler: KeyHandler) => () => void;

/** Turns on bracketed paste in the terminal; what it returns turns it off again. */
export function bracketedPaste(out: NodeJS.WriteStream & { readonly fd: number }): () => void {
  const off = () => {
    try {
      writeSync(out.fd, "\u001b[?2004l");
    } catch {
      // the terminal is gone
    }
  };
  out.write("\u001b[?2004h");
  // Also on a crash or process.exit, so the shell after us does not receive pastes in brackets.
  process.once("exit", off);
  return () => {
    process.off("exit", off);
    off();
  };
}

// Ink strips the ESC from sequences it does not name.
const PASTE_START = "[200~";
const PASTE_END = "[201~";

/** A paste whose end marker never comes (lost, or a start marker that was typed) ends after this. */
const PASTE_IDLE_MS = 1000;

/** Collects a bracketed paste into one call; everything else passes straight through. */
function pasteAware(deliver: () => KeyHandler): InkHandler {
  let pasted: string | null = null;
  let idle: NodeJS.Timeout | undefined;
  // The paste is delivered with the start marker's key event, stripped of modifiers.
  let plain: Key | undefined;
  const finish = () => {
    clearTimeout(idle);
    const text = (pasted ?? "").replace(/\r\n?/g, "\n").replace(/\n$/, "");
    pasted = null;
    if (text !== "" && plain) deliver()(text, plain, true);
  };
  return (input, key) => {
    if (pasted === null) {
      if (input === PASTE_START) {
        pasted = "";
        plain = { ...key, ctrl: false, meta: false, shift: false, escape: false };
        idle = setTimeout(finish, PASTE_IDLE_MS).unref();
      } else deliver()(input, key, false);
      return;
    }
    // Ctrl+C still quits: what was pasted so far is kept, then the key goes on.
    if (key.ctrl && input === "c") {
      finish();
      deliver()(input, key, false);
      return;
    }
    // A chunk boundary can leave a line break on its own, which Ink reports as a key.
    pasted += input === PASTE_END ? PASTE_END : key.return ? "\n" : key.tab ? "\t" : input;
    // The end marker, whole or split across reads (Ink then passes its two halves as text).
    if (pasted.endsWith(PASTE_END)) {
      pasted = pasted.slice(0, -PASTE_END.length);
      finish();
      return;
    }
    clearTimeout(idle);
    idle = setTimeout(finish, PASTE_IDLE_MS).unref();
  };
}

const RouterContext = createContext<Register | null>(null);

/** The app's one keyboard subscription; the screen that registered last receives the keys. */
export function KeyRouter({ children }: { readonly children: ReactNode }) {
  const current = useRef<KeyHandler | null>(null);
  const [onInput] = useState(() => pasteAware(() => current.current ?? (() => {})));
  useInput(onInput);
  const register = useCallback<Register>((handler) => {
    current.current = handler;
    return () => {
      if (current.current === handler) current.current = null;
    };
  }, []);
  return createElement(RouterContext.Provider, { value: register }, children);
}

/** Calls `handler` for every key, always the handler of the latest committed render. */
export function useKeys(handler: KeyHandler): void {
  const register = useContext(RouterContext);
  const latest = useRef(handler);
  useLayoutEffect(() => {
    latest.current = handler;
  });
  const stable = useCallback<KeyHandler>((input, key, paste) => latest.current(input, key, paste), []);
  useLayoutEffect(() => register?.(stable), [register, stable]);
  // A screen rendered on its own (component tests) subscribes itself.
  const [own] = useState(() => pasteAware(() => stable));
  useInput(own, { isActive: register === null });
}
