// Rendering a screen of the terminal UI for component tests: inside the app's KeyRouter, with a
// way to wait until every key written so far has been handled and drawn.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { render } from "ink-testing-library";
import type { ReactElement } from "react";
import { Client } from "../src/client.js";
import { resolvePaths } from "../src/paths.js";
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

/** Polls `frame` until `pred` holds; throws with the last frame after `timeoutMs`. */
export async function until(
  frame: () => string | undefined,
  pred: (f: string) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const f = frame() ?? "";
    if (pred(f)) return f;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} never appeared; last frame:\n${frame()}`);
}

/**
 * What a test made and must undo: clients in fresh homes (scrypt lowered), each stopped and
 * closed by `cleanup()`, which also runs what was pushed onto `cleanups` (newest first).
 */
export function scratch() {
  const dirs: string[] = [];
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  return {
    cleanups,
    /** A new identity called `name` whose default relay is `url`. */
    client(url: string, name: string): Client {
      const d = mkdtempSync(join(tmpdir(), "parley-ui-"));
      dirs.push(d);
      const c = Client.init(resolvePaths(d), "pw", name, { relay: url, maxRetentionSeconds: 30 * 86400 }, 10);
      cleanups.push(async () => {
        await c.stop();
        c.close();
      });
      return c;
    },
    /** A fresh home directory, removed by `removeDirs()`. */
    dir(): string {
      const d = mkdtempSync(join(tmpdir(), "parley-ui-"));
      dirs.push(d);
      return d;
    },
    async cleanup(): Promise<void> {
      for (const f of cleanups.splice(0).reverse()) await f();
    },
    removeDirs(): void {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}
