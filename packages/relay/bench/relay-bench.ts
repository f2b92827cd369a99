// Parley relay benchmark (`pnpm bench:relay`). The relay runs as its own process (node + tsx on
// src/cli.ts, SQLite in a fresh temporary data directory, 127.0.0.1, port 0); this process is the
// load generator and the only clock. It measures, in one run:
//
//   (a) Online forwarding. BENCH_CONNECTIONS connections (default 1,000): half subscribers, each
//       owning and subscribed to one mailbox, half senders. Sender s deposits its k-th message to
//       mailbox (s + k) mod subscribers; every subscriber acks each delivery at once. Each ciphertext
//       (300 bytes) carries the send time (performance.now() of this process) and the sender index,
//       so deposit-to-delivery latency is measured on one clock. The peak is found closed-loop: each
//       sender keeps `window` messages deposited but not yet delivered, for windows 1, 4, 16 and 64;
//       the peak is the best delivered msgs/s. An open-loop paced load (a 1 ms ticker sends whatever
//       is due, independent of replies) then runs at that peak rate, to show whether it is sustained
//       without the closed loop's queue, and at half of it for BENCH_SECONDS: p50/p99 come from that.
//   (d) The same online load, clients and steps through a bare `ws` forwarder (bench/bare-forwarder.ts,
//       its own process: forwards each deposit frame to the socket registered for its address; no
//       storage, crypto, auth or replies). Its windows run interleaved with the relay's, so machine
//       noise hits both; relay/bare is the ratio of the two peaks. It also runs at the relay's
//       half-peak rate, as a latency floor for the client library and this load generator.
//   (b) Offline store then drain. A fresh relay; BENCH_OFFLINE messages (default 50,000, 300-byte
//       ciphertexts) deposited over 4 connections, each keeping 256 deposits pipelined, spread over
//       BENCH_OFFLINE_MAILBOXES mailboxes (default 100) that nobody is subscribed to: durable msgs/s is
//       deposits acknowledged (`ok` only comes after the SQLite commit) per second. Then the owners
//       (10 connections) subscribe and ack every delivery: drain msgs/s is messages acked per second
//       (ok received), and the relay's stored-messages gauge is read afterwards (expected 0).
//   (c) Idle connections. A fresh relay; BENCH_IDLE WebSockets (default 10,000) each do hello and sit
//       idle. The relay's RSS (VmRSS from /proc/<pid>/status, and parley_relay_process_resident_memory_bytes
//       from /metrics as a cross-check) before and after, and the difference per connection.
//
// Every relay runs with its defaults except --rate-limit (raised to 1,000,000 frames/s: (b) pipelines
// thousands of frames/s over a few connections, which the default 200/s per connection would refuse).
// CPU use of the server process (from /proc/<pid>/stat) and of this process is printed beside each
// throughput figure, to show which side was saturated. The aims are printed beside the figures; nothing
// is asserted. `--json` prints one JSON object instead of the table; progress goes to stderr.
// Diagnostics: BENCH_CPU_PROF=<dir> starts each relay with --cpu-prof into <dir> (written when it
// exits); BENCH_RELAY_ARGS="--flag value ..." adds relay flags; BENCH_LATENCY_DUMP=<file> writes the
// half-peak run's (send time, latency) pairs as CSV. BENCH_OFFLINE_MAILBOXES sets (b)'s mailboxes.
// Every child process is stopped at the end, and killed on error or on a signal.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeFrame, encodeFrame, type Frame, MailboxAction, MailboxKey } from "@parley/protocol";
import WebSocket from "ws";

// ---- configuration ------------------------------------------------------------------------------

function envNumber(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw.replaceAll("_", ""));
  if (!Number.isFinite(n) || n < min) {
    process.stderr.write(`relay-bench: ${name}="${raw}" must be a number >= ${min}\n`);
    process.exit(2);
  }
  return n;
}

const CONNECTIONS = Math.floor(envNumber("BENCH_CONNECTIONS", 1000, 2));
const SECONDS = envNumber("BENCH_SECONDS", 5, 0.5);
const OFFLINE = Math.floor(envNumber("BENCH_OFFLINE", 50_000, 1));
const OFFLINE_MAILBOXES = Math.floor(envNumber("BENCH_OFFLINE_MAILBOXES", 100, 1));
const IDLE = Math.floor(envNumber("BENCH_IDLE", 10_000, 1));
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF || null;
const LATENCY_DUMP = process.env.BENCH_LATENCY_DUMP || null;
const EXTRA_RELAY_ARGS = (process.env.BENCH_RELAY_ARGS ?? "").split(/\s+/).filter((a) => a !== "");
const JSON_OUTPUT = process.argv.includes("--json");

const SUBSCRIBERS = Math.floor(CONNECTIONS / 2);
const SENDERS = CONNECTIONS - SUBSCRIBERS;
/** Ciphertext bytes per message (about one padded 256-byte payload in an envelope). */
const CIPHERTEXT_BYTES = 300;
const WINDOWS = [1, 4, 16, 64] as const;
const WARMUP_SECONDS = Math.min(1, SECONDS * 0.3);
const PEAK_SECONDS = Math.max(1, SECONDS * 0.6);
const OFFLINE_DEPOSITORS = 4;
const OFFLINE_PIPELINE = 256;
const OFFLINE_OWNERS = Math.min(10, OFFLINE_MAILBOXES);
const DRAIN_TIMEOUT_SECONDS = 60;
const CONNECT_CONCURRENCY = 200;
const RELAY_RATE_LIMIT = 1_000_000;
const AIM_RATIO = 0.5;
const AIM_OFFLINE = 30_000;
const AIM_P99_MS = 20;

