// Shared by the in-process client tests: real relay processes, clients in temporary homes, and a
// wait for an event. Everything made here is undone by cleanupLive() (call it in afterEach).
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RelayProcess, startRelay } from "../../relay/test/helpers.js";
import { Client, type ClientEvent, type RelayState } from "../src/client.js";
import { resolvePaths } from "../src/paths.js";
import { DEFAULT_MAX_RETENTION_SECONDS, type Settings } from "../src/settings.js";

const dirs: string[] = [];
const relays: RelayProcess[] = [];
const clients: Client[] = [];
const finals: (() => Promise<void> | void)[] = [];

/** Stops every client and relay, runs what was registered with onCleanup, removes the directories. */
export async function cleanupLive(): Promise<void> {
  for (const c of clients.splice(0)) {
    await c.stop();
    c.close();
  }
  for (const r of relays.splice(0)) await r.stop();
  for (const f of finals.splice(0).reverse()) await f();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function onCleanup(f: () => Promise<void> | void): void {
  finals.push(f);
}

export function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "parley-live-"));
  dirs.push(d);
  return d;
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** The real relay process (stopped by cleanupLive). */
export async function relay(args: string[] = ["--storage", "memory"]): Promise<RelayProcess> {
  const r = await startRelay(args);
  relays.push(r);
  return r;
}

export function client(
  name: string,
  url: string,
  maxRetentionSeconds = DEFAULT_MAX_RETENTION_SECONDS,
  extra: Partial<Settings> = {},
): Client {
  const c = Client.init(resolvePaths(tmp()), "pw", name, { relay: url, maxRetentionSeconds, ...extra }, 10);
  clients.push(c);
  return c;
}

/** Resolves with the first event matching `pred` from now on. */
export function eventually(
  c: Client,
  pred: (e: ClientEvent) => boolean,
  timeoutMs = 20_000,
): Promise<ClientEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("event did not arrive")), timeoutMs);
    const on = (e: ClientEvent) => {
      if (!pred(e)) return;
      clearTimeout(timer);
      c.off("event", on);
      resolve(e);
    };
    c.on("event", on);
  });
}

/** Resolves with the first "relay" event matching `pred` from now on. */
export function relayEvent(
  c: Client,
  pred: (s: RelayState) => boolean,
  timeoutMs = 30_000,
): Promise<RelayState> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("relay state did not come")), timeoutMs);
    const on = (s: RelayState) => {
      if (!pred(s)) return;
      clearTimeout(timer);
      c.off("relay", on);
      resolve(s);
    };
    c.on("relay", on);
  });
}

/** Alice invites, Bob accepts naming her "alice"; both sync once. */
export async function pair(url: string, extra: Partial<Settings> = {}): Promise<[Client, Client]> {
  const alice = client("Alice", url, DEFAULT_MAX_RETENTION_SECONDS, extra);
  const bob = client("Bob", url, DEFAULT_MAX_RETENTION_SECONDS, extra);
  const { code } = await alice.invite();
  await bob.accept(code, { name: "alice" });
  await alice.sync();
  await bob.sync();
  return [alice, bob];
}

/** SIGKILLs a process this test started, and waits until it is gone. */
export async function kill(pid: number): Promise<void> {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    return;
  }
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
