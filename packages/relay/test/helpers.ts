// Test helpers: start the real relay process (or a relay in this process, around a storage the test
// controls), and a tiny client that queues frames (next()).
import { type ChildProcess, spawn } from "node:child_process";
import { get } from "node:http";
import { fileURLToPath } from "node:url";
import {
  decodeFrame,
  depositTokenHash,
  encodeFrame,
  type Frame,
  MailboxAction,
  type MailboxKey,
} from "@parley/protocol";
import { expect, inject } from "vitest";
import WebSocket from "ws";
import { loadConfig } from "../src/config.js";
import { createLogger, type Logger } from "../src/log.js";
import { RelayServer } from "../src/server.js";
import type { Storage } from "../src/storage/types.js";
import { watch } from "./process.js";

const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
const RELAY_DIR = fileURLToPath(new URL("..", import.meta.url));

/**
 * What node runs as the relay: under vitest, the bundle of src/cli.ts that tests/global-setup.ts
 * built for this run; elsewhere (the benchmarks), src/cli.ts through the tsx loader.
 */
function relayProgram(): string[] {
  const bundle = process.env.VITEST ? inject("relayBundle") : undefined;
  return bundle ? [bundle] : ["--conditions=source", "--import", "tsx", CLI];
}

export interface RelayProcess {
  readonly port: number;
  readonly proc: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Sends a signal and resolves with the exit code (or signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * Starts `parley-relay` as its own process on a free port; resolves once it is listening. With
 * `umask`, the relay runs with that file mode creation mask.
 */
export async function startRelay(
  args: string[] = [],
  env: Record<string, string> = {},
  options: { openFiles?: number; umask?: number } = {},
): Promise<RelayProcess> {
  // node itself (not a wrapper), so `proc` is the relay and a signal, SIGKILL included, reaches
  // the relay and not a parent that would orphan it. With a file limit, prlimit sets it and then
  // executes node in its own place (same process); a shell that sets the umask execs in its own
  // place too.
  let argv = [process.execPath, ...relayProgram(), "--port", "0", ...args];
  if (options.openFiles !== undefined)
    argv = ["prlimit", `--nofile=${options.openFiles}:${options.openFiles}`, "--", ...argv];
  if (options.umask !== undefined)
    argv = [
      "/bin/sh",
      "-c",
      `umask ${options.umask.toString(8).padStart(3, "0")} && exec "$0" "$@"`,
      ...argv,
    ];
  const [command, commandArgs] = [argv[0]!, argv.slice(1)];
  const proc = spawn(command, commandArgs, {
    cwd: RELAY_DIR,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { output, exited } = watch(proc);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /"port":(\d+).*"msg":"relay listening"/.exec(output());
      if (m) {
        clearInterval(timer);
        resolve(Number(m[1]));
      }
    }, 20);
    void exited.then((code) => {
      clearInterval(timer);
      reject(new Error(`relay exited (${code}) before listening:\n${output()}`));
    });
  });
  return {
    port,
    proc,
    output,
    stop: (signal = "SIGTERM") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

export interface InProcessRelay {
  readonly server: RelayServer;
  readonly port: number;
  /** Every log line so far (JSON, one per line). */
  logs(): string;
  stop(): Promise<void>;
}

/**
 * A relay in this process, on a free port, around a storage (which the test may wrap to fail or
 * lie), or one made with the relay's logger; `args` are command-line flags. `stop()` drains it,
 * which closes the storage.
 */
export async function startInProcessRelay(
  storage: Storage | ((logger: Logger) => Promise<Storage>),
  args: string[] = [],
): Promise<InProcessRelay> {
  const { config } = loadConfig(["--port", "0", ...args]);
  const lines: string[] = [];
  const logger = createLogger("debug", { write: (line: string) => void lines.push(line) });
  const server = new RelayServer({
    config,
    storage: typeof storage === "function" ? await storage(logger) : storage,
    logger,
  });
  const port = await server.listen();
  return { server, port, logs: () => lines.join(""), stop: () => server.drain() };
}

/** A WebSocket client that queues every frame it receives; `next()` takes the oldest. */
export class TestClient {
  private readonly queue: Frame[] = [];
  private readonly waiters: ((f: Frame) => void)[] = [];
  private nextId = 1;
  challenge: Uint8Array = new Uint8Array(32);
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer) => {
      const frame = decodeFrame(new Uint8Array(data), { maxCiphertext: 16 * 1024 * 1024 });
      const waiter = this.waiters.shift();
      if (waiter) waiter(frame);
      else this.queue.push(frame);
    });
    this.closed = new Promise((resolve) =>
      ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  static async connect(port: number, options: { hello?: boolean } = {}): Promise<TestClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const client = new TestClient(ws);
    if (options.hello !== false) {
      const welcome = await client.request({ type: "hello", requestId: 0, maxVersion: 1 });
      if (welcome.type !== "welcome") throw new Error(`expected welcome, got ${welcome.type}`);
      client.challenge = welcome.challenge;
    }
    return client;
  }

