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
// Every child process is stopped at the end, and killed on error or on a signal. What this shares with
// scale-bench.ts is in harness.ts (processes, CPU, latency, formatting) and load-client.ts (protocol).
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { MailboxKey } from "@parley/protocol";
import {
  Bench,
  CpuMeter,
  fmt,
  loadavgText,
  machine,
  ms,
  type Proc,
  pace,
  RELAY_RATE_LIMIT,
  Recorder,
  sleep,
  table,
} from "./harness.js";
import {
  CIPHERTEXT_BYTES,
  Client,
  checkFrameBuilders,
  expectOk,
  sentAtOf,
  subscribeFrame,
  Tally,
  tagOf,
} from "./load-client.js";

const bench = new Bench("relay-bench");

// ---- configuration ------------------------------------------------------------------------------

const CONNECTIONS = Math.floor(bench.envNumber("BENCH_CONNECTIONS", 1000, 2));
const SECONDS = bench.envNumber("BENCH_SECONDS", 5, 0.5);
const OFFLINE = Math.floor(bench.envNumber("BENCH_OFFLINE", 50_000, 1));
const OFFLINE_MAILBOXES = Math.floor(bench.envNumber("BENCH_OFFLINE_MAILBOXES", 100, 1));
const IDLE = Math.floor(bench.envNumber("BENCH_IDLE", 10_000, 1));
const LATENCY_DUMP = process.env.BENCH_LATENCY_DUMP || null;
const EXTRA_RELAY_ARGS = (process.env.BENCH_RELAY_ARGS ?? "").split(/\s+/).filter((a) => a !== "");
const JSON_OUTPUT = process.argv.includes("--json");

const SUBSCRIBERS = Math.floor(CONNECTIONS / 2);
const SENDERS = CONNECTIONS - SUBSCRIBERS;
const WINDOWS = [1, 4, 16, 64] as const;
const WARMUP_SECONDS = Math.min(1, SECONDS * 0.3);
const PEAK_SECONDS = Math.max(1, SECONDS * 0.6);
const OFFLINE_DEPOSITORS = 4;
const OFFLINE_PIPELINE = 256;
const OFFLINE_OWNERS = Math.min(10, OFFLINE_MAILBOXES);
const DRAIN_TIMEOUT_SECONDS = 60;
const CONNECT_CONCURRENCY = 200;
const AIM_RATIO = 0.5;
const AIM_OFFLINE = 30_000;
const AIM_P99_MS = 20;

const BARE = fileURLToPath(new URL("./bare-forwarder.ts", import.meta.url));

// ---- child processes and /proc ------------------------------------------------------------------

function startRelay(dataDir: string): Promise<Proc> {
  return bench.startRelay("relay", ["--storage", "sqlite", "--data-dir", dataDir], EXTRA_RELAY_ARGS);
}