const RELAY_DIR = fileURLToPath(new URL("..", import.meta.url));
const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
const BARE = fileURLToPath(new URL("./bare-forwarder.ts", import.meta.url));
const CLK_TCK = 100;

const progress = (msg: string) => process.stderr.write(`relay-bench: ${msg}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- child processes ----------------------------------------------------------------------------

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

function killEverything(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}
process.on("exit", killEverything);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping`);
    killEverything();
    process.exit(130);
  });
}

interface ServerProcess {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `script` in its own node process (tsx loader, source condition); resolves once it listens. */
async function startServer(
  name: string,
  script: string,
  args: string[],
  ready: RegExp,
  nodeArgs: string[] = [],
): Promise<ServerProcess> {
  const proc = spawn(
    process.execPath,
    ["--conditions=source", "--import", "tsx", ...nodeArgs, script, ...args],
    { cwd: RELAY_DIR, stdio: ["pipe", "pipe", "pipe"] },
  );
  children.add(proc);
  let out = "";
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-64 * 1024);
  };
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) =>
    proc.once("exit", () => {
      children.delete(proc);
      resolve();
    }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timeout = setTimeout(() => {
      clearInterval(timer);
      reject(new Error(`${name} did not start listening within 30 s:\n${out}`));
    }, 30_000);
    const timer = setInterval(() => {
      const m = ready.exec(out);
      if (m) {
        clearInterval(timer);
        clearTimeout(timeout);
        resolve(Number(m[1]));
      }
    }, 20);
    void exited.then(() => {
      clearInterval(timer);
      clearTimeout(timeout);
      reject(new Error(`${name} exited before listening:\n${out}`));
    });
  });
  return {
    name,
    pid: proc.pid!,
    port,
    output: () => out,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

function startRelay(dataDir: string): Promise<ServerProcess> {
  const nodeArgs = CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${CPU_PROF_DIR}`] : [];
  return startServer(
    "relay",
    CLI,
    [
      "--port",
      "0",
      "--storage",
      "sqlite",
      "--data-dir",
      dataDir,
      "--rate-limit",
      String(RELAY_RATE_LIMIT),
      ...EXTRA_RELAY_ARGS,
    ],
    /"port":(\d+).*"msg":"relay listening"/,
    nodeArgs,
  );
}

function startBare(): Promise<ServerProcess> {
  return startServer("bare forwarder", BARE, [], /"port":(\d+).*"msg":"bare listening"/);
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "parley-relay-bench-"));
  tempDirs.add(d);
  return d;
}

function removeTempDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
}

/** User + system CPU seconds of a process, from /proc/<pid>/stat. */
function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** "some avg60" from /proc/pressure/cpu: % of time runnable tasks waited for a CPU (machine noise). */
function cpuPressure(): string {
  try {
    const m = /^some avg10=([\d.]+) avg60=([\d.]+)/m.exec(readFileSync("/proc/pressure/cpu", "utf8"));
    return m ? `${m[2]}% (avg60)` : "n/a";
  } catch {
    return "n/a";
  }
}

function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** VmRSS of a process in bytes. */
function vmRssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

async function metric(port: number, name: string): Promise<number | null> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  const body = await res.text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)`, "m").exec(body);
  return m ? Number(m[1]) : null;
}

/** The file system type holding `dir` (longest matching mount point in /proc/mounts). */
function fileSystemOf(dir: string): string {
  try {
    let best = "";
    let type = "unknown";
    for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
      const [, mount, fs] = line.split(" ");
      if (mount && fs && (dir === mount || dir.startsWith(mount.endsWith("/") ? mount : `${mount}/`))) {
        if (mount.length >= best.length) {
          best = mount;
          type = fs;
        }
      }
    }
    return type;
  } catch {
    return "unknown";
  }
}

// ---- clients --------------------------------------------------------------------------------------

const TYPE_DEPOSIT = 0x03;
const TYPE_ACK = 0x06;
const TYPE_OK = 0x82;
const TYPE_DELIVER = 0x83;
const TYPE_ERROR = 0x84;
/** Offset of the ciphertext in a relay deliver frame, and in a deposit frame (what the bare forwarder forwards). */
const DELIVER_CIPHERTEXT = 62;
const DEPOSIT_CIPHERTEXT = 54;
const DEPOSIT_LENGTH = DEPOSIT_CIPHERTEXT + CIPHERTEXT_BYTES;
const ACK_LENGTH = 54;

/** Error frames received, by code, and connections that closed while they should not have. */
let errorCounts: Record<string, number> = {};
let unexpectedCloses = 0;

