// Parley relay scale-out benchmark (`pnpm bench:scale`): the same workload, in one run, through
//   (a) one relay node on SQLite (the baseline), and
//   (b) two relay nodes sharing one redis-server (AOF on, appendfsync from BENCH_REDIS_FSYNC,
//       default everysec), with every sender on one node and the subscriber it writes to on the
//       other, so each message crosses nodes through Redis (deposit script, pub/sub notification,
//       delivery round on the other node, ack there).
// Every process is its own: the relays (node + tsx on src/cli.ts, --rate-limit raised), redis-server
// (Debian's, a fresh temporary data directory, a free port), and this load generator, which is the
// only clock. BENCH_SCALE_CONNECTIONS connections (default 200): half subscribers, each owning and
// subscribed to one mailbox, half senders; sender s deposits its k-th message to the (s + k)-th
// mailbox of the subscribers on the other node (for SQLite, of all subscribers); every delivery is
// acked at once. A ciphertext (300 bytes) carries its send time, so deposit-to-delivery latency is
// measured on one clock.
//
// Two loads per setup, interleaved (SQLite, Redis, SQLite, Redis) so that machine noise hits both:
//   - closed loop: each sender keeps BENCH_SCALE_WINDOW (default 16) messages deposited but not yet
//     delivered, for BENCH_SCALE_SECONDS (default 5): the delivered msgs/s is the throughput;
//   - open loop: a 1 ms ticker deposits at a fixed rate, half the lower of the two closed-loop
//     figures, the same rate for both, for BENCH_SCALE_SECONDS: p50/p99 deposit-to-delivery latency
//     at equal load.
// The ratios to SQLite are printed; nothing is asserted. CPU per process (from /proc) is printed
// beside each figure: on a small machine the two relays, Redis and the load generator share cores.
// `--json` prints one JSON object. The default run takes about 40 s.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
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
    process.stderr.write(`scale-bench: ${name}="${raw}" must be a number >= ${min}\n`);
    process.exit(2);
  }
  return n;
}

const CONNECTIONS = Math.floor(envNumber("BENCH_SCALE_CONNECTIONS", 200, 4));
const SECONDS = envNumber("BENCH_SCALE_SECONDS", 5, 0.5);
const WINDOW = Math.floor(envNumber("BENCH_SCALE_WINDOW", 16, 1));
const FSYNC = process.env.BENCH_REDIS_FSYNC ?? "everysec";
if (!["always", "everysec", "no"].includes(FSYNC)) {
  process.stderr.write(`scale-bench: BENCH_REDIS_FSYNC must be always, everysec or no\n`);
  process.exit(2);
}
const REDIS_SERVER = process.env.REDIS_SERVER ?? "redis-server";
/** Diagnostics: each relay writes a CPU profile into this directory when it stops. */
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF || null;
const JSON_OUTPUT = process.argv.includes("--json");

const SUBSCRIBERS = Math.floor(CONNECTIONS / 2);
const SENDERS = CONNECTIONS - SUBSCRIBERS;
const CIPHERTEXT_BYTES = 300;
const WARMUP_SECONDS = 1;
const RELAY_RATE_LIMIT = 1_000_000;
const CLK_TCK = 100;

const RELAY_DIR = fileURLToPath(new URL("..", import.meta.url));
const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url));

