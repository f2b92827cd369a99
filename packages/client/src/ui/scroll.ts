// Scrolling a conversation by terminal rows. The position is an anchor (a message's seq and a row
// within it), and every window is read from the store by seq around that anchor, so paging is
// the same few indexed reads at the newest message and at the 100,000th: nothing is counted,
// skipped with OFFSET or held in memory beyond the rows on screen.
import type { ConversationEntry, MessageView } from "../client.js";
import { type Row, rows } from "./format.js";

/** The first row on screen when scrolled back: a message (by seq) and a row within its rows. */
export interface Anchor {
  readonly seq: number;
  readonly row: number;
}

/** Reads a conversation by seq (Client.conversation for one contact). */
export interface Source {
  /** Up to `limit` messages older than `before` (the newest when undefined), oldest first. */
  before(before: number | undefined, limit: number): readonly ConversationEntry[];
  /** Up to `limit` messages from the seq `from` on, oldest first. */
  from(from: number, limit: number): readonly ConversationEntry[];
}

export interface Layout {
  /** Rows available for messages. */
  readonly height: number;
  readonly width: number;
  /** How my own messages are labelled. */
  readonly me: string;
  /** The time "today" is relative to (day separators). */
  readonly now?: number;
}

export interface ConversationWindow {
  readonly rows: readonly Row[];
  /** The first row shown: where PageUp starts from. Null when there is nothing to show. */
  readonly top: Anchor | null;
  /** Newer rows exist below the window. */
  readonly scrolled: boolean;
}

interface Tagged extends Anchor {
  readonly line: Row;
}

const batchSize = (layout: Layout) => Math.max(32, layout.height);

/** Rows of consecutive entries, each tagged with its place; `before` is the message before the first. */
function tag(
  entries: readonly ConversationEntry[],
  before: MessageView | undefined,
  layout: Layout,
): Tagged[] {
  const out: Tagged[] = [];
  let previous = before;
  for (const e of entries) {
    rows([e.message], layout.me, layout.width, previous, layout.now).forEach((line, row) => {
      out.push({ seq: e.seq, row, line });
    });
    previous = e.message;
  }
  return out;
}

/** The message just before `seq`, which decides whether `seq` opens with a separator and a heading. */
function messageBefore(source: Source, seq: number): MessageView | undefined {
  return source.before(seq, 1)[0]?.message;
}

/** Rows from the message `fromSeq` on: at least `need` of them, unless the conversation ends first. */
function forward(source: Source, fromSeq: number, need: number, layout: Layout): Tagged[] {
  const out: Tagged[] = [];
  let next = fromSeq;
  let previous = messageBefore(source, fromSeq);
  const n = batchSize(layout);
  while (out.length < need) {
    const batch = source.from(next, n);
    out.push(...tag(batch, previous, layout));
    if (batch.length < n) break;
    const last = batch.at(-1)!;
    previous = last.message;
    next = last.seq + 1;
  }
  return out;
}

/** Rows of the messages older than `beforeSeq` (all when undefined): the last `need` of them at least. */
function backward(source: Source, beforeSeq: number | undefined, need: number, layout: Layout): Tagged[] {
  let out: Tagged[] = [];
  let before = beforeSeq;
  const n = batchSize(layout);
  while (out.length < need) {
    // One more than the batch: the oldest only tells what comes before the batch.
    const batch = source.before(before, n + 1);
    if (batch.length === 0) break;
    const complete = batch.length <= n;
    const shown = complete ? batch : batch.slice(1);
    out = [...tag(shown, complete ? undefined : batch[0]!.message, layout), ...out];
    if (complete) break;
    before = shown[0]!.seq;
  }
  return out;
}

const place = (t: Tagged): Anchor => ({ seq: t.seq, row: t.row });

/** Where `anchor` falls in `rows`, which start at its message: its row, or the message's last. */
function indexOf(rowsFrom: readonly Tagged[], anchor: Anchor): number {
  let i = 0;
  while (
    i + 1 < rowsFrom.length &&
    rowsFrom[i + 1]!.seq === rowsFrom[0]!.seq &&
    rowsFrom[i]!.row < anchor.row
  )
    i++;
  return i;
}

/** The window at `anchor`, or at the newest message when it is null or when the rest fits on screen. */
export function windowAt(source: Source, anchor: Anchor | null, layout: Layout): ConversationWindow {
  if (anchor) {
    const ahead = forward(source, anchor.seq, anchor.row + layout.height + 1, layout);
    const start = indexOf(ahead, anchor);
    if (ahead.length - start > layout.height) {
      const shown = ahead.slice(start, start + layout.height);
      return { rows: shown.map((t) => t.line), top: place(shown[0]!), scrolled: true };
    }
  }
  const last = backward(source, undefined, layout.height, layout).slice(-layout.height);
  return { rows: last.map((t) => t.line), top: last[0] ? place(last[0]) : null, scrolled: false };
}

/** The anchor `by` rows above `top`, or the very first row. */
export function scrollUp(source: Source, top: Anchor, by: number, layout: Layout): Anchor {
  if (top.row >= by) return { seq: top.seq, row: top.row - by };
  const need = by - top.row;
  const above = backward(source, top.seq, need, layout);
  if (above.length === 0) return { seq: top.seq, row: 0 };
  return place(above[Math.max(0, above.length - need)]!);
}

/** The anchor `by` rows below `top`, or null once the newest rows are all on screen. */
export function scrollDown(source: Source, top: Anchor, by: number, layout: Layout): Anchor | null {
  const ahead = forward(source, top.seq, top.row + by + layout.height + 1, layout);
  const i = indexOf(ahead, top) + by;
  if (ahead.length - i <= layout.height) return null;
  return place(ahead[i]!);
}

/** The anchor of the conversation's first row. */
export function oldest(source: Source): Anchor | null {
  const first = source.from(0, 1)[0];
  return first ? { seq: first.seq, row: 0 } : null;
}
