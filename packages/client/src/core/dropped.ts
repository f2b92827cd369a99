// Undecryptable deliveries (forged or corrupt: anyone who knows a mailbox address can deposit
// them), counted per contact and reason and reported together: a flood of forgeries is one
// warning per contact and receive slice, not one per forgery; in live mode (a UI drawing each
// warning) at most one a second, with the counts of that second.
import type { Context } from "./context.js";

/** In live mode, undecryptable deliveries are reported at most this often. */
export const DROPPED_REPORT_MS = 1000;

/** One warning for a contact's undecryptable deliveries of one receive slice, counted by reason. */
export function droppedWarning(name: string, codes: ReadonlyMap<string, number>): string {
  const total = [...codes.values()].reduce((a, b) => a + b, 0);
  const why =
    codes.size === 1 ? [...codes.keys()][0] : [...codes].map(([code, n]) => `${code} ${n}`).join(", ");
  return `dropped ${total} undecryptable ${total === 1 ? "message" : "messages"} for ${name} (${why})`;
}

export class DroppedReport {
  /** Undecryptable deliveries not yet reported, by contact name and reason. */
  private readonly dropped = new Map<string, Map<string, number>>();
  private timer: NodeJS.Timeout | null = null;
  private last = 0;

  constructor(private readonly ctx: Context) {}

  count(name: string, code: string): void {
    const codes = this.dropped.get(name) ?? new Map<string, number>();
    codes.set(code, (codes.get(code) ?? 0) + 1);
    this.dropped.set(name, codes);
  }

  /** Reports what was counted: now, or (`live`) once a second has passed since the last report. */
  report(live: boolean): void {
    if (this.dropped.size === 0 || this.timer) return;
    const flush = () => {
      this.timer = null;
      this.last = Date.now();
      for (const [name, codes] of this.dropped) this.ctx.emitter.emit("warning", droppedWarning(name, codes));
      this.dropped.clear();
    };
    const wait = live ? this.last + DROPPED_REPORT_MS - Date.now() : 0;
    if (wait <= 0) {
      flush();
      return;
    }
    this.timer = setTimeout(flush, wait);
    this.timer.unref();
  }
}
