// Keyboard input for the screens. The UI reads the terminal itself (not through Ink's useInput):
// every read goes through KeystrokeParser, so each key is its own event however the terminal
// chunked them, and a paste arrives whole (bracketed-paste mode, turned on in run.tsx).
//
// One KeyQueue lives as long as the app and hands each event to the screen that registered last.
// Keys are never dropped:
// - a screen that is busy ("unlocking…", "starting your personal relay…") registers as busy, and
//   the keys typed meanwhile wait in the queue, then go to whatever input comes next, as a shell's
//   type-ahead does; only Ctrl+C goes through at once;
// - between two screens (no handler registered) keys wait too;
// - each event is handled on its own, and the next one is handed over only once React has
//   committed the render it caused (every key bumps a counter in the screen's state, whose layout
//   effect reports the commit), so the second of two PageUps read in one chunk sees where the
//   first one went, and keys after an Enter that makes the screen busy wait;
// - the handler of the latest committed render is put in place during the commit (a layout
//   effect), not after the frame is painted, as Ink's useInput does (a passive effect).
import { writeSync } from "node:fs";
import { useStdin } from "ink";
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
import { type InputEvent, type Keystroke, KeystrokeParser } from "./keystrokes.js";

export type KeyHandler = (event: Keystroke | { kind: "paste"; text: string }) => void;
export type { InputEvent, Keystroke } from "./keystrokes.js";

/** How long a lone ESC waits for the rest of a sequence before it is the Escape key. */
export const ESCAPE_MS = 80;
/** A paste whose end marker never comes (lost, or a start marker that was typed) ends after this. */
export const PASTE_IDLE_MS = 1000;
/** Type-ahead kept while a screen is busy; beyond it the oldest keys are dropped (and counted). */
export const QUEUE_LIMIT = 100_000;

const isQuit = (e: InputEvent) => e.kind === "key" && e.ctrl && e.name === "char" && e.text === "c";

interface Registration {
  readonly handler: KeyHandler;
  /** Keys the screen treats alike as plain text: a run of them is handed over as one (see pump). */
  readonly joinable: ((k: Keystroke) => boolean) | undefined;
  busy: boolean;
  setBusy(b: boolean): void;
  /** The screen's render after its last key is committed. */
  committed(): void;
  remove(): void;
}

/** The app's keyboard: parses reads, queues events, hands them to the current screen. */
export class KeyQueue {
  private readonly parser = new KeystrokeParser();
  private readonly queue: InputEvent[] = [];
  private current: Registration | null = null;
  /** The screen whose last key's render has not been committed yet. */
  private awaiting: Registration | null = null;
  private timer: NodeJS.Timeout | undefined;
  private scheduled: NodeJS.Immediate | undefined;
  /** Whether the terminal has focus (focus reporting); true until it says otherwise. */
  focused = true;
  /** Keys dropped because the queue was full. */
  dropped = 0;

  constructor(private readonly onError: (e: unknown) => void = rethrow) {}

  /** One read from the terminal. */
  feed(chunk: string | Uint8Array): void {
    clearTimeout(this.timer);
    this.accept(this.parser.push(chunk));
    if (this.parser.pending) {
      const wait = this.parser.inPaste ? PASTE_IDLE_MS : ESCAPE_MS;
      this.timer = setTimeout(() => this.accept(this.parser.flush()), wait);
      this.timer.unref?.();
    }
  }

  /** Makes `handler` the receiver of keys; what it returns takes it away again. */
  register(handler: KeyHandler, busy: boolean, joinable?: (k: Keystroke) => boolean): Registration {
    const reg: Registration = {
      handler,
      joinable,
      busy,
      setBusy: (b) => {
        if (reg.busy === b) return;
        reg.busy = b;
        this.later();
      },
      committed: () => {
        if (this.awaiting !== reg) return;
        this.awaiting = null;
        // Not from inside React's commit: the next key's updates start a render of their own.
        this.later();
      },
      remove: () => {
        if (this.current === reg) this.current = null;
        if (this.awaiting === reg) this.awaiting = null;
      },
    };
    this.current = reg;
    this.awaiting = null;
    this.later();
    return reg;
  }