/** A client connection: request/reply for set-up, plain callbacks for the measured traffic. */
class Client {
  challenge: Uint8Array = new Uint8Array(32);
  expectClose = false;
  /** A deliver frame (relay) or a forwarded deposit frame (bare). */
  onPush: ((data: Buffer) => void) | null = null;
  onOk: ((requestId: number) => void) | null = null;
  onError: ((requestId: number) => void) | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, (f: Frame) => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer) => this.handle(data));
    ws.on("error", () => {});
    ws.on("close", () => {
      if (!this.expectClose) unexpectedCloses++;
    });
  }

  static async connect(port: number, hello: boolean): Promise<Client> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const client = new Client(ws);
    if (hello) {
      const welcome = await client.request({ type: "hello", requestId: 0, maxVersion: 1 });
      if (welcome.type !== "welcome") throw new Error(`expected welcome, got ${welcome.type}`);
      client.challenge = welcome.challenge;
    }
    return client;
  }

  id(): number {
    const id = this.nextId;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  private handle(data: Buffer): void {
    const type = data[1];
    if (type === TYPE_DELIVER || type === TYPE_DEPOSIT) {
      this.onPush?.(data);
      return;
    }
    const requestId = data.readUInt32BE(2);
    const waiter = this.waiting.get(requestId);
    if (waiter) {
      this.waiting.delete(requestId);
      waiter(decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.length)));
      return;
    }
    if (type === TYPE_OK) {
      this.onOk?.(requestId);
    } else if (type === TYPE_ERROR) {
      const f = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.length));
      const code = f.type === "error" ? f.code : "?";
      errorCounts[code] = (errorCounts[code] ?? 0) + 1;
      this.onError?.(requestId);
    }
  }

  /** Sends a frame with a fresh request id; resolves with the frame answering it. */
  request(frame: Frame): Promise<Frame> {
    const requestId = this.id();
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(requestId);
        reject(new Error(`no reply to ${frame.type} within 60 s`));
      }, 60_000);
      this.waiting.set(requestId, (f) => {
        clearTimeout(timer);
        resolve(f);
      });
      this.ws.send(encodeFrame({ ...frame, requestId } as Frame));
    });
  }

  close(): void {
    this.expectClose = true;
    this.ws.terminate();
  }
}

async function expectOk(p: Promise<Frame>, what: string): Promise<void> {
  const f = await p;
  if (f.type !== "ok") throw new Error(`${what}: ${f.type === "error" ? `${f.code} ${f.message}` : f.type}`);
}

/** Runs fn(0..count-1) with at most `limit` at a time. */
async function pool<T>(count: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return out;
}

const RUN_ID = randomBytes(8);
const FILLER = randomBytes(CIPHERTEXT_BYTES);
let clientMessageCounter = 0;

/**
 * A deposit frame built in place (header, address, client message id = run id || counter, then the
 * ciphertext: f64 send time, u32 tag, random filler). Checked against encodeFrame once at start-up.
 */
function depositFrame(requestId: number, address: Uint8Array, sentAt: number, tag: number): Buffer {
  const b = Buffer.allocUnsafe(DEPOSIT_LENGTH);
  b[0] = 1;
  b[1] = TYPE_DEPOSIT;
  b.writeUInt32BE(requestId, 2);
  b.set(address, 6);
  RUN_ID.copy(b, 38);
  const n = clientMessageCounter++;
  b.writeUInt32BE(Math.floor(n / 0x100000000), 46);
  b.writeUInt32BE(n >>> 0, 50);
  FILLER.copy(b, DEPOSIT_CIPHERTEXT);
  b.writeDoubleLE(sentAt, DEPOSIT_CIPHERTEXT);
  b.writeUInt32LE(tag, DEPOSIT_CIPHERTEXT + 8);
  return b;
}

/** An ack for a deliver (relay) or forwarded deposit (bare): both carry address and a 16-byte id at 6..54. */
function ackFrame(requestId: number, pushed: Buffer): Buffer {
  const b = Buffer.allocUnsafe(ACK_LENGTH);
  b[0] = 1;
  b[1] = TYPE_ACK;
  b.writeUInt32BE(requestId, 2);
  pushed.copy(b, 6, 6, 54);
  return b;
}

function checkFrameBuilders(): void {
  const address = randomBytes(32);
  const dep = decodeFrame(depositFrame(7, address, 123.5, 9));
  if (
    dep.type !== "deposit" ||
    dep.requestId !== 7 ||
    Buffer.compare(dep.address, address) !== 0 ||
    dep.ciphertext.length !== CIPHERTEXT_BYTES
  ) {
    throw new Error("depositFrame does not match the protocol's deposit layout");
  }
  const deliver = Buffer.from(
    encodeFrame({
      type: "deliver",
      requestId: 0,
      address,
      messageId: randomBytes(16),
      receivedAt: 1,
      ciphertext: dep.ciphertext,
    }),
  );
  if (deliver.readDoubleLE(DELIVER_CIPHERTEXT) !== 123.5)
    throw new Error("deliver ciphertext offset is wrong");
  const ack = decodeFrame(ackFrame(8, deliver));
  if (ack.type !== "ack" || Buffer.compare(ack.messageId, deliver.subarray(38, 54)) !== 0) {
    throw new Error("ackFrame does not match the protocol's ack layout");
  }
}

// ---- latency ------------------------------------------------------------------------------------

class Recorder {
  private values = new Float64Array(1 << 16);
  /** When each recorded message was sent (for BENCH_LATENCY_DUMP). */
  private times = new Float64Array(1 << 16);
  count = 0;

  add(v: number, sentAt = 0): void {
    if (this.count === this.values.length) {
      const values = new Float64Array(this.values.length * 2);
      values.set(this.values);
      this.values = values;
      const times = new Float64Array(this.times.length * 2);
      times.set(this.times);
      this.times = times;
    }
    this.times[this.count] = sentAt;
    this.values[this.count++] = v;
  }

  reset(): void {
    this.count = 0;
  }

