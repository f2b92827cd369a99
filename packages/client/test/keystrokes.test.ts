// The keystroke parser: what the UI receives depends on the keys, never on how the terminal cut
// them into reads.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { char, type InputEvent, KeystrokeParser, key } from "../src/ui/keystrokes.js";

/** Parses `chunks` as successive reads, then flushes (as the idle timer would). */
function parse(...chunks: (string | Uint8Array)[]): InputEvent[] {
  const p = new KeystrokeParser();
  const out = chunks.flatMap((c) => p.push(c));
  return [...out, ...p.flush()];
}

const ESC = "\u001b";

describe("the keystroke parser", () => {
  it("splits one read holding several keys into each key", () => {
    expect(parse("hello\rworld")).toEqual([
      ..."hello".split("").map((c) => char(c)),
      key("return"),
      ..."world".split("").map((c) => char(c)),
    ]);
    expect(parse("\u007f\u007f\u007f")).toEqual([key("backspace"), key("backspace"), key("backspace")]);
    expect(parse("a\r\nb\nc")).toEqual([char("a"), key("return"), char("b"), key("return"), char("c")]);
  });

  it("names function keys, modifiers and Alt as xterm, the Linux console and kitty send them", () => {
    const cases: [string, InputEvent][] = [
      [`${ESC}[A`, key("up")],
      [`${ESC}OB`, key("down")],
      [`${ESC}[1;5C`, key("right", { ctrl: true })],
      [`${ESC}[1;3D`, key("left", { meta: true })],
      [`${ESC}${ESC}[D`, key("left", { meta: true })],
      [`${ESC}[H`, key("home")],
      [`${ESC}[1~`, key("home")],
      [`${ESC}[7~`, key("home")],
      [`${ESC}[4~`, key("end")],
      [`${ESC}[1;5F`, key("end", { ctrl: true })],
      [`${ESC}[3~`, key("delete")],
      [`${ESC}[3;3~`, key("delete", { meta: true })],
      [`${ESC}[5~`, key("pageup")],
      [`${ESC}[6~`, key("pagedown")],
      [`${ESC}[Z`, key("tab", { shift: true })],
      [`${ESC}OP`, key("f1")],
      [`${ESC}[[A`, key("f1")],
      [`${ESC}[24~`, key("f12")],
      [`${ESC}b`, char("b", { meta: true })],
      [`${ESC}\u007f`, key("backspace", { meta: true })],
      [`${ESC}\r`, key("return", { meta: true })],
      ["\u0001", key("char", { text: "a", ctrl: true })],
      ["\u0017", key("char", { text: "w", ctrl: true })],
      ["\u0008", key("backspace")],
      ["\t", key("tab")],
      ["\u0000", key("space", { ctrl: true })],
      [`${ESC}[97;5u`, char("a", { ctrl: true })],
      [`${ESC}[I`, { kind: "focus", focused: true }],
      [`${ESC}[O`, { kind: "focus", focused: false }],
      [ESC, key("escape")],
    ];
    for (const [bytes, event] of cases) expect(parse(bytes), JSON.stringify(bytes)).toEqual([event]);
  });

  it("delivers a paste whole, line breaks as newlines, and ends one whose end never comes", () => {
    expect(parse(`x${ESC}[200~one\rtwo ? y\r\n${ESC}[201~z`)).toEqual([
      char("x"),
      { kind: "paste", text: "one\ntwo ? y\n" },
      char("z"),
    ]);
    expect(parse(`${ESC}[200~split`, ` paste${ESC}[20`, "1~")).toEqual([
      { kind: "paste", text: "split paste" },
    ]);
    // A typed start marker (or a lost end) cannot swallow the keyboard: flush ends it, Ctrl+C passes.
    expect(parse(`${ESC}[200~never ends`)).toEqual([{ kind: "paste", text: "never ends" }]);
    expect(parse(`${ESC}[200~abc\u0003d`)).toEqual([
      { kind: "paste", text: "abc" },
      key("char", { text: "c", ctrl: true }),
      char("d"),
    ]);
  });

  it("waits for the rest of a key cut by a read, and decodes UTF-8 split inside a character", () => {
    const p = new KeystrokeParser();
    expect(p.push(`a${ESC}`)).toEqual([char("a")]);
    expect(p.pending).toBe(true);
    expect(p.push("[5")).toEqual([]);
    expect(p.push("~")).toEqual([key("pageup")]);
    const bytes = Buffer.from("é👍", "utf8");
    expect(parse(bytes.subarray(0, 1), bytes.subarray(1, 3), bytes.subarray(3))).toEqual([
      char("é"),
      char("👍"),
    ]);
  });

  // Keys as bytes and as the event they must become. Excluded, because they are ambiguous by
  // nature: Escape followed by more keys (ESC then "[" is a sequence), Alt+[ and Alt+O, and LF
  // right after CR (one Enter).
  const keyArb: fc.Arbitrary<{ bytes: string; events: readonly InputEvent[] }> = fc.oneof(
    fc
      .string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 })
      .filter((c) => c >= " " && c !== "\u007f")
      .map((c) => ({ bytes: c, events: [char(c)] })),
    fc.constantFrom("é", "ж", "中", "👍", "🏳", "\u0301").map((c) => ({ bytes: c, events: [char(c)] })),
    fc.constantFrom(
      { bytes: "\r", events: [key("return")] },
      { bytes: "\t", events: [key("tab")] },
      { bytes: "\u007f", events: [key("backspace")] },
      { bytes: "\u0003", events: [key("char", { text: "c", ctrl: true })] },
      { bytes: "\u0015", events: [key("char", { text: "u", ctrl: true })] },
      { bytes: `${ESC}[A`, events: [key("up")] },
      { bytes: `${ESC}[1;5D`, events: [key("left", { ctrl: true })] },
      { bytes: `${ESC}OH`, events: [key("home")] },
      { bytes: `${ESC}[6~`, events: [key("pagedown")] },
      { bytes: `${ESC}[3~`, events: [key("delete")] },
      { bytes: `${ESC}[Z`, events: [key("tab", { shift: true })] },
      { bytes: `${ESC}f`, events: [char("f", { meta: true })] },
      { bytes: `${ESC}\u007f`, events: [key("backspace", { meta: true })] },
      { bytes: `${ESC}\r`, events: [key("return", { meta: true })] },
      { bytes: `${ESC}[I`, events: [{ kind: "focus", focused: true } as InputEvent] },
    ),
    fc
      .string({ unit: "binary", minLength: 1, maxLength: 20 })
      .filter((t) => !t.includes(ESC) && !t.includes("\u0003") && !/[\ud800-\udfff]/.test(t))
      .map((t) => ({
        bytes: `${ESC}[200~${t}${ESC}[201~`,
        events: [{ kind: "paste", text: t.replace(/\r\n?/g, "\n") } as InputEvent],
      })),
  );

  it("gives the same events however the bytes are cut into reads (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.array(keyArb, { maxLength: 40 }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 30 }),
        (keys, escapeLast, cuts) => {
          const all = keys.map((k) => k.bytes).join("") + (escapeLast ? ESC : "");
          const expected = [
            ...keys.flatMap((k) => k.events).filter((e) => !(e.kind === "paste" && e.text === "")),
            ...(escapeLast ? [key("escape")] : []),
          ];
          const bytes = Buffer.from(all, "utf8");
          const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks = [0, ...at, bytes.length]
            .slice(1)
            .map((end, i, ends) => bytes.subarray(i === 0 ? 0 : ends[i - 1], end));
          expect(parse(...chunks)).toEqual(expected);
          expect(parse(all)).toEqual(expected);
        },
      ),
      { numRuns: 500 },
    );
  });
});
