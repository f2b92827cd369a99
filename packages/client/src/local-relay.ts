// The embedded default relay: a personal `parley-relay` on 127.0.0.1, started in the background
// the first time a client needs it and reused by every other local identity. Its SQLite data
// lives under the user's data directory; nothing here is reachable from another machine.
import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { ClientError } from "./errors.js";

export const DEFAULT_LOCAL_PORT = 7787;

export interface LocalRelay {
  readonly url: string;
  /** True when this call started it; false when one was already running. */
  readonly started: boolean;
}

/** Where the personal relay keeps its data and log: shared by every home of this user. */
export function localRelayDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "parley-relay");
}

export function localRelayPort(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.PARLEY_LOCAL_RELAY_PORT;
  if (raw === undefined || raw === "") return DEFAULT_LOCAL_PORT;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ClientError("USAGE", `PARLEY_LOCAL_RELAY_PORT must be a TCP port, got ${JSON.stringify(raw)}`);
  }
  return port;
}

export const localRelayUrl = (port: number) => `ws://127.0.0.1:${port}`;

/** Is a Parley relay answering on this port? (false: nothing there; throws: something else is.) */
async function probe(port: number): Promise<boolean> {
  let body: unknown;
  try {
    const res = await fetch(`http://127.0.0.1:${port}/transparency`, {
      signal: AbortSignal.timeout(1500),
      redirect: "error",
      // Not from fetch's keep-alive pool: a socket the relay closed while this process was busy
      // (scrypt) would fail the next probe, and a running relay would look absent (see vet()).
      headers: { connection: "close" },
    });
    body = await res.json();
  } catch (e) {
    // Nothing listening, or a relay still starting (it resets or is slow): not there yet.
    if (!(e instanceof SyntaxError)) return false;
  }
  if ((body as { service?: unknown } | undefined)?.service === "parley-relay") return true;
  throw new ClientError(
    "RELAY_REFUSED",
    `port ${port} on 127.0.0.1 is taken by something that is not a Parley relay (set PARLEY_LOCAL_RELAY_PORT)`,
  );
}

/**
 * The relay's command line. In a checkout (its TypeScript source is there and tsx resolves) the
 * source, so a client bundled with `npm start` never runs a relay build older than the code;
 * otherwise (an installed package) the relay's build.
 */
function relayCommand(): string[] {
  const require = createRequire(import.meta.url);
  const pkgDir = dirname(require.resolve("@parley/relay/package.json"));
  const source = join(pkgDir, "src", "cli.ts");
  if (existsSync(source)) {
    try {
      const tsx = pathToFileURL(require.resolve("tsx")).href;
      return ["--conditions=source", "--import", tsx, source];
    } catch {
      // no tsx: an installed client, which runs the build
    }
  }
  const built = join(pkgDir, "dist", "cli.js");
  if (existsSync(built)) return [built];
  throw new ClientError("UNREACHABLE", `the personal relay is not built: run \`pnpm build\` (no ${built})`);
}

/** Is `url` the personal relay's address (with this environment's port)? */
export function isLocalRelayUrl(url: string, env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    return url === localRelayUrl(localRelayPort(env));
  } catch {
    return false;
  }
}

/**
 * The process id in the personal relay's pid file when that process still runs; null when there
 * is no pid file or its process is gone (the relay died, or the machine restarted).
 */
export function localRelayPid(env: NodeJS.ProcessEnv = process.env): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(join(localRelayDir(env), "relay.pid"), "utf8").trim());
  } catch {
    return null;
  }
  if (!Number.isSafeInteger(pid) || pid <= 1) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    // EPERM: it runs, as someone else (a recycled pid); ESRCH: it is gone.
    return (e as NodeJS.ErrnoException).code === "EPERM" ? pid : null;
  }
}

/**
 * The only variables the personal relay inherits from the client that starts it: finding `node`'s
 * helpers (PATH), a temporary directory (tsx's cache in a checkout), and locale and time zone. It
 * outlives that client and serves every identity of this user, so it never sees the passphrase, a
 * caller's PARLEY_RELAY_* settings (its own come from its command line), NODE_OPTIONS, or anything
 * else of the shell it happened to be started from.
 */
export const LOCAL_RELAY_ENV: readonly string[] = ["PATH", "TMPDIR", "LANG", "LC_ALL", "TZ"];

/** The personal relay's environment: LOCAL_RELAY_ENV from `env`, and its log level. */
function localRelayEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const name of LOCAL_RELAY_ENV) if (env[name] !== undefined) out[name] = env[name];
  out.PARLEY_RELAY_LOG_LEVEL = "warn";
  return out;
}

/** How long a start may take before another process may try again. */
const START_MS = 15_000;

/**
 * Returns the personal relay's URL, starting it in the background when none answers. Several
 * processes (every identity of this user, each UI noticing it died) may call this at once: one
 * starts it, under a lock file, and the others wait for it to answer.
 */
export async function ensureLocalRelay(env: NodeJS.ProcessEnv = process.env): Promise<LocalRelay> {
  const port = localRelayPort(env);
  const url = localRelayUrl(port);
  if (await probe(port)) return { url, started: false };
  const dir = localRelayDir(env);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lock = join(dir, "relay.starting");
  if (!takeLock(lock)) {
    // Someone else is starting it: wait for it to answer.
    if (await answers(port, Date.now() + START_MS)) return { url, started: false };
    throw new ClientError(
      "UNREACHABLE",
      `the personal relay did not start; see ${join(dir, "relay.log")} (or remove ${lock} if no parley is starting it)`,
    );
  }
  try {
    const log = openSync(join(dir, "relay.log"), "a", 0o600);
    const child = spawn(
      process.execPath,
      [...relayCommand(), "--host", "127.0.0.1", "--port", String(port), "--data-dir", join(dir, "data")],
      { detached: true, stdio: ["ignore", log, log], env: localRelayEnv(env) },
    );
    closeSync(log);
    child.unref();
    writeFileSync(join(dir, "relay.pid"), `${child.pid}\n`, { mode: 0o600 });
    let exited = false;
    child.once("exit", () => {
      exited = true;
    });
    if (await answers(port, Date.now() + START_MS, () => exited)) return { url, started: true };
    throw new ClientError("UNREACHABLE", `the personal relay did not start; see ${join(dir, "relay.log")}`);
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // already gone
    }
  }
}

/** Creates the lock file; false when another process holds it (a lock older than a start is stale). */
function takeLock(path: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      closeSync(openSync(path, "wx", 0o600));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      try {
        if (Date.now() - statSync(path).mtimeMs < START_MS + 5_000) return false;
        unlinkSync(path);
      } catch {
        // it went away meanwhile: try again
      }
    }
  }
  return false;
}

/** Polls until a Parley relay answers on the port (true), or the deadline passes or `gaveUp` (false). */
async function answers(port: number, deadline: number, gaveUp = () => false): Promise<boolean> {
  while (Date.now() < deadline && !gaveUp()) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      if (await probe(port)) return true;
    } catch {
      // still starting
    }
  }
  return false;
}
