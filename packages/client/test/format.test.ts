// How messages become rows: words are not split across lines, one sender's consecutive messages
// share a heading, dates read the same everywhere, and an undelivered message says why.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { MessageView } from "../src/client.js";
import { rows, when, wrap } from "../src/ui/format.js";
import { textWidth } from "../src/ui/width.js";

const at = (h: number, m: number, dayOffset = 0) => new Date(2026, 11, 3 + dayOffset, h, m).getTime();
const NOW = at(18, 0);

function msg(over: Partial<MessageView> & { text: string; sentAt: number }): MessageView {
  return {
    contact: "Bob",
    id: over.text,
    direction: "in",
    receivedAt: over.sentAt,
    status: "read",
    ...over,
  };
}

describe("message rows", () => {
  it("wraps between words, cutting only a word longer than a line", () => {
    expect(wrap("the quick brown fox jumps", 10)).toEqual(["the quick", "brown fox", "jumps"]);
    expect(wrap("abcdefghijklmno pq", 6)).toEqual(["abcdef", "ghijkl", "mno pq"]);
    expect(wrap("a\n\nb", 5)).toEqual(["a", "", "b"]);
    // wide characters take two columns
    expect(wrap("中文字符串", 4)).toEqual(["中文", "字符", "串"]);
  });

  it("never loses or reorders a character and never overflows (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme", maxLength: 300 }).map((s) => s.replace(/[\r\n]/g, " ")),
        fc.integer({ min: 2, max: 60 }),
        (text, width) => {
          const lines = wrap(text, width);
          for (const l of lines) expect(textWidth(l)).toBeLessThanOrEqual(width);
          // Only the spaces that lines broke at are gone.
          expect(lines.join("").replace(/ /g, "")).toBe(text.replace(/ /g, ""));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("groups one sender's consecutive messages under one heading, and marks mine", () => {
    const out = rows(
      [
        msg({ text: "hi", sentAt: at(9, 0, -1) }),
        msg({ text: "hello", sentAt: at(14, 0) }),
        msg({ text: "how are you?", sentAt: at(14, 2) }),
        msg({ text: "fine", sentAt: at(14, 3), direction: "out", status: "delivered" }),
        msg({ text: "and you?", sentAt: at(14, 3), direction: "out", status: "queued" }),
        msg({ text: "later", sentAt: at(14, 30), direction: "out", status: "read" }),
      ],
      "me",
      40,
      undefined,
      NOW,
    ).map((r) => r.text);
    expect(out).toEqual([
      "── 2026-12-02 ──",
      "09:00 Bob",
      "  hi",
      "── today ──",
      "14:00 Bob",
      "  hello",
      "  how are you?",
      "14:03 me",
      "  fine  [delivered]",
      "  and you?  [queued]",
      "14:30 me",
      "  later  [read]",
    ]);
  });

  it("says why a message was not delivered, on a row of its own when it does not fit", () => {
    const failed = msg({
      text: "x".repeat(30),
      sentAt: at(10, 0),
      direction: "out",
      status: "failed",
      failure: "Bob's mailbox no longer exists",
    } as Partial<MessageView> & { text: string; sentAt: number });
    expect(rows([failed], "me", 40, undefined, NOW).map((r) => r.text)).toEqual([
      "── today ──",
      "10:00 me",
      `  ${"x".repeat(30)}`,
      "  [not delivered: Bob's mailbox no longer exists]",
    ]);
  });

  it("writes dates one way: relative today, ISO otherwise", () => {
    expect(when(at(9, 5), NOW)).toBe("today 09:05");
    expect(when(at(9, 5, -1), NOW)).toBe("2026-12-02 09:05");
    expect(when(at(9, 5, 7), NOW, false)).toBe("2026-12-10");
  });
});