  summary(): { p50: number; p99: number; max: number } {
    if (this.count === 0) return { p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
    const sorted = this.values.slice(0, this.count).sort();
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1]! };
  }

  /** CSV: send time (ms since the first recorded send), latency (ms). */
  csv(): string {
    const t0 = this.times[0] ?? 0;
    const rows = ["sent_ms,latency_ms"];
    for (let i = 0; i < this.count; i++) {
      rows.push(`${(this.times[i]! - t0).toFixed(3)},${this.values[i]!.toFixed(3)}`);
    }
    return `${rows.join("\n")}\n`;
  }
}

// ---- (a) and (d): online forwarding ------------------------------------------------------------------

interface World {
  readonly name: "relay" | "bare";
  readonly server: ServerProcess;
  readonly senders: Client[];
  readonly subscribers: Client[];
  readonly addresses: Uint8Array[];
  readonly senderSeq: Uint32Array;
  /** Per sender: deposited, not yet delivered. */
  readonly outstanding: Int32Array;
  totalOutstanding: number;
  sent: number;
  delivered: number;
  failed: number;
  acksSent: number;
  /** Replies (ok or error) to acks; the bare forwarder sends none. */
  ackReplies: number;
  mode: "idle" | "closed" | "open";
  recording: boolean;
  readonly latency: Recorder;
}

function sendDeposit(w: World, s: number): void {
  const k = w.senderSeq[s]!;
  w.senderSeq[s] = k + 1;
  const client = w.senders[s]!;
  const address = w.addresses[(s + k) % w.addresses.length]!;
  client.ws.send(depositFrame(client.id(), address, performance.now(), s));
  w.outstanding[s]!++;
  w.totalOutstanding++;
  w.sent++;
}

async function buildWorld(name: "relay" | "bare", server: ServerProcess): Promise<World> {
  const relay = name === "relay";
  const keys = Array.from({ length: SUBSCRIBERS }, () => MailboxKey.generate());
  const subscribers = await pool(SUBSCRIBERS, CONNECT_CONCURRENCY, async (i) => {
    const c = await Client.connect(server.port, relay);
    const key = keys[i]!;
    if (relay) {
      await expectOk(c.request(createMailboxFrame(key, c.challenge)), "createMailbox");
      await expectOk(c.request(subscribeFrame(key, c.challenge)), "subscribe");
    } else {
      // The forwarder only needs the address; the signature bytes are ignored.
      await expectOk(
        c.request({ type: "subscribe", requestId: 0, address: key.address, signature: new Uint8Array(64) }),
        "register",
      );
    }
    return c;
  });
  const senders = await pool(SENDERS, CONNECT_CONCURRENCY, () => Client.connect(server.port, relay));
  const w: World = {
    name,
    server,
    senders,
    subscribers,
    addresses: keys.map((k) => k.address),
    senderSeq: new Uint32Array(SENDERS),
    outstanding: new Int32Array(SENDERS),
    totalOutstanding: 0,
    sent: 0,
    delivered: 0,
    failed: 0,
    acksSent: 0,
    ackReplies: 0,
    mode: "idle",
    recording: false,
    latency: new Recorder(),
  };
  for (const sub of subscribers) {
    sub.onPush = (data) => {
      const now = performance.now();
      const at = data[1] === TYPE_DELIVER ? DELIVER_CIPHERTEXT : DEPOSIT_CIPHERTEXT;
      const s = data.readUInt32LE(at + 8);
      if (w.recording) {
        const sentAt = data.readDoubleLE(at);
        w.latency.add(now - sentAt, sentAt);
      }
      w.delivered++;
      w.outstanding[s]!--;
      w.totalOutstanding--;
      sub.ws.send(ackFrame(sub.id(), data));
      w.acksSent++;
      if (w.mode === "closed") sendDeposit(w, s);
    };
    sub.onOk = () => {
      w.ackReplies++;
    };
    sub.onError = () => {
      w.ackReplies++;
    };
  }
  senders.forEach((sender, s) => {
    // A refused deposit will never be delivered: count it, and in closed loop replace it.
    sender.onError = () => {
      w.failed++;
      w.outstanding[s]!--;
      w.totalOutstanding--;
      if (w.mode === "closed") sendDeposit(w, s);
    };
  });
  return w;
}

function createMailboxFrame(key: MailboxKey, challenge: Uint8Array): Frame {
  return {
    type: "createMailbox",
    requestId: 0,
    ownerKey: key.publicKey,
    signature: key.prove(MailboxAction.create, challenge),
  };
}

function subscribeFrame(key: MailboxKey, challenge: Uint8Array): Frame {
  return {
    type: "subscribe",
    requestId: 0,
    address: key.address,
    signature: key.prove(MailboxAction.subscribe, challenge),
  };
}

/** Waits until everything sent was delivered (and, on the relay, every ack answered). */
async function quiesce(w: World): Promise<void> {
  const start = performance.now();
  let noted = false;
  while (w.totalOutstanding > 0 || (w.name === "relay" && w.ackReplies < w.acksSent)) {
    const waited = (performance.now() - start) / 1000;
    if (waited > 10 && !noted) {
      progress(`${w.name}: still draining the backlog (${fmt(w.totalOutstanding)} undelivered)`);
      noted = true;
    }
    if (waited > 120) {
      throw new Error(
        `${w.name}: ${w.totalOutstanding} messages undelivered and ${w.acksSent - w.ackReplies} acks unanswered after 120 s`,
      );
    }
    await sleep(20);
  }
}

