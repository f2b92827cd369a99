// Rendering a screen of the terminal UI for component tests: inside the app's KeyRouter, with a
// way to wait until every key written so far has been handled and drawn.
import { render } from "ink-testing-library";
import type { ReactElement } from "react";
import { KeyQueue, KeyRouter } from "../src/ui/use-keys.js";

export type Rendered = ReturnType<typeof render> & {
  /** Writes `bytes` as one terminal read and waits until all of it has been handled. */
  keys(bytes: string): Promise<void>;
  /** Types a line and Enter in one read. */
  line(text: string): Promise<void>;
  readonly queue: KeyQueue;
};

export function renderUi(node: ReactElement, onError?: (e: unknown) => void): Rendered {
  const queue = new KeyQueue(onError);
  const wrap = (n: ReactElement) => (
    <KeyRouter queue={queue} onError={onError}>
      {n}
    </KeyRouter>
  );
  const ui = render(wrap(node));
  const keys = async (bytes: string) => {
    ui.stdin.write(bytes);
    await queue.settled();
  };
  return {
    ...ui,
    rerender: (n: ReactElement) => ui.rerender(wrap(n)),
    keys,
    line: (text) => keys(`${text}\r`),
    queue,
  };
}
