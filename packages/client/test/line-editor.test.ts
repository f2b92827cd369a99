import { describe, expect, it } from "vitest";
import { back, backspace, emptyLine, forward, insert, splitInput, submit } from "../src/ui/line-editor.js";

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

  it("tells a typed Enter at the end of a chunk from newlines inside a paste", () => {
    expect(splitInput("hello\r")).toEqual({ text: "hello", enter: true });
    expect(splitInput("line 1\rline 2")).toEqual({ text: "line 1\rline 2", enter: false });
    expect(splitInput("x")).toEqual({ text: "x", enter: false });
  });
});