const progress = (msg: string) => process.stderr.write(`scale-bench: ${msg}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- processes ----------------------------------------------------------------------------------

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

interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  stop(): Promise<void>;
}

/** Spawns a process (only ever killed by its own PID) and waits for `ready` in its output. */
async function launch(
  name: string,
  command: string,
  args: string[],
  ready: RegExp,
  port: (m: RegExpExecArray) => number,
): Promise<Proc> {
  const proc = spawn(command, args, { cwd: RELAY_DIR, stdio: ["ignore", "pipe", "pipe"] });
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
  const bound = await new Promise<number>((resolve, reject) => {
    const timeout = setTimeout(() => {
      clearInterval(timer);
      reject(new Error(`${name} did not start within 30 s:\n${out}`));
    }, 30_000);
    const timer = setInterval(() => {
      const m = ready.exec(out);
      if (m) {
        clearInterval(timer);
        clearTimeout(timeout);
        resolve(port(m));
      }
    }, 20);
    proc.once("error", (e) => reject(new Error(`cannot start ${name}: ${e.message}`)));
    void exited.then(() => {
      clearInterval(timer);
      clearTimeout(timeout);
      reject(new Error(`${name} exited before it was ready:\n${out}`));
    });
  });
  return {
    name,
    pid: proc.pid!,
    port: bound,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "parley-scale-bench-"));
  tempDirs.add(d);
  return d;
}

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

async function startRedis(): Promise<Proc> {
  const port = await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", tempDir(), "--save", ""];
  args.push("--appendonly", "yes", "--appendfsync", FSYNC, "--daemonize", "no", "--logfile", "");
  return launch("redis-server", REDIS_SERVER, args, /ready to accept connections/i, () => port);
}

function startRelay(name: string, storage: string[]): Promise<Proc> {
  const prof = CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${CPU_PROF_DIR}`] : [];
  const args = ["--conditions=source", "--import", "tsx", ...prof, CLI, "--port", "0", ...storage];
  args.push("--rate-limit", String(RELAY_RATE_LIMIT));
  return launch(name, process.execPath, args, /"port":(\d+).*"msg":"relay listening"/, (m) => Number(m[1]));
}

/** User + system CPU seconds of a process, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}
function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

// ---- clients --------------------------------------------------------------------------------------

const TYPE_DEPOSIT = 0x03;
const TYPE_ACK = 0x06;
const TYPE_OK = 0x82;
const TYPE_DELIVER = 0x83;
const TYPE_ERROR = 0x84;
const DELIVER_CIPHERTEXT = 62;
const DEPOSIT_CIPHERTEXT = 54;

let errors: Record<string, number> = {};

class Client {
  challenge: Uint8Array = new Uint8Array(32);
  onDeliver: ((data: Buffer) => void) | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, (f: Frame) => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer) => this.handle(data));
    ws.on("error", () => {});
  }

  static async connect(port: number): Promise<Client> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const c = new Client(ws);
    const welcome = await c.request({ type: "hello", requestId: 0, maxVersion: 1 });
    if (welcome.type !== "welcome") throw new Error(`expected welcome, got ${welcome.type}`);
    c.challenge = welcome.challenge;
    return c;
  }

  id(): number {
    const id = this.nextId;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  private handle(data: Buffer): void {
    const type = data[1];
    if (type === TYPE_DELIVER) {
      this.onDeliver?.(data);
      return;
    }
    const requestId = data.readUInt32BE(2);
    const waiter = this.waiting.get(requestId);
    if (waiter) {
      this.waiting.delete(requestId);
      waiter(decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.length)));
    } else if (type === TYPE_ERROR) {
      const f = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.length));
      const code = f.type === "error" ? f.code : "?";
      errors[code] = (errors[code] ?? 0) + 1;
    } else if (type !== TYPE_OK) {
      errors.unexpected = (errors.unexpected ?? 0) + 1;
    }
  }

  request(frame: Frame): Promise<Frame> {
    const requestId = this.id();
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${frame.type} within 60 s`)), 60_000);
      this.waiting.set(requestId, (f) => {
        clearTimeout(timer);
        resolve(f);
      });
      this.ws.send(encodeFrame({ ...frame, requestId } as Frame));
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

async function expectOk(p: Promise<Frame>, what: string): Promise<void> {
  const f = await p;
  if (f.type !== "ok") throw new Error(`${what}: ${f.type === "error" ? `${f.code} ${f.message}` : f.type}`);
}

const RUN_ID = randomBytes(8);
const FILLER = randomBytes(CIPHERTEXT_BYTES);
let clientMessageCounter = 0;

/** A deposit: header, address, client message id (run id || counter), ciphertext (f64 send time, u32 sender, filler). */
function depositFrame(requestId: number, address: Uint8Array, sentAt: number, sender: number): Buffer {
  const b = Buffer.allocUnsafe(DEPOSIT_CIPHERTEXT + CIPHERTEXT_BYTES);
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
  b.writeUInt32LE(sender, DEPOSIT_CIPHERTEXT + 8);
  return b;
}

