// Desktop notifications through the terminal: which sequence each terminal gets, the exact bytes,
// that no name or text can break out of them, tmux's passthrough, the bursts, and the settings.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ClientError } from "../src/errors.js";
import { DEFAULT_MAX_RETENTION_SECONDS, loadSettings, saveSettings } from "../src/settings.js";
import {
  BEL,
  chooseNotifier,
  FOCUS_REPORTING_OFF,
  FOCUS_REPORTING_ON,
  formatNotification,
  MAX_BODY,
  MAX_TITLE,
  Notifier,
  notificationContent,
  sanitize,
  shouldNotify,
  tmuxPassthrough,
} from "../src/ui/notify.js";

const ESC = "\u001b";
const ST = `${ESC}\\`;

/** What no title or body may hold: C0, DEL, C1, `;`, line separators, bidi controls, a lone surrogate. */
const forbidden = (ch: string): boolean => {
  const cp = ch.codePointAt(0)!;
  return (
    cp < 0x20 ||
    (cp >= 0x7f && cp <= 0x9f) ||
    ch === ";" ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    (cp >= 0x202a && cp <= 0x202e) ||
    (cp >= 0x2066 && cp <= 0x2069) ||
    (cp >= 0xd800 && cp <= 0xdfff)
  );
};

describe("chooseNotifier", () => {
  const cases: [string, NodeJS.ProcessEnv, string, string][] = [
    ["iTerm2", { TERM_PROGRAM: "iTerm.app", TERM: "xterm-256color" }, "osc9", "TERM_PROGRAM=iTerm.app"],
    ["WezTerm", { TERM_PROGRAM: "WezTerm", TERM: "xterm-256color" }, "osc777", "TERM_PROGRAM=WezTerm"],
    ["Ghostty", { TERM_PROGRAM: "ghostty", TERM: "xterm-ghostty" }, "osc777", "TERM_PROGRAM=ghostty"],
    ["Ghostty by TERM", { TERM: "xterm-ghostty" }, "osc777", "TERM=xterm-ghostty"],
    ["VS Code", { TERM_PROGRAM: "vscode", TERM: "xterm-256color" }, "osc99", "TERM_PROGRAM=vscode"],
    [
      "Terminal.app",
      { TERM_PROGRAM: "Apple_Terminal", TERM: "xterm-256color" },
      "bell",
      "TERM_PROGRAM=Apple_Terminal",
    ],
    ["kitty", { TERM: "xterm-kitty", KITTY_WINDOW_ID: "1" }, "osc99", "TERM=xterm-kitty"],
    ["kitty with TERM changed", { TERM: "xterm-256color", KITTY_WINDOW_ID: "3" }, "osc99", "KITTY_WINDOW_ID"],
    ["foot", { TERM: "foot" }, "osc777", "TERM=foot"],
    ["foot-direct", { TERM: "foot-direct" }, "osc777", "TERM=foot-direct"],
    ["rxvt-unicode", { TERM: "rxvt-unicode-256color" }, "osc777", "TERM=rxvt-unicode-256color"],
    [
      "Windows Terminal",
      { TERM: "xterm-256color", WT_SESSION: "a1b2" },
      "osc777",
      "WT_SESSION (Windows Terminal)",
    ],
    ["ConEmu", { TERM: "xterm", ConEmuANSI: "ON" }, "bell", "ConEmuANSI"],
    ["GNOME Terminal (VTE)", { TERM: "xterm-256color", VTE_VERSION: "7600" }, "osc777", "VTE_VERSION"],
    ["iTerm2 over ssh", { TERM: "xterm-256color", LC_TERMINAL: "iTerm2" }, "osc9", "LC_TERMINAL=iTerm2"],
    ["unknown", { TERM: "xterm-256color" }, "bell", "no terminal known"],
    ["nothing at all", {}, "bell", "no terminal known"],
    // A terminal started from another inherits its variables; what it says of itself wins.
    [
      "kitty started from GNOME Terminal",
      { TERM: "xterm-kitty", VTE_VERSION: "7600" },
      "osc99",
      "TERM=xterm-kitty",
    ],
    [
      "WezTerm started from kitty",
      { TERM_PROGRAM: "WezTerm", KITTY_WINDOW_ID: "1" },
      "osc777",
      "TERM_PROGRAM=WezTerm",
    ],
  ];
  it.each(cases)("%s", (_, env, kind, reason) => {
    const choice = chooseNotifier(env);
    expect(choice.kind).toBe(kind);
    expect(choice.tmux).toBe(false);
    expect(choice.reason).toContain(reason);
  });

  it("inside tmux, neither TERM nor TERM_PROGRAM (tmux's own) names the terminal outside", () => {
    const tmux = { TMUX: "/tmp/tmux-1000/default,123,0", TERM: "tmux-256color", TERM_PROGRAM: "tmux" };
    expect(chooseNotifier(tmux)).toEqual({
      kind: "bell",
      tmux: true,
      reason: "inside tmux: no terminal known to show notifications",
    });
    expect(chooseNotifier({ ...tmux, KITTY_WINDOW_ID: "2" })).toMatchObject({ kind: "osc99", tmux: true });
    expect(chooseNotifier({ ...tmux, LC_TERMINAL: "iTerm2" })).toMatchObject({ kind: "osc9", tmux: true });
    expect(chooseNotifier({ ...tmux, WEZTERM_PANE: "0" })).toMatchObject({ kind: "osc777", tmux: true });
    expect(chooseNotifier({ ...tmux, GHOSTTY_RESOURCES_DIR: "/usr/share/ghostty" })).toMatchObject({
      kind: "osc777",
      tmux: true,
    });
    // tmux with TERM=screen, as older set-ups have it.
    expect(chooseNotifier({ TMUX: "x", TERM: "screen-256color", VTE_VERSION: "7600" })).toMatchObject({
      kind: "osc777",
      tmux: true,
    });
  });

  it("GNU screen: its TERM is not the terminal's, and nothing is wrapped for tmux", () => {
    expect(chooseNotifier({ TERM: "screen.xterm-256color", STY: "1.pts-0" })).toMatchObject({
      kind: "bell",
      tmux: false,
    });
  });

  it("a setting forces a kind, and PARLEY_NOTIFY forces one over the setting", () => {
    expect(chooseNotifier({ TERM: "xterm-kitty" }, "off")).toEqual({
      kind: "off",
      tmux: false,
      reason: "the notifications setting: off",
    });
    expect(chooseNotifier({ TERM: "xterm-kitty" }, "osc777").kind).toBe("osc777");
    expect(chooseNotifier({ TERM: "xterm-kitty", TMUX: "x" }, "osc9")).toMatchObject({
      kind: "osc9",
      tmux: true,
    });
    expect(chooseNotifier({ TERM: "xterm-kitty", PARLEY_NOTIFY: "bell" }, "osc99")).toEqual({
      kind: "bell",
      tmux: false,
      reason: "PARLEY_NOTIFY: bell",
    });
    expect(chooseNotifier({ TERM: "xterm-kitty", PARLEY_NOTIFY: "auto" }, "off").kind).toBe("osc99");
    // Set but empty counts as not set.
    expect(chooseNotifier({ TERM: "xterm-kitty", PARLEY_NOTIFY: "" }, "off").kind).toBe("off");
  });

  it("a bad PARLEY_NOTIFY is a USAGE error naming the choices", () => {
    const bad = () => chooseNotifier({ PARLEY_NOTIFY: "growl" });
    expect(bad).toThrow(ClientError);
    expect(bad).toThrow('PARLEY_NOTIFY must be one of auto, off, bell, osc9, osc777, osc99; got "growl"');
    try {
      bad();
    } catch (e) {
      expect((e as ClientError).code).toBe("USAGE");
    }
  });
});

