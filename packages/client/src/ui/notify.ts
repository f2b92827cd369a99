// Desktop notifications through the terminal (issue 12): a few bytes that the terminal turns into
// a notification of its own, so they reach the person over ssh and through tmux with nothing
// installed. No React and no I/O here but the `write` a Notifier is given.
//
// The sequences (ST is ESC \; every terminal below accepts it):
//   OSC 9 ; text ST                  iTerm2's "post a notification"
//                                    (https://iterm2.com/documentation-escape-codes.html); WezTerm,
//                                    Ghostty and kitty read it too.
//   OSC 777 ; notify ; title ; body ST
//                                    rxvt-unicode's notify extension, then foot, Ghostty, WezTerm
//                                    (https://wezterm.org/config/lua/config/notification_handling.html),
//                                    the VTE of Fedora and Ubuntu (upstream VTE swallows it), and
//                                    Windows Terminal since microsoft/terminal#20012, which splits
//                                    title and body at every `;`.
//   OSC 99 ; i=ID:d=0 ; title ST  OSC 99 ; i=ID:d=1:p=body ; body ST
//                                    kitty's protocol (https://sw.kovidgoyal.net/kitty/desktop-notifications/):
//                                    d=0 holds the notification until the part with d=1; the
//                                    payload is UTF-8 "with no C0 control codes", at most 2048
//                                    bytes; i is from [a-zA-Z0-9-_+.]. VS Code reads it too
//                                    (microsoft/vscode#294247).
//   BEL                              every terminal: a sound, a flash or an urgency hint.
//
// OSC 9 is also ConEmu's command channel (OSC 9;2;text opens a modal message box, 9;4 is a
// progress bar; https://conemu.github.io/en/AnsiEscapeCodes.html#ConEmu_specific_OSC), and
// Ghostty and Windows Terminal parse OSC 9;<digits>; the same way (ghostty-org/ghostty#3125). So a
// payload here never holds a `;` (sanitize turns it into a full-width ；), and ConEmu gets the bell
// only: it has no notification to show.
//
// tmux (https://github.com/tmux/tmux, input.c, CHANGES) swallows every one of these OSCs, except
// that it keeps OSC 9;4 for itself. It forwards what a pane wraps in its passthrough,
// ESC P tmux; <sequence with every ESC doubled> ESC \, but only with `allow-passthrough on`
// (tmux >= 3.3, default off), and with `on` only from a pane on screen: `allow-passthrough all`
// (tmux >= 3.4) lets a pane in another window notify too. So put
//     set -g allow-passthrough all      (tmux 3.3: on)
// in ~/.tmux.conf. The BEL is written unwrapped: tmux raises its own bell alert on the window
// (bell-action, monitor-bell) and rings the outer terminal, with no passthrough needed, so a
// tmux without passthrough still gets the bell. Focus reports (CSI I / CSI O after CSI ?1004h)
// reach a pane only with `set -g focus-events on`.
//
// Inside tmux, TERM is tmux's (screen*, tmux*) and tmux sets TERM_PROGRAM=tmux (environ.c), so
// neither names the terminal outside. The variables a terminal exports to its shell survive in
// the environment tmux copied when its server started (tmux(1), GLOBAL AND SESSION ENVIRONMENT):
// KITTY_WINDOW_ID, LC_TERMINAL (iTerm2; LC_* also pass through ssh), WEZTERM_PANE,
// GHOSTTY_RESOURCES_DIR, WT_SESSION, VTE_VERSION. They describe the terminal that started the
// server, which is usually the one attached; the `notifications` setting or PARLEY_NOTIFY
// overrides the guess.
import { randomBytes } from "node:crypto";
import { ClientError } from "../errors.js";
import { isNotifySetting, NOTIFY_CHOICES, type NotifySetting, type Settings } from "../settings.js";

/** What a notification is written as. */
export type NotifyKind = "off" | "bell" | "osc9" | "osc777" | "osc99";
/** The kinds that carry a title and body. */
export type OscKind = "osc9" | "osc777" | "osc99";

export interface NotifierChoice {
  readonly kind: NotifyKind;
  /** Inside tmux: each OSC sequence goes through its passthrough (the BEL never does). */
  readonly tmux: boolean;
  /** What decided, for a person: "TERM_PROGRAM=iTerm.app", "PARLEY_NOTIFY", … */
  readonly reason: string;
}

