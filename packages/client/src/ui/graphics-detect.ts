// Which graphics protocol, if any, the terminal UI's /view may use to show a picture. No I/O: the
// answer comes from the environment the terminal gave its shell and the `imagePreview` setting,
// as the notification kind does (notify.ts); nothing is asked of the terminal, whose answers
// would arrive as keys.
//
//   kitty   kitty's graphics protocol with Unicode placeholders (U+10EEEE cells, kitty >= 0.28;
//           https://sw.kovidgoyal.net/kitty/graphics-protocol/#unicode-placeholders): kitty and
//           Ghostty (ghostty-org/ghostty#2015). The picture is text to Ink, so it survives Ink's
//           redraws and tmux's.
//   iterm2  iTerm2's inline images (OSC 1337 File=…; https://iterm2.com/documentation-images.html):
//           iTerm2, and WezTerm, which speaks kitty's protocol too but not its placeholders
//           (wezterm/wezterm#986: a virtual placement lands at the cursor), so there the iTerm2
//           sequence is the one that lands where it is put.
//
// Inside tmux (or GNU screen) TERM and TERM_PROGRAM are the multiplexer's, and a graphics
// sequence reaches the terminal only through tmux's passthrough, which is off unless
// `set -g allow-passthrough on` (tmux >= 3.3). Without it the placeholders would show as boxes of
// unknown glyphs, and that cannot be told from here, so "auto" shows no pictures inside tmux;
// `imagePreview: "kitty"` sends kitty's through the passthrough (its placeholders are text that
// tmux draws like any other). iTerm2's cannot work there at all: it is drawn at the outer
// terminal's cursor, which tmux moves where its own layout needs it.
import { ClientError } from "../errors.js";
import { IMAGE_PREVIEW_CHOICES, type ImagePreviewSetting, isImagePreviewSetting } from "../settings.js";

export type ImageProtocol = "kitty" | "iterm2";

export interface GraphicsChoice {
  /** How pictures are drawn; null: they are not, and /view says why. */
  readonly protocol: ImageProtocol | null;
  /** Inside tmux: each graphics sequence goes through its passthrough. */
  readonly tmux: boolean;
  /** What decided, for a person: "TERM=xterm-kitty", "inside tmux", … */
  readonly reason: string;
}

/** The user's choice: PARLEY_IMAGE_PREVIEW if set (a bad value is a USAGE error), else the setting, else "auto". */
export function imagePreviewSetting(
  env: NodeJS.ProcessEnv,
  setting: ImagePreviewSetting | undefined,
): ImagePreviewSetting {
  const forced = env.PARLEY_IMAGE_PREVIEW;
  if (forced !== undefined && forced !== "") {
    if (!isImagePreviewSetting(forced)) {
      throw new ClientError(
        "USAGE",
        `PARLEY_IMAGE_PREVIEW must be ${IMAGE_PREVIEW_CHOICES}; got ${JSON.stringify(forced)}`,
      );
    }
    return forced;
  }
  return setting ?? "auto";
}

/** TERM_PROGRAM values of terminals that draw pictures; any other value names one that does not. */
const BY_TERM_PROGRAM: Readonly<Record<string, ImageProtocol>> = {
  "iTerm.app": "iterm2",
  WezTerm: "iterm2",
  ghostty: "kitty",
};

const BY_TERM: Readonly<Record<string, ImageProtocol>> = {
  "xterm-kitty": "kitty",
  "xterm-ghostty": "kitty",
  wezterm: "iterm2", // WezTerm's own terminfo entry
};

/** Terminals a person would recognise, for the reason a terminal is not one of them. */
const KNOWN = "kitty, Ghostty, iTerm2 or WezTerm";

/**
 * Picks how /view draws a picture, from PARLEY_IMAGE_PREVIEW, else `setting`, and for "auto"
 * from the environment. Throws a USAGE ClientError for a bad PARLEY_IMAGE_PREVIEW.
 *
 * @example chooseGraphics({ TERM: "xterm-kitty" }) // { protocol: "kitty", tmux: false, reason: "TERM=xterm-kitty" }
 */
export function chooseGraphics(env: NodeJS.ProcessEnv, setting?: ImagePreviewSetting): GraphicsChoice {
  const term = env.TERM ?? "";
  const tmux = (env.TMUX ?? "") !== "";
  const multiplexed = tmux || /^(screen|tmux)/.test(term) || env.TERM_PROGRAM === "tmux";
  const chosen = imagePreviewSetting(env, setting);
  const from = env.PARLEY_IMAGE_PREVIEW ? "PARLEY_IMAGE_PREVIEW" : "the imagePreview setting";
  if (chosen === "off") return { protocol: null, tmux, reason: `${from} is off` };
  if (chosen === "iterm2" && multiplexed)
    return {
      protocol: null,
      tmux,
      reason: `${from} is iterm2, whose pictures cannot be placed inside tmux or screen (kitty's can: imagePreview "kitty" with tmux's allow-passthrough on)`,
    };
  if (chosen !== "auto") return { protocol: chosen, tmux, reason: `${from}: ${chosen}` };
  if (multiplexed)
    return {
      protocol: null,
      tmux,
      reason:
        'inside tmux or screen pictures need a passthrough that may be off: with `set -g allow-passthrough on` in tmux and kitty or Ghostty outside it, set imagePreview to "kitty"',
    };
  const decided = (protocol: ImageProtocol, reason: string): GraphicsChoice => ({ protocol, tmux, reason });
  // What the terminal says of itself first: these two are set afresh by each terminal, while the
  // variables below are inherited, e.g. by a GNOME Terminal started from a kitty window.
  const program = env.TERM_PROGRAM;
  if (program !== undefined && program !== "") {
    if (Object.hasOwn(BY_TERM_PROGRAM, program))
      return decided(BY_TERM_PROGRAM[program]!, `TERM_PROGRAM=${program}`);
    return { protocol: null, tmux, reason: `TERM_PROGRAM=${program} is not ${KNOWN}` };
  }
  if (Object.hasOwn(BY_TERM, term)) return decided(BY_TERM[term]!, `TERM=${term}`);
  const has = (name: string) => (env[name] ?? "") !== "";
  if (has("KITTY_WINDOW_ID")) return decided("kitty", "KITTY_WINDOW_ID");
  if (has("GHOSTTY_RESOURCES_DIR")) return decided("kitty", "GHOSTTY_RESOURCES_DIR");
  if (env.LC_TERMINAL === "iTerm2") return decided("iterm2", "LC_TERMINAL=iTerm2");
  if (has("ITERM_SESSION_ID")) return decided("iterm2", "ITERM_SESSION_ID");
  if (has("WEZTERM_PANE")) return decided("iterm2", "WEZTERM_PANE");
  return {
    protocol: null,
    tmux,
    reason: `TERM=${term === "" ? "(unset)" : term} is not ${KNOWN}`,
  };
}
