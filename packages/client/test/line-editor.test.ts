import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  back,
  backspace,
  deleteForward,
  emptyLine,
  forward,
  insert,
  killLineEnd,
  killLineStart,
  killWordBack,
  killWordBackAlnum,
  killWordForward,
  left,
  lineDown,
  lineEnd,
  lineStart,
  lineUp,
  lineView,
  right,
  submit,
  wordLeft,
  wordRight,
  yank,
} from "../src/ui/line-editor.js";
import { graphemes, textWidth } from "../src/ui/width.js";

describe("the input line", () => {
  it("walks the history with Up and Down and keeps the draft", () => {
    let s = emptyLine();
    for (const line of ["one", "two"]) s = submit(insert(s, line)).next;
    s = insert(s, "dra");
    s = back(s);
    expect(s.text).toBe("two");
    s = back(s);
    expect(s.text).toBe("one");
    expect(back(s).text).toBe("one");
    s = forward(forward(s));
    expect(s.text).toBe("dra");
    expect(forward(s).text).toBe("dra");
  });

  it("keeps pasted newlines, drops other controls, and does not repeat history", () => {
    const s = insert(emptyLine(), "a\r\nb\rc\u001b[31m\u0007");
    expect(s.text).toBe("a\nb\nc[31m");
    expect(backspace(insert(emptyLine(), "h\u00e9")).text).toBe("h");
    const once = submit(insert(submit(insert(emptyLine(), "same")).next, "same")).next;
    expect(once.history).toEqual(["same"]);
    expect(submit(insert(emptyLine(), "   ")).next.history).toEqual([]);
  });

  it("edits at the cursor with readline's keys, by whole characters", () => {
    const at = (text: string, cursor = text.length) => ({ ...emptyLine(), text, cursor });
    expect(insert(left(left(at("helo"))), "l")).toMatchObject({ text: "hello", cursor: 3 });
    // an emoji with a modifier and a letter with a combining accent are one character each
    expect(backspace(at("a👍🏽")).text).toBe("a");
    expect(backspace(at("ae\u0301")).text).toBe("a");
    expect(right(at("é👍🏽", 0)).cursor).toBe(1);
    expect(deleteForward(at("abc", 1)).text).toBe("ac");
    expect(lineStart(at("one\ntwo three")).cursor).toBe(4);
    expect(lineEnd(at("one\ntwo", 1)).cursor).toBe(3);
    expect(wordLeft(at("say hello, world")).cursor).toBe(11);
    expect(wordLeft(at("say hello, world", 11)).cursor).toBe(4);
    expect(wordRight(at("say hello, world", 0)).cursor).toBe(3);
    expect(wordRight(at("say hello, world", 3)).cursor).toBe(9);
    expect(killLineStart(at("abc def", 4))).toMatchObject({ text: "def", cursor: 0, killed: "abc " });
    expect(killLineEnd(at("abc def", 3))).toMatchObject({ text: "abc", killed: " def" });
    expect(killWordBack(at("git commit -m"))).toMatchObject({ text: "git commit ", killed: "-m" });
    expect(killWordBackAlnum(at("path/to/file"))).toMatchObject({ text: "path/to/", killed: "file" });
    expect(killWordForward(at("one two", 0))).toMatchObject({ text: " two", killed: "one" });
    expect(yank(killWordBack(at("move this")))).toMatchObject({ text: "move this", cursor: 9 });
    // the kill buffer outlives the line it came from
    expect(submit(killWordBack(at("x y"))).next.killed).toBe("y");
  });

  it("moves between the lines of a message, and hands Up on the first line to history", () => {
    const s = { ...emptyLine(), text: "first line\nsecond", cursor: 14 };
    expect(lineUp(s)?.cursor).toBe(3);
    expect(lineUp({ ...s, cursor: 2 })).toBeNull();
    expect(lineDown({ ...s, cursor: 10 })?.cursor).toBe(17);
    expect(lineDown(s)).toBeNull();
  });

  it("shows the cursor's line within the width, the cursor always visible (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme", maxLength: 200 }),
        fc.nat(),
        fc.integer({ min: 10, max: 120 }),
        (text, c, width) => {
          const clean = insert(emptyLine(), text);
          const gs = graphemes(clean.text);
          let s = { ...clean, cursor: 0 };
          for (let i = 0; i < c % (gs.length + 1); i++) s = right(s);
          const v = lineView(s, width);
          expect(textWidth(v.prefix + v.before + v.at + v.after)).toBeLessThanOrEqual(width);
          const lineAtCursor = s.text.slice(0, s.cursor).split("\n").at(-1)!;
          if (!v.before.startsWith("…")) expect(v.before).toBe(lineAtCursor);
          else expect(lineAtCursor.endsWith(v.before.slice(1))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
