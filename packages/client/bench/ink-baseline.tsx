// The baseline of the UI benchmark (bench/ui-bench.ts): the smallest Ink app that does with a key
// what parley's input line does. It paints "Parley is locked" first, reads the terminal itself in
// raw mode (as parley does, not through Ink's useInput), splits each read into keys (a character,
// Enter, Ctrl+U, Ctrl+C), applies them to a line, and draws the end of the line that fits, after
// "…", with an inverse cursor cell, as parley's input line does.
//
// By default the keys of one read are drawn in one render (what an Ink app does by itself). With
// --per-key it hands over one key per React commit, as parley's KeyQueue does (ui/use-keys.ts):
// the next key goes once the previous key's render is committed.
//
// Enter writes the line to the file named by BASELINE_OUT (the benchmark compares it with what
// it typed) and empties it.
import { writeFileSync } from "node:fs";
import { Box, render, Text, useStdin } from "ink";
import { useLayoutEffect, useRef, useState } from "react";

const perKey = process.argv.includes("--per-key");
const out = process.env.BASELINE_OUT;
/** Columns for the line in an 80-column terminal: "> ", "…", the line, the cursor cell. */
const ROOM = 75;
/** East Asian wide characters and emoji take two columns. */
const WIDE =
  /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]|\p{Extended_Pictographic}/u;

/** The end of the line that fits in ROOM columns, after "…" when cut. */
function tail(text: string): string {
  const chars = Array.from(text);
  let used = 0;
  let i = chars.length;
  while (i > 0) {
    const w = WIDE.test(chars[i - 1]!) ? 2 : 1;
    if (used + w > ROOM) break;
    used += w;
    i--;
  }
  return i > 0 ? `…${chars.slice(i).join("")}` : text;
}

type Key = { readonly kind: "char"; readonly text: string } | { readonly kind: "enter" | "clear" };

/** One read as keys: each character on its own, CR as Enter, Ctrl+U, Ctrl+C quits. */
function keys(chunk: string): Key[] {
  const ks: Key[] = [];
  for (const c of chunk) {
    if (c === "\u0003") process.exit(0);
    if (c === "\r") ks.push({ kind: "enter" });
    else if (c === "\u0015") ks.push({ kind: "clear" });
    else if (c >= " " && c !== "\u007f") ks.push({ kind: "char", text: c });
  }
  return ks;
}

function Echo() {
  const { stdin } = useStdin();
  // The ref is the truth; the state is what is drawn (and, per key, which key it was).
  const line = useRef("");
  const [shown, setShown] = useState({ text: "", handled: 0 });
  const queue = useRef<Key[]>([]);
  const awaiting = useRef(false);

  const apply = (k: Key) => {
    if (k.kind === "char") line.current += k.text;
    else {
      if (k.kind === "enter" && out) writeFileSync(out, line.current);
      line.current = "";
    }
  };
  const pump = () => {
    if (awaiting.current) return;
    const k = queue.current.shift();
    if (!k) return;
    awaiting.current = true;
    apply(k);
    setShown((s) => ({ text: line.current, handled: s.handled + 1 }));
  };
  // A key's render is committed: hand over the next one (not from inside the commit).
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs when a key's render is committed
  useLayoutEffect(() => {
    awaiting.current = false;
    if (queue.current.length > 0) setImmediate(pump);
  }, [shown.handled]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: pump and apply only read refs
  useLayoutEffect(() => {
    const onData = (chunk: string) => {
      const ks = keys(chunk);
      if (perKey) {
        queue.current.push(...ks);
        pump();
        return;
      }
      for (const k of ks) apply(k);
      setShown((s) => ({ text: line.current, handled: s.handled }));
    };
    stdin.setEncoding("utf8");
    stdin.on("data", onData);
    stdin.resume();
    return () => {
      stdin.off("data", onData);
    };
  }, [stdin]);

  return (
    <Box flexDirection="column">
      <Text>Parley is locked</Text>
      <Box>
        <Text>{"> "}</Text>
        <Text>{tail(shown.text)}</Text>
        <Text inverse> </Text>
      </Box>
    </Box>
  );
}

// As parley does: raw mode from the start, so keys typed before the first frame reach the app.
process.stdin.setRawMode?.(true);
render(<Echo />, { exitOnCtrlC: false });
