// Turning messages into terminal rows: wrapping, day separators, status marks.
import type { MessageView } from "../client.js";
import type { MessageStatus } from "../store.js";
import { displayText } from "../text.js";

export const STATUS_MARK: Record<MessageStatus, string> = {
  queued: "queued",
  stored: "sent",
  delivered: "delivered",
  read: "read",
  expired: "expired",
  failed: "failed",
  received: "",
};

export interface Row {
  readonly key: string;
  readonly kind: "day" | "head" | "body";
  readonly text: string;
  readonly mine?: boolean;
  readonly status?: MessageStatus;
}

const pad = (n: number) => String(n).padStart(2, "0");
export const clock = (ms: number) => {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
};
export const day = (ms: number) => {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
};

/** Splits text into lines of at most `width` characters (by code point). */
export function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const chars = [...line];
    if (chars.length === 0) out.push("");
    for (let i = 0; i < chars.length; i += width) out.push(chars.slice(i, i + width).join(""));
  }
  return out;
}

/** When a message happened, as shown: received for theirs, sent for mine. */
export const shownAt = (m: MessageView) => (m.direction === "in" ? m.receivedAt : m.sentAt);

/** The rows of a window of messages, oldest first, with a separator where the day changes. */
export function rows(
  messages: readonly MessageView[],
  me: string,
  width: number,
  previousDay?: string,
): Row[] {
  const out: Row[] = [];
  let lastDay = previousDay;
  for (const m of messages) {
    const at = shownAt(m);
    const d = day(at);
    if (d !== lastDay) {
      out.push({ key: `day-${m.id}`, kind: "day", text: `── ${d} ──` });
      lastDay = d;
    }
    const who = m.direction === "in" ? displayText(m.contact) : me;
    const mark = m.direction === "out" ? `  [${STATUS_MARK[m.status]}]` : "";
    out.push({
      key: `head-${m.id}`,
      kind: "head",
      text: `${clock(at)} ${who}${mark}`,
      mine: m.direction === "out",
      status: m.status,
    });
    wrap(displayText(m.text), Math.max(10, width - 2)).forEach((line, i) => {
      out.push({ key: `body-${m.id}-${i}`, kind: "body", text: `  ${line}`, mine: m.direction === "out" });
    });
  }
  return out;
}