describe("formatNotification", () => {
  it("writes each protocol's exact bytes", () => {
    expect(formatNotification("osc9", "Parley", "New message from Bob")).toBe(
      `${ESC}]9;Parley: New message from Bob${ST}`,
    );
    expect(formatNotification("osc777", "Parley", "New message from Bob")).toBe(
      `${ESC}]777;notify;Parley;New message from Bob${ST}`,
    );
    expect(formatNotification("osc99", "Parley", "New message from Bob", "parley-1")).toBe(
      `${ESC}]99;i=parley-1:d=0;Parley${ST}${ESC}]99;i=parley-1:d=1:p=body;New message from Bob${ST}`,
    );
  });

  it("rejects a kitty id outside [A-Za-z0-9_+.-] and a kind it does not know", () => {
    expect(() => formatNotification("osc99", "t", "b", "a:b")).toThrow(/id must be/);
    expect(() => formatNotification("osc99", "t", "b", "")).toThrow(/id must be/);
    expect(() => formatNotification("bell" as "osc9", "t", "b")).toThrow(/kind must be/);
  });

  it("a name made of escape sequences stays text inside the one sequence", () => {
    const evil = `Bob${ESC}]777;notify;pwned;x${BEL}${ESC}\\\u009b2J\u009c\r\nEve`;
    for (const kind of ["osc9", "osc777", "osc99"] as const) {
      const seq = formatNotification(kind, evil, evil, "id1");
      const inner = seq.replaceAll(ST, "");
      expect(inner.includes(BEL)).toBe(false);
      expect(/[\u0080-\u009f\r\n]/.test(inner)).toBe(false);
      expect(inner.split(ESC).length - 1).toBe(kind === "osc99" ? 2 : 1); // only the introducers
    }
    expect(formatNotification("osc777", "Parley", evil)).toBe(
      `${ESC}]777;notify;Parley;Bob ]777；notify；pwned；x \\ 2J Eve${ST}`,
    );
  });

  it("property: whatever the title and body, one well-formed sequence with its fields in place", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 400 }),
        fc.string({ unit: "binary", maxLength: 1000 }),
        (title, body) => {
          const t = sanitize(title, MAX_TITLE);
          const b = sanitize(body, MAX_BODY);
          expect(formatNotification("osc777", title, body)).toBe(`${ESC}]777;notify;${t};${b}${ST}`);
          expect(formatNotification("osc99", title, body, "x")).toBe(
            `${ESC}]99;i=x:d=0;${t}${ST}${ESC}]99;i=x:d=1:p=body;${b}${ST}`,
          );
          for (const s of [t, b]) {
            expect([...s].filter(forbidden)).toEqual([]);
            expect(s).toBe(s.trim());
          }
          expect([...t].length).toBeLessThanOrEqual(MAX_TITLE);
          expect([...b].length).toBeLessThanOrEqual(MAX_BODY);
          // kitty's limit for one part.
          expect(Buffer.byteLength(b)).toBeLessThanOrEqual(2048);
        },
      ),
    );
  });
});

