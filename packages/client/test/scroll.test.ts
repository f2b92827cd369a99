// Scrolling by rows over a conversation read by seq: every window, going up page by page and
// back down, is exactly the matching slice of the whole conversation drawn at once.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ConversationEntry, MessageView } from "../src/client.js";
import { rows } from "../src/ui/format.js";
import {
  type Anchor,
  type Layout,
  oldest,
  type Source,
  scrollDown,
  scrollUp,
  windowAt,
} from "../src/ui/scroll.js";

const DAY = 86_400_000;

function conversation(
  spec: readonly { lines: number; nextDay: boolean; mine: boolean }[],
): ConversationEntry[] {
  let at = Date.UTC(2026, 0, 1, 12);
  return spec.map((s, i) => {
    if (s.nextDay) at += DAY;
    at += 1000;
    const message: MessageView = {
      contact: "Bob",
      id: `m${i}`,
      direction: s.mine ? "out" : "in",
      text: Array.from({ length: s.lines }, (_, l) => `message ${i} line ${l}`).join("\n"),
      sentAt: at,
      receivedAt: at,
      status: s.mine ? "delivered" : "read",
    };
    // Seqs have gaps, as they do when other contacts' messages are interleaved.
    return { seq: 10 + i * 3, message };
  });
}

/** A Source over an array, counting the entries it hands out. */
function source(all: readonly ConversationEntry[]) {
  const counter = { entries: 0 };
  const s: Source = {
    before(before, limit) {
      const older = all.filter((e) => before === undefined || e.seq < before);
      const out = older.slice(Math.max(0, older.length - limit));
      counter.entries += out.length;
      return out;
    },
    from(from, limit) {
      const out = all.filter((e) => e.seq >= from).slice(0, limit);
      counter.entries += out.length;
      return out;
    },
  };
  return { s, counter };
}

const text = (r: readonly { text: string }[]) => r.map((x) => x.text);

const specs = fc.array(
  fc.record({ lines: fc.integer({ min: 1, max: 12 }), nextDay: fc.boolean(), mine: fc.boolean() }),
  { minLength: 0, maxLength: 80 },
);

describe("conversation scrolling", () => {
  it("pages up to the first row and back down, each window the matching slice of the whole", () => {
    fc.assert(
      fc.property(
        specs,
        fc.integer({ min: 3, max: 30 }),
        fc.integer({ min: 20, max: 60 }),
        (spec, height, width) => {
          const all = conversation(spec);
          const layout: Layout = { height, width, me: "me" };
          const whole = text(
            rows(
              all.map((e) => e.message),
              "me",
              width,
            ),
          );
          const { s } = source(all);
          const page = Math.max(1, height - 2);

          // At the bottom: the last rows, not scrolled.
          let view = windowAt(s, null, layout);
          expect(text(view.rows)).toEqual(whole.slice(-height));
          expect(view.scrolled).toBe(false);

          // Up page by page: each window starts `page` rows higher, until the first row.
          let start = Math.max(0, whole.length - height);
          let anchor: Anchor | null = null;
          for (let guard = 0; view.top && start > 0; guard++) {
            expect(guard).toBeLessThan(whole.length);
            anchor = scrollUp(s, view.top, page, layout);
            start = Math.max(0, start - page);
            view = windowAt(s, anchor, layout);
            expect(text(view.rows)).toEqual(whole.slice(start, start + height));
          }
          if (view.top)
            expect(scrollUp(s, view.top, page, layout)).toEqual(view.top.row === 0 ? view.top : anchor);
          if (whole.length > 0)
            expect(text(windowAt(s, oldest(s), layout).rows)).toEqual(whole.slice(0, height));

          // Down again: each window `page` rows lower, until the newest are all on screen.
          while (view.scrolled && view.top) {
            anchor = scrollDown(s, view.top, page, layout);
            start = Math.min(start + page, Math.max(0, whole.length - height));
            view = windowAt(s, anchor, layout);
            expect(text(view.rows)).toEqual(whole.slice(start, start + height));
          }
          expect(anchor === null || !view.scrolled).toBe(true);
          expect(text(view.rows)).toEqual(whole.slice(-height));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("reads the same few messages per page at any depth of a long conversation", () => {
    const all = conversation(
      Array.from({ length: 20_000 }, (_, i) => ({
        lines: 1 + (i % 3),
        nextDay: i % 500 === 0,
        mine: i % 2 === 0,
      })),
    );
    const layout: Layout = { height: 20, width: 50, me: "me" };
    const { s, counter } = source(all);
    const cost = (anchor: Anchor | null) => {
      counter.entries = 0;
      const view = windowAt(s, anchor, layout);
      scrollUp(s, view.top!, 18, layout);
      return counter.entries;
    };
    const atBottom = cost(null);
    const deep = cost({ seq: all[10_000]!.seq, row: 1 });
    const atTop = cost(oldest(s));
    for (const c of [atBottom, deep, atTop]) expect(c).toBeLessThanOrEqual(4 * 32 + 4);
  });

  it("keeps its place when a wider terminal gives the anchored message fewer rows", () => {
    const all = conversation(Array.from({ length: 12 }, () => ({ lines: 1, nextDay: false, mine: false })));
    const long = { ...all[0]!, message: { ...all[0]!.message, text: "x".repeat(300) } };
    const { s } = source([long, ...all.slice(1)]);
    // 20 columns: 300 characters take 17 rows; 200 columns: 2. Row 12 becomes the message's last.
    const view = windowAt(s, { seq: long.seq, row: 12 }, { height: 5, width: 200, me: "me" });
    expect(view.scrolled).toBe(true);
    expect(view.rows[0]!.text).toBe(`  ${"x".repeat(102)}`);
    // The next message is Bob's too, a second later: it continues his group, without a heading.
    expect(view.rows[1]!.text).toBe("  message 1 line 0");
  });
});