interface RunResult {
  /** Closed loop: messages in flight per sender. Open loop: the target rate. */
  readonly window?: number;
  readonly targetRate?: number;
  readonly offeredPerSecond: number;
  readonly deliveredPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** CPU used by the server process and by this process, as % of one core. */
  readonly serverCpu: number;
  readonly loadCpu: number;
  readonly seconds: number;
}

async function measure(w: World, seconds: number): Promise<Omit<RunResult, "window" | "targetRate">> {
  const t0 = performance.now();
  const sent0 = w.sent;
  const delivered0 = w.delivered;
  const server0 = processCpuSeconds(w.server.pid);
  const load0 = ownCpuSeconds();
  w.latency.reset();
  w.recording = true;
  await sleep(seconds * 1000);
  w.recording = false;
  const elapsed = (performance.now() - t0) / 1000;
  const lat = w.latency.summary();
  return {
    offeredPerSecond: (w.sent - sent0) / elapsed,
    deliveredPerSecond: (w.delivered - delivered0) / elapsed,
    p50Ms: lat.p50,
    p99Ms: lat.p99,
    maxMs: lat.max,
    serverCpu: ((processCpuSeconds(w.server.pid) - server0) / elapsed) * 100,
    loadCpu: ((ownCpuSeconds() - load0) / elapsed) * 100,
    seconds: elapsed,
  };
}

async function closedLoop(w: World, window: number): Promise<RunResult> {
  w.mode = "closed";
  for (let s = 0; s < w.senders.length; s++) for (let i = 0; i < window; i++) sendDeposit(w, s);
  await sleep(WARMUP_SECONDS * 1000);
  const r = await measure(w, PEAK_SECONDS);
  w.mode = "idle";
  await quiesce(w);
  return { window, ...r };
}

async function openLoop(w: World, rate: number, seconds: number): Promise<RunResult> {
  w.mode = "open";
  const start = performance.now();
  let due = 0;
  let next = 0;
  const ticker = setInterval(() => {
    const target = Math.floor((rate * (performance.now() - start)) / 1000);
    for (; due < target; due++) {
      sendDeposit(w, next);
      next = next + 1 === w.senders.length ? 0 : next + 1;
    }
  }, 1);
  try {
    await sleep(WARMUP_SECONDS * 1000);
    const r = await measure(w, seconds);
    return { targetRate: rate, ...r };
  } finally {
    clearInterval(ticker);
    w.mode = "idle";
    await quiesce(w);
  }
}

/** Server CPU µs per delivered message. */
const cpuPerMessage = (r: RunResult | undefined) =>
  r ? (r.serverCpu * 1e4) / r.deliveredPerSecond : Number.NaN;
const peakRun = (runs: RunResult[], peak: number) => runs.find((r) => r.deliveredPerSecond === peak);

function describeRun(w: World, r: RunResult): string {
  const what = r.window !== undefined ? `window ${r.window}` : `open loop ${fmt(r.targetRate ?? 0)}/s`;
  return `${w.name} ${what}: ${fmt(r.deliveredPerSecond)} msgs/s, p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, server CPU ${r.serverCpu.toFixed(0)}%, load CPU ${r.loadCpu.toFixed(0)}%`;
}

interface OnlineResult {
  relay: { runs: RunResult[]; peak: number; atPeak: RunResult; halfPeak: RunResult };
  bare: { runs: RunResult[]; peak: number; atRelayHalfPeak: RunResult };
  ratio: number;
  /** Server CPU per delivered message at each peak, bare / relay: the same comparison, robust to a starved CPU. */
  cpuCostRatio: number;
  errors: Record<string, number>;
  unexpectedCloses: number;
}

async function onlinePhase(): Promise<OnlineResult> {
  errorCounts = {};
  const dataDir = tempDir();
  const relayServer = await startRelay(dataDir);
  const bareServer = await startBare();
  const worlds: World[] = [];
  try {
    progress(`online: ${SUBSCRIBERS} subscribers + ${SENDERS} senders on the relay (pid ${relayServer.pid})`);
    const relay = await buildWorld("relay", relayServer);
    worlds.push(relay);
    progress(`online: the same on the bare forwarder (pid ${bareServer.pid})`);
    const bare = await buildWorld("bare", bareServer);
    worlds.push(bare);
    const runs: Record<"relay" | "bare", RunResult[]> = { relay: [], bare: [] };
    const best: Record<"relay" | "bare", number> = { relay: 0, bare: 0 };
    // Interleaved, so that a noisy stretch of the shared machine hits both.
    for (const window of WINDOWS) {
      for (const w of [relay, bare]) {
        const r = await closedLoop(w, window);
        progress(describeRun(w, r));
        runs[w.name].push(r);
        best[w.name] = Math.max(best[w.name], r.deliveredPerSecond);
      }
    }
    // Is the closed-loop peak sustained when the load does not wait for the relay?
    const atPeak = await openLoop(relay, Math.round(best.relay), PEAK_SECONDS);
    progress(describeRun(relay, atPeak));
    const half = Math.round(best.relay / 2);
    const halfPeak = await openLoop(relay, half, SECONDS);
    progress(describeRun(relay, halfPeak));
    if (LATENCY_DUMP) writeFileSync(LATENCY_DUMP, relay.latency.csv());
    const bareHalf = await openLoop(bare, half, SECONDS);
    progress(describeRun(bare, bareHalf));
    return {
      relay: { runs: runs.relay, peak: best.relay, atPeak, halfPeak },
      bare: { runs: runs.bare, peak: best.bare, atRelayHalfPeak: bareHalf },
      ratio: best.relay / best.bare,
      cpuCostRatio:
        cpuPerMessage(peakRun(runs.bare, best.bare)) / cpuPerMessage(peakRun(runs.relay, best.relay)),
      errors: { ...errorCounts },
      unexpectedCloses,
    };
  } finally {
    for (const w of worlds) for (const c of [...w.senders, ...w.subscribers]) c.close();
    await Promise.all([relayServer.stop(), bareServer.stop()]);
    removeTempDir(dataDir);
  }
}