function ackFrame(requestId: number, deliver: Buffer): Buffer {
  const b = Buffer.allocUnsafe(54);
  b[0] = 1;
  b[1] = TYPE_ACK;
  b.writeUInt32BE(requestId, 2);
  deliver.copy(b, 6, 6, 54);
  return b;
}

function checkFrames(): void {
  const address = randomBytes(32);
  const dep = decodeFrame(depositFrame(7, address, 12.5, 3));
  if (dep.type !== "deposit" || dep.ciphertext.length !== CIPHERTEXT_BYTES)
    throw new Error("bad deposit layout");
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
  if (deliver.readDoubleLE(DELIVER_CIPHERTEXT) !== 12.5) throw new Error("bad deliver layout");
  if (decodeFrame(ackFrame(1, deliver)).type !== "ack") throw new Error("bad ack layout");
}

// ---- one setup: its relays, clients and mailboxes ------------------------------------------------

interface Sender {
  readonly index: number;
  readonly client: Client;
  /** The mailboxes it writes to, in turn. */
  readonly targets: Uint8Array[];
  next: number;
  outstanding: number;
}

class Setup {
  readonly senders: Sender[] = [];
  readonly subscribers: Client[] = [];
  latencies: number[] = [];
  delivered = 0;
  sent = 0;
  /** Closed loop: refill a sender's window on each delivery. */
  closedLoop = false;

  constructor(
    readonly name: string,
    readonly processes: Proc[],
    readonly ports: number[],
  ) {}

  /**
   * Subscribers alternate between the nodes; sender s sits on node s mod nodes and writes only to
   * mailboxes whose subscriber is on another node (with one node: all of them).
   */
  async connect(): Promise<void> {
    const nodes = this.ports.length;
    const keys = Array.from({ length: SUBSCRIBERS }, () => MailboxKey.generate());
    const byNode: Uint8Array[][] = this.ports.map(() => []);
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const node = i % nodes;
      const c = await Client.connect(this.ports[node]!);
      const key = keys[i]!;
      await expectOk(
        c.request({
          type: "createMailbox",
          requestId: 0,
          ownerKey: key.publicKey,
          signature: key.prove(MailboxAction.create, c.challenge),
        }),
        "createMailbox",
      );
      await expectOk(
        c.request({
          type: "subscribe",
          requestId: 0,
          address: key.address,
          signature: key.prove(MailboxAction.subscribe, c.challenge),
        }),
        "subscribe",
      );
      c.onDeliver = (data) => this.onDeliver(c, data);
      this.subscribers.push(c);
      byNode[node]!.push(key.address);
    }
    for (let s = 0; s < SENDERS; s++) {
      const node = s % nodes;
      const targets = nodes === 1 ? byNode[0]! : byNode.filter((_, n) => n !== node).flat();
      const client = await Client.connect(this.ports[node]!);
      this.senders.push({ index: s, client, targets, next: s % targets.length, outstanding: 0 });
    }
  }

  private onDeliver(c: Client, data: Buffer): void {
    const now = performance.now();
    c.ws.send(ackFrame(c.id(), data));
    const sentAt = data.readDoubleLE(DELIVER_CIPHERTEXT);
    const sender = this.senders[data.readUInt32LE(DELIVER_CIPHERTEXT + 8)];
    this.delivered++;
    this.latencies.push(now - sentAt);
    if (!sender) return;
    sender.outstanding--;
    if (this.closedLoop) this.send(sender);
  }

  send(s: Sender): void {
    const address = s.targets[s.next++ % s.targets.length]!;
    s.outstanding++;
    this.sent++;
    s.client.ws.send(depositFrame(s.client.id(), address, performance.now(), s.index));
  }

  get outstanding(): number {
    return this.senders.reduce((a, s) => a + s.outstanding, 0);
  }

  /** Waits until every message sent was delivered. */
  async quiesce(): Promise<void> {
    const deadline = performance.now() + 60_000;
    while (this.outstanding > 0) {
      if (performance.now() > deadline)
        throw new Error(`${this.name}: ${this.outstanding} undelivered after 60 s`);
      await sleep(20);
    }
  }

  close(): void {
    for (const c of [...this.subscribers, ...this.senders.map((s) => s.client)]) c.close();
  }
}