  /** Events waiting for a screen that is not busy. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Resolves once every key read so far has been handled and its render committed (tests). */
  async settled(): Promise<void> {
    while (this.queue.length > 0 || this.awaiting !== null || this.parser.pending) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  dispose(): void {
    clearTimeout(this.timer);
    clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.queue.length = 0;
    this.current = null;
    this.awaiting = null;
  }

  private accept(events: InputEvent[]): void {
    for (const e of events) {
      if (e.kind === "focus") {
        this.focused = e.focused;
        continue;
      }
      // Ctrl+C is never kept waiting behind type-ahead or a busy screen.
      if (isQuit(e) && this.current) {
        this.deliver(this.current, e);
        continue;
      }
      if (this.queue.length >= QUEUE_LIMIT) {
        this.queue.shift();
        this.dropped++;
      }
      this.queue.push(e);
    }
    this.pump();
  }

  private later(): void {
    if (this.scheduled === undefined) {
      this.scheduled = setImmediate(() => {
        this.scheduled = undefined;
        this.pump();
      });
    }
  }

  private pump(): void {
    while (this.queue.length > 0 && this.current && !this.current.busy && this.awaiting === null) {
      const reg = this.current;
      // The handler's updates, and a commit marker (useKeys), render together; the next key is
      // handed over once that render is committed, or a new screen has registered.
      this.awaiting = reg;
      this.deliver(reg, this.next(reg));
    }
  }

  /**
   * The next event for `reg`. Typed characters that the screen declares joinable (it does the
   * same with each: inserts it, or ignores it) go as one keystroke holding all their text: the
   * effect is that of handing them over one by one, at the cost of one render instead of one per
   * character, so a burst of typing or an unbracketed paste keeps up with the terminal. A key the
   * screen binds to an action ("?" on an empty line, "y" in /verify) is never joined.
   */
  private next(reg: Registration): InputEvent {
    const first = this.queue.shift()!;
    const join = reg.joinable;
    if (!join || first.kind !== "key" || !join(first)) return first;
    let text = first.text;
    while (this.queue.length > 0) {
      const k = this.queue[0]!;
      if (k.kind !== "key" || !join(k)) break;
      text += k.text;
      this.queue.shift();
    }
    return text === first.text ? first : { ...first, text };
  }

  private deliver(reg: Registration, e: InputEvent): void {
    if (e.kind === "focus") return;
    try {
      reg.handler(e);
    } catch (err) {
      this.onError(err);
    }
  }
}

function rethrow(e: unknown): never {
  throw e;
}

/** Turns on bracketed paste and focus reporting in the terminal; what it returns turns them off. */
export function terminalModes(out: NodeJS.WriteStream & { readonly fd: number }): () => void {
  const off = () => {
    try {
      writeSync(out.fd, "\u001b[?2004l\u001b[?1004l");
    } catch {
      // the terminal is gone
    }
  };
  out.write("\u001b[?2004h\u001b[?1004h");
  // Also on a crash or process.exit, so the shell after us does not receive pastes in brackets.
  process.once("exit", off);
  return () => {
    process.off("exit", off);
    off();
  };
}

type Readable = ReturnType<typeof useStdin>["stdin"];

/** Feeds `queue` from Ink's stdin (the terminal, or a test's fake) while the component is mounted. */
function useFeed(queue: KeyQueue, active: boolean): void {
  const { stdin } = useStdin();
  useLayoutEffect(() => {
    if (!active) return;
    const s = stdin as Readable & { setRawMode?: (on: boolean) => void; isTTY?: boolean };
    const onData = (chunk: string | Uint8Array) => queue.feed(chunk);
    if (s.isTTY && typeof s.setRawMode === "function") s.setRawMode(true);
    s.on("data", onData);
    s.resume?.();
    return () => {
      s.off("data", onData);
      s.pause?.();
      queue.dispose();
    };
  }, [stdin, queue, active]);
}

const QueueContext = createContext<KeyQueue | null>(null);

/**
 * The app's one keyboard reader; the screen that registered last receives the keys. An error
 * thrown by a key handler goes to `onError`, or else is thrown again while rendering, so that the
 * nearest error boundary shows it and redraws (the keyboard is never left dead).
 */
export function KeyRouter({
  children,
  onError,
  queue: given,
}: {
  readonly children: ReactNode;
  readonly onError?: (e: unknown) => void;
  /** A queue made by the caller (tests wait on it with `settled()`). */
  readonly queue?: KeyQueue;
}) {
  const [failed, setFailed] = useState<{ error: unknown } | null>(null);
  const [queue] = useState(() => given ?? new KeyQueue(onError ?? ((error) => setFailed({ error }))));
  useFeed(queue, true);
  if (failed) {
    setFailed(null);
    throw failed.error;
  }
  return createElement(QueueContext.Provider, { value: queue }, children);
}

/** The app's key queue (for the terminal's focus, and tests). */
export function useKeyQueue(): KeyQueue | null {
  return useContext(QueueContext);
}

/**
 * Calls `handler` for every key and paste, always the handler of the latest committed render.
 * While `busy`, keys wait (type-ahead) and reach the handler once it is not busy any more, or
 * the next screen's handler.
 */
export function useKeys(
  handler: KeyHandler,
  options: { readonly busy?: boolean; readonly joinable?: (k: Keystroke) => boolean } = {},
): void {
  const shared = useContext(QueueContext);
  // A screen rendered on its own (component tests) reads the keyboard itself.
  const [own] = useState(() => (shared ? null : new KeyQueue()));
  useFeed(own ?? (shared as KeyQueue), own !== null);
  const queue = shared ?? own!;
  const latest = useRef(handler);
  const busy = options.busy ?? false;
  const registration = useRef<Registration | null>(null);
  // Bumped with every key: its commit tells the queue the key's updates are on screen.
  const [handled, setHandled] = useState(0);
  useLayoutEffect(() => {
    latest.current = handler;
  });
  const stable = useCallback<KeyHandler>((e) => {
    try {
      latest.current(e);
    } finally {
      setHandled((n) => n + 1);
    }
  }, []);
  const joinable = useRef(options.joinable);
  joinable.current = options.joinable;
  const stableJoin = useCallback((k: Keystroke) => joinable.current?.(k) ?? false, []);
  // biome-ignore lint/correctness/useExhaustiveDependencies: busy is applied by the effect below
  useLayoutEffect(() => {
    const r = queue.register(stable, busy, stableJoin);
    registration.current = r;
    return () => {
      r.remove();
      registration.current = null;
    };
  }, [queue, stable, stableJoin]);
  useLayoutEffect(() => {
    registration.current?.setBusy(busy);
  }, [busy]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs when a key's render is committed
  useLayoutEffect(() => {
    registration.current?.committed();
  }, [handled]);
}