describe("sanitize", () => {
  it("cuts at a code point, never inside a surrogate pair, and marks the cut", () => {
    expect(sanitize("😀".repeat(10), 4)).toBe("😀😀😀…");
    expect(sanitize("abcd", 4)).toBe("abcd");
    expect(sanitize("abcde", 4)).toBe("abc…");
  });

  it("turns bidi overrides, lone surrogates and runs of blanks into single spaces", () => {
    expect(sanitize("\u202eevil\u202c  \t name\ud800", 40)).toBe("evil name");
    expect(sanitize("  \u0000\u0007 ", 40)).toBe("");
  });
});

describe("tmuxPassthrough", () => {
  it("wraps each sequence in DCS tmux; with every ESC doubled", () => {
    expect(tmuxPassthrough(`${ESC}]777;notify;Parley;hi${ST}`)).toBe(
      `${ESC}Ptmux;${ESC}${ESC}]777;notify;Parley;hi${ESC}${ESC}\\${ST}`,
    );
    const two = formatNotification("osc99", "T", "B", "k");
    expect(tmuxPassthrough(two)).toBe(
      `${ESC}Ptmux;${ESC}${ESC}]99;i=k:d=0;T${ESC}${ESC}\\${ST}` +
        `${ESC}Ptmux;${ESC}${ESC}]99;i=k:d=1:p=body;B${ESC}${ESC}\\${ST}`,
    );
  });
});

