// One question on its own screen: a label, an input line (masked for passphrases), an error.
import { Box, Text } from "ink";
import { useRef, useState } from "react";
import { actionFor } from "./keys.js";
import { backspace, emptyLine, insert, type LineState, splitInput } from "./line-editor.js";
import { colour } from "./theme.js";
import { useKeys } from "./use-keys.js";

export interface PromptProps {
  readonly title: string;
  readonly label: string;
  readonly hint?: string;
  readonly masked?: boolean;
  readonly error?: string | null;
  readonly busy?: string | null;
  readonly onSubmit: (value: string) => void;
  readonly onQuit: () => void;
}

export function Prompt({ title, label, hint, masked, error, busy, onSubmit, onQuit }: PromptProps) {
  // The ref is the truth: several keys can arrive before React renders again.
  const ref = useRef(emptyLine());
  const [line, setLineState] = useState(ref.current);
  const setLine = (next: LineState) => {
    ref.current = next;
    setLineState(next);
  };
  useKeys((input, key, paste) => {
    // A one-line answer: a pasted line break is dropped, never taken for Enter.
    if (paste) return busy ? undefined : setLine(insert(ref.current, input.replace(/\n/g, "")));
    const action = actionFor(input, key);
    if (action === "quit") return onQuit();
    if (busy) return;
    const submitNow = () => {
      const value = ref.current.text;
      setLine(emptyLine());
      onSubmit(value);
    };
    if (key.return) return submitNow();
    if (key.backspace || key.delete) return setLine(backspace(ref.current));
    if (key.ctrl || key.meta || key.escape || key.tab || key.upArrow || key.downArrow) return;
    const { text, enter } = splitInput(input);
    setLine(insert(ref.current, text.replace(/[\r\n]/g, "")));
    if (enter) submitNow();
  });
  const shown = masked ? "•".repeat([...line.text].length) : line.text;
  return (
    <Box flexDirection="column" paddingX={1}>
      <Text bold color={colour("cyan")}>
        {title}
      </Text>
      {hint ? <Text color={colour("gray")}>{hint}</Text> : null}
      <Box marginTop={1}>
        <Text>{label} </Text>
        <Text>{shown}</Text>
        <Text inverse> </Text>
      </Box>
      {error ? <Text color={colour("red")}>{error}</Text> : null}
      {busy ? <Text color={colour("yellow")}>{busy}</Text> : null}
    </Box>
  );
}