// ---- (b): offline store, then drain ------------------------------------------------------------------

interface OfflineResult {
  messages: number;
  mailboxes: number;
  depositSeconds: number;
  depositsPerSecond: number;
  depositP50Ms: number;
  depositP99Ms: number;
  depositServerCpu: number;
  drainSeconds: number;
  drainPerSecond: number;
  drained: number;
  drainComplete: boolean;
  drainServerCpu: number;
  storedAfterDrain: number | null;
  dataDirFs: string;
  errors: Record<string, number>;
}

async function offlinePhase(): Promise<OfflineResult> {
  errorCounts = {};
  const dataDir = tempDir();
  const relay = await startRelay(dataDir);
  const clients: Client[] = [];
  try {
    const owners = await pool(OFFLINE_OWNERS, OFFLINE_OWNERS, () => Client.connect(relay.port, true));
    const depositors = await pool(OFFLINE_DEPOSITORS, OFFLINE_DEPOSITORS, () =>
      Client.connect(relay.port, true),
    );
    clients.push(...owners, ...depositors);
    const keys = Array.from({ length: OFFLINE_MAILBOXES }, () => MailboxKey.generate());
    const ownerOf = (m: number) => owners[m % owners.length]!;
    await pool(OFFLINE_MAILBOXES, 50, (m) =>
      expectOk(ownerOf(m).request(createMailboxFrame(keys[m]!, ownerOf(m).challenge)), "createMailbox"),
    );

    // Deposits: each depositor keeps OFFLINE_PIPELINE deposits waiting for their `ok`.
    progress(
      `offline: depositing ${fmt(OFFLINE)} messages into ${OFFLINE_MAILBOXES} mailboxes (relay pid ${relay.pid})`,
    );
    const depositLatency = new Recorder();
    let issued = 0;
    let answered = 0;
    const server0 = processCpuSeconds(relay.pid);
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`offline: only ${answered} of ${OFFLINE} deposits answered after 120 s`)),
        120_000,
      );
      for (const d of depositors) {
        const sentAt = new Map<number, number>();
        const sendOne = () => {
          const i = issued++;
          const id = d.id();
          sentAt.set(id, performance.now());
          d.ws.send(depositFrame(id, keys[i % OFFLINE_MAILBOXES]!.address, 0, i));
        };
        const answer = (requestId: number) => {
          const at = sentAt.get(requestId);
          if (at !== undefined) {
            depositLatency.add(performance.now() - at);
            sentAt.delete(requestId);
          }
          if (++answered === OFFLINE) {
            clearTimeout(timer);
            resolve();
          } else if (issued < OFFLINE) sendOne();
        };
        d.onOk = answer;
        d.onError = answer;
        for (let k = 0; k < OFFLINE_PIPELINE && issued < OFFLINE; k++) sendOne();
      }
    });
    const depositSeconds = (performance.now() - t0) / 1000;
    const depositServerCpu = ((processCpuSeconds(relay.pid) - server0) / depositSeconds) * 100;
    const depLat = depositLatency.summary();
    const depositErrors = Object.values(errorCounts).reduce((a, b) => a + b, 0);
    progress(
      `offline: ${fmt((OFFLINE - depositErrors) / depositSeconds)} durable deposits/s (${depositSeconds.toFixed(2)} s, ${depositErrors} refused)`,
    );

    // Drain: every owner subscribes to its mailboxes and acks each delivery.
    const proofs = keys.map((k, m) => subscribeFrame(k, ownerOf(m).challenge));
    const expected = OFFLINE - depositErrors;
    let delivered = 0;
    let acked = 0;
    const server1 = processCpuSeconds(relay.pid);
    const t1 = performance.now();
    let drainComplete = true;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        drainComplete = false;
        resolve();
      }, DRAIN_TIMEOUT_SECONDS * 1000);
      const done = () => {
        if (++acked >= expected) {
          clearTimeout(timer);
          resolve();
        }
      };
      for (const o of owners) {
        o.onPush = (data) => {
          delivered++;
          o.ws.send(ackFrame(o.id(), data));
        };
        o.onOk = done;
        o.onError = done;
      }
      Promise.all(proofs.map((p, m) => expectOk(ownerOf(m).request(p), "subscribe"))).catch(reject);
    });
    const drainSeconds = (performance.now() - t1) / 1000;
    const drainServerCpu = ((processCpuSeconds(relay.pid) - server1) / drainSeconds) * 100;
    progress(
      `offline: drained ${fmt(acked)} of ${fmt(expected)} in ${drainSeconds.toFixed(2)} s (${fmt(acked / drainSeconds)} msgs/s, ${fmt(delivered)} delivered)${drainComplete ? "" : ` — stopped at the ${DRAIN_TIMEOUT_SECONDS} s limit`}`,
    );
    return {
      messages: OFFLINE,
      mailboxes: OFFLINE_MAILBOXES,
      depositSeconds,
      depositsPerSecond: (OFFLINE - depositErrors) / depositSeconds,
      depositP50Ms: depLat.p50,
      depositP99Ms: depLat.p99,
      depositServerCpu,
      drainSeconds,
      drainPerSecond: acked / drainSeconds,
      drained: acked,
      drainComplete,
      drainServerCpu,
      storedAfterDrain: await metric(relay.port, "parley_relay_stored_messages"),
      dataDirFs: fileSystemOf(dataDir),
      errors: { ...errorCounts },
    };
  } finally {
    for (const c of clients) c.close();
    await relay.stop();
    removeTempDir(dataDir);
  }
}

