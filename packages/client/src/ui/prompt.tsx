// One question on its own screen: a label, an input line (masked for passphrases), an error.
import { Box, Text } from "ink";
import { useRef, useState } from "react";
import { actionFor, typed } from "./keys.js";
import { emptyLine, insert, type LineState, lineView } from "./line-editor.js";
import { editLine } from "./line-keys.js";
import { colour } from "./theme.js";
import { useKeys } from "./use-keys.js";
import { useTerminalSize } from "./use-terminal-size.js";

export interface PromptProps {
  readonly title: string;
  readonly label: string;
  readonly hint?: string;
  readonly masked?: boolean;
  readonly error?: string | null;
  /** While set, the prompt shows it and keys typed meanwhile wait for the next input. */
  readonly busy?: string | null;
  readonly onSubmit: (value: string) => void;
  readonly onQuit: () => void;
}

export function Prompt({ title, label, hint, masked, error, busy, onSubmit, onQuit }: PromptProps) {
  const { columns } = useTerminalSize();
  // The ref is the truth: several keys can arrive before React renders again.
  const ref = useRef(emptyLine());
  const [line, setLineState] = useState(ref.current);
  const setLine = (next: LineState) => {
    ref.current = next;
    setLineState(next);
  };
  useKeys(
    (e) => {
      // A one-line answer: a pasted line break is dropped, never taken for Enter.
      if (e.kind === "paste") return setLine(insert(ref.current, e.text.replace(/\n/g, "")));
      const action = actionFor(e);
      if (action === "quit") return onQuit();
      if (action === "send") {
        const value = ref.current.text;
        setLine(emptyLine());
        return onSubmit(value);
      }
      // No history in a prompt (it would keep passphrases), and no new lines.
      if (action === "historyBack" || action === "historyForward" || action === "newline") return;
      const edited = action ? editLine(ref.current, action) : null;
      if (edited) return setLine(edited);
      if (typed(e)) setLine(insert(ref.current, e.text));
    },
    // Every typed character goes into the answer: typed runs arrive joined.
    { busy: Boolean(busy), joinable: typed },
  );
  const view = lineView(line, Math.max(10, columns - label.length - 4), masked ? "•" : undefined);
  return (
    <Box flexDirection="column" paddingX={1}>
      <Text bold color={colour("cyan")}>
        {title}
      </Text>
      {hint ? <Text color={colour("gray")}>{hint}</Text> : null}
      <Box marginTop={1}>
        <Text>{label} </Text>
        <Text>{view.before}</Text>
        <Text inverse>{view.at}</Text>
        <Text>{view.after}</Text>
      </Box>
      {error ? <Text color={colour("red")}>{error}</Text> : null}
      {busy ? <Text color={colour("yellow")}>{busy}</Text> : null}
    </Box>
  );
}
