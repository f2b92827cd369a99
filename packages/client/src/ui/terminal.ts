// The clipboard through the terminal (OSC 52), for /copy.
import { tmuxPassthrough } from "./notify.js";

/** Whether we run inside tmux (which owns the real terminal and filters what we send). */
const inTmux = (env: NodeJS.ProcessEnv): boolean => Boolean(env.TMUX);

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
