// Helpers for the `parley` client end-to-end tests: run the CLI as a real process against real
// relay processes, parse its JSON Lines, and poll `sync` until what a test waits for has arrived.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, inject } from "vitest";
import { type RelayProcess, startRelay as startRelayProcess } from "../packages/relay/test/helpers.js";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** The client's entry point in TypeScript (run it with `node --conditions=source --import tsx`). */
export const CLI = join(ROOT, "packages/client/src/cli.ts");
/**
 * The command that runs `parley` as `npm start` and the bin do: node and the client's bundle, which
 * global-setup.ts built from the source above at the start of this run.
 */
export const PARLEY: readonly string[] = [process.execPath, inject("parleyBundle")];
export const PASSPHRASE = `pass-${randomBytes(6).toString("hex")}`;

/** One JSON Lines object printed by `parley --json`. */
export interface ParleyEvent {
  type: string;
  [field: string]: unknown;
}

export interface MessageEvent extends ParleyEvent {
  type: "message";
  contact: string;
  id: string;
  direction: "in" | "out";
  text: string;
  sentAt: number;
  receivedAt: number;
  status?: string;
}

export interface StatusEvent extends ParleyEvent {
  type: "status";
  contact: string;
  id: string;
  status: string;
}

export interface ContactEvent extends ParleyEvent {
  type: "contact";
  contact: string;
  event: string;
  fingerprint: string;
  verified: boolean;
  keyChanged: boolean;
  relay: string;
  unread: number;
  outbox: number;
}

export interface RunResult {
  args: string[];
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Every stdout line that parses as a JSON object with a `type`. */
  events: ParleyEvent[];
  /** Non-empty stdout lines that are not such objects. */
  badLines: string[];
}

export interface RunOptions {
  /** Written to stdin, which is then closed (stdin is always a pipe, never a terminal). */
  input?: string;
  /** Extra environment; `undefined` removes a variable (e.g. PARLEY_PASSPHRASE). */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

const cleanups: (() => Promise<unknown>)[] = [];

/** Runs everything registered by newHome/newDir/startRelay, newest first. Call in afterAll/afterEach. */
export async function cleanup(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch {
      // best effort
    }
  }
}

