// Test helper: a real redis-server (Debian's package; .ci/run installs it) of the test's own, on a
// free port of 127.0.0.1, with its own data directory and the append-only file on. It is stopped by
// its PID, never by name: other people's Redis servers may run on the same machine. Every server
// still running is killed when the test process exits, by a signal too, and by `stopAllRedis()`
// (which test files call in afterAll, so a failed test leaves none behind).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RedisTarget } from "../src/config.js";
import { watch } from "./process.js";

export interface RedisServerOptions {
  /** Reuse a port and data directory, as a restart of the same server does. */
  readonly port?: number;
  readonly dir?: string;
  readonly appendfsync?: "always" | "everysec" | "no";
  /** Clients must authenticate with this password (`requirepass`). */
  readonly password?: string;
  /** RDB snapshot rules (`--save`). Default "": none. */
  readonly save?: string;
  /** More redis-server arguments, such as ["--slowlog-log-slower-than", "-1"]. */
  readonly args?: readonly string[];
}

export interface RedisServer {
  readonly port: number;
  readonly dir: string;
  readonly pid: number;
  readonly target: RedisTarget;
  /** `redis://[:PASSWORD@]127.0.0.1:PORT/0` */
  readonly url: string;
  /** What redis-server logged so far. */
  output(): string;
  /** Sends a signal (SIGTERM: a clean shutdown) and resolves once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
  /** Starts redis-server again on the same port and data directory (stop it first). */
  restart(): Promise<RedisServer>;
  /** Stops it (SIGKILL if still running) and deletes its data directory. */
  dispose(): Promise<void>;
}

const BINARY = process.env.REDIS_SERVER ?? "redis-server";
/** How long redis-server may take to say it is ready. */
const READY_TIMEOUT_MS = 15_000;

/** Every redis-server started here and not yet exited. */
const running = new Set<ChildProcess>();
let hooked = false;

/** Kills every redis-server still running (SIGKILL, by PID). */
function killAllRedis(): void {
  for (const proc of running) proc.kill("SIGKILL");
}

/** Kills the servers when this process exits, or is told to by a signal (which is then re-raised). */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once("exit", killAllRedis);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      killAllRedis();
      // Nobody else handles it: do what the signal would have done without us.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

/** Stops (SIGKILL) and forgets every server of this process: for afterAll. */
export async function stopAllRedis(): Promise<void> {
  const exits = [...running].map(
    (proc) => new Promise<void>((resolve) => proc.once("exit", () => resolve())),
  );
  killAllRedis();
  await Promise.all(exits);
}

/**
 * A port that was free a moment ago, on 127.0.0.1 (redis-server is retried if another process
 * takes it; the proxies of proxy.test.ts use it too).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "parley-redis-"));
  for (let attempt = 0; ; attempt++) {
    const port = options.port ?? (await freePort());
    try {
      return await launch(port, dir, options);
    } catch (e) {
      const retry = options.port === undefined && attempt < 5 && /Address already in use/.test(String(e));
      if (!retry) throw e;
    }
  }
}

async function launch(port: number, dir: string, options: RedisServerOptions): Promise<RedisServer> {
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--appendonly",
    "yes",
    "--appendfsync",
    options.appendfsync ?? "everysec",
    // No RDB snapshots unless asked for: after a restart, what is there came from the AOF.
    "--save",
    options.save ?? "",
    "--daemonize",
    "no",
    "--logfile",
    "",
    ...(options.password !== undefined ? ["--requirepass", options.password] : []),
    ...(options.args ?? []),
  ];
  hookExit();
  const proc: ChildProcess = spawn(BINARY, args, { stdio: ["ignore", "pipe", "pipe"] });
  running.add(proc);
  const { output, exited } = watch(proc);
  void exited.then(() => running.delete(proc));
  try {
    await new Promise<void>((resolve, reject) => {
      const done = (e?: Error) => {
        clearInterval(timer);
        clearTimeout(deadline);
        if (e) reject(e);
        else resolve();
      };
      const timer = setInterval(() => {
        if (/ready to accept connections/i.test(output())) done();
      }, 10);
      const deadline = setTimeout(
        () => done(new Error(`redis-server not ready within ${READY_TIMEOUT_MS / 1000} s:\n${output()}`)),
        READY_TIMEOUT_MS,
      );
      proc.once("error", (e) =>
        done(new Error(`cannot start ${BINARY}: ${e.message} (is Debian's redis-server installed?)`)),
      );
      void exited.then((code) =>
        done(new Error(`redis-server exited (${code}) before it was ready:\n${output()}`)),
      );
    });
  } catch (e) {
    // Not ready: never leave it running (no PID: it never started).
    running.delete(proc);
    if (proc.pid !== undefined) {
      proc.kill("SIGKILL");
      await exited;
    }
    throw e;
  }
  const server: RedisServer = {
    port,
    dir,
    pid: proc.pid!,
    target: {
      tls: false,
      host: "127.0.0.1",
      port,
      db: 0,
      username: null,
      password: options.password ?? null,
    },
    url: `redis://${options.password !== undefined ? `:${encodeURIComponent(options.password)}@` : ""}127.0.0.1:${port}/0`,
    output,
    stop: (signal = "SIGTERM") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    restart: () => startRedis({ ...options, port, dir }),
    dispose: async () => {
      await server.stop("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/** A TCP proxy in front of a redis-server that can lose Redis's replies, as a network may. */
export interface ReplyLosingProxy {
  readonly port: number;
  /** While true, every byte from Redis to its clients is discarded (the commands still arrive). */
  loseReplies: boolean;
  close(): Promise<void>;
}

export async function replyLosingProxy(redisPort: number): Promise<ReplyLosingProxy> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(redisPort, "127.0.0.1");
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", end);
      s.on("close", end);
    }
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => {
      if (!proxy.loseReplies) client.write(d);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const proxy: ReplyLosingProxy = {
    port: (server.address() as { port: number }).port,
    loseReplies: false,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  return proxy;
}
