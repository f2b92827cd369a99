// A conversation of 100,000 messages in the real encrypted store, drawn by the real chat screen:
// it opens at the newest, Home goes to the very first, PageUp/PageDown move by pages, End comes
// back, and each of those reads a few dozen messages from SQLite, wherever it is.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { render } from "ink-testing-library";
import { afterAll, describe, expect, it, vi } from "vitest";
import { type RelayProcess, startRelay } from "../../relay/test/helpers.js";
import { Client } from "../src/client.js";
import { resolvePaths } from "../src/paths.js";
import { Store } from "../src/store.js";
import { Chat } from "../src/ui/chat.js";
import { until } from "./ui-helpers.js";

const N = 100_000;
const dirs: string[] = [];
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("a conversation of 100,000 messages", () => {
  it("scrolls from the newest to the first and back, reading only what is on screen", {
    timeout: 180_000,
  }, async () => {
    const relay: RelayProcess = await startRelay(["--storage", "memory"]);
    cleanups.push(() => relay.stop());
    const url = `ws://127.0.0.1:${relay.port}`;
    const make = (name: string) => {
      const d = mkdtempSync(join(tmpdir(), "parley-long-"));
      dirs.push(d);
      return {
        paths: resolvePaths(d),
        client: Client.init(resolvePaths(d), "pw", name, { relay: url, maxRetentionSeconds: 30 * 86400 }, 10),
      };
    };
    const alice = make("Alice");
    const bob = make("Bob");
    cleanups.push(
      () => alice.client.close(),
      () => bob.client.close(),
    );
    await bob.client.accept((await alice.client.invite()).code, { name: "alice" });
    await alice.client.sync();

    // The history goes straight into Alice's store, sealed as received messages are.
    const store = Store.open(alice.paths.database, "pw");
    const bobKey = store.contacts().find((c) => c.value.name === "Bob")!.key;
    const start = Date.UTC(2026, 10, 1, 9);
    store.tx(() => {
      for (let i = 0; i < N; i++) {
        const at = start + i * 60_000;
        store.addMessage(bobKey, {
          id: i.toString(16).padStart(32, "0"),
          direction: i % 2 === 0 ? "in" : "out",
          text: `history ${i}`,
          sentAt: at,
          receivedAt: at,
          status: i % 2 === 0 ? "read" : "delivered",
        });
      }
    });
    store.close();

    const read = vi.spyOn(alice.client, "conversation");
    const ui = render(<Chat client={alice.client} localOnly={false} onQuit={() => {}} />);
    cleanups.push(() => ui.unmount());
    const frame = ui.lastFrame;
    await until(frame, (f) => f.includes(`history ${N - 1}`), "the newest message");
    const entriesRead = () => read.mock.results.reduce((n, r) => n + (r.value as unknown[]).length, 0);
    const press = async (key: string, pred: (f: string) => boolean, what: string) => {
      read.mockClear();
      ui.stdin.write(key);
      const f = await until(frame, pred, what);
      // A screen holds a dozen messages; a keypress reads a few batches at most, at any depth.
      expect(entriesRead()).toBeLessThanOrEqual(200);
      return f;
    };
    const shown = (f: string) => [...f.matchAll(/history (\d+)/g)].map((m) => Number(m[1]));

    const up = await press(
      "\u001b[5~",
      (f) => f.includes("scrolled back") && !f.includes(`history ${N - 1}`),
      "page up",
    );
    expect(Math.max(...shown(up))).toBeLessThan(N - 1);

    const top = await press("\u001b[H", (f) => /history 0\b/.test(f), "the first message");
    expect(Math.min(...shown(top))).toBe(0);
    expect(top).toContain("2026-11-01");
    const first = shown(top);

    const down = await press("\u001b[6~", (f) => shown(f)[0] !== 0, "page down from the top");
    // The page overlaps the previous one by two rows: one message of header and text.
    expect(shown(down)[0]).toBe(Math.max(...first));

    const deeper = await press("\u001b[6~", (f) => shown(f)[0]! > shown(down)[0]!, "another page down");
    expect(shown(deeper)[0]).toBe(Math.max(...shown(down)));

    const back = await press("\u001b[F", (f) => f.includes(`history ${N - 1}`), "the newest again");
    expect(back).not.toContain("scrolled back");
  });
});