describe("notificationContent", () => {
  it("names the sender and the count, never the text unless asked to", () => {
    expect(notificationContent("Bob", 1)).toEqual({ title: "Parley", body: "New message from Bob" });
    expect(notificationContent("Bob", 3)).toEqual({ title: "Parley", body: "3 new messages from Bob" });
    expect(notificationContent("Bob", 1, "hi there")).toEqual({ title: "Parley", body: "Bob: hi there" });
    expect(notificationContent("Bob", 2, "hi")).toEqual({
      title: "Parley",
      body: "2 new messages from Bob, the latest: hi",
    });
    expect(notificationContent(`${ESC}${BEL}`, 1).body).toBe("New message from a contact");
    expect(notificationContent("x".repeat(100), 1).body).toBe(`New message from ${"x".repeat(39)}…`);
  });
});

describe("shouldNotify and focus reporting", () => {
  it("notifies unless the conversation is on screen in a focused terminal", () => {
    expect(shouldNotify({ focused: true, onScreen: true })).toBe(false);
    expect(shouldNotify({ focused: true, onScreen: false })).toBe(true);
    expect(shouldNotify({ focused: false, onScreen: true })).toBe(true);
    expect(shouldNotify({ focused: false, onScreen: false })).toBe(true);
    expect([FOCUS_REPORTING_ON, FOCUS_REPORTING_OFF]).toEqual([`${ESC}[?1004h`, `${ESC}[?1004l`]);
  });
});

describe("Notifier", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A Notifier whose writes are collected; kitty ids made readable. */
  function notifier(
    env: NodeJS.ProcessEnv,
    settings: ConstructorParameters<typeof Notifier>[0]["settings"] = {},
  ) {
    const written: string[] = [];
    const n = new Notifier({
      write: (s) => written.push(s.replace(/parley-[0-9a-f]{8}-/g, "ID-")),
      env,
      settings,
    });
    return { n, written };
  }

  it("rings the bell and writes the terminal's sequence with the sender, not the text", () => {
    const { n, written } = notifier({ TERM: "foot" });
    n.message("Bob", "the secret plan");
    expect(written).toEqual([`${BEL}${ESC}]777;notify;Parley;New message from Bob${ST}`]);
    n.close();
  });

  it("with notificationText on, the text too", () => {
    const { n, written } = notifier({ TERM_PROGRAM: "iTerm.app" }, { notificationText: true });
    n.message("Bob", "lunch?");
    expect(written).toEqual([`${BEL}${ESC}]9;Parley: Bob: lunch?${ST}`]);
    n.close();
  });

  it("inside tmux the sequence goes through the passthrough and the bell does not", () => {
    const { n, written } = notifier({ TMUX: "/tmp/t,1,0", TERM: "tmux-256color", KITTY_WINDOW_ID: "1" });
    n.message("Bob", "x");
    expect(written).toEqual([
      BEL +
        `${ESC}Ptmux;${ESC}${ESC}]99;i=ID-1:d=0;Parley${ESC}${ESC}\\${ST}` +
        `${ESC}Ptmux;${ESC}${ESC}]99;i=ID-1:d=1:p=body;New message from Bob${ESC}${ESC}\\${ST}`,
    ]);
    n.close();
  });

  it('"bell" only rings, "off" writes nothing', () => {
    const bell = notifier({ TERM: "xterm-kitty" }, { notifications: "bell" });
    bell.n.message("Bob", "x");
    expect(bell.written).toEqual([BEL]);
    bell.n.close();
    const off = notifier({ TERM: "xterm-kitty" }, { notifications: "off" });
    off.n.message("Bob", "x");
    vi.advanceTimersByTime(5000);
    expect(off.written).toEqual([]);
  });

  it("a burst from one sender: one notification at once, then one per second summing it up", () => {
    const { n, written } = notifier({ TERM: "foot" });
    const bodies = () => written.map((w) => w.slice(w.lastIndexOf(";") + 1, -ST.length));
    n.message("Bob", "1");
    n.message("Bob", "2");
    n.message("Bob", "3");
    n.message("Carol", "c"); // each sender has a burst of its own
    expect(bodies()).toEqual(["New message from Bob", "New message from Carol"]);
    vi.advanceTimersByTime(999);
    expect(written).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(bodies()).toEqual(["New message from Bob", "New message from Carol", "3 new messages from Bob"]);
    n.message("Bob", "4");
    vi.advanceTimersByTime(1000);
    expect(bodies().at(-1)).toBe("4 new messages from Bob");
    // A quiet second ends the burst; the next message starts a new one, notified at once.
    vi.advanceTimersByTime(1000);
    expect(written).toHaveLength(4);
    n.message("Bob", "5");
    expect(bodies().at(-1)).toBe("New message from Bob");
    expect(written).toHaveLength(5);
    n.close();
    vi.advanceTimersByTime(10_000);
    expect(written).toHaveLength(5);
  });

  it("seen(sender) drops what is held for that sender only", () => {
    const { n, written } = notifier({ TERM: "foot" });
    n.message("Bob", "1");
    n.message("Bob", "2");
    n.message("Carol", "1");
    n.message("Carol", "2");
    n.seen("Bob");
    vi.advanceTimersByTime(1000);
    expect(written.map((w) => w.slice(w.lastIndexOf(";") + 1, -ST.length))).toEqual([
      "New message from Bob",
      "New message from Carol",
      "2 new messages from Carol",
    ]);
    n.close();
  });

  it("a terminal that is gone (write throws) does not throw out of message()", () => {
    const n = new Notifier({
      write: () => {
        throw new Error("EPIPE");
      },
      env: { TERM: "foot" },
    });
    expect(() => n.message("Bob", "x")).not.toThrow();
    n.close();
  });

  it("a bad PARLEY_NOTIFY fails at construction, and so does a bad interval", () => {
    expect(() => new Notifier({ write: () => {}, env: { PARLEY_NOTIFY: "yes" } })).toThrow(ClientError);
    expect(() => new Notifier({ write: () => {}, env: {}, intervalMs: -1 })).toThrow(/intervalMs/);
  });
});

