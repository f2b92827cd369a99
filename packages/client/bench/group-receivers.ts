// The receiving side of the group benchmark (group-bench.ts), run as child processes so that the
// sender's CPU time is its own: each holds some of the members' clients, each client in live mode
// (as the terminal UI runs it) on its own connection to the relay, opened from the homes the
// benchmark set up. The parent drives them over IPC (ReceiverCommand) and hears back
// ReceiverReport: for each measurement, when the last of this process's clients emitted the
// expected message, the CPU this process used meanwhile, and how busy its event loop was (a
// client's store commits wait for the disk on that loop, which CPU time does not show).
import { performance } from "node:perf_hooks";
import { Client, type ClientEvent } from "../src/client.js";
import { resolvePaths } from "../src/paths.js";
import { sleep } from "./pty.js";

export type ReceiverCommand =
  /** Opens every home with `passphrase` and starts live mode on each. */
  | { type: "open"; homes: string[]; passphrase: string; relay: string }
  /** From now on, waits for a message whose text is `tag` (in a group, or 1:1) at every member. */
  | { type: "expect"; tag: string; group: boolean }
  /** Waits until every client's outbox is empty (its receipts gone) and nothing arrived for a while. */
  | { type: "settle" }
  | { type: "close" };

export type ReceiverReport =
  | { type: "ready" }
  | { type: "expecting" }
  /**
   * Every member here received the expected message; `at`: when the last did, in ms since the
   * epoch (performance.timeOrigin + performance.now(), comparable between processes of one
   * machine); since "expect": `cpuMs`, this process's CPU time, and `busy`, the share of the time
   * its event loop was not idle.
   */
  | { type: "received"; at: number; cpuMs: number; busy: number }
  | { type: "settled"; warnings: number }
  | { type: "closed" }
  | { type: "failed"; message: string };

/** Nothing arrived at any member for this long: the receipts of the last message are out. */
const QUIET_MS = 300;

const now = () => performance.timeOrigin + performance.now();
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

const clients: Client[] = [];
let lastEvent = 0;
let warnings = 0;
let expected: {
  tag: string;
  group: boolean;
  waiting: Set<number>;
  cpu: NodeJS.CpuUsage;
  loop: ReturnType<typeof performance.eventLoopUtilization>;
} | null = null;

const report = (r: ReceiverReport) => process.send!(r);

function onEvent(i: number, e: ClientEvent): void {
  lastEvent = now();
  const x = expected;
  if (!x || e.type !== "message" || e.text !== x.tag || (e.group !== undefined) !== x.group) return;
  x.waiting.delete(i);
  if (x.waiting.size > 0) return;
  expected = null;
  report({
    type: "received",
    at: now(),
    cpuMs: cpuMs(process.cpuUsage(x.cpu)),
    busy: performance.eventLoopUtilization(x.loop).utilization,
  });
}

async function handle(c: ReceiverCommand): Promise<void> {
  switch (c.type) {
    case "open":
      for (const [i, home] of c.homes.entries()) {
        const client = Client.open(resolvePaths(home), c.passphrase, {
          relay: c.relay,
          maxRetentionSeconds: 30 * 86400,
        });
        client.on("event", (e) => onEvent(i, e));
        client.on("warning", () => warnings++);
        clients.push(client);
      }
      // One at a time: the relay checks every mailbox's ownership proof as each subscribes.
      for (const client of clients) await client.start();
      report({ type: "ready" });
      return;
    case "expect":
      expected = {
        tag: c.tag,
        group: c.group,
        waiting: new Set(clients.keys()),
        cpu: process.cpuUsage(),
        loop: performance.eventLoopUtilization(),
      };
      report({ type: "expecting" });
      return;
    case "settle":
      for (;;) {
        await sleep(50);
        if (now() - lastEvent < QUIET_MS) continue;
        if (clients.every((client) => client.status().outbox === 0)) break;
      }
      report({ type: "settled", warnings });
      return;
    case "close":
      for (const client of clients) {
        await client.stop();
        client.close();
      }
      report({ type: "closed" });
      process.disconnect();
      return;
  }
}

process.on("message", (c: ReceiverCommand) => {
  handle(c).catch((e: unknown) => report({ type: "failed", message: (e as Error).stack ?? String(e) }));
});
