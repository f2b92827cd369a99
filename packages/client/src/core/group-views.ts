// How group messages are shown: with their author, their place in the author's sequence, gaps
// ("2 earlier messages from Ann not yet received") and, for mine, "delivered to N of M". Pure.
import type { SeqRecord } from "../groups/sequence.js";
import type { GroupRecord, MessageRecord } from "../store/records.js";
import type { StatusEvent } from "./messages.js";
import type { MessageView } from "./types.js";

/**
 * How many of an author's messages before `seq` have not arrived (the gap shown before it);
 * those up to `floor` were sent before I joined and are not counted.
 */
export function missingBefore(r: SeqRecord | undefined, seq: number, floor = 0): number {
  const low = Math.max(floor, r?.through ?? 0);
  if (seq <= low + 1) return 0;
  return seq - low - 1 - (r?.above.filter((s) => s > low && s < seq).length ?? 0);
}

/** Counts of an outgoing group message: members it was for, and how many said delivered / read. */
function counts(m: MessageRecord): { recipients: number; delivered: number; read: number } {
  const f = m.group;
  return { recipients: f?.to?.length ?? 0, delivered: f?.delivered?.length ?? 0, read: f?.read?.length ?? 0 };
}

/** Why an outgoing group message has not reached everyone yet, in words, or null. */
export function outgoingFailure(m: MessageRecord): string | null {
  const f = m.group;
  if (m.direction !== "out" || !f) return null;
  const unsent = f.unsent?.length ?? 0;
  const unreached = (f.to?.length ?? 0) - (f.queued?.length ?? 0) - unsent;
  const words: string[] = [];
  if (unsent > 0)
    words.push(
      `${unsent} member(s) never got it: no session with them, nor with who introduced you, came up before it expired (as long as a relay keeps a message)`,
    );
  if (unreached > 0)
    words.push(
      `${unreached} member(s) cannot be reached yet (no session, nor one with who introduced you): it goes once one is up`,
    );
  return words.length > 0 ? words.join("; ") : null;
}

/** A group message as the CLI and the UI show it; `author` is its author's name (mine: my name). */
export function groupMessageView(g: GroupRecord, m: MessageRecord, author: string): MessageView {
  const f = m.group!;
  return {
    contact: author,
    group: g.name,
    id: m.id,
    direction: m.direction,
    text: m.text,
    sentAt: m.sentAt,
    receivedAt: m.receivedAt,
    status: m.status,
    failure: outgoingFailure(m),
    authorSeq: f.seq,
    ...(f.forwarded ? { forwarded: true } : {}),
    ...(m.direction === "out" ? counts(m) : {}),
  };
}

/** The status event of my group message (its counts with it). */
export function groupStatusEvent(me: string, g: GroupRecord, m: MessageRecord): StatusEvent {
  return {
    type: "status",
    contact: me,
    group: g.name,
    id: m.id,
    status: m.status,
    failure: outgoingFailure(m),
    ...counts(m),
  };
}

/**
 * Rows of a group's conversation with each author's messages in the order of their sequence
 * numbers, in the places that author's messages take (arrival order between authors is kept): a
 * message passed on by another member may arrive after the author's next one.
 */
export function inAuthorOrder<T extends { value: MessageRecord }>(rows: readonly T[]): T[] {
  const out = [...rows];
  const places = new Map<string, number[]>();
  rows.forEach((r, i) => {
    const author = r.value.group?.author;
    if (author === undefined) return;
    const list = places.get(author) ?? [];
    list.push(i);
    places.set(author, list);
  });
  for (const list of places.values()) {
    const sorted = list.map((i) => rows[i]!).sort((a, b) => a.value.group!.seq - b.value.group!.seq);
    list.forEach((place, j) => {
      out[place] = sorted[j]!;
    });
  }
  return out;
}
