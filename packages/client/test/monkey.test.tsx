// A monkey at the keyboard: random sequences of commands, keys and pastes, in any order, driven
// through the real Chat screen on a real client talking to the real relay process. Nothing may
// throw: not a key handler, not a render (the error boundary would catch it), not a promise.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RelayProcess, startRelay } from "../../relay/test/helpers.js";
import { Client } from "../src/client.js";
import { resolvePaths } from "../src/paths.js";
import { Chat } from "../src/ui/chat.js";
import { ErrorBoundary } from "../src/ui/error-boundary.js";
import { renderUi } from "./ui-helpers.js";

const ESC = "\u001b";
const dirs: string[] = [];
let relay: RelayProcess;
beforeAll(async () => {
  relay = await startRelay(["--storage", "memory"]);
});
afterAll(async () => {
  await relay.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function client(name: string): Client {
  const d = mkdtempSync(join(tmpdir(), "parley-monkey-"));
  dirs.push(d);
  const url = `ws://127.0.0.1:${relay.port}`;
  return Client.init(resolvePaths(d), "pw", name, { relay: url, maxRetentionSeconds: 30 * 86400 }, 10);
}

const step = fc.oneof(
  // commands, well-formed and not
  fc.constantFrom(
    "/delete\r",
    "/delete history\r",
    "/delete everything\r",
    "/rename Robert\r",
    "/rename\r",
    "/rename \u0007bad\r",
    "/verify\r",
    "/invite\r",
    "/copy\r",
    "/accept\r",
    "/accept PARLEY1-NOTACODE\r",
    "/accept PARLEY1-NOTACODE Some Name\r",
    "/relay\r",
    "/relay http://not-a-relay\r",
    "/help\r",
    "/frobnicate\r",
    "/\r",
    "hello there\r",
    "",
  ),
  // keys
  fc.constantFrom(
    `${ESC}[5~`,
    `${ESC}[6~`,
    `${ESC}[H`,
    `${ESC}[F`,
    `${ESC}[1;5H`,
    `${ESC}[1;5F`,
    `${ESC}[A`,
    `${ESC}[B`,
    `${ESC}[C`,
    `${ESC}[D`,
    `${ESC}b`,
    `${ESC}f`,
    `${ESC}\u007f`,
    `${ESC}\r`,
    `${ESC}[3~`,
    `${ESC}[Z`,
    `${ESC}OP`,
    ESC,
    "\t",
    "\r",
    "\u007f",
    "\u0001",
    "\u0005",
    "\u000b",
    "\u0015",
    "\u0017",
    "\u0019",
    "\u000e",
    "\u0010",
    "?",
    "y",
    "x",
  ),
  // text and pastes
  fc.string({ maxLength: 30 }),
  fc.string({ maxLength: 60 }).map((t) => `${ESC}[200~${t}${ESC}[201~`),
);

describe("the chat screen under random input", () => {
  it("never throws, whatever the order of commands and keys (fast-check)", { timeout: 240_000 }, async () => {
    const errors: unknown[] = [];
    const onRejection = (e: unknown) => errors.push(e);
    process.on("unhandledRejection", onRejection);
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
          const alice = client("Alice");
          const bob = client("Bob");
          await bob.accept((await alice.invite()).code, { name: "alice" });
          await alice.sync();
          // Unread messages: the screen marks them read, which a deleted contact must survive.
          await bob.send("alice", ["one", "two"]);
          await alice.start();
          const ui = renderUi(
            <ErrorBoundary onError={(e) => errors.push(e)}>
              <Chat client={alice} localOnly={false} onQuit={() => {}} />
            </ErrorBoundary>,
            (e) => errors.push(e),
          );
          try {
            for (const s of steps) {
              await ui.keys(s);
              // Commands finish asynchronously (a relay round trip): let them.
              await new Promise((r) => setTimeout(r, 20));
            }
            // The screen refreshes every second: a stale contact would show by then.
            await new Promise((r) => setTimeout(r, 1200));
            expect(errors).toEqual([]);
            expect(ui.lastFrame()).not.toMatch(/internal error|ERROR/);
          } finally {
            ui.unmount();
            await alice.stop();
            alice.close();
            bob.close();
          }
        }),
        { numRuns: 15 },
      );
    } finally {
      process.off("unhandledRejection", onRejection);
    }
  });
});
