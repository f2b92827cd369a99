// The key layer on its own: bracketed pastes arrive whole, however the terminal splits them, and a
// paste that never ends, or Ctrl+C in the middle of one, cannot swallow the keyboard.
import { Text } from "ink";
import { render } from "ink-testing-library";
import { useState } from "react";
import { afterEach, describe, expect, it } from "vitest";
import { useKeys } from "../src/ui/use-keys.js";

type Call = { input: string; ctrl: boolean; paste: boolean };

function Recorder({ calls }: { calls: Call[] }) {
  const [n, setN] = useState(0);
  useKeys((input, key, paste) => {
    calls.push({ input, ctrl: key.ctrl, paste });
    setN((x) => x + 1);
  });
  return <Text>{`keys ${n}`}</Text>;
}

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));
const unmounts: (() => void)[] = [];
afterEach(() => {
  for (const u of unmounts.splice(0)) u();
});

function setup() {
  const calls: Call[] = [];
  const ui = render(<Recorder calls={calls} />);
  unmounts.push(() => ui.unmount());
  return { calls, write: (s: string) => ui.stdin.write(s) };
}

describe("the key layer", () => {
  it("delivers a bracketed paste once, as text, with its line breaks as newlines", async () => {
    const { calls, write } = setup();
    write("\u001b[200~one\rtwo ? y\r\n\u001b[201~");
    await tick();
    write("z");
    await tick();
    expect(calls).toEqual([
      { input: "one\ntwo ? y", ctrl: false, paste: true },
      { input: "z", ctrl: false, paste: false },
    ]);
  });

  it("finds the end marker when a read splits it", async () => {
    const { calls, write } = setup();
    write("\u001b[200~split paste\u001b[20");
    await tick();
    write("1~");
    await tick();
    write("k");
    await tick();
    expect(calls).toEqual([
      { input: "split paste", ctrl: false, paste: true },
      { input: "k", ctrl: false, paste: false },
    ]);
  });

  it("lets Ctrl+C through in the middle of a paste, keeping what came before it", async () => {
    const { calls, write } = setup();
    write("\u001b[200~half a paste");
    await tick();
    write("\u0003");
    await tick();
    expect(calls).toEqual([
      { input: "half a paste", ctrl: false, paste: true },
      { input: "c", ctrl: true, paste: false },
    ]);
  });

  it("ends a paste whose end marker never comes, and goes back to keys", async () => {
    const { calls, write } = setup();
    write("\u001b[200~");
    await tick();
    write("typed");
    await tick(1300);
    write("x");
    await tick();
    expect(calls).toEqual([
      { input: "typed", ctrl: false, paste: true },
      { input: "x", ctrl: false, paste: false },
    ]);
  });
});