// ---- (c): idle connections ---------------------------------------------------------------------------

interface IdleResult {
  connections: number;
  openSeconds: number;
  rssBefore: number;
  rssAfter: number;
  perConnectionKiB: number;
  metricRssBefore: number | null;
  metricRssAfter: number | null;
}

async function idlePhase(): Promise<IdleResult> {
  const dataDir = tempDir();
  const relay = await startRelay(dataDir);
  let clients: Client[] = [];
  try {
    await sleep(1000);
    const rssBefore = vmRssBytes(relay.pid);
    const metricRssBefore = await metric(relay.port, "parley_relay_process_resident_memory_bytes");
    progress(`idle: opening ${fmt(IDLE)} connections (relay pid ${relay.pid})`);
    const t0 = performance.now();
    clients = await pool(IDLE, CONNECT_CONCURRENCY, () => Client.connect(relay.port, true));
    const openSeconds = (performance.now() - t0) / 1000;
    await sleep(2000);
    const rssAfter = vmRssBytes(relay.pid);
    const metricRssAfter = await metric(relay.port, "parley_relay_process_resident_memory_bytes");
    const connected = await metric(relay.port, "parley_relay_connections");
    if (connected !== IDLE) throw new Error(`idle: the relay reports ${connected} connections, not ${IDLE}`);
    const perConnectionKiB = (rssAfter - rssBefore) / IDLE / 1024;
    progress(
      `idle: RSS ${mib(rssBefore)} -> ${mib(rssAfter)} MiB, ${perConnectionKiB.toFixed(1)} KiB per connection`,
    );
    return {
      connections: IDLE,
      openSeconds,
      rssBefore,
      rssAfter,
      perConnectionKiB,
      metricRssBefore,
      metricRssAfter,
    };
  } finally {
    for (const c of clients) c.close();
    await relay.stop();
    removeTempDir(dataDir);
  }
}

// ---- report -------------------------------------------------------------------------------------------

function fmt(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : "n/a");
const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const aim = (met: boolean) => (met ? "met" : "MISSED");

/** Joins items with ", " into indented lines of at most `width` characters. */
function wrap(items: string[], width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const item of items) {
    if (line !== "" && line.length + item.length + 2 > width) {
      lines.push(`  ${line},`);
      line = "";
    }
    line = line === "" ? item : `${line}, ${item}`;
  }
  if (line !== "") lines.push(`  ${line}`);
  return lines;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) => `  ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")}`)
    .join("\n");
}

function runRows(runs: RunResult[]): string[][] {
  return [
    ["load", "msgs/s", "p50 ms", "p99 ms", "max ms", "server CPU", "server CPU µs/msg", "load CPU"],
    ...runs.map((r) => [
      r.window !== undefined
        ? `closed loop, ${r.window} in flight/sender`
        : `open loop at ${fmt(r.targetRate ?? 0)}/s (sent ${fmt(r.offeredPerSecond)}/s)`,
      fmt(r.deliveredPerSecond),
      ms(r.p50Ms),
      ms(r.p99Ms),
      ms(r.maxMs),
      `${r.serverCpu.toFixed(0)}%`,
      fmt(cpuPerMessage(r)),
      `${r.loadCpu.toFixed(0)}%`,
    ]),
  ];
}