const ESC = "\u001b";
const ST = `${ESC}\\`;
export const BEL = "\u0007";

/** Focus reporting on and off (xterm's private mode 1004); the terminal then sends these two. */
export const FOCUS_REPORTING_ON = `${ESC}[?1004h`;
export const FOCUS_REPORTING_OFF = `${ESC}[?1004l`;
export const FOCUS_IN = `${ESC}[I`;
export const FOCUS_OUT = `${ESC}[O`;

/** A new message tells the person unless they are looking at it: its conversation on screen in a focused terminal. */
export function shouldNotify(state: { readonly focused: boolean; readonly onScreen: boolean }): boolean {
  return !state.focused || !state.onScreen;
}

/** The user's choice: PARLEY_NOTIFY if set (a bad value is a USAGE error), else the setting, else "auto". */
export function notifySetting(env: NodeJS.ProcessEnv, setting: NotifySetting | undefined): NotifySetting {
  const forced = env.PARLEY_NOTIFY;
  if (forced !== undefined && forced !== "") {
    if (!isNotifySetting(forced)) {
      throw new ClientError(
        "USAGE",
        `PARLEY_NOTIFY must be ${NOTIFY_CHOICES}; got ${JSON.stringify(forced)}`,
      );
    }
    return forced;
  }
  return setting ?? "auto";
}

/** TERM_PROGRAM values that name a terminal (not tmux's own "tmux"). */
const BY_TERM_PROGRAM: Readonly<Record<string, NotifyKind>> = {
  "iTerm.app": "osc9",
  WezTerm: "osc777",
  ghostty: "osc777",
  vscode: "osc99",
  Apple_Terminal: "bell", // Terminal.app shows none of them
};

function byTerm(term: string): NotifyKind | undefined {
  if (term === "xterm-kitty") return "osc99";
  if (term === "xterm-ghostty") return "osc777";
  if (term === "foot" || term.startsWith("foot-")) return "osc777"; // foot's own entries: foot, foot-direct
  if (term.startsWith("rxvt-unicode")) return "osc777"; // rxvt-unicode, rxvt-unicode-256color
  return undefined;
}

/**
 * Picks how to notify, from PARLEY_NOTIFY, else `setting`, and for "auto" from the environment
 * the terminal gave its shell. Throws a USAGE ClientError for a bad PARLEY_NOTIFY.
 *
 * @example chooseNotifier({ TERM: "xterm-kitty" }, "auto") // { kind: "osc99", tmux: false, reason: "TERM=xterm-kitty" }
 */
export function chooseNotifier(env: NodeJS.ProcessEnv, setting?: NotifySetting): NotifierChoice {
  const term = env.TERM ?? "";
  // tmux puts TMUX in every pane's environment; TERM screen*/tmux* without it is GNU screen (or
  // tmux through sudo), whose TERM and TERM_PROGRAM are not the terminal's either.
  const tmux = (env.TMUX ?? "") !== "";
  const multiplexed = tmux || /^(screen|tmux)/.test(term) || env.TERM_PROGRAM === "tmux";
  const chosen = notifySetting(env, setting);
  const decided = (kind: NotifyKind, reason: string): NotifierChoice => ({
    kind,
    tmux,
    reason: tmux ? `inside tmux: ${reason}` : reason,
  });
  if (chosen !== "auto") {
    const from = env.PARLEY_NOTIFY ? "PARLEY_NOTIFY" : "the notifications setting";
    return { kind: chosen, tmux, reason: `${from}: ${chosen}` };
  }
  if (!multiplexed) {
    // What the terminal says of itself first: these two are set afresh by each terminal, while
    // the variables below are inherited, e.g. by a kitty started from a GNOME Terminal.
    const program = env.TERM_PROGRAM;
    if (program !== undefined && Object.hasOwn(BY_TERM_PROGRAM, program)) {
      return decided(BY_TERM_PROGRAM[program]!, `TERM_PROGRAM=${program}`);
    }
    const kind = byTerm(term);
    if (kind) return decided(kind, `TERM=${term}`);
  }
  const has = (name: string) => (env[name] ?? "") !== "";
  if (has("KITTY_WINDOW_ID")) return decided("osc99", "KITTY_WINDOW_ID");
  if (env.LC_TERMINAL === "iTerm2") return decided("osc9", "LC_TERMINAL=iTerm2");
  if (has("ITERM_SESSION_ID")) return decided("osc9", "ITERM_SESSION_ID");
  if (has("WEZTERM_PANE")) return decided("osc777", "WEZTERM_PANE");
  if (has("GHOSTTY_RESOURCES_DIR")) return decided("osc777", "GHOSTTY_RESOURCES_DIR");
  if (has("WT_SESSION")) return decided("osc777", "WT_SESSION (Windows Terminal)");
  if (has("ConEmuANSI"))
    return decided("bell", "ConEmuANSI (ConEmu's OSC 9 is a message box, not a notification)");
  if (has("VTE_VERSION")) return decided("osc777", "VTE_VERSION");
  return decided("bell", "no terminal known to show notifications");
}