  /** The next frame received (waits up to `timeoutMs`). */
  next(timeoutMs = 5000): Promise<Frame> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error("no frame within the timeout"));
      }, timeoutMs);
      const done = (f: Frame) => {
        clearTimeout(timer);
        resolve(f);
      };
      this.waiters.push(done);
    });
  }

  /** Frames already received and not yet taken. */
  get queued(): number {
    return this.queue.length;
  }

  sendRaw(bytes: Uint8Array | string): void {
    this.ws.send(bytes);
  }

  /** Sends a client frame with a fresh request id and returns the first frame answering it. */
  async request(frame: Frame): Promise<Frame> {
    const requestId = this.nextId++;
    this.ws.send(encodeFrame({ ...frame, requestId } as Frame));
    const skipped: Frame[] = [];
    for (;;) {
      const f = await this.next();
      if (f.requestId === requestId && f.type !== "deliver") {
        this.queue.unshift(...skipped);
        return f;
      }
      skipped.push(f);
    }
  }

  createMailbox(key: MailboxKey): Promise<Frame> {
    return this.request({
      type: "createMailbox",
      requestId: 0,
      ownerKey: key.publicKey,
      signature: key.prove(MailboxAction.create, this.challenge),
    });
  }

  subscribe(key: MailboxKey): Promise<Frame> {
    return this.request({
      type: "subscribe",
      requestId: 0,
      address: key.address,
      signature: key.prove(MailboxAction.subscribe, this.challenge),
    });
  }

  /** Sets the mailbox's deposit token (its hash, with the owner's proof over it). */
  setDepositToken(key: MailboxKey, token: Uint8Array): Promise<Frame> {
    const tokenHash = depositTokenHash(token);
    return this.request({
      type: "setDepositToken",
      requestId: 0,
      address: key.address,
      tokenHash,
      signature: key.prove(MailboxAction.setDepositToken, this.challenge, tokenHash),
    });
  }

  /** A deposit, or with `token` a tokenDeposit. */
  deposit(
    address: Uint8Array,
    ciphertext: Uint8Array,
    clientMessageId: Uint8Array,
    token?: Uint8Array,
  ): Promise<Frame> {
    return this.request(
      token
        ? { type: "tokenDeposit", requestId: 0, address, token, clientMessageId, ciphertext }
        : { type: "deposit", requestId: 0, address, clientMessageId, ciphertext },
    );
  }

  ack(address: Uint8Array, messageId: Uint8Array): Promise<Frame> {
    return this.request({ type: "ack", requestId: 0, address, messageId });
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Fetches an HTTP path from the relay on a fresh connection (no keep-alive pool between relays). */
export function http(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true; fails naming `what` after `timeoutMs`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** All values of the relay's Prometheus metrics, by name (labels ignored, values summed). */
export async function metrics(port: number): Promise<Map<string, number>> {
  const { status, body } = await http(port, "/metrics");
  expect(status).toBe(200);
  const out = new Map<string, number>();
  for (const line of body.split("\n")) {
    const m = /^([a-z_]+)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return out;
}

/** One value of the relay's Prometheus metrics. */
export async function metric(port: number, name: string): Promise<number> {
  const value = (await metrics(port)).get(name);
  if (value === undefined) throw new Error(`no metric ${name}`);
  return value;
}
