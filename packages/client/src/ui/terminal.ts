// Escape sequences the UI sends to the terminal beyond drawing: the clipboard (OSC 52), and the
// wrapping that lets a sequence through tmux to the terminal around it.

/** Whether we run inside tmux (which owns the real terminal and filters what we send). */
export const inTmux = (env: NodeJS.ProcessEnv = process.env): boolean => Boolean(env.TMUX);

/**
 * `seq` wrapped in tmux's passthrough (DCS tmux; … ST, every ESC inside doubled), which tmux
 * hands to the outer terminal when `allow-passthrough` is on (off by default since tmux 3.3).
 */
export const tmuxPassthrough = (seq: string): string =>
  `\u001bPtmux;${seq.replaceAll("\u001b", "\u001b\u001b")}\u001b\\`;

/** OSC 52: asks the terminal to put `text` on the system clipboard ("c"). */
export const osc52 = (text: string): string =>
  `\u001b]52;c;${Buffer.from(text, "utf8").toString("base64")}\u0007`;

/**
 * Puts `text` on the clipboard through the terminal. Inside tmux the sequence is sent as it is
 * (tmux sets its own buffer and, with `set-clipboard on`, the outer clipboard) and through
 * passthrough (for `allow-passthrough on`).
 */
export function copyToClipboard(
  out: { write(s: string): unknown },
  text: string,
  env: NodeJS.ProcessEnv = process.env,
): void {
  const seq = osc52(text);
  out.write(seq);
  if (inTmux(env)) out.write(tmuxPassthrough(seq));
}