describe("settings: notifications and notificationText", () => {
  const dir = mkdtempSync(join(tmpdir(), "parley-notify-settings-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const file = (content: string) => {
    const path = join(dir, `config-${++n}.json`);
    writeFileSync(path, content);
    return path;
  };

  it("an older settings file without them still loads, as auto and sender only", () => {
    const s = loadSettings(file(JSON.stringify({ relay: "ws://127.0.0.1:9", maxRetentionSeconds: 3600 })));
    expect(s).toEqual({ relay: "ws://127.0.0.1:9", maxRetentionSeconds: 3600 });
    expect(chooseNotifier({ TERM: "foot" }, s.notifications).kind).toBe("osc777");
    expect(new Notifier({ write: () => {}, env: {}, settings: s }).showText).toBe(false);
  });

  it("each value loads, and saves back the same", () => {
    for (const notifications of ["auto", "off", "bell", "osc9", "osc777", "osc99"] as const) {
      const path = file(JSON.stringify({ notifications, notificationText: true }));
      const s = loadSettings(path);
      expect(s).toEqual({
        maxRetentionSeconds: DEFAULT_MAX_RETENTION_SECONDS,
        notifications,
        notificationText: true,
      });
      saveSettings(path, s);
      expect(loadSettings(path)).toEqual(s);
    }
  });

  it("a bad value is a USAGE error that says what is allowed", () => {
    const path = file(JSON.stringify({ notifications: "loud" }));
    expect(() => loadSettings(path)).toThrow(
      `settings file ${path}: "notifications" must be one of auto, off, bell, osc9, osc777, osc99; got "loud"`,
    );
    const text = file(JSON.stringify({ notificationText: "yes" }));
    expect(() => loadSettings(text)).toThrow(
      `settings file ${text}: "notificationText" must be true or false; got "yes"`,
    );
    const long = file(JSON.stringify({ notifications: "x".repeat(500) }));
    expect(() => loadSettings(long)).toThrow(/got "x{38}…$/);
    for (const content of ["null", "[]", "3"]) {
      const p = file(content);
      expect(() => loadSettings(p)).toThrow(`settings file ${p} must hold a JSON object`);
    }
    try {
      loadSettings(path);
    } catch (e) {
      expect((e as ClientError).code).toBe("USAGE");
    }
  });
});
