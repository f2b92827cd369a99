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
// `--json` prints one JSON object. The default run takes about 40 s. Diagnostics: BENCH_CPU_PROF=<dir>
// has each relay write a CPU profile into <dir> when it stops. Shared code: harness.ts, load-client.ts.
import { availableParallelism } from "node:os";
import { MailboxKey } from "@parley/protocol";
import { startRedis } from "../test/redis-server.js";
import { Bench, CpuMeter, fmt, machine, ms, type Proc, pace, Recorder, sleep, table } from "./harness.js";
import { CIPHERTEXT_BYTES, Client, checkFrameBuilders, sentAtOf, Tally, tagOf } from "./load-client.js";

const bench = new Bench("scale-bench");

// ---- configuration ------------------------------------------------------------------------------

const CONNECTIONS = Math.floor(bench.envNumber("BENCH_SCALE_CONNECTIONS", 200, 4));
const SECONDS = bench.envNumber("BENCH_SCALE_SECONDS", 5, 0.5);
const WINDOW = Math.floor(bench.envNumber("BENCH_SCALE_WINDOW", 16, 1));
const FSYNC_SETTING = process.env.BENCH_REDIS_FSYNC ?? "everysec";
const FSYNC =
  (["always", "everysec", "no"] as const).find((f) => f === FSYNC_SETTING) ??
  bench.usageError("BENCH_REDIS_FSYNC must be always, everysec or no");
const JSON_OUTPUT = process.argv.includes("--json");

const SUBSCRIBERS = Math.floor(CONNECTIONS / 2);
const SENDERS = CONNECTIONS - SUBSCRIBERS;
const WARMUP_SECONDS = 1;

/** Error frames nobody waited for, by code. */
const tally = new Tally();

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
  readonly latency = new Recorder();
  delivered = 0;
  sent = 0;
  /** Closed loop: refill a sender's window on each delivery. */
  closedLoop = false;

  constructor(
    readonly name: string,
    /** The processes whose CPU use is measured. */
    readonly processes: Pick<Proc, "name" | "pid">[],
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
      const c = await Client.connect(this.ports[node]!, tally);
      const key = keys[i]!;
      await c.createMailbox(key);
      await c.subscribe(key);
      c.onPush = (data) => this.onDeliver(c, data);
      this.subscribers.push(c);
      byNode[node]!.push(key.address);
    }
    for (let s = 0; s < SENDERS; s++) {
      const node = s % nodes;
      const targets = nodes === 1 ? byNode[0]! : byNode.filter((_, n) => n !== node).flat();
      const client = await Client.connect(this.ports[node]!, tally);
      this.senders.push({ index: s, client, targets, next: s % targets.length, outstanding: 0 });
    }
  }

  private onDeliver(c: Client, data: Buffer): void {
    const now = performance.now();
    c.ack(data);
    const sentAt = sentAtOf(data);
    const sender = this.senders[tagOf(data)];
    this.delivered++;
    this.latency.add(now - sentAt, sentAt);
    if (!sender) return;
    sender.outstanding--;
    if (this.closedLoop) this.send(sender);
  }

  send(s: Sender): void {
    const address = s.targets[s.next++ % s.targets.length]!;
    s.outstanding++;
    this.sent++;
    s.client.deposit(address, performance.now(), s.index);
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

/** Measures `seconds` of load after a warm-up; `start` begins it, `stop` ends the sending. */
async function measure(
  setup: Setup,
  load: string,
  start: () => () => void,
  seconds: number,
): Promise<RunResult> {
  tally.errors = {};
  const stop = start();
  await sleep(WARMUP_SECONDS * 1000);
  setup.latency.reset();
  setup.delivered = 0;
  const meter = new CpuMeter(setup.processes.map((p) => p.pid));
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  const delivered = setup.delivered;
  const latency = setup.latency.summary();
  const cpu: Record<string, number> = {};
  const shares = meter.processes(elapsed);
  for (const [i, p] of setup.processes.entries()) cpu[p.name] = shares[i]!;
  cpu["load generator"] = meter.own(elapsed);
  stop();
  await setup.quiesce();
  return {
    setup: setup.name,
    load,
    seconds: elapsed,
    deliveredPerSecond: delivered / elapsed,
    p50Ms: latency.p50,
    p99Ms: latency.p99,
    maxMs: latency.max,
    cpu,
    errors: { ...tally.errors },
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
    let turn = 0;
    return pace(rate, () => setup.send(setup.senders[turn++ % setup.senders.length]!));
  };
}

// ---- report -----------------------------------------------------------------------------------------

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
  checkFrameBuilders();
  const env = {
    ...machine(),
    connections: CONNECTIONS,
    seconds: SECONDS,
    window: WINDOW,
    ciphertextBytes: CIPHERTEXT_BYTES,
    redisAppendfsync: FSYNC,
  };
  const started = performance.now();
  bench.progress("starting one SQLite relay, redis-server and two Redis relays");
  const sqliteRelay = await bench.startRelay("sqlite relay", [
    "--storage",
    "sqlite",
    "--data-dir",
    bench.tempDir(),
  ]);
  // Started as the relay tests start it (test/redis-server.ts: REDIS_SERVER or Debian's binary, a
  // free port, AOF on, no RDB snapshots); its data directory goes with this process's.
  const redis = await startRedis({ appendfsync: FSYNC });
  bench.adoptTempDir(redis.dir);
  const nodeA = await bench.startRelay("relay A", ["--storage", redis.url]);
  const nodeB = await bench.startRelay("relay B", ["--storage", redis.url]);
  const sqlite = new Setup("sqlite", [sqliteRelay], [sqliteRelay.port]);
  const scaled = new Setup(
    "redis",
    [nodeA, nodeB, { name: "redis-server", pid: redis.pid }],
    [nodeA.port, nodeB.port],
  );
  const runs: RunResult[] = [];
  try {
    await sqlite.connect();
    await scaled.connect();
    const describe = (r: RunResult) =>
      `${r.setup} ${r.load}: ${fmt(r.deliveredPerSecond)} msgs/s, p50 ${ms(r.p50Ms)} ms, p99 ${ms(r.p99Ms)} ms`;
    for (const setup of [sqlite, scaled]) {
      bench.progress(`${setup.name}: closed loop, ${WINDOW} in flight per sender, ${SECONDS} s`);
      runs.push(await measure(setup, "closed", closedLoop(setup), SECONDS));
      bench.progress(describe(runs.at(-1)!));
    }
    // Half the lower of the two peaks: both setups below their capacity, so latency is compared
    // at equal load and not in a queue that grows.
    const rate = Math.max(
      100,
      Math.round(Math.min(runs[0]!.deliveredPerSecond, runs[1]!.deliveredPerSecond) / 2),
    );
    for (const setup of [sqlite, scaled]) {
      bench.progress(`${setup.name}: open loop at ${fmt(rate)} msgs/s, ${SECONDS} s`);
      runs.push(await measure(setup, "open", openLoop(setup, rate), SECONDS));
      bench.progress(describe(runs.at(-1)!));
    }
    bench.progress(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    if (JSON_OUTPUT) process.stdout.write(`${JSON.stringify({ env, openLoopRate: rate, runs })}\n`);
    else process.stdout.write(`${report(env, runs, rate)}\n`);
  } finally {
    sqlite.close();
    scaled.close();
    await Promise.all([sqliteRelay.stop(), nodeA.stop(), nodeB.stop()]);
    await redis.stop();
  }
}

bench.run(main);