/** A fresh temporary directory, removed by cleanup(). */
export async function newDir(prefix = "parley-test-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh, empty parley home. */
export function newHome(): Promise<string> {
  return newDir("parley-home-");
}

let sandbox: Promise<string> | undefined;
/** XDG directories for the child processes, so nothing can touch the real ~/.local or ~/.config. */
function xdgSandbox(): Promise<string> {
  sandbox ??= mkdtemp(join(tmpdir(), "parley-xdg-")).then((dir) => {
    cleanups.unshift(() => rm(dir, { recursive: true, force: true }));
    return dir;
  });
  return sandbox;
}

function describeRun(r: RunResult): string {
  return `parley ${r.args.join(" ")} → exit ${r.code ?? r.signal}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

/** Runs `parley --home HOME ...args` as its own process and collects its output. */
export async function runParley(home: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const xdg = await xdgSandbox();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith("PARLEY_") || k.startsWith("XDG_")) continue;
    env[k] = v;
  }
  Object.assign(env, {
    PARLEY_PASSPHRASE: PASSPHRASE,
    PARLEY_SCRYPT_LOG_N: "10",
    NO_COLOR: "1",
    XDG_DATA_HOME: join(xdg, "data"),
    XDG_CONFIG_HOME: join(xdg, "config"),
  });
  for (const [k, v] of Object.entries(options.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const fullArgs = ["--home", home, ...args];
  const proc = spawn(PARLEY[0]!, [...PARLEY.slice(1), ...fullArgs], {
    cwd: ROOT,
    env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  proc.stdin.on("error", () => {
    // the CLI may exit without reading stdin
  });
  proc.stdin.end(options.input ?? "");
  const timeoutMs = options.timeoutMs ?? 60_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  const { code, signal, stdout, stderr } = await finished(proc);
  clearTimeout(timer);
  const events: ParleyEvent[] = [];
  const badLines: string[] = [];
  for (const line of stdout.split("\n")) {
    if (line.trim() === "") continue;
    try {
      const value: unknown = JSON.parse(line);
      if (value !== null && typeof value === "object" && typeof (value as ParleyEvent).type === "string") {
        events.push(value as ParleyEvent);
        continue;
      }
    } catch {
      // not JSON
    }
    badLines.push(line);
  }
  const result: RunResult = { args: fullArgs, code, signal, stdout, stderr, events, badLines };
  if (timedOut) throw new Error(`timed out after ${timeoutMs} ms: ${describeRun(result)}`);
  return result;
}

/** Collects a child's output until it exits. */
export function finished(
  child: ChildProcess,
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8");
  child.stderr?.setEncoding("utf8");
  child.stdout?.on("data", (d: string) => {
    stdout += d;
  });
  child.stderr?.on("data", (d: string) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Asserts exit 0 (and, with --json, that stdout is nothing but JSON Lines); returns the result. */
export function ok(r: RunResult): RunResult {
  expect(r.code, describeRun(r)).toBe(0);
  if (r.args.includes("--json")) expect(r.badLines, describeRun(r)).toEqual([]);
  return r;
}

/** Asserts a failure with exit `code` and exactly one non-empty line on stderr; returns that line. */
export function fails(r: RunResult, code: number): string {
  expect(r.code, describeRun(r)).toBe(code);
  const lines = r.stderr.split("\n").filter((l, i, all) => !(l === "" && i === all.length - 1));
  expect(lines, `exactly one stderr line expected: ${describeRun(r)}`).toHaveLength(1);
  expect(lines[0]!.trim(), describeRun(r)).not.toBe("");
  return lines[0]!;
}

/** Runs and asserts exit 0. */
export async function parley(home: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return ok(await runParley(home, args, options));
}

/**
 * Runs `sync --wait 5 --json` until `predicate` holds for all the events accumulated in this call
 * (always at least once); throws with everything accumulated when `timeoutMs` passes first.
 */
export async function syncUntil(
  home: string,
  predicate: (events: ParleyEvent[]) => boolean,
  options: { timeoutMs?: number; wait?: number; env?: Record<string, string | undefined> } = {},
): Promise<ParleyEvent[]> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  const all: ParleyEvent[] = [];
  const log: string[] = [];
  for (;;) {
    const r = await runParley(home, ["sync", "--wait", String(options.wait ?? 5), "--json"], {
      env: options.env ?? {},
    });
    ok(r);
    all.push(...r.events);
    if (r.stderr.trim() !== "") log.push(`stderr: ${r.stderr.trim()}`);
    if (predicate(all)) return all;
    if (Date.now() > deadline) {
      throw new Error(
        `syncUntil(${home}): condition not met within ${timeoutMs} ms; accumulated events:\n${all
          .map((e) => JSON.stringify(e))
          .join("\n")}\n${log.join("\n")}`,
      );
    }
  }
}

/** A TCP port that was free a moment ago (for restarting a relay on the same port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("no port"));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

export interface Relay extends RelayProcess {
  readonly url: string;
}

/** Starts the real relay process (stopped by cleanup()); a later `--port N` in args overrides 0. */
export async function startRelay(args: string[] = ["--storage", "memory"]): Promise<Relay> {
  const relay = await startRelayProcess(args);
  cleanups.push(() => relay.stop("SIGKILL"));
  return Object.assign(relay, { url: `ws://127.0.0.1:${relay.port}` });
}

/** Starts a SQLite relay on `port` with `dataDir` (the same pair restarts it with its data). */
export function startSqliteRelay(port: number, dataDir: string): Promise<Relay> {
  return startRelay(["--storage", "sqlite", "--data-dir", dataDir, "--port", String(port)]);
}

/** A SQLite relay that can be stopped and started again on the same port with the same data. */
export interface RestartableRelay {
  readonly url: string;
  /** Stops it (SIGTERM: it drains); resolves with its exit status. */
  stop(): ReturnType<Relay["stop"]>;
  /** Starts it again with its data, on its port. */
  start(): Promise<void>;
}

export async function restartableRelay(): Promise<RestartableRelay> {
  const port = await freePort();
  const dataDir = await newDir("parley-relay-data-");
  let relay = await startSqliteRelay(port, dataDir);
  return {
    url: relay.url,
    stop: () => relay.stop("SIGTERM"),
    async start() {
      relay = await startSqliteRelay(port, dataDir);
      if (relay.port !== port) throw new Error(`the relay came back on ${relay.port}, not ${port}`);
    },
  };
}

// ---- event selectors ----

export const messages = (events: ParleyEvent[], contact?: string, direction?: "in" | "out") =>
  events.filter(
    (e): e is MessageEvent =>
      e.type === "message" &&
      (contact === undefined || e.contact === contact) &&
      (direction === undefined || e.direction === direction),
  );

export const statuses = (events: ParleyEvent[]) =>
  events.filter((e): e is StatusEvent => e.type === "status");

export const contactEvents = (events: ParleyEvent[]) =>
  events.filter((e): e is ContactEvent => e.type === "contact");

/** Texts of the incoming messages from `contact`, in the order printed. */
export const received = (events: ParleyEvent[], contact: string) =>
  messages(events, contact, "in").map((m) => m.text);

/** True once every text in `texts` has arrived from `contact`. */
export const hasAll = (contact: string, texts: readonly string[]) => (events: ParleyEvent[]) => {
  const got = new Set(received(events, contact));
  return texts.every((t) => got.has(t));
};

const RANK: Record<string, number> = { queued: 0, stored: 1, delivered: 2, read: 3 };
/** The furthest status seen for each message id (queued < stored < delivered < read). */
export function latestStatus(events: ParleyEvent[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of statuses(events)) {
    const prev = out.get(s.id);
    if (prev === undefined || (RANK[s.status] ?? -1) >= (RANK[prev] ?? -1)) out.set(s.id, s.status);
  }
  return out;
}

/** True once every id has reached `status` (or a later one). */
export const allReached =
  (ids: readonly string[], status: "stored" | "delivered" | "read") => (events: ParleyEvent[]) => {
    const latest = latestStatus(events);
    return ids.every((id) => (RANK[latest.get(id) ?? ""] ?? -1) >= RANK[status]!);
  };

/** True once every id has reached `delivered` (or `read`). */
export const allDelivered = (ids: readonly string[]) => allReached(ids, "delivered");

// ---- common flows ----

/** `init --name NAME --relay URL --json`; returns the identity event. */
export async function init(home: string, name: string, relay: string): Promise<ParleyEvent> {
  const r = await parley(home, ["init", "--name", name, "--relay", relay, "--json"]);
  const identity = r.events.find((e) => e.type === "identity");
  expect(identity, r.stdout).toBeDefined();
  return identity!;
}

/** `invite --json`; returns the code. */
export async function invite(home: string, extra: string[] = []): Promise<string> {
  const r = await parley(home, ["invite", ...extra, "--json"]);
  const inv = r.events.find((e) => e.type === "invitation");
  expect(inv, r.stdout).toBeDefined();
  const code = inv!.code;
  expect(code).toMatch(/^PARLEY1-/);
  return code as string;
}

/** The contacts of a home, by local name. */
export async function contacts(home: string): Promise<Map<string, ContactEvent>> {
  const r = await parley(home, ["contacts", "--json"]);
  return new Map(contactEvents(r.events).map((c) => [c.contact, c]));
}

/**
 * Inviter invites, accepter accepts naming the inviter `inviterLocal`, and the inviter syncs until
 * it sees the new contact `accepterAnnounced` (the name the accepter announced at init).
 */
export async function connect(
  inviter: string,
  accepter: string,
  inviterLocal: string,
  accepterAnnounced: string,
  acceptArgs: string[] = [],
): Promise<void> {
  const code = await invite(inviter);
  await parley(accepter, ["accept", code, "--name", inviterLocal, ...acceptArgs, "--json"]);
  await syncUntil(inviter, (events) =>
    contactEvents(events).some((c) => c.contact === accepterAnnounced && c.event === "added"),
  );
}

/** A fresh home for each display name, each initialised on `relayUrl`, in the same order. */
export async function homesFor<const N extends readonly string[]>(
  relayUrl: string,
  ...names: N
): Promise<{ [K in keyof N]: string }> {
  const homes: string[] = [];
  for (const name of names) {
    const home = await newHome();
    await init(home, name, relayUrl);
    homes.push(home);
  }
  return homes as { [K in keyof N]: string };
}

/** Two fresh homes, Alice and Bob, on `relayUrl`, connected: Alice invites, Bob accepts naming her "alice". */
export async function aliceAndBob(relayUrl: string): Promise<{ alice: string; bob: string }> {
  const alice = await newHome();
  const bob = await newHome();
  await init(alice, "Alice", relayUrl);
  await init(bob, "Bob", relayUrl);
  await connect(alice, bob, "alice", "Bob");
  return { alice, bob };
}

/** The ids in a `send --json` output (in order of first appearance), each at least `stored`. */
function storedIds(r: RunResult, contact: string, count: number): string[] {
  const ids = [...new Set(statuses(r.events).map((s) => s.id))];
  expect(ids, r.stdout).toHaveLength(count);
  const latest = latestStatus(r.events);
  for (const id of ids) {
    expect(id, r.stdout).toMatch(/^[0-9a-f]{32}$/);
    expect(RANK[latest.get(id)!] ?? -1, `${id} not stored: ${r.stdout}`).toBeGreaterThanOrEqual(RANK.stored!);
  }
  for (const s of statuses(r.events)) expect(s.contact, r.stdout).toBe(contact);
  return ids;
}

/** Sends each text as its own message with `send CONTACT --lines`; returns the ids, in order. */
export async function sendLines(home: string, contact: string, texts: readonly string[]): Promise<string[]> {
  const r = await parley(home, ["send", contact, "--lines", "--json"], { input: `${texts.join("\n")}\n` });
  return storedIds(r, contact, texts.length);
}

/** Sends one message with `send CONTACT TEXT`; returns its id. */
export async function sendOne(home: string, contact: string, text: string): Promise<string> {
  const r = await parley(home, ["send", contact, text, "--json"]);
  return storedIds(r, contact, 1)[0]!;
}

/** `history CONTACT --limit N --json` messages. */
export async function history(home: string, contact: string, limit = 1000): Promise<MessageEvent[]> {
  const r = await parley(home, ["history", contact, "--limit", String(limit), "--json"]);
  return messages(r.events);
}

/** Every file under `dir`, recursively, with its bytes. */
export async function readTree(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile()) out.set(p, await readFile(p));
    }
  };
  await walk(dir);
  return out;
}

export const unique = () => randomBytes(4).toString("hex");