function startBare(): Promise<Proc> {
  return bench.launchScript("bare forwarder", BARE, [], /"port":(\d+).*"msg":"bare listening"/);
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

/** Error frames received, by code, and connections that closed while they should not have. */
const tally = new Tally();

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

// ---- (a) and (d): online forwarding ------------------------------------------------------------------

interface World {
  readonly name: "relay" | "bare";
  readonly server: Proc;
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
  client.deposit(address, performance.now(), s);
  w.outstanding[s]!++;
  w.totalOutstanding++;
  w.sent++;
}

async function buildWorld(name: "relay" | "bare", server: Proc): Promise<World> {
  const relay = name === "relay";
  const keys = Array.from({ length: SUBSCRIBERS }, () => MailboxKey.generate());
  const subscribers = await pool(SUBSCRIBERS, CONNECT_CONCURRENCY, async (i) => {
    const c = await Client.connect(server.port, tally, relay);
    const key = keys[i]!;
    if (relay) {
      await c.createMailbox(key);
      await c.subscribe(key);
    } else {
      // The forwarder only needs the address; the signature bytes are ignored.
      await expectOk(
        c.request({ type: "subscribe", requestId: 0, address: key.address, signature: new Uint8Array(64) }),
        "register",
      );
    }
    return c;
  });
  const senders = await pool(SENDERS, CONNECT_CONCURRENCY, () => Client.connect(server.port, tally, relay));
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
      const s = tagOf(data);
      if (w.recording) {
        const sentAt = sentAtOf(data);
        w.latency.add(now - sentAt, sentAt);
      }
      w.delivered++;
      w.outstanding[s]!--;
      w.totalOutstanding--;
      sub.ack(data);
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

/** Waits until everything sent was delivered (and, on the relay, every ack answered). */
async function quiesce(w: World): Promise<void> {
  const start = performance.now();
  let noted = false;
  while (w.totalOutstanding > 0 || (w.name === "relay" && w.ackReplies < w.acksSent)) {
    const waited = (performance.now() - start) / 1000;
    if (waited > 10 && !noted) {
      bench.progress(`${w.name}: still draining the backlog (${fmt(w.totalOutstanding)} undelivered)`);
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
  const cpu = new CpuMeter([w.server.pid]);
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
    serverCpu: cpu.processes(elapsed)[0]!,
    loadCpu: cpu.own(elapsed),
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
  let next = 0;
  const stop = pace(rate, () => {
    sendDeposit(w, next);
    next = next + 1 === w.senders.length ? 0 : next + 1;
  });
  try {
    await sleep(WARMUP_SECONDS * 1000);
    const r = await measure(w, seconds);
    return { targetRate: rate, ...r };
  } finally {
    stop();
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
  tally.errors = {};
  const dataDir = bench.tempDir();
  const relayServer = await startRelay(dataDir);
  const bareServer = await startBare();
  const worlds: World[] = [];
  try {
    bench.progress(
      `online: ${SUBSCRIBERS} subscribers + ${SENDERS} senders on the relay (pid ${relayServer.pid})`,
    );
    const relay = await buildWorld("relay", relayServer);
    worlds.push(relay);
    bench.progress(`online: the same on the bare forwarder (pid ${bareServer.pid})`);
    const bare = await buildWorld("bare", bareServer);
    worlds.push(bare);
    const runs: Record<"relay" | "bare", RunResult[]> = { relay: [], bare: [] };
    const best: Record<"relay" | "bare", number> = { relay: 0, bare: 0 };
    // Interleaved, so that a noisy stretch of the shared machine hits both.
    for (const window of WINDOWS) {
      for (const w of [relay, bare]) {
        const r = await closedLoop(w, window);
        bench.progress(describeRun(w, r));
        runs[w.name].push(r);
        best[w.name] = Math.max(best[w.name], r.deliveredPerSecond);
      }
    }
    // Is the closed-loop peak sustained when the load does not wait for the relay?
    const atPeak = await openLoop(relay, Math.round(best.relay), PEAK_SECONDS);
    bench.progress(describeRun(relay, atPeak));
    const half = Math.round(best.relay / 2);
    const halfPeak = await openLoop(relay, half, SECONDS);
    bench.progress(describeRun(relay, halfPeak));
    if (LATENCY_DUMP) writeFileSync(LATENCY_DUMP, relay.latency.csv());
    const bareHalf = await openLoop(bare, half, SECONDS);
    bench.progress(describeRun(bare, bareHalf));
    return {
      relay: { runs: runs.relay, peak: best.relay, atPeak, halfPeak },
      bare: { runs: runs.bare, peak: best.bare, atRelayHalfPeak: bareHalf },
      ratio: best.relay / best.bare,
      cpuCostRatio:
        cpuPerMessage(peakRun(runs.bare, best.bare)) / cpuPerMessage(peakRun(runs.relay, best.relay)),
      errors: { ...tally.errors },
      unexpectedCloses: tally.unexpectedCloses,
    };
  } finally {
    for (const w of worlds) for (const c of [...w.senders, ...w.subscribers]) c.close();
    await Promise.all([relayServer.stop(), bareServer.stop()]);
    bench.removeTempDir(dataDir);
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
  tally.errors = {};
  const dataDir = bench.tempDir();
  const relay = await startRelay(dataDir);
  const clients: Client[] = [];
  try {
    const owners = await pool(OFFLINE_OWNERS, OFFLINE_OWNERS, () => Client.connect(relay.port, tally));
    const depositors = await pool(OFFLINE_DEPOSITORS, OFFLINE_DEPOSITORS, () =>
      Client.connect(relay.port, tally),
    );
    clients.push(...owners, ...depositors);
    const keys = Array.from({ length: OFFLINE_MAILBOXES }, () => MailboxKey.generate());
    const ownerOf = (m: number) => owners[m % owners.length]!;
    await pool(OFFLINE_MAILBOXES, 50, (m) => ownerOf(m).createMailbox(keys[m]!));

    // Deposits: each depositor keeps OFFLINE_PIPELINE deposits waiting for their `ok`.
    bench.progress(
      `offline: depositing ${fmt(OFFLINE)} messages into ${OFFLINE_MAILBOXES} mailboxes (relay pid ${relay.pid})`,
    );
    const depositLatency = new Recorder();
    let issued = 0;
    let answered = 0;
    const depositCpu = new CpuMeter([relay.pid]);
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
          d.deposit(keys[i % OFFLINE_MAILBOXES]!.address, 0, i, id);
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
    const depositServerCpu = depositCpu.processes(depositSeconds)[0]!;
    const depLat = depositLatency.summary();
    const depositErrors = Object.values(tally.errors).reduce((a, b) => a + b, 0);
    bench.progress(
      `offline: ${fmt((OFFLINE - depositErrors) / depositSeconds)} durable deposits/s (${depositSeconds.toFixed(2)} s, ${depositErrors} refused)`,
    );

    // Drain: every owner subscribes to its mailboxes and acks each delivery.
    const proofs = keys.map((k, m) => subscribeFrame(k, ownerOf(m).challenge));
    const expected = OFFLINE - depositErrors;
    let delivered = 0;
    let acked = 0;
    const drainCpu = new CpuMeter([relay.pid]);
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
          o.ack(data);
        };
        o.onOk = done;
        o.onError = done;
      }
      Promise.all(proofs.map((p, m) => expectOk(ownerOf(m).request(p), "subscribe"))).catch(reject);
    });
    const drainSeconds = (performance.now() - t1) / 1000;
    const drainServerCpu = drainCpu.processes(drainSeconds)[0]!;
    bench.progress(
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
      errors: { ...tally.errors },
    };
  } finally {
    for (const c of clients) c.close();
    await relay.stop();
    bench.removeTempDir(dataDir);
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
  const dataDir = bench.tempDir();
  const relay = await startRelay(dataDir);
  let clients: Client[] = [];
  try {
    await sleep(1000);
    const rssBefore = vmRssBytes(relay.pid);
    const metricRssBefore = await metric(relay.port, "parley_relay_process_resident_memory_bytes");
    bench.progress(`idle: opening ${fmt(IDLE)} connections (relay pid ${relay.pid})`);
    const t0 = performance.now();
    clients = await pool(IDLE, CONNECT_CONCURRENCY, () => Client.connect(relay.port, tally));
    const openSeconds = (performance.now() - t0) / 1000;
    await sleep(2000);
    const rssAfter = vmRssBytes(relay.pid);
    const metricRssAfter = await metric(relay.port, "parley_relay_process_resident_memory_bytes");
    const connected = await metric(relay.port, "parley_relay_connections");
    if (connected !== IDLE) throw new Error(`idle: the relay reports ${connected} connections, not ${IDLE}`);
    const perConnectionKiB = (rssAfter - rssBefore) / IDLE / 1024;
    bench.progress(
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
    bench.removeTempDir(dataDir);
  }
}

// ---- report -------------------------------------------------------------------------------------------

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
    ...machine(),
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
    loadavgAtEnd: loadavgText(),
  });
  bench.progress(`done in ${totalSeconds.toFixed(0)} s`);
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

bench.run(main);