function report(env: object, online: OnlineResult, offline: OfflineResult, idle: IdleResult): string {
  const o = online;
  const lines = [
    "Parley relay benchmark",
    ...wrap(
      Object.entries(env).map(([k, v]) => `${k}: ${v}`),
      110,
    ),
    "",
    `(a) Online forwarding through the relay (SQLite): ${SUBSCRIBERS} subscribers + ${SENDERS} senders, ${CIPHERTEXT_BYTES}-byte ciphertexts,`,
    "    deposit-to-delivery latency on the load generator's clock; every delivery acked",
    table(runRows([...o.relay.runs, o.relay.atPeak, o.relay.halfPeak])),
    `  peak ${fmt(o.relay.peak)} msgs/s; at half peak (${fmt(o.relay.halfPeak.targetRate ?? 0)}/s open loop): ${fmt(o.relay.halfPeak.deliveredPerSecond)} msgs/s, p50 ${ms(o.relay.halfPeak.p50Ms)} ms, p99 ${ms(o.relay.halfPeak.p99Ms)} ms   [aim p99 < ${AIM_P99_MS} ms: ${aim(o.relay.halfPeak.p99Ms < AIM_P99_MS)}]`,
    "",
    "(d) The same load through a bare ws forwarder (own process; no storage, crypto, auth or replies)",
    table(runRows([...o.bare.runs, o.bare.atRelayHalfPeak])),
    `  peak ${fmt(o.bare.peak)} msgs/s; relay/bare = ${o.ratio.toFixed(2)}   [aim >= ${AIM_RATIO}: ${aim(o.ratio >= AIM_RATIO)}]`,
  ];
  lines.push(
    `  server CPU per message at the peaks: relay ${fmt(cpuPerMessage(peakRun(o.relay.runs, o.relay.peak)))} µs, bare ${fmt(cpuPerMessage(peakRun(o.bare.runs, o.bare.peak)))} µs (bare/relay = ${o.cpuCostRatio.toFixed(2)})`,
  );
  const barePeak = peakRun(o.bare.runs, o.bare.peak);
  if (barePeak && barePeak.loadCpu >= 85) {
    lines.push(
      `  note: the load generator was near one full core (${barePeak.loadCpu.toFixed(0)}%) at the bare peak, so the bare figure is a floor and relay/bare an upper bound`,
    );
  }
  if (Object.keys(o.errors).length > 0 || o.unexpectedCloses > 0) {
    lines.push(`  errors: ${JSON.stringify(o.errors)}, unexpected closes: ${o.unexpectedCloses}`);
  }
  lines.push(
    "",
    `(b) Offline store then drain (SQLite on ${offline.dataDirFs}): ${fmt(offline.messages)} messages of ${CIPHERTEXT_BYTES} bytes, ${offline.mailboxes} mailboxes, ${OFFLINE_DEPOSITORS} connections x ${OFFLINE_PIPELINE} pipelined`,
    table([
      ["step", "msgs/s", "seconds", "server CPU", "notes"],
      [
        "durable deposits (ok after commit)",
        fmt(offline.depositsPerSecond),
        offline.depositSeconds.toFixed(2),
        `${offline.depositServerCpu.toFixed(0)}%`,
        `deposit->ok p50 ${ms(offline.depositP50Ms)} ms, p99 ${ms(offline.depositP99Ms)} ms`,
      ],
      [
        "drain (subscribe, deliver, ack)",
        fmt(offline.drainPerSecond),
        offline.drainSeconds.toFixed(2),
        `${offline.drainServerCpu.toFixed(0)}%`,
        `${fmt(offline.drained)} acked${offline.drainComplete ? "" : ` (stopped at ${DRAIN_TIMEOUT_SECONDS} s)`}, ${offline.storedAfterDrain ?? "?"} left stored`,
      ],
    ]),
    `  durable deposits ${fmt(offline.depositsPerSecond)} msgs/s   [aim >= ${fmt(AIM_OFFLINE)}: ${aim(offline.depositsPerSecond >= AIM_OFFLINE)}]`,
  );
  if (Object.keys(offline.errors).length > 0) lines.push(`  errors: ${JSON.stringify(offline.errors)}`);
  lines.push(
    "",
    `(c) Relay memory with ${fmt(idle.connections)} idle connections (hello done; opened in ${idle.openSeconds.toFixed(1)} s)`,
    table([
      ["", "VmRSS MiB", "metrics RSS MiB"],
      ["before", mib(idle.rssBefore), idle.metricRssBefore === null ? "n/a" : mib(idle.metricRssBefore)],
      [
        `with ${fmt(idle.connections)} connections`,
        mib(idle.rssAfter),
        idle.metricRssAfter === null ? "n/a" : mib(idle.metricRssAfter),
      ],
    ]),
    `  ${idle.perConnectionKiB.toFixed(1)} KiB per connection`,
  );
  return lines.join("\n");
}

// ---- main -----------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  checkFrameBuilders();
  const env = {
    node: process.version,
    cpus: `${availableParallelism()} (${cpus()[0]?.model.trim() ?? "?"})`,
    loadavg: loadavg()
      .map((l) => l.toFixed(2))
      .join(" "),
    cpuPressure: cpuPressure(),
    tmpfs: fileSystemOf(tmpdir()),
    connections: CONNECTIONS,
    seconds: SECONDS,
    offline: OFFLINE,
    idle: IDLE,
    relayFlags: `--storage sqlite --rate-limit ${RELAY_RATE_LIMIT}`,
  };
  const started = performance.now();
  const online = await onlinePhase();
  const offline = await offlinePhase();
  const idle = await idlePhase();
  const totalSeconds = (performance.now() - started) / 1000;
  Object.assign(env, {
    cpuPressureAtEnd: cpuPressure(),
    loadavgAtEnd: loadavg()
      .map((l) => l.toFixed(2))
      .join(" "),
  });
  progress(`done in ${totalSeconds.toFixed(0)} s`);
  if (JSON_OUTPUT) {
    process.stdout.write(
      `${JSON.stringify({
        env,
        online: {
          ...online,
          aims: { ratio: AIM_RATIO, p99Ms: AIM_P99_MS },
          ratioMet: online.ratio >= AIM_RATIO,
          p99Met: online.relay.halfPeak.p99Ms < AIM_P99_MS,
        },
        offline: { ...offline, aim: AIM_OFFLINE, aimMet: offline.depositsPerSecond >= AIM_OFFLINE },
        idle,
        totalSeconds,
      })}\n`,
    );
  } else {
    process.stdout.write(`${report(env, online, offline, idle)}\n`);
  }
}

main().then(
  () => {
    killEverything();
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`relay-bench: ${(e as Error).stack ?? e}\n`);
    killEverything();
    process.exit(1);
  },
);