/** Longest title and body, in code points (kitty's limit is 2048 bytes a part). */
export const MAX_TITLE = 64;
export const MAX_BODY = 240;
/** A sender's name is cut to this before it goes into a body. */
export const MAX_NAME = 40;

function unsafe(cp: number): boolean {
  return (
    cp < 0x20 || // C0: BEL, ESC, CR, LF, …
    (cp >= 0x7f && cp <= 0x9f) || // DEL and C1, where 0x9C is ST and 0x9D OSC in 8-bit terminals
    (cp >= 0xd800 && cp <= 0xdfff) || // a lone surrogate (a pair is one code point here)
    cp === 0x2028 ||
    cp === 0x2029 || // line and paragraph separators
    cp === 0x061c ||
    cp === 0x200e ||
    cp === 0x200f ||
    (cp >= 0x202a && cp <= 0x202e) ||
    (cp >= 0x2066 && cp <= 0x2069) // bidirectional marks, embeddings, overrides and isolates
  );
}

/**
 * Text made safe to put inside an OSC: control characters (so ESC, BEL and ST), bidi controls and
 * line breaks become spaces, `;` becomes ；, runs of spaces become one, and anything longer than
 * `max` code points is cut with "…". Nothing a contact names itself can end the sequence early.
 */
export function sanitize(text: string, max: number): string {
  let out = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    out += unsafe(cp) ? " " : ch === ";" ? "；" : ch;
  }
  const points = [...out.replace(/\s+/g, " ").trim()];
  return points.length <= max ? points.join("") : `${points.slice(0, max - 1).join("")}…`;
}

/**
 * The escape sequence(s) for one notification, title and body sanitised. `id` (kitty's i=, from
 * [a-zA-Z0-9-_+.]) ties OSC 99's two parts together.
 *
 * @example formatNotification("osc777", "Parley", "New message from Bob") // "\x1b]777;notify;Parley;New message from Bob\x1b\\"
 */
export function formatNotification(kind: OscKind, title: string, body: string, id = "parley"): string {
  if (!/^[A-Za-z0-9_+.-]{1,64}$/.test(id))
    throw new RangeError(`id must be 1 to 64 of [A-Za-z0-9_+.-], got ${JSON.stringify(id)}`);
  const t = sanitize(title, MAX_TITLE);
  const b = sanitize(body, MAX_BODY);
  switch (kind) {
    case "osc9":
      return `${ESC}]9;${t && b ? `${t}: ${b}` : t || b}${ST}`;
    case "osc777":
      return `${ESC}]777;notify;${t};${b}${ST}`;
    case "osc99":
      return `${ESC}]99;i=${id}:d=0;${t}${ST}${ESC}]99;i=${id}:d=1:p=body;${b}${ST}`;
    default:
      throw new RangeError(`kind must be osc9, osc777 or osc99, got ${JSON.stringify(kind)}`);
  }
}

/** Wraps each escape sequence in `seq` in tmux's passthrough: ESC P tmux; …ESC doubled… ESC \. */
export function tmuxPassthrough(seq: string): string {
  // One DCS per sequence, each starting at an ESC ] (so OSC 99's two parts go as two).
  const parts = seq.split(`${ESC}]`).filter((p) => p !== "");
  return parts.map((p) => `${ESC}Ptmux;${`${ESC}]${p}`.replaceAll(ESC, ESC + ESC)}${ST}`).join("");
}

/**
 * What a notification says: by default who sent how many, never what (a locked screen shows
 * notifications to anyone); with `text`, the latest message too.
 */
