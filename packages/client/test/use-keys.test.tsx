// The key layer: every read is split into keys, each key is handled after React committed the
// one before it, keys typed while a screen is busy or between two screens wait for the next input,
// and a paste arrives whole.
import { Text } from "ink";
import { useState } from "react";
import { afterEach, describe, expect, it } from "vitest";
import { type Keystroke, useKeys } from "../src/ui/use-keys.js";
import { renderUi } from "./ui-helpers.js";

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));
/** Waits until `done` holds (checked every few milliseconds); fails after 10 s with `what`. */
async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what} never happened`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
const unmounts: (() => void)[] = [];
afterEach(() => {
  for (const u of unmounts.splice(0)) u();
});

/** A screen that records what it gets, with the count as React state (as a screen's own state). */
function Recorder({
  name,
  log,
  busy,
  joinable,
}: {
  name: string;
  log: string[];
  busy?: boolean;
  joinable?: (k: Keystroke) => boolean;
}) {
  const [n, setN] = useState(0);
  useKeys(
    (e) => {
      // `n` comes from the closure: right only if the previous key's update was committed.
      log.push(
        `${name}${n}:${e.kind === "paste" ? `paste(${e.text})` : e.name === "char" ? e.text : e.name}`,
      );
      setN(n + 1);
    },
    { busy, joinable },
  );
  return <Text>{`${name} ${n}`}</Text>;
}

function setup(node: (log: string[]) => React.ReactElement) {
  const log: string[] = [];
  const ui = renderUi(node(log));
  unmounts.push(() => ui.unmount());
  return { log, ui, write: (s: string) => ui.stdin.write(s) };
}

describe("the key layer", () => {
  it("hands over each key of one read on its own, after the previous one was committed", async () => {
    const { log, ui } = setup((log) => <Recorder name="a" log={log} />);
    await tick();
    await ui.keys("hi\r\u007f\u007f\u001b[5~\u001b[5~");
    expect(log).toEqual([
      "a0:h",
      "a1:i",
      "a2:return",
      "a3:backspace",
      "a4:backspace",
      "a5:pageup",
      "a6:pageup",
    ]);
    expect(ui.lastFrame()).toBe("a 7");
  });

  it("joins a run of characters the screen calls joinable into one delivery, never across others", async () => {
    const joinable = (k: Keystroke) => k.name === "char" && !k.ctrl && !k.meta && k.text !== "?";
    const { log, ui } = setup((log) => <Recorder name="a" log={log} joinable={joinable} />);
    await tick();
    await ui.keys("hello wörld?ab\u007fcd\u0015ef");
    expect(log).toEqual(["a0:hello wörld", "a1:?", "a2:ab", "a3:backspace", "a4:cd", "a5:u", "a6:ef"]);
  });

  it("keeps keys typed while the screen is busy, and hands them over when it is not", async () => {
    const { log, ui, write } = setup((log) => <Recorder name="a" log={log} busy />);
    write("abc");
    // Conditions, not pauses: a busy machine may take any time to parse and render.
    await until(() => ui.queue.waiting === 3, "the three keys waiting");
    expect(log).toEqual([]);
    // Ctrl+C is never kept waiting.
    write("\u0003");
    await until(() => log.length === 1, "Ctrl+C handled");
    expect(log).toEqual(["a0:c"]);
    expect(ui.queue.waiting).toBe(3);
    ui.rerender(<Recorder name="a" log={log} busy={false} />);
    await until(() => log.length === 4, "the waiting keys handed over");
    await ui.queue.settled();
    expect(log).toEqual(["a0:c", "a1:a", "a2:b", "a3:c"]);
  });

  it("gives keys typed during a screen change to the screen that comes next", async () => {
    const screen = (which: "none" | "busy" | "next", log: string[]) => (
      <>
        {which === "busy" ? <Recorder name="a" log={log} busy /> : null}
        {which === "next" ? <Recorder name="b" log={log} /> : null}
      </>
    );
    const { log, ui, write } = setup((log) => screen("busy", log));
    write("xy");
    ui.rerender(screen("none", log));
    write("z");
    await until(() => ui.queue.waiting === 3, "the three keys waiting");
    expect(log).toEqual([]);
    ui.rerender(screen("next", log));
    await until(() => log.length === 3, "the keys handed to the next screen");
    expect(log).toEqual(["b0:x", "b1:y", "b2:z"]);
  });

  it("delivers a bracketed paste once, whole, however it is split, and Escape after a pause", async () => {
    const { log, write } = setup((log) => <Recorder name="a" log={log} />);
    await tick();
    write("\u001b[200~split ");
    write("paste\u001b[20");
    await tick();
    write("1~k\u001b");
    await tick(200);
    expect(log).toEqual(["a0:paste(split paste)", "a1:k", "a2:escape"]);
  });

  it("ends a paste whose end marker never comes, and goes back to keys", async () => {
    const { log, write } = setup((log) => <Recorder name="a" log={log} />);
    await tick();
    write("\u001b[200~typed");
    await tick(1300);
    write("x");
    await tick();
    expect(log).toEqual(["a0:paste(typed)", "a1:x"]);
  });
});
