// The baseline of the UI benchmark: the smallest Ink app that paints a frame and echoes keys.
import { render, Text, useInput } from "ink";
import { useState } from "react";

function Echo() {
  const [text, setText] = useState("");
  useInput((input, key) => {
    if (key.ctrl && input === "c") process.exit(0);
    setText((t) => t + input);
  });
  return <Text>Parley is locked {`> ${text}`}</Text>;
}

// As parley does: raw mode from the start, so keys typed before the first frame reach the app.
process.stdin.setRawMode?.(true);
render(<Echo />, { exitOnCtrlC: false });
