// Test helper: a real redis-server (Debian's package; .ci/run installs it) of the test's own, on a
// free port of 127.0.0.1, with its own data directory and the append-only file on. It is stopped by
// its PID, never by name: other people's Redis servers may run on the same machine.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RedisTarget } from "../src/config.js";

export interface RedisServerOptions {
  /** Reuse a port and data directory, as a restart of the same server does. */
  readonly port?: number;
  readonly dir?: string;
  readonly appendfsync?: "always" | "everysec" | "no";
  /** Clients must authenticate with this password (`requirepass`). */
  readonly password?: string;
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

/** A port that was free a moment ago (redis-server is retried if another process takes it). */
function freePort(): Promise<number> {
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
    // No RDB snapshots: after a restart, what is there came from the append-only file.
    "--save",
    "",
    "--daemonize",
    "no",
    "--logfile",
    "",
    ...(options.password !== undefined ? ["--requirepass", options.password] : []),
  ];
  const proc: ChildProcess = spawn(BINARY, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    proc.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  // Never leave it behind, whatever happens to the test process.
  const killOnExit = () => proc.kill("SIGKILL");
  process.once("exit", killOnExit);
  void exited.then(() => process.off("exit", killOnExit));
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (/ready to accept connections/i.test(out)) {
        clearInterval(timer);
        resolve();
      }
    }, 10);
    proc.once("error", (e) => {
      clearInterval(timer);
      reject(new Error(`cannot start ${BINARY}: ${e.message} (is Debian's redis-server installed?)`));
    });
    void exited.then((code) => {
      clearInterval(timer);
      reject(new Error(`redis-server exited (${code}) before it was ready:\n${out}`));
    });
  });
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
    output: () => out,
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