interface RunResult {
  setup: string;
  load: string;
  seconds: number;
  deliveredPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  cpu: Record<string, number>;
  errors: Record<string, number>;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Measures `seconds` of load after a warm-up; `start` begins it, `stop` ends the sending. */
async function measure(
  setup: Setup,
  load: string,
  start: () => () => void,
  seconds: number,
): Promise<RunResult> {
  errors = {};
  const stop = start();
  await sleep(WARMUP_SECONDS * 1000);
  setup.latencies = [];
  setup.delivered = 0;
  const cpu0 = setup.processes.map((p) => cpuSeconds(p.pid));
  const own0 = ownCpuSeconds();
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  const delivered = setup.delivered;
  const latencies = [...setup.latencies].sort((a, b) => a - b);
  const cpu: Record<string, number> = {};
  for (const [i, p] of setup.processes.entries()) {
    cpu[p.name] = ((cpuSeconds(p.pid) - cpu0[i]!) / elapsed) * 100;
  }
  cpu["load generator"] = ((ownCpuSeconds() - own0) / elapsed) * 100;
  stop();
  await setup.quiesce();
  return {
    setup: setup.name,
    load,
    seconds: elapsed,
    deliveredPerSecond: delivered / elapsed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies[latencies.length - 1] ?? Number.NaN,
    cpu,
    errors: { ...errors },
  };
}

function closedLoop(setup: Setup): () => () => void {
  return () => {
    setup.closedLoop = true;
    for (const s of setup.senders) for (let k = 0; k < WINDOW; k++) setup.send(s);
    return () => {
      setup.closedLoop = false;
    };
  };
}

/** A 1 ms ticker sends whatever is due at `rate` msgs/s, round robin over the senders. */
function openLoop(setup: Setup, rate: number): () => () => void {
  return () => {
    setup.closedLoop = false;
    const t0 = performance.now();
    let sent = 0;
    let turn = 0;
    const timer = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate) - sent;
      for (let i = 0; i < due; i++) {
        setup.send(setup.senders[turn++ % setup.senders.length]!);
        sent++;
      }
    }, 1);
    return () => clearInterval(timer);
  };
}

// ---- report -----------------------------------------------------------------------------------------

const fmt = (n: number) =>
  Number.isFinite(n)
    ? Math.round(n)
        .toString()
        .replace(/\B(?=(\d{3})+(?!\d))/g, ",")
    : "n/a";
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : "n/a");

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) => `  ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")}`)
    .join("\n");
}

/** CPU time of the relays and Redis (not the load generator) per delivered message, in µs. */
function serverCpuPerMessage(r: RunResult): number {
  const percent = Object.entries(r.cpu)
    .filter(([name]) => name !== "load generator")
    .reduce((a, [, v]) => a + v, 0);
  return ((percent / 100) * 1e6) / r.deliveredPerSecond;
}

function report(env: Record<string, unknown>, runs: RunResult[], rate: number): string {
  const find = (setup: string, load: string) => runs.find((r) => r.setup === setup && r.load === load)!;
  const [sqlClosed, redisClosed] = [find("sqlite", "closed"), find("redis", "closed")];
  const [sqlOpen, redisOpen] = [find("sqlite", "open"), find("redis", "open")];
  const cpu = (r: RunResult) =>
    Object.entries(r.cpu)
      .map(([k, v]) => `${k} ${v.toFixed(0)}%`)
      .join(", ");
  const label = (r: RunResult) =>
    `${r.setup === "sqlite" ? "1 node, SQLite" : "2 nodes, Redis"}, ${r.load === "closed" ? `closed loop (${WINDOW}/sender)` : `open loop at ${fmt(rate)}/s`}`;
  const lines = [
    "Parley relay scale-out benchmark",
    `  ${Object.entries(env)
      .map(([k, v]) => `${k}: ${v}`)
      .join(", ")}`,
    "",
    table([
      ["setup and load", "msgs/s", "p50 ms", "p99 ms", "max ms", "server CPU µs/msg", "vs SQLite"],
      ...[sqlClosed, redisClosed, sqlOpen, redisOpen].map((r) => {
        const base = r.load === "closed" ? sqlClosed : sqlOpen;
        const vs =
          r.setup === "sqlite"
            ? "1.00"
            : r.load === "closed"
              ? `${(r.deliveredPerSecond / base.deliveredPerSecond).toFixed(2)}x msgs/s`
              : `${(r.p99Ms / base.p99Ms).toFixed(2)}x p99`;
        return [
          label(r),
          fmt(r.deliveredPerSecond),
          ms(r.p50Ms),
          ms(r.p99Ms),
          ms(r.maxMs),
          fmt(serverCpuPerMessage(r)),
          vs,
        ];
      }),
    ]),
    "",
    `CPU (share of one core; this machine has ${availableParallelism()}) during each measurement:`,
    ...[sqlClosed, redisClosed, sqlOpen, redisOpen].map((r) => `  ${label(r)}: ${cpu(r)}`),
  ];
  const errs = runs.filter((r) => Object.keys(r.errors).length > 0);
  for (const r of errs) lines.push(`  errors in ${label(r)}: ${JSON.stringify(r.errors)}`);
  lines.push(
    "",
    `Durability differs: SQLite acknowledges after an fsync; Redis here runs appendfsync ${FSYNC}${FSYNC === "always" ? " (an fsync before each acknowledgement)" : " (BENCH_REDIS_FSYNC=always for an fsync before each acknowledgement)"}.`,
  );
  return lines.join("\n");
}