export function notificationContent(
  sender: string,
  count: number,
  text?: string,
): { readonly title: string; readonly body: string } {
  const name = sanitize(sender, MAX_NAME) || "a contact";
  const what = count === 1 ? `New message from ${name}` : `${count} new messages from ${name}`;
  if (text === undefined) return { title: "Parley", body: what };
  return { title: "Parley", body: count === 1 ? `${name}: ${text}` : `${what}, the latest: ${text}` };
}

export interface NotifierOptions {
  /** Where the bytes go: the terminal (process.stdout.write). A throw is ignored. */
  readonly write: (data: string) => unknown;
  /** Read for PARLEY_NOTIFY, TERM, TERM_PROGRAM, TMUX, … (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
  readonly settings?: Pick<Settings, "notifications" | "notificationText">;
  /** The shortest time between two notifications about one sender (default 1000 ms). */
  readonly intervalMs?: number;
}

interface Burst {
  count: number;
  text: string;
  /** Messages arrived since the last notification about them. */
  held: boolean;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Writes a notification (the bell, and the OSC sequence the terminal reads) for each message it is
 * told of, at most one per sender per `intervalMs`: the first message of a burst notifies at
 * once, the rest are counted and summed up when the interval ends ("3 new messages from Bob").
 * Throws at construction for a bad PARLEY_NOTIFY (a USAGE ClientError), never afterwards.
 *
 * @example
 * const notifier = new Notifier({ write: (s) => process.stdout.write(s), settings });
 * if (shouldNotify({ focused, onScreen })) notifier.message("Bob", "hello");
 */
export class Notifier {
  readonly choice: NotifierChoice;
  /** The message's text goes into notifications (the notificationText setting). */
  readonly showText: boolean;
  private readonly write: (data: string) => unknown;
  private readonly intervalMs: number;
  private readonly bursts = new Map<string, Burst>();
  private readonly idPrefix = `parley-${randomBytes(4).toString("hex")}`;
  private sent = 0;

  constructor(options: NotifierOptions) {
    const intervalMs = options.intervalMs ?? 1000;
    if (!Number.isFinite(intervalMs) || intervalMs < 0) {
      throw new RangeError(`intervalMs must be a non-negative number, got ${intervalMs}`);
    }
    this.choice = chooseNotifier(options.env ?? process.env, options.settings?.notifications);
    this.showText = options.settings?.notificationText === true;
    this.write = options.write;
    this.intervalMs = intervalMs;
  }

  /** A message from `sender` arrived where the person is not looking (see shouldNotify). */
  message(sender: string, text: string): void {
    if (this.choice.kind === "off") return;
    const burst = this.bursts.get(sender);
    if (burst) {
      burst.count++;
      burst.text = text;
      burst.held = true;
      return;
    }
    this.notify(sender, 1, text);
    this.bursts.set(sender, { count: 1, text, held: false, timer: this.schedule(sender) });
  }

  /** The person looked at `sender`'s conversation (or at all of them): what is held is dropped. */
  seen(sender?: string): void {
    for (const [name, burst] of this.bursts) {
      if (sender !== undefined && name !== sender) continue;
      clearTimeout(burst.timer);
      this.bursts.delete(name);
    }
  }

  /** Stops the timers; nothing more is written. */
  close(): void {
    this.seen();
  }

  private schedule(sender: string): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => this.tick(sender), this.intervalMs);
    timer.unref?.();
    return timer;
  }

  /** An interval ended: sum up what it held and start another, or end the burst. */
  private tick(sender: string): void {
    const burst = this.bursts.get(sender);
    if (!burst) return;
    if (!burst.held) {
      this.bursts.delete(sender);
      return;
    }
    burst.held = false;
    this.notify(sender, burst.count, burst.text);
    burst.timer = this.schedule(sender);
  }

  private notify(sender: string, count: number, text: string): void {
    const { kind, tmux } = this.choice;
    let out = BEL;
    if (kind !== "off" && kind !== "bell") {
      const { title, body } = notificationContent(sender, count, this.showText ? text : undefined);
      const seq = formatNotification(kind, title, body, `${this.idPrefix}-${++this.sent}`);
      out += tmux ? tmuxPassthrough(seq) : seq;
    }
    try {
      this.write(out);
    } catch {
      // the terminal is gone; a notification is not worth a crash
    }
  }
}
