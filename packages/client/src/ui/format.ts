// Turning messages into terminal rows: word-aware wrapping, day separators, grouping, status marks.
import type { MessageView } from "../client.js";
import { groupChangeWords, groupCounts } from "../group-words.js";
import { humanSize } from "../output.js";
import type { MessageStatus } from "../store.js";
import { displayText } from "../text.js";
import { graphemes, graphemeWidth, textWidth } from "./width.js";

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
  /** note: a group's membership change; gap: earlier messages of an author that have not arrived. */
  readonly kind: "day" | "head" | "body" | "mark" | "note" | "gap";
  readonly text: string;
  readonly mine?: boolean;
  readonly status?: MessageStatus;
  /** A group message's author (not mine): its heading takes the author's colour. */
  readonly author?: string;
}

const pad = (n: number) => String(n).padStart(2, "0");
export const clock = (ms: number) => {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
};
/** The local calendar day, as an ISO date. */
export const day = (ms: number) => {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
};

/**
 * The one date format of the UI: "today 14:02" for today, else "2026-11-01 14:02" (ISO, local
 * time); `withTime: false` gives the day alone ("today", "2026-11-01").
 */
export function when(ms: number, now = Date.now(), withTime = true): string {
  const d = day(ms) === day(now) ? "today" : day(ms);
  return withTime ? `${d} ${clock(ms)}` : d;
}

/**
 * Splits text into lines of at most `width` columns, breaking between words: a line ends at the
 * last space that fits (the space is not carried to the next line), and only a word longer than
 * a whole line is cut. Wide characters (CJK, emoji) take two columns.
 */
export function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const gs = graphemes(line);
    if (gs.length === 0) out.push("");
    let start = 0;
    while (start < gs.length) {
      let used = 0;
      let end = start;
      let lastSpace = -1;
      while (end < gs.length && used + graphemeWidth(gs[end]!) <= width) {
        if (gs[end] === " ") lastSpace = end;
        used += graphemeWidth(gs[end]!);
        end++;
      }
      if (end === start) end = start + 1; // a character wider than the line
      if (end < gs.length && gs[end] !== " " && lastSpace > start) {
        out.push(gs.slice(start, lastSpace).join(""));
        start = lastSpace + 1;
      } else {
        out.push(gs.slice(start, end).join(""));
        start = end;
        // The space a line broke at is not carried to the next one.
        if (start < gs.length && gs[start] === " " && end - 1 >= 0) start++;
      }
    }
  }
  return out;
}

/** What a file message says: its name, size and where it stands (for an offered one, how to get it). */
export function fileLine(f: NonNullable<MessageView["file"]>, direction: "in" | "out"): string {
  const state =
    direction === "out"
      ? f.state === "sent"
        ? ""
        : f.state
      : {
          offered: "/save fetches it",
          fetched: "saved",
          failed: "not saved: /save tries again",
          expired: "expired on the relay",
          uploading: "uploading",
          sent: "sent",
        }[f.state];
  return `[file] ${displayText(f.name)} · ${humanSize(f.size)}${state === "" ? "" : ` · ${state}`}`;
}

/** When a message happened, as shown: received for theirs, sent for mine. */
export const shownAt = (m: MessageView) => (m.direction === "in" ? m.receivedAt : m.sentAt);

/** Consecutive messages from one side within this long share one heading. */
export const GROUP_MS = 5 * 60_000;

/** Whether `m` continues the group of `previous` (same side, same day, within GROUP_MS). */
export function continues(m: MessageView, previous: MessageView | undefined): boolean {
  if (!previous || previous.direction !== m.direction || previous.note || m.note) return false;
  // In a group, "theirs" is several people: each author's messages get their own heading.
  if (m.direction === "in" && previous.contact !== m.contact) return false;
  const a = shownAt(previous);
  const b = shownAt(m);
  return day(a) === day(b) && b - a >= 0 && b - a <= GROUP_MS;
}

/** The status shown under or beside one of my messages; "" for none. */
export function mark(m: MessageView): string {
  if (m.direction !== "out") return "";
  if (m.status === "failed" || m.status === "expired") {
    // The reason, when the client core recorded one (a relay's refusal, a mailbox that is gone).
    const why = m.failure ? `: ${displayText(m.failure).replace(/\s+/g, " ")}` : "";
    return m.status === "expired" ? `[not delivered: expired on the relay${why}]` : `[not delivered${why}]`;
  }
  // Queued for a reason other than being offline (a full mailbox, a held key): say so.
  if (m.status === "queued" && m.failure) return `[queued: ${displayText(m.failure).replace(/\s+/g, " ")}]`;
  // A group message: how far it got among the members it was for.
  const all = m.recipients ?? 0;
  if (m.group !== undefined && all > 0) {
    if (m.status === "read") return `[read by all ${all}]`;
    if (m.status === "delivered") return `[delivered to all ${all}, read by ${m.read ?? 0}]`;
    if (m.status === "stored") return `[sent · ${groupCounts(m)}]`;
  }
  return `[${STATUS_MARK[m.status]}]`;
}

/**
 * The rows of consecutive messages, oldest first: a separator where the day changes, a heading
 * (time and sender) where a group starts, the text wrapped, and my messages' status at the end
 * of their last line (or on a row of its own when it does not fit). `previous` is the message
 * just before the first (it decides the first one's separator and heading).
 */
export function rows(
  messages: readonly MessageView[],
  me: string,
  width: number,
  previous?: MessageView,
  now = Date.now(),
): Row[] {
  const out: Row[] = [];
  let before = previous;
  const room = Math.max(10, width - 2);
  for (const m of messages) {
    const at = shownAt(m);
    const mine = m.direction === "out";
    if (!before || day(shownAt(before)) !== day(at)) {
      out.push({ key: `day-${m.id}`, kind: "day", text: `── ${when(at, now, false)} ──` });
    }
    if (m.note) {
      out.push({ key: `note-${m.id}`, kind: "note", text: `  · ${clock(at)} ${groupChangeWords(m.note)}` });
      before = m;
      continue;
    }
    if (m.missing) {
      const text = `  (${m.missing} earlier message(s) from ${displayText(m.contact)} not yet received)`;
      out.push({ key: `gap-${m.id}`, kind: "gap", text });
    }
    if (!continues(m, before) || m.missing) {
      const who = mine ? me : displayText(m.contact);
      const author = !mine && m.group !== undefined ? { author: m.contact } : {};
      const text = `${clock(at)} ${who}${m.forwarded ? " (passed on by another member)" : ""}`;
      out.push({ key: `head-${m.id}`, kind: "head", text, mine, status: m.status, ...author });
    }
    const lines = wrap(m.file ? fileLine(m.file, m.direction) : displayText(m.text), room);
    const status = mark(m);
    const last = lines.at(-1)!;
    const beside = status !== "" && textWidth(last) + 2 + textWidth(status) <= room;
    lines.forEach((line, i) => {
      const text = i === lines.length - 1 && beside ? `${line}  ${status}` : line;
      out.push({ key: `body-${m.id}-${i}`, kind: "body", text: `  ${text}`, mine, status: m.status });
    });
    if (status !== "" && !beside)
      out.push({ key: `mark-${m.id}`, kind: "mark", text: `  ${status}`, mine, status: m.status });
    before = m;
  }
  return out;
}