// ---- main ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  checkFrames();
  const env = {
    node: process.version,
    cpus: `${availableParallelism()} (${cpus()[0]?.model.trim() ?? "?"})`,
    loadavg: loadavg()
      .map((l) => l.toFixed(2))
      .join(" "),
    connections: CONNECTIONS,
    seconds: SECONDS,
    window: WINDOW,
    ciphertextBytes: CIPHERTEXT_BYTES,
    redisAppendfsync: FSYNC,
  };
  const started = performance.now();
  progress("starting one SQLite relay, redis-server and two Redis relays");
  const sqliteRelay = await startRelay("sqlite relay", ["--storage", "sqlite", "--data-dir", tempDir()]);
  const redis = await startRedis();
  const redisUrl = `redis://127.0.0.1:${redis.port}/0`;
  const nodeA = await startRelay("relay A", ["--storage", redisUrl]);
  const nodeB = await startRelay("relay B", ["--storage", redisUrl]);
  const sqlite = new Setup("sqlite", [sqliteRelay], [sqliteRelay.port]);
  const scaled = new Setup("redis", [nodeA, nodeB, redis], [nodeA.port, nodeB.port]);
  const runs: RunResult[] = [];
  try {
    await sqlite.connect();
    await scaled.connect();
    const describe = (r: RunResult) =>
      `${r.setup} ${r.load}: ${fmt(r.deliveredPerSecond)} msgs/s, p50 ${ms(r.p50Ms)} ms, p99 ${ms(r.p99Ms)} ms`;
    for (const setup of [sqlite, scaled]) {
      progress(`${setup.name}: closed loop, ${WINDOW} in flight per sender, ${SECONDS} s`);
      runs.push(await measure(setup, "closed", closedLoop(setup), SECONDS));
      progress(describe(runs.at(-1)!));
    }
    // Half the lower of the two peaks: both setups below their capacity, so latency is compared
    // at equal load and not in a queue that grows.
    const rate = Math.max(
      100,
      Math.round(Math.min(runs[0]!.deliveredPerSecond, runs[1]!.deliveredPerSecond) / 2),
    );
    for (const setup of [sqlite, scaled]) {
      progress(`${setup.name}: open loop at ${fmt(rate)} msgs/s, ${SECONDS} s`);
      runs.push(await measure(setup, "open", openLoop(setup, rate), SECONDS));
      progress(describe(runs.at(-1)!));
    }
    progress(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    if (JSON_OUTPUT) process.stdout.write(`${JSON.stringify({ env, openLoopRate: rate, runs })}\n`);
    else process.stdout.write(`${report(env, runs, rate)}\n`);
  } finally {
    sqlite.close();
    scaled.close();
    await Promise.all([sqliteRelay.stop(), nodeA.stop(), nodeB.stop()]);
    await redis.stop();
  }
}

main().then(
  () => {
    killEverything();
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`scale-bench: ${(e as Error).stack ?? e}\n`);
    killEverything();
    process.exit(1);
  },
);
