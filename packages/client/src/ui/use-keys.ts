// Keyboard input for the screens. Ink's useInput subscribes in a passive effect, which React runs
// after the frame is painted, so a key typed in that gap reaches the previous render's handler
// (with the state from before the last key) or a screen that has just been replaced: a second
// PageUp in quick succession did nothing, and the first keys typed as the chat appeared could
// vanish. Here one subscription (KeyRouter) lives as long as the app, and each screen's current
// handler is put in place during the commit (a layout effect), before any further key is read.
import { type Key, useInput } from "ink";
import {
  createContext,
  createElement,
  type ReactNode,
  useCallback,
  useContext,
  useLayoutEffect,
  useRef,
} from "react";

export type KeyHandler = (input: string, key: Key) => void;
type Register = (handler: KeyHandler) => () => void;

const RouterContext = createContext<Register | null>(null);

/** The app's one keyboard subscription; the screen that registered last receives the keys. */
export function KeyRouter({ children }: { readonly children: ReactNode }) {
  const current = useRef<KeyHandler | null>(null);
  useInput(useCallback<KeyHandler>((input, key) => current.current?.(input, key), []));
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
  const stable = useCallback<KeyHandler>((input, key) => latest.current(input, key), []);
  useLayoutEffect(() => register?.(stable), [register, stable]);
  // A screen rendered on its own (component tests) subscribes itself.
  useInput(stable, { isActive: register === null });
}
